//! The compiled plan of one sandbox: what each enforcement layer must do, derived from a profile.
//!
//! Compiling is pure (no syscalls, no host state beyond what the caller passes in), so every
//! decision here is unit-tested without root. The [`crate::sandbox`] applies a plan; the
//! [`crate::commands::explain`] command describes one.

mod baseline;
pub mod cgroup;
mod compile;
pub mod ebpf;
pub mod exec_writable;
pub mod landlock;
pub mod seccomp;
pub mod seccomp_groups;

use std::ffi::OsString;
use std::time::Duration;

pub use cgroup::CgroupLimits;
pub use compile::{CompileContext, NixUserResolver, PlanError, UserResolver};
pub use ebpf::EbpfPolicy;
pub use landlock::LandlockPlan;
pub use seccomp::SeccompPlan;

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

/// Identity changes for the child: user switch and environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityPlan {
    /// `process.user` resolved to ids, when set.
    pub user: Option<UserIds>,
    /// The supplementary groups set with [`IdentityPlan::user`]: the user's primary group for
    /// `process.user`, the caller's groups for a sandbox the daemon runs for a caller.
    pub groups: Vec<u32>,
    /// The complete environment of the command (keep + set, in a stable order).
    pub env: Vec<(OsString, OsString)>,
}

/// A resolved `process.user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
}

/// Wall-clock and CPU-time limits enforced by the supervisor and rlimits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeLimits {
    pub wall_time: Option<Duration>,
    pub cpu_time: Option<Duration>,
}

/// Everything guard needs to start one sandbox.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The profile's `name`.
    pub profile_name: String,
    /// SHA-256 (hex) of the profile file's bytes, for the audit log.
    pub profile_sha256: String,
    /// In [`Mode::Audit`] guard does not apply Landlock at all (Landlock cannot log instead of
    /// deny), the seccomp action is [`seccomp::SeccompAction::Log`] and every `on_violation`
    /// category is [`ViolationAction::Audit`]; see [`Plan::applies_landlock`].
    pub mode: Mode,
    pub landlock: LandlockPlan,
    pub seccomp: SeccompPlan,
    pub cgroup: CgroupLimits,
    pub time: TimeLimits,
    /// `limits.open_files` as RLIMIT_NOFILE.
    pub open_files: Option<u64>,
    pub identity: IdentityPlan,
    pub ebpf: EbpfPolicy,
    pub on_violation: ViolationPolicy,
    /// `allow_weaker`: parts the profile accepts to lose on hosts that lack the feature.
    pub allow_weaker: Vec<Weakening>,
}

impl Plan {
    /// Whether the sandbox applies the Landlock rules: only in enforce mode, because Landlock has
    /// no log-only mode and an audit run must let the tool do what it tries so it can be recorded.
    pub fn applies_landlock(&self) -> bool {
        self.mode == Mode::Enforce
    }

    /// Whether the profile accepts losing `part` on a host without the feature.
    pub fn allows_weaker(&self, part: Weakening) -> bool {
        self.allow_weaker.contains(&part)
    }
}
