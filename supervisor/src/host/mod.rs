//! Detection of what this host's kernel offers (Landlock ABI, loadable BPF program types, cgroup
//! mode and controllers, BTF), by probing rather than by reading configuration.
//!
//! [`HostFeatures::detect`] is what `guard doctor` prints. Which layer enforces each part of a
//! profile is decided by [`crate::enforcement::assess`]: `guard explain` and `guard doctor` feed
//! it these features; `guard exec` feeds it what it actually set up (it does not probe here).

pub mod audit;
pub mod bpf;
pub mod btf;
pub mod cgroup;
pub mod landlock;
pub mod offsets_cache;

use std::path::{Path, PathBuf};

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
    /// cgroup unix socket hooks (`BPF_CGROUP_UNIX_CONNECT`, Linux 6.7).
    pub cgroup_unix: Probe,
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

impl CgroupMode {
    /// The cgroup2 mount, where eBPF cgroup hooks attach and sandbox cgroup ids come from.
    pub fn cgroup2_root(&self) -> Option<&Path> {
        match self {
            CgroupMode::V2 { root, .. } => Some(root),
            CgroupMode::Hybrid { unified, .. } => Some(unified),
            CgroupMode::V1 { .. } | CgroupMode::None => None,
        }
    }
}

impl HostFeatures {
    /// Probes this host. Infallible: what cannot be probed is reported as absent or refused
    /// (with the reason), never guessed as present.
    ///
    /// Needs root to learn anything about BPF (without it every program type reads as refused);
    /// may mount tracefs (see [`crate::ebpf::tracefs`]) and briefly creates and removes a cgroup
    /// of its own under the cgroup2 mount.
    pub fn detect() -> Self {
        let cgroup = cgroup::detect();
        HostFeatures {
            kernel_release: kernel_release(),
            landlock_abi: landlock::abi_version(),
            bpf: bpf::detect(cgroup.cgroup2_root()),
            cgroup,
            btf: btf::available(),
        }
    }
}

/// `uname -r`.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}
