//! Process reach: the seccomp rules that keep a sandboxed tool from acting on a process outside
//! itself through a syscall that takes a pid, a process group or a user id.
//!
//! This is defense in depth that does not depend on a PID namespace: the self forms tools use
//! (`prlimit64(0, ...)` behind `setrlimit`, `sched_setaffinity(0, ...)`, `setpriority(PRIO_PROCESS,
//! 0, ...)`) keep working; every other target fails with the baseline's action (EPERM). The pid
//! arguments are `pid_t`, but the rules compare all 64 bits against zero, so a zero pid with
//! garbage in the high bits is refused too (fail closed), and no non-zero pid can pass.
//!
//! # The x86_64 syscalls that address another process, and what contains each
//! | syscall | here | why |
//! |---|---|---|
//! | `prlimit64` | pid ≠ 0 refused | set (and read) another process's limits: the issue-11 attack |
//! | `sched_setaffinity`, `sched_setscheduler`, `sched_setparam`, `sched_setattr` | pid ≠ 0 refused | change another task's CPUs or scheduling (`pthread_setaffinity_np` on another thread of the tool is refused too) |
//! | `setpriority` | which ≠ PRIO_PROCESS or who ≠ 0 refused | `PRIO_USER, 0` means every process of the tool's uid, host included |
//! | `ioprio_set` | which ≠ IOPRIO_WHO_PROCESS or who ≠ 0 refused | same shape as `setpriority` |
//! | `migrate_pages`, `move_pages` | pid ≠ 0 refused | move another process's memory between NUMA nodes |
//! | `get_robust_list` | pid ≠ 0 refused | reads another task's robust-list pointer (an ASLR leak) |
//! | `kcmp`, `process_madvise`, `process_mrelease` | refused outright | compare/advise/reap another process's resources; no tool needs them |
//! | `ptrace`, `process_vm_readv`, `process_vm_writev`, `pidfd_getfd`, `perf_event_open` | refused outright by the baseline's `debug` group | |
//! | `kill`, `tkill`, `tgkill`, `rt_sigqueueinfo`, `rt_tgsigqueueinfo`, `pidfd_send_signal` | allowed | Landlock's signal scope refuses signals to processes outside the sandbox's domain |
//! | `pidfd_open`, `waitid`, `setpgid` | allowed | a pidfd alone acts on nothing (its signal and fd uses are covered above); wait and setpgid reach only the caller's children |
//! | `capset` | allowed | the kernel refuses any pid but the caller's own |
//! | `sched_get*`, `getpriority`, `ioprio_get`, `capget`, `getpgid`, `getsid`, `sched_rr_get_interval` | allowed | read-only; what they reveal is no more than `/proc/<pid>` (confined by the PID namespace and Landlock) |

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};

use super::{SeccompError, native};

/// Syscalls whose first argument is the target pid; only 0 (the caller) is allowed.
const PID_FIRST: &[&str] = &[
    "prlimit64",
    "sched_setaffinity",
    "sched_setscheduler",
    "sched_setparam",
    "sched_setattr",
    "migrate_pages",
    "move_pages",
    "get_robust_list",
];

/// Syscalls that only act on other processes: refused outright.
const OTHER_ONLY: &[&str] = &["kcmp", "process_madvise", "process_mrelease"];

/// `PRIO_PROCESS` of `setpriority(2)`.
const PRIO_PROCESS: u64 = 0;
/// `IOPRIO_WHO_PROCESS` of `ioprio_set(2)`.
const IOPRIO_WHO_PROCESS: u64 = 1;

/// Adds the process-reach rules with `action`, skipping syscalls the filter already denies
/// outright (`covered`).
pub(super) fn add_process_reach_rules(
    filter: &mut ScmpFilterContext,
    action: ScmpAction,
    covered: &dyn Fn(&str) -> bool,
) -> Result<(), SeccompError> {
    let add = |filter: &mut ScmpFilterContext,
               syscall: &'static str,
               cmp: &[ScmpArgCompare]|
     -> Result<(), SeccompError> {
        filter
            .add_rule_conditional(action, native(syscall)?, cmp)
            .map_err(|source| SeccompError::AddRule { syscall, source })?;
        Ok(())
    };
    for &syscall in PID_FIRST {
        if !covered(syscall) {
            add(
                filter,
                syscall,
                &[ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, 0)],
            )?;
        }
    }
    for (syscall, self_which) in [
        ("setpriority", PRIO_PROCESS),
        ("ioprio_set", IOPRIO_WHO_PROCESS),
    ] {
        if covered(syscall) {
            continue;
        }
        // Two rules: either a foreign `which` or a non-zero `who` is refused.
        add(
            filter,
            syscall,
            &[ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, self_which)],
        )?;
        add(
            filter,
            syscall,
            &[ScmpArgCompare::new(1, ScmpCompareOp::NotEqual, 0)],
        )?;
    }
    for &syscall in OTHER_ONLY {
        if !covered(syscall) {
            filter
                .add_rule(action, native(syscall)?)
                .map_err(|source| SeccompError::AddRule { syscall, source })?;
        }
    }
    Ok(())
}
