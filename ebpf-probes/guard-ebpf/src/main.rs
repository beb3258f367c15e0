//! guard's eBPF probes, linked into one object (`guard-probes`) that the supervisor embeds.
//!
//! One module per event family ([`exec`], [`net`], [`gate`] for DNS; [`rate`] holds the token buckets and
//! [`wake`] decides when a record wakes the supervisor), plus [`features`]: do-nothing programs
//! of each program type that `guard doctor` tries to load to learn what this kernel accepts.
#![no_std]
#![no_main]
// `atomic_xadd` for exact shared counters (BPF_ATOMIC_ADD): core's AtomicU64 has no fetch_add
// on this target. The probes build with RUSTC_BOOTSTRAP=1 already (build-std), see build.rs.
#![feature(core_intrinsics)]
#![allow(
    internal_features,
    reason = "core::intrinsics::atomic_xadd is the only atomic add on bpfel"
)]

mod exec;
mod features;
mod gate;
mod identity;
mod lsm;
mod maps;
mod net;
mod rate;
mod script;
mod unix;
mod wake;

/// The kernel only lets GPL-compatible programs call helpers such as `bpf_probe_read_kernel_str`
/// and `bpf_send_signal`, and only such programs may be LSM or fentry programs.
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // BPF programs cannot panic at run time: any reachable panic makes the verifier reject the
    // program, so this loop is never executed.
    loop {}
}
