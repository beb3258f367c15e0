//! cgroup limits of a sandbox (memory, pids, cpu), independent of the cgroup version.

/// Resource limits applied to the sandbox cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CgroupLimits {
    /// `limits.memory` in bytes.
    pub memory_bytes: Option<u64>,
    /// `limits.pids`.
    pub pids: Option<u64>,
    /// `limits.cpu` in CPUs (1.5 = one and a half CPUs of bandwidth).
    pub cpu: Option<f64>,
}
