//! What this build of `guard exec` cannot enforce, and whether a profile accepts that.
//!
//! The eBPF probes exist (`crate::ebpf`) but `guard exec` does not attach them to sandboxes yet.
//! Until it does, the parts of a policy that only they can enforce are listed here as gaps, and
//! the launcher refuses to start (exit 125) unless the profile accepts each gap by name in
//! `allow_weaker`. Failing closed is the point: a profile must never look stronger than what the
//! kernel is actually told to enforce.

use std::fmt;

use crate::plan::{Plan, Weakening};

/// A part of the policy no layer enforces in this `guard exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// Network rules by address, UDP, unix socket paths, connect rates: eBPF cgroup hooks.
    Network,
    /// Exec allowlist beyond Landlock's execute right (loader tricks, `process.exec`, rates).
    Exec,
}

impl Gap {
    /// The `allow_weaker` entry that accepts this gap.
    pub fn weakening(self) -> Weakening {
        match self {
            Gap::Network => Weakening::EbpfNetwork,
            Gap::Exec => Weakening::EbpfExec,
        }
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Gap::Network => {
                "network rules by address, UDP, unix socket paths and connect rates need the eBPF \
                 network hooks, which guard exec does not attach yet"
            }
            Gap::Exec => {
                "the exec allowlist needs the eBPF exec check, which guard exec does not attach \
                 yet: Landlock's execute right alone lets a readable file run through the dynamic \
                 loader"
            }
        };
        write!(
            f,
            "{what} (accept with allow_weaker = [\"{}\"])",
            self.weakening().as_str()
        )
    }
}

/// The gaps of `plan` that its profile does not accept.
pub fn refused_gaps(plan: &Plan) -> Vec<Gap> {
    // Every sandbox can reach unix sockets and run programs, so both gaps apply to every plan
    // until the probes are attached; only the profile's acceptance differs.
    [Gap::Network, Gap::Exec]
        .into_iter()
        .filter(|gap| !plan.allows_weaker(gap.weakening()))
        .collect()
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
    fn gaps_are_refused_unless_accepted_by_name() {
        let mut plan = bare_plan();
        assert_eq!(refused_gaps(&plan), vec![Gap::Network, Gap::Exec]);
        plan.allow_weaker.push(Weakening::EbpfExec);
        assert_eq!(refused_gaps(&plan), vec![Gap::Network]);
        plan.allow_weaker.push(Weakening::EbpfNetwork);
        assert!(refused_gaps(&plan).is_empty());
    }

    #[test]
    fn the_message_names_the_key_that_accepts_it() {
        assert!(
            Gap::Network
                .to_string()
                .contains("allow_weaker = [\"ebpf.network\"]")
        );
        assert!(
            Gap::Exec
                .to_string()
                .contains("allow_weaker = [\"ebpf.exec\"]")
        );
    }
}
