//! When a submitted record wakes the sandbox's supervisor.
//!
//! Waking the reader is what a record costs most on the hot path: the kernel queues an
//! `irq_work` (a self-interrupt) on the submitting CPU and the supervisor is scheduled on
//! another. Without a flag the kernel wakes only when the ring was empty before the record,
//! which with a fast reader is nearly every record: measured, the wake-up was a third of the
//! CPU time of an allowed UDP `sendto` under guard. So records of *allowed* operations are
//! submitted without a wake-up; the supervisor drains the ring on a short timer and at the
//! end of the sandbox anyway, and a ring filling past [`WAKE_AT_BYTES`] wakes it at once so it
//! never overflows for want of a wake-up. Past that mark only the record that crosses it, and
//! then one every [`WAKE_EVERY_BYTES`], wakes: the supervisor, once awake, reads the ring to
//! its end, and a forced wake-up on every record until it gets there would cost each one a
//! self-interrupt (measured: 2.4% of a UDP send loop's CPU).
//!
//! Denials, audited violations and kills wake it unconditionally (`BPF_RB_FORCE_WAKEUP`): a
//! kill is carried out by the supervisor, and a denial must reach stderr and the log while it
//! matters. A forced wake-up is needed there, not the default: behind unwoken records the
//! kernel's adaptive rule would not wake at all.
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

/// Past [`WAKE_AT_BYTES`], the distance between wake-ups. Records of several CPUs reserved at
/// once can each see the ring past a mark that none of them crossed by its own size, so one
/// crossing may go unannounced; the next one, this far on, is there to catch it, and the ring
/// has room for several before it is full.
pub const WAKE_EVERY_BYTES: u64 = EVENT_RING_BYTES as u64 / 16;

/// The kernel's header before every record in a ring (`BPF_RINGBUF_HDR_SZ`).
const RECORD_HEADER_BYTES: u64 = 8;

const _: () = assert!(WAKE_AT_BYTES.is_multiple_of(WAKE_EVERY_BYTES));

/// The flags for `submit` of a record of type `T` to `ring`, reserved and not yet submitted;
/// `urgent` for anything but an allowed operation.
#[inline(always)]
pub fn submit_flags<T>(ring: &EventRing, urgent: bool) -> u64 {
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
    // The reservation already moved the producer position: `unread` counts this record, which
    // takes its size plus the header, rounded up to 8 bytes.
    let own = (size_of::<T>() as u64 + RECORD_HEADER_BYTES + 7) & !7;
    let before = unread.saturating_sub(own);
    // WAKE_AT_BYTES is a multiple of WAKE_EVERY_BYTES, so crossing it is one of the crossings.
    if unread >= WAKE_AT_BYTES && unread / WAKE_EVERY_BYTES != before / WAKE_EVERY_BYTES {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
