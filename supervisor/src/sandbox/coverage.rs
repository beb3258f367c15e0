//! What a `guard exec` cannot enforce on this host, and whether the profile accepts that.
//!
//! The eBPF probes enforce the network rules by address, UDP, rates and the exec allowlist.
//! When they cannot be loaded on this host, those parts are gaps, and the launcher refuses to
//! start (exit 125) unless the profile accepts each gap by name in `allow_weaker`. Unix socket
//! paths (`network.unix`) are a gap everywhere for now: no probe checks the path yet. Failing
//! closed is the point: a profile must never look stronger than what the kernel enforces.

use std::fmt;

use crate::plan::{Plan, Weakening};

/// A part of the policy no layer enforces in this `guard exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gap {
    /// Network rules by address, UDP, connect rates: the probes did not load (why).
    Network(String),
    /// Exec allowlist beyond Landlock's execute right, exec rates: the probes did not load.
    Exec(String),
    /// `network.unix` lists socket paths, and no probe checks unix connects by path yet.
    UnixPaths,
}

impl Gap {
    /// The `allow_weaker` entry that accepts this gap.
    pub fn weakening(&self) -> Weakening {
        match self {
            Gap::Network(_) => Weakening::EbpfNetwork,
            Gap::Exec(_) => Weakening::EbpfExec,
            Gap::UnixPaths => Weakening::EbpfUnix,
        }
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gap::Network(why) => write!(
                f,
                "network rules by address, UDP and connect rates need guard's eBPF network \
                 hooks, which cannot be used here ({why})"
            )?,
            Gap::Exec(why) => write!(
                f,
                "the exec allowlist needs guard's eBPF exec check, which cannot be used here \
                 ({why}); Landlock's execute right alone lets a readable file run through the \
                 dynamic loader"
            )?,
            Gap::UnixPaths => write!(
                f,
                "network.unix lists socket paths, but no probe checks unix connects by path yet: \
                 any unix socket the tool can reach would be allowed"
            )?,
        }
        write!(
            f,
            " (accept with allow_weaker = [\"{}\"])",
            self.weakening().as_str()
        )
    }
}

/// The gaps of `plan` that its profile does not accept. `probes` is `Err(why)` when the probes
/// could not be attached on this host.
pub fn refused_gaps(plan: &Plan, probes: Result<(), &str>) -> Vec<Gap> {
    let mut gaps = Vec::new();
    if let Err(why) = probes {
        // Every sandbox can reach the network or run programs (seccomp may narrow it, not
        // replace the probes), so both gaps apply to every plan.
        gaps.push(Gap::Network(why.to_owned()));
        gaps.push(Gap::Exec(why.to_owned()));
    }
    if !plan.ebpf.unix.is_empty() {
        gaps.push(Gap::UnixPaths);
    }
    gaps.retain(|gap| !plan.allows_weaker(gap.weakening()));
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare_plan() -> Plan {
        use crate::plan::{ViolationAction, ViolationPolicy};
        Plan {
            profile_name: "t".into(),
            profile_sha256: String::new(),
            mode: crate::plan::Mode::Enforce,
            landlock: Default::default(),
            seccomp: Default::default(),
            cgroup: Default::default(),
            time: Default::default(),
            open_files: None,
            identity: Default::default(),
            ebpf: Default::default(),
            on_violation: ViolationPolicy {
                network: ViolationAction::Deny,
                exec: ViolationAction::Deny,
            },
            allow_weaker: Vec::new(),
        }
    }

    #[test]
    fn attached_probes_leave_no_gap_without_unix_paths() {
        assert!(refused_gaps(&bare_plan(), Ok(())).is_empty());
    }

    #[test]
    fn gaps_are_refused_unless_accepted_by_name() {
        let mut plan = bare_plan();
        let why = Err("EPERM");
        assert_eq!(
            refused_gaps(&plan, why),
            vec![Gap::Network("EPERM".into()), Gap::Exec("EPERM".into())]
        );
        plan.allow_weaker.push(Weakening::EbpfExec);
        assert_eq!(refused_gaps(&plan, why), vec![Gap::Network("EPERM".into())]);
        plan.allow_weaker.push(Weakening::EbpfNetwork);
        assert!(refused_gaps(&plan, why).is_empty());
    }

    #[test]
    fn unix_paths_are_a_gap_even_with_probes() {
        let mut plan = bare_plan();
        plan.ebpf.unix.push("/run/x.sock".into());
        assert_eq!(refused_gaps(&plan, Ok(())), vec![Gap::UnixPaths]);
        plan.allow_weaker.push(Weakening::EbpfUnix);
        assert!(refused_gaps(&plan, Ok(())).is_empty());
    }

    #[test]
    fn the_message_names_the_key_that_accepts_it() {
        assert!(
            Gap::Network("x".into())
                .to_string()
                .contains("allow_weaker = [\"ebpf.network\"]")
        );
        assert!(
            Gap::Exec("x".into())
                .to_string()
                .contains("allow_weaker = [\"ebpf.exec\"]")
        );
        assert!(
            Gap::UnixPaths
                .to_string()
                .contains("allow_weaker = [\"ebpf.unix\"]")
        );
    }
}
