//! Which names a profile lets the DNS gate answer: the host names and `*.suffix` patterns of
//! `network.connect`, each with the ports of its rule.

use crate::policy::network::{Endpoint, Host, Ports};

/// One name rule of `network.connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NameRule {
    host: Host,
    ports: Ports,
    /// The rule as the profile spells it, for records.
    text: String,
}

/// The names a sandbox may look up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameRules {
    rules: Vec<NameRule>,
}

/// What covers a name: the rules (as written) and their ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    pub rules: Vec<String>,
    pub ports: Vec<Ports>,
}

impl NameRules {
    /// The name and pattern entries of `connect` (addresses and networks are not names).
    pub fn from_endpoints(connect: &[Endpoint]) -> Self {
        let rules = connect
            .iter()
            .filter(|e| matches!(e.host, Host::Name(_) | Host::Pattern(_)))
            .map(|e| NameRule {
                host: e.host.clone(),
                ports: e.ports,
                text: e.to_string(),
            })
            .collect();
        Self { rules }
    }

    /// Whether any name or pattern is listed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules covering `name` (any case, with or without the final dot), or `None`.
    pub fn covering(&self, name: &str) -> Option<Covered> {
        let name = normalize(name);
        let mut covered = Covered {
            rules: Vec::new(),
            ports: Vec::new(),
        };
        for rule in &self.rules {
            let hit = match &rule.host {
                Host::Name(n) => *n == name,
                Host::Pattern(suffix) => name
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                Host::Addr(_) | Host::Net(_) => false,
            };
            if hit {
                covered.rules.push(rule.text.clone());
                covered.ports.push(rule.ports);
            }
        }
        (!covered.rules.is_empty()).then_some(covered)
    }

    /// The exact names listed (for /etc/hosts lookups at start).
    pub fn exact_names(&self) -> impl Iterator<Item = (&str, Ports)> {
        self.rules.iter().filter_map(|r| match &r.host {
            Host::Name(n) => Some((n.as_str(), r.ports)),
            _ => None,
        })
    }

    /// The rules as written.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.text.as_str())
    }
}

/// Lower case, without the final dot: how names are compared.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> NameRules {
        let endpoints: Vec<Endpoint> = list.iter().map(|s| s.parse().unwrap()).collect();
        NameRules::from_endpoints(&endpoints)
    }

    #[test]
    fn exact_names_match_in_any_case_with_or_without_the_root_dot() {
        let r = rules(&["api.example.com:443", "10.0.0.0/8:80"]);
        let c = r.covering("API.Example.COM.").unwrap();
        assert_eq!(c.rules, ["api.example.com:443"]);
        assert_eq!(
            c.ports,
            [Ports {
                first: 443,
                last: 443
            }]
        );
        assert!(r.covering("example.com").is_none());
        assert!(r.covering("xapi.example.com").is_none());
        assert!(r.covering("api.example.com.evil.net").is_none());
    }

    #[test]
    fn a_pattern_covers_names_below_its_suffix_but_not_the_suffix_or_lookalikes() {
        let r = rules(&["*.example.com:443"]);
        assert!(r.covering("a.example.com").is_some());
        assert!(r.covering("a.b.example.com").is_some());
        assert!(r.covering("example.com").is_none());
        assert!(r.covering("badexample.com").is_none());
        assert!(r.covering("a.example.com.evil.net").is_none());
        assert!(r.covering(".example.com").is_none());
    }

    #[test]
    fn every_covering_rule_contributes_its_ports() {
        let r = rules(&["*.example.com:443", "api.example.com:8443"]);
        let c = r.covering("api.example.com").unwrap();
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.ports.len(), 2);
    }

    #[test]
    fn too_broad_or_misplaced_wildcards_are_refused() {
        assert!(
            "*.com:443"
                .parse::<Endpoint>()
                .unwrap_err()
                .contains("too broad")
        );
        assert!("a.*.com:443".parse::<Endpoint>().is_err());
        assert!("*example.com:443".parse::<Endpoint>().is_err());
    }
}
