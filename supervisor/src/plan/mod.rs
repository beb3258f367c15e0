//! The compiled plan of one sandbox: what each enforcement layer must do, derived from a profile.
//!
//! Compiling is pure (no syscalls, no host state beyond what the caller passes in), so every
//! decision here is unit-tested without root. The [`crate::sandbox`] applies a plan; the
//! [`crate::commands::explain`] command describes one.

pub mod cgroup;
pub mod ebpf;
pub mod landlock;
pub mod seccomp;
pub mod seccomp_groups;

use std::ffi::OsString;
use std::time::Duration;

pub use cgroup::CgroupLimits;
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

/// Identity changes for the child: user switch and environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityPlan {
    /// `process.user` resolved to ids, when set.
    pub user: Option<UserIds>,
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
}
