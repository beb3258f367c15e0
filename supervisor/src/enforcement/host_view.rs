//! The host facts the enforcement decision reads: exec fills them from what it set up, explain
//! and doctor from detection. Only facts, no decisions.

use crate::host::HostFeatures;

use super::Layer;

/// What the kernel offers, as far as the enforcement of a plan is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct HostView {
    /// Landlock ABI version; 0 when Landlock is unavailable.
    pub landlock_abi: u32,
    /// Whether guard's eBPF probes (cgroup sock_addr hooks and the exec tracepoint) are usable:
    /// for exec, whether they were attached to this sandbox; `Err` carries why not.
    pub probes: Result<(), String>,
    /// Whether the BPF LSM exec hook is part of the probes.
    pub bpf_lsm: bool,
    /// Whether the probes' unix socket hooks are attached (exec) or load (detection); `Err`
    /// says why not.
    pub unix_hooks: Result<(), String>,
    /// The cgroup backend sandboxes get on this host.
    pub cgroup: CgroupLayout,
}

/// The cgroup backend guard uses on this host (the same choice `sandbox::cgroup::create` makes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Pure cgroup v2, with these controllers available at its root.
    V2 { controllers: Vec<String> },
    /// Controllers on v1 hierarchies (these), cgroup2 for membership and eBPF only.
    Hybrid { v1: Vec<String> },
    /// No usable backend (why): `guard exec` cannot create a sandbox cgroup at all.
    Unusable(String),
}

impl CgroupLayout {
    /// The layer that enforces limits through `controller`, when this backend has it.
    pub fn layer_for(&self, controller: &str) -> Option<Layer> {
        match self {
            CgroupLayout::V2 { controllers } if controllers.iter().any(|c| c == controller) => {
                Some(Layer::CgroupV2)
            }
            CgroupLayout::Hybrid { v1 } if v1.iter().any(|c| c == controller) => {
                Some(Layer::CgroupV1)
            }
            _ => None,
        }
    }
}

impl HostView {
    /// The view of a detected host: the probes count as usable when the program types they need
    /// (tracepoint and cgroup sock_addr, with a cgroup2 mount) load.
    pub fn from_features(features: &HostFeatures, cgroup: CgroupLayout) -> Self {
        let probes = if !features.bpf.tracepoint.is_available() {
            Err(refused("tracepoint programs", &features.bpf.tracepoint))
        } else if !features.bpf.cgroup_sock_addr.is_available() {
            Err(refused(
                "cgroup_sock_addr programs",
                &features.bpf.cgroup_sock_addr,
            ))
        } else if features.cgroup.cgroup2_root().is_none() {
            Err("no cgroup2 mount to attach the hooks to".to_owned())
        } else {
            Ok(())
        };
        HostView {
            landlock_abi: features.landlock_abi,
            bpf_lsm: probes.is_ok() && features.bpf.lsm.is_available(),
            unix_hooks: match &features.bpf.cgroup_unix {
                crate::host::Probe::Available => Ok(()),
                crate::host::Probe::Refused(why) => Err(why.clone()),
            },
            probes,
            cgroup,
        }
    }
}

fn refused(what: &str, probe: &crate::host::Probe) -> String {
    match probe {
        crate::host::Probe::Refused(why) => format!("{what} do not load: {why}"),
        crate::host::Probe::Available => format!("{what} load"),
    }
}
