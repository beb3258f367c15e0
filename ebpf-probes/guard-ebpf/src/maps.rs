//! The maps shared by the probes; their names are the ABI in `guard_common::names`.
//!
//! Policy maps are keyed by the sandbox's cgroup id, so one loaded (and pinned) set of probes
//! serves every sandbox on the host. Events go to a ring buffer per sandbox: the slot of
//! `EVENT_RINGS` named in its policy. Each supervisor reads only its own slot's ring, so
//! concurrent sandboxes never consume each other's evidence.

use aya_ebpf::{
    btf_maps::{ArrayOfMaps, RingBuf},
    macros::{btf_map, map},
    maps::{HashMap, LpmTrie, LruHashMap, PerCpuArray},
};
use guard_common::{
    SandboxPolicy, SandboxState,
    event::PROBE_ERROR_COUNT,
    names::{EVENT_RING_BYTES, EVENT_RING_SLOTS},
    policy::{
        ExecKey, GateOrigin, LearnedKey, LearnedValue, Net4Key, Net6Key, PortRules, ScriptKey,
        UnixKey,
    },
};

/// The inner map template of [`EVENT_RINGS`]; the supervisor creates rings of this size.
pub type EventRing = RingBuf<u8, { EVENT_RING_BYTES as usize }>;

/// slot -> ring buffer; a sandbox's slot is `SandboxPolicy::ring_slot`. An array, not a hash
/// keyed by cgroup: rings are created once per slot and reused, so starting a sandbox never
/// updates this map-in-map (each update waits for an RCU grace period).
#[btf_map]
pub static EVENT_RINGS: ArrayOfMaps<EventRing, { EVENT_RING_SLOTS as usize }> = ArrayOfMaps::new();

/// cgroup v2 id -> policy: the cgroups guard watches. Absent means "not ours".
#[map]
pub static SANDBOXES: HashMap<u64, SandboxPolicy> = HashMap::with_max_entries(4096, 0);

/// cgroup v2 id -> rate buckets and lost-event count.
#[map]
pub static SANDBOX_STATE: HashMap<u64, SandboxState> = HashMap::with_max_entries(4096, 0);

/// (cgroup, kind, IPv4 prefix) -> allowed ports.
#[map]
pub static NET4: LpmTrie<Net4Key, PortRules> = LpmTrie::with_max_entries(65536, 0);

/// (cgroup, kind, IPv6 prefix) -> allowed ports.
#[map]
pub static NET6: LpmTrie<Net6Key, PortRules> = LpmTrie::with_max_entries(65536, 0);

/// (cgroup, address) -> ports and expiry: addresses the DNS gate learned from answers to
/// permitted names. Written only by the gate (userspace); the connect hooks read it.
#[map]
pub static LEARNED: HashMap<LearnedKey, LearnedValue> = HashMap::with_max_entries(65536, 0);

/// (cgroup, socket path) -> 1: the unix socket paths a sandbox may reach ([`crate::unix`]).
#[map]
pub static UNIX_PATHS: HashMap<UnixKey, u32> = HashMap::with_max_entries(16384, 0);

/// One scratch `UnixKey` per CPU for the unix hooks.
#[map]
pub static UNIX_SCRATCH: PerCpuArray<UnixKey> = PerCpuArray::with_max_entries(1, 0);

/// socket cookie -> where its DNS traffic was headed before it was sent to the gate. LRU: a
/// socket long closed is forgotten first; a forgotten live socket's replies then show the
/// gate's address, which resolvers reject (the lookup fails, nothing leaks).
#[map]
pub static GATE_ORIGINS: LruHashMap<u64, GateOrigin> = LruHashMap::with_max_entries(16384, 0);

/// A UDP destination one sandbox has sent to (kernel-side only; userspace never reads it).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UdpPeerKey {
    pub cgroup_id: u64,
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u16,
    pub _pad: u32,
}

/// UDP destinations recently sent to, per sandbox: a datagram to a destination not in here
/// takes a `connects_per_minute` token, as a TCP connect does ([`crate::net`]). LRU, so a
/// flood of new destinations evicts old ones, which then count again: never fewer tokens.
#[map]
pub static UDP_PEERS: LruHashMap<UdpPeerKey, u8> = LruHashMap::with_max_entries(65536, 0);

/// (cgroup, dev, inode) -> `EXEC_ALLOW_FILE` or `EXEC_ALLOW_TREE`.
#[map]
pub static EXEC_ALLOW: HashMap<ExecKey, u32> = HashMap::with_max_entries(65536, 0);

/// (cgroup, interpreter dev, inode, script path) -> 1: listed `#!` scripts ([`crate::script`]).
#[map]
pub static SCRIPTS: HashMap<ScriptKey, u32> = HashMap::with_max_entries(16384, 0);

/// One scratch `ScriptKey` per CPU: too large for the probe's 512-byte stack.
#[map]
pub static SCRIPT_SCRATCH: PerCpuArray<ScriptKey> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU counters of failed probe steps, indexed by `guard_common::event::ProbeError`, so
/// userspace can tell a quiet sandbox from one whose events were lost.
#[map]
pub static PROBE_ERRORS: PerCpuArray<u64> = PerCpuArray::with_max_entries(PROBE_ERROR_COUNT, 0);

/// Counts one failure of `step`.
#[inline(always)]
pub fn count_error(step: guard_common::event::ProbeError) {
    if let Some(counter) = PROBE_ERRORS.get_ptr_mut(step as u32) {
        // SAFETY: per-CPU slot, and BPF programs are not preempted on the same CPU mid-update
        // for the same program type, so a plain increment does not race.
        unsafe { *counter += 1 };
    }
}

/// Counts a record the sandbox's supervisor will never see.
#[inline(always)]
pub fn count_lost(cgroup_id: u64) {
    if let Some(state) = SANDBOX_STATE.get_ptr_mut(cgroup_id) {
        // One atomic add (BPF_ATOMIC_ADD): probes on several CPUs losing records of one sandbox
        // at once must not lose counts, or the log would claim a completeness it lacks.
        // SAFETY: a map value pointer from a successful lookup; the u64 field is 8-byte aligned
        // in the repr(C) value and valid while the program runs.
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                core::ptr::addr_of_mut!((*state).lost_events),
                1,
            );
        }
    }
}

/// The ring buffer in `slot` (a sandbox's `SandboxPolicy::ring_slot`), if one was created.
#[inline(always)]
pub fn ring_of(slot: u32) -> Option<&'static EventRing> {
    EVENT_RINGS.get(slot)
}
