//! Types shared by the eBPF probes and the supervisor: event records and map keys/values, all
//! `#[repr(C)]` with their sizes checked at compile time.
//!
//! The layout is an ABI between two separately compiled programs (the BPF object and the
//! supervisor), so every type here is fixed-size, has explicit padding, and is asserted below;
//! changing a size is a deliberate ABI change that both sides pick up from this one crate.
#![no_std]

pub mod event;
pub mod policy;

pub use event::{COMM_LEN, Event, EventHeader, EventType, ExecData, ExecEvent, FILENAME_LEN};
pub use policy::SandboxPolicy;

/// Names of the maps and programs in the eBPF object, so the loader and the probes cannot drift.
pub mod names {
    /// `RingBuf` of [`crate::Event`] records.
    pub const EVENTS: &str = "EVENTS";
    /// `HashMap<u64 cgroup id, SandboxPolicy>`: the cgroups whose processes are watched.
    pub const SANDBOXES: &str = "SANDBOXES";
    /// `Array<u64>` of error counters, indexed by [`crate::event::ProbeError`].
    pub const PROBE_ERRORS: &str = "PROBE_ERRORS";
    /// `sched/sched_process_exec` tracepoint: exec events for watched cgroups.
    pub const EXEC_TRACEPOINT: &str = "guard_sched_process_exec";
    /// Feature probes: tiny programs that `guard doctor` tries to load, one per program type.
    pub const FEATURE_TRACEPOINT: &str = "feature_tracepoint";
    pub const FEATURE_CONNECT4: &str = "feature_connect4";
    pub const FEATURE_LSM: &str = "feature_lsm";
    pub const FEATURE_FENTRY: &str = "feature_fentry";
    /// The LSM hook and kernel function the feature probes attach to.
    pub const FEATURE_LSM_HOOK: &str = "file_open";
    pub const FEATURE_FENTRY_FUNCTION: &str = "vfs_read";
}
