//! The vocabulary of a policy: the types a profile is written in and a plan is compiled to
//! (modes, violation actions, accepted weakenings, syscall actions and groups, network
//! endpoints). Both [`crate::profile`] and [`crate::plan`] use them, so they live below both and
//! import neither.

pub mod network;
pub mod syscall_groups;

/// Whether guard enforces the profile or only records what it would have denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

/// What happens when a sandboxed process breaks a rule of one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationAction {
    /// The operation fails (EPERM/EACCES); the process goes on.
    Deny,
    /// The whole sandbox is killed.
    Kill,
    /// The operation is allowed and recorded.
    Audit,
}

/// `[on_violation]` resolved per category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViolationPolicy {
    pub network: ViolationAction,
    pub exec: ViolationAction,
}

/// A part of the policy a profile accepts to have enforced more weakly (or not at all) when this
/// host's kernel lacks the feature (`allow_weaker` in the profile). Anything not listed is a hard
/// requirement: `guard exec` fails with 125 rather than run the command with less protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weakening {
    /// `landlock.net`: Landlock TCP port rules (ABI 4); network policy then rests on eBPF alone.
    LandlockNet,
    /// `landlock.scope`: Landlock scoping of abstract unix sockets and signals (ABI 6).
    LandlockScope,
    /// `bpf.lsm`: exec denied with EPERM by BPF LSM `bprm_check_security`; without it a forbidden
    /// exec is killed by the `sched_process_exec` tracepoint after the exec.
    BpfLsm,
    /// `ebpf.network`: running without guard's eBPF network hooks. Then only Landlock's TCP port
    /// rules and (for profiles without any network) the seccomp ban on IP sockets apply: IP and
    /// CIDR limits, UDP to allowed hosts, unix socket paths and connect rates are not enforced.
    EbpfNetwork,
    /// `ebpf.exec`: running without guard's eBPF exec check. Then the exec allowlist is Landlock's
    /// execute right only: a readable file can still be run through the dynamic loader, and
    /// `process.exec` and `execs_per_minute` are not enforced.
    EbpfExec,
    /// `ebpf.unix`: `network.unix` socket paths not checked by path (no probe for unix
    /// connects yet); with the paths listed, AF_UNIX sockets are allowed and reach any socket
    /// the file rules let the tool see.
    EbpfUnix,
}

impl Weakening {
    /// Every weakening, with the spelling used in profiles.
    pub const ALL: [(Weakening, &'static str); 6] = [
        (Weakening::LandlockNet, "landlock.net"),
        (Weakening::LandlockScope, "landlock.scope"),
        (Weakening::BpfLsm, "bpf.lsm"),
        (Weakening::EbpfNetwork, "ebpf.network"),
        (Weakening::EbpfExec, "ebpf.exec"),
        (Weakening::EbpfUnix, "ebpf.unix"),
    ];

    /// The spelling used in profiles (`allow_weaker = ["landlock.net"]`).
    pub fn as_str(self) -> &'static str {
        match self {
            Weakening::LandlockNet => "landlock.net",
            Weakening::LandlockScope => "landlock.scope",
            Weakening::BpfLsm => "bpf.lsm",
            Weakening::EbpfNetwork => "ebpf.network",
            Weakening::EbpfExec => "ebpf.exec",
            Weakening::EbpfUnix => "ebpf.unix",
        }
    }

    /// Parses the profile spelling.
    pub fn parse(s: &str) -> Option<Weakening> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(w, _)| *w)
    }
}

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
