//! The maps shared by the probes; their names are the ABI in `guard_common::names`.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use guard_common::{SandboxPolicy, event::PROBE_ERROR_COUNT};

/// Events for userspace. 256 KiB holds about 800 exec records, several seconds of a fork bomb.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// cgroup v2 id -> policy: the cgroups guard watches. Absent means "not ours, do nothing".
#[map]
pub static SANDBOXES: HashMap<u64, SandboxPolicy> = HashMap::with_max_entries(4096, 0);

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
