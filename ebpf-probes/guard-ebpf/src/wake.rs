//! When a submitted record wakes the sandbox's supervisor.
//!
//! Waking the reader is what a record costs most on the hot path: the kernel queues an
//! `irq_work` (a self-interrupt) on the submitting CPU and the supervisor is scheduled on
//! another. Without a flag the kernel wakes only when the ring was empty before the record,
//! which with a fast reader is nearly every record: measured, the wake-up was a third of the
//! CPU time of an allowed UDP `sendto` under guard. So records of *allowed* operations are
//! submitted without a wake-up; the supervisor drains the ring on a short timer and at the
//! end of the sandbox anyway, and a ring filling past [`WAKE_AT_BYTES`] wakes it at once so it
//! never overflows for want of a wake-up. Denials, audited violations and kills wake it
//! unconditionally (`BPF_RB_FORCE_WAKEUP`): a kill is carried out by the supervisor, and a
//! denial must reach stderr and the log while it matters. A forced wake-up is needed there,
//! not the default: behind unwoken records the kernel's adaptive rule would not wake at all.
//!
//! # Minimum kernel version
//!
//! `bpf_ringbuf_query` and the submit flags: 5.8, as ring buffers themselves.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::bpf_ringbuf_query,
};
use guard_common::names::EVENT_RING_BYTES;

use crate::maps::EventRing;

/// Unread bytes from which even an allowed record wakes the supervisor: an eighth of the ring
/// (about 1,500 network records), leaving the other seven eighths as headroom for the time the
/// supervisor takes to be scheduled.
pub const WAKE_AT_BYTES: u64 = EVENT_RING_BYTES as u64 / 8;

/// The flags for `submit` of a record to `ring`; `urgent` for anything but an allowed
/// operation.
#[inline(always)]
pub fn submit_flags(ring: &EventRing, urgent: bool) -> u64 {
    if urgent {
        return BPF_RB_FORCE_WAKEUP as u64;
    }
    // SAFETY: `ring` is a ring buffer map (from the outer map's lookup); the helper only reads
    // its positions.
    let unread = unsafe {
        bpf_ringbuf_query(
            core::ptr::from_ref(ring).cast_mut().cast(),
            BPF_RB_AVAIL_DATA as u64,
        )
    };
    if unread >= WAKE_AT_BYTES {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
