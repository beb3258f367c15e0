//! Types shared by the eBPF probes and the supervisor: event records and map keys/values, all
//! `#[repr(C)]` with their sizes checked at compile time.
//!
//! The layout is an ABI between two separately compiled programs (the BPF object and the
//! supervisor), so every type here is fixed-size, has explicit padding, and is asserted below;
//! changing a size is a deliberate ABI change that both sides pick up from this one crate.
#![no_std]

pub mod event;
pub mod policy;

pub use event::{
    ARGV_LEN, COMM_LEN, Event, EventHeader, EventType, ExecData, ExecEvent, FILENAME_LEN, NetData,
    NetEvent, Rule, UnixData, UnixEvent, Verdict,
};
pub use policy::{KernelOffsets, SandboxPolicy, SandboxState};

/// Names of the maps and programs in the eBPF object, so the loader and the probes cannot drift.
pub mod names {
    /// `ArrayOfMaps<u32 slot, RingBuf>`: a pool of ring buffers of [`crate::Event`] records.
    /// A sandbox's supervisor claims a free slot (a lock file) and puts its index in the
    /// sandbox's [`crate::SandboxPolicy::ring_slot`]; one reader per ring at a time. A slot's
    /// ring is created by the first supervisor that uses the slot and stays in place after it,
    /// because every update of a map-in-map waits for an RCU grace period (~10 ms).
    pub const EVENT_RINGS: &str = "EVENT_RINGS";
    /// Slots in [`EVENT_RINGS`]: the most sandboxes that can run at once per probe build.
    pub const EVENT_RING_SLOTS: u32 = 1024;
    /// Size in bytes of every ring in [`EVENT_RINGS`] (the inner map template's size).
    pub const EVENT_RING_BYTES: u32 = 1 << 20;
    /// `HashMap<u64 cgroup id, SandboxPolicy>`: the cgroups whose processes are watched.
    pub const SANDBOXES: &str = "SANDBOXES";
    /// `HashMap<u64 cgroup id, SandboxState>`: rate-limit buckets and lost-event counts.
    pub const SANDBOX_STATE: &str = "SANDBOX_STATE";
    /// `LpmTrie<Net4Key, PortRules>` and `LpmTrie<Net6Key, PortRules>`: network rules.
    pub const NET4: &str = "NET4";
    pub const NET6: &str = "NET6";
    /// `HashMap<LearnedKey, LearnedValue>`: addresses the DNS gate learned from answers.
    pub const LEARNED: &str = "LEARNED";
    /// `HashMap<UnixKey, u32>`: unix socket paths per sandbox.
    pub const UNIX_PATHS: &str = "UNIX_PATHS";
    /// `PerCpuArray<UnixKey>`: the unix hooks' scratch key.
    pub const UNIX_SCRATCH: &str = "UNIX_SCRATCH";
    /// `HashMap<ExecKey, u32>`: executable files and trees per sandbox.
    pub const EXEC_ALLOW: &str = "EXEC_ALLOW";
    /// `HashMap<ScriptKey, u32>`: listed `#!` scripts per sandbox and interpreter.
    pub const SCRIPTS: &str = "SCRIPTS";
    /// Global `KernelOffsets` set by the loader from the kernel's BTF.
    pub const KERNEL_OFFSETS: &str = "KERNEL_OFFSETS";
    /// The cgroup `sock_addr` programs guard attaches below its cgroup.
    pub const CONNECT4: &str = "guard_connect4";
    pub const CONNECT6: &str = "guard_connect6";
    pub const SENDMSG4: &str = "guard_sendmsg4";
    pub const SENDMSG6: &str = "guard_sendmsg6";
    pub const BIND4: &str = "guard_bind4";
    pub const BIND6: &str = "guard_bind6";
    /// The unix socket hooks (attach types the loader sets itself: aya's program sections do
    /// not name them, so the object files them as connect4 programs it never loads as such).
    pub const CONNECT_UNIX: &str = "guard_connect_unix";
    pub const SENDMSG_UNIX: &str = "guard_sendmsg_unix";
    /// The hooks that show a socket redirected to the DNS gate its original peer.
    pub const RECVMSG4: &str = "guard_recvmsg4";
    pub const RECVMSG6: &str = "guard_recvmsg6";
    pub const GETPEERNAME4: &str = "guard_getpeername4";
    pub const GETPEERNAME6: &str = "guard_getpeername6";
    /// The BPF LSM exec hook (used where BPF LSM loads) and the hook it attaches to.
    pub const LSM_BPRM_CHECK: &str = "guard_bprm_check";
    pub const LSM_BPRM_CHECK_HOOK: &str = "bprm_check_security";
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
