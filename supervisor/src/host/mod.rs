//! Detection of what this host's kernel offers (Landlock ABI, loadable BPF program types, cgroup
//! mode and controllers, BTF), by probing rather than by reading configuration.
//!
//! [`HostFeatures::detect`] is what `guard doctor` prints and what `guard explain` and
//! `guard exec` consult to decide which layer enforces each part of a profile.

use std::path::PathBuf;

/// The outcome of trying one kernel feature for real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The feature was tried and works.
    Available,
    /// The feature was tried and the kernel refused; the reason as the kernel gave it.
    Refused(String),
}

impl Probe {
    pub fn is_available(&self) -> bool {
        matches!(self, Probe::Available)
    }
}

/// Which BPF program types load (and attach where that is part of the test) on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfSupport {
    pub tracepoint: Probe,
    pub cgroup_sock_addr: Probe,
    pub lsm: Probe,
    pub fentry: Probe,
}

/// How cgroups are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupMode {
    /// Pure cgroup v2 at `root` with these controllers enabled at the root.
    V2 {
        root: PathBuf,
        controllers: Vec<String>,
    },
    /// v1 controller hierarchies plus a cgroup2 mount (often without controllers) for eBPF hooks.
    Hybrid {
        /// controller name -> v1 hierarchy mount point
        v1: Vec<(String, PathBuf)>,
        unified: PathBuf,
        unified_controllers: Vec<String>,
    },
    /// Only v1 hierarchies, no cgroup2 mount (eBPF cgroup hooks cannot attach).
    V1 { v1: Vec<(String, PathBuf)> },
    /// No cgroup filesystem found.
    None,
}

/// Everything guard needs to know about the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFeatures {
    pub kernel_release: String,
    /// Landlock ABI version; 0 when Landlock is unavailable.
    pub landlock_abi: u32,
    pub bpf: BpfSupport,
    pub cgroup: CgroupMode,
    /// `/sys/kernel/btf/vmlinux` is present (CO-RE offsets can come from the running kernel).
    pub btf: bool,
}
