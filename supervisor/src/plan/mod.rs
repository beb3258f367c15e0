//! The compiled plan of one sandbox: what each enforcement layer must do, derived from a profile.
//!
//! Compiling is pure (no syscalls, no host state beyond what the caller passes in), so every
//! decision here is unit-tested without root. The [`crate::sandbox`] applies a plan;
//! [`crate::enforcement`] says which layer enforces each part of one on a given host.

mod baseline;
pub mod cgroup;
mod compile;
pub mod ebpf;
pub mod exec_writable;
pub mod landlock;
pub mod seccomp;
pub use crate::policy::syscall_groups as seccomp_groups;

use std::ffi::OsString;
use std::time::Duration;

pub use cgroup::CgroupLimits;
pub use compile::{CompileContext, NixUserResolver, PlanError, UserResolver};
pub use ebpf::EbpfPolicy;
pub use landlock::LandlockPlan;
pub use seccomp::SeccompPlan;

pub use crate::policy::{Mode, ViolationAction, ViolationPolicy, Weakening};

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
