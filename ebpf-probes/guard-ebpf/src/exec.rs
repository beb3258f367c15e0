//! `sched/sched_process_exec`: one record per exec in a watched cgroup.
//!
//! The tracepoint fires after the new image is installed and before it runs its first
//! instruction, so a SIGKILL sent here means the image never runs.
//!
//! # Minimum kernel version
//!
//! The tracepoint exists since 3.4; `bpf_get_current_cgroup_id` needs 4.18 and the ring buffer
//! 5.8, so the minimum kernel version for this probe is 5.8.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_ns, bpf_send_signal, generated::bpf_probe_read_kernel_str,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use guard_common::{
    EventHeader, EventType, ExecEvent, FILENAME_LEN,
    event::{FLAG_TRUNCATED, ProbeError},
    policy::POLICY_REPORT_EXEC,
};

use crate::maps::{EVENTS, SANDBOXES, count_error};

// Field offsets from `events/sched/sched_process_exec/format`, stable since the tracepoint was
// added: 8 bytes of common fields, then `__data_loc char[] filename`, `pid_t pid`,
// `pid_t old_pid`. A `__data_loc` is a u32: low 16 bits offset from the record start, high 16
// bits length.
const FILENAME_DATA_LOC: usize = 8;
const OLD_PID: usize = 16;

const SIGKILL: u32 = 9;

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn guard_sched_process_exec(ctx: TracePointContext) -> u32 {
    match try_exec(&ctx) {
        Ok(()) => 0,
        // Fail closed: an exec in a watched sandbox that guard could not record or check must not
        // run, or a flood that fills the ring buffer would be a way past the exec policy. The
        // process is killed before its first instruction; the counter tells userspace why.
        Err(step) => {
            count_error(step);
            // SAFETY: plain helper call, signals the current process.
            if unsafe { bpf_send_signal(SIGKILL) } != 0 {
                count_error(ProbeError::SendSignal);
            }
            0
        }
    }
}

/// Records the exec if the current cgroup is watched. Errors only after the cgroup is known to
/// be watched, so the caller's fail-closed path never touches processes that are not ours.
fn try_exec(ctx: &TracePointContext) -> Result<(), ProbeError> {
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let Some(policy) = SANDBOXES.get_ptr(cgroup_id) else {
        return Ok(());
    };
    // SAFETY: a map value pointer from a successful lookup; copied at once.
    let policy = unsafe { *policy };
    if policy.flags & POLICY_REPORT_EXEC == 0 {
        return Ok(());
    }

    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        return Err(ProbeError::RingBufFull);
    };
    let event = entry.as_mut_ptr();
    // The reservation must be submitted or discarded on every path, or the verifier rejects the
    // program; so the fallible part is a separate function and this is the only exit.
    // SAFETY: `event` points to a reserved record of the right size for the duration of this call.
    match unsafe { fill_exec(ctx, event, cgroup_id, policy.sandbox_id) } {
        Ok(()) => {
            entry.submit(0);
            Ok(())
        }
        Err(step) => {
            entry.discard(0);
            Err(step)
        }
    }
}

/// Writes every field of the record at `event`.
///
/// # Safety
///
/// `event` must point to writable memory of `size_of::<ExecEvent>()` bytes.
#[inline(always)]
unsafe fn fill_exec(
    ctx: &TracePointContext,
    event: *mut ExecEvent,
    cgroup_id: u64,
    sandbox_id: u64,
) -> Result<(), ProbeError> {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: reading the tracepoint record at offsets of its fixed format.
    let data_loc: u32 =
        unsafe { ctx.read_at(FILENAME_DATA_LOC) }.map_err(|_| ProbeError::ReadTracepoint)?;
    let old_pid: u32 = unsafe { ctx.read_at(OLD_PID) }.map_err(|_| ProbeError::ReadTracepoint)?;
    let comm = bpf_get_current_comm().map_err(|_| ProbeError::ReadTracepoint)?;

    let filename_src = (ctx.as_ptr() as *const u8).wrapping_add((data_loc & 0xffff) as usize);
    // SAFETY: `event` is valid for writes (caller); the helper writes at most FILENAME_LEN bytes
    // into the filename array and always NUL-terminates.
    let copied = unsafe {
        bpf_probe_read_kernel_str(
            core::ptr::addr_of_mut!((*event).data.filename).cast(),
            FILENAME_LEN as u32,
            filename_src.cast(),
        )
    };
    if copied < 0 {
        return Err(ProbeError::ReadTracepoint);
    }
    // The tracepoint's length includes the NUL; a longer string than our buffer was cut.
    let flags = if (data_loc >> 16) as usize > FILENAME_LEN {
        FLAG_TRUNCATED
    } else {
        0
    };

    // SAFETY: `event` is valid for writes (caller); fields are written by raw place, never read.
    unsafe {
        (*event).header = EventHeader {
            etype: EventType::Exec as u32,
            flags,
            ktime_ns: bpf_ktime_get_ns(),
            cgroup_id,
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            sandbox_id,
        };
        (*event).data.filename_len = copied as u32;
        (*event).data.old_pid = old_pid;
        (*event).data.comm = comm;
    }
    Ok(())
}
