//! The seccomp part of a plan: which syscalls are denied and how.

pub use crate::policy::SeccompAction;

/// The syscall rule set, before libseccomp compiles it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeccompPlan {
    /// Syscall names to deny unconditionally (groups expanded, sorted, deduplicated).
    pub deny: Vec<String>,
    /// What the profile's own `syscalls.deny` entries do.
    pub action: SeccompAction,
    /// The entries of `deny` (names, groups or markers) that guard adds to every sandbox: the
    /// always-on baseline. They keep EPERM (or kill, when the profile asks for kill) whatever
    /// `action` says, so `syscalls.action = "log"` in enforce mode weakens only the profile's own
    /// rules; only audit mode (`audit`) turns them into log-only.
    pub baseline: Vec<String>,
    /// Audit mode: every rule, the baseline included, logs instead of denying.
    pub audit: bool,
}

impl SeccompPlan {
    /// The action of the always-on baseline: log in audit mode, kill when the profile asks for
    /// kill, EPERM otherwise (a profile's `log` never weakens it).
    pub fn baseline_action(&self) -> SeccompAction {
        match (self.audit, self.action) {
            (true, _) => SeccompAction::Log,
            (false, SeccompAction::Kill) => SeccompAction::Kill,
            (false, SeccompAction::Errno | SeccompAction::Log) => SeccompAction::Errno,
        }
    }

    /// The action of the profile's own entries: log in audit mode, `action` otherwise.
    pub fn profile_action(&self) -> SeccompAction {
        if self.audit {
            SeccompAction::Log
        } else {
            self.action
        }
    }
}
