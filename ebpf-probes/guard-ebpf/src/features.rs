//! Feature probes: one do-nothing program per program type guard uses, so `guard doctor` can
//! ask the kernel which ones it accepts by loading them (the only reliable test: a type can be
//! compiled in and still refused, as BPF LSM is on hosts without BPF trampolines).
//!
//! They decide nothing: each returns the "no opinion / allow" value of its type, so the brief
//! moment they are attached changes nothing for the host.

use aya_ebpf::{
    macros::{cgroup_sock_addr, fentry, lsm, tracepoint},
    programs::{FEntryContext, LsmContext, SockAddrContext, TracePointContext},
};

/// # Minimum kernel version
///
/// The minimum kernel version required to use this feature is 4.7.
#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn feature_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}

/// Returns 1: let the connect proceed.
///
/// # Minimum kernel version
///
/// The minimum kernel version required to use this feature is 4.17.
#[cgroup_sock_addr(connect4)]
pub fn feature_connect4(_ctx: SockAddrContext) -> i32 {
    1
}

/// Returns 0: no objection from this LSM.
///
/// # Minimum kernel version
///
/// The minimum kernel version required to use this feature is 5.7, with `bpf` in the active
/// LSMs and BPF trampolines available.
#[lsm(hook = "file_open")]
pub fn feature_lsm(_ctx: LsmContext) -> i32 {
    0
}

/// # Minimum kernel version
///
/// The minimum kernel version required to use this feature is 5.5 (BPF trampolines).
#[fentry(function = "vfs_read")]
pub fn feature_fentry(_ctx: FEntryContext) -> u32 {
    0
}
