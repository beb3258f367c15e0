//! The seccomp part of a plan: which syscalls are denied and how.

/// `syscalls.action`: what a denied syscall does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeccompAction {
    /// The syscall fails with EPERM.
    #[default]
    Errno,
    /// The process is killed (SIGSYS).
    Kill,
    /// The syscall is allowed and logged by the kernel.
    Log,
}

/// The syscall rule set, before libseccomp compiles it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeccompPlan {
    /// Syscall names to deny unconditionally (groups expanded, sorted, deduplicated).
    pub deny: Vec<String>,
    pub action: SeccompAction,
}
