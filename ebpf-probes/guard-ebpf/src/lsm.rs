//! BPF LSM hooks, used where the kernel lets them load (BPF trampolines and `bpf` in the
//! active LSMs): `bprm_check_security` refuses a forbidden exec with EPERM before it happens,
//! instead of the tracepoint killing the new image. The supervisor tries to load it and carries
//! on without it where it is refused (the tracepoint still enforces, by killing).
//!
//! # Minimum kernel version
//!
//! 5.7, with `CONFIG_BPF_LSM` and `lsm=...,bpf`.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::lsm,
    programs::LsmContext,
};
use guard_common::{
    EventHeader, EventType, ExecEvent, Rule, Verdict,
    event::{FLAG_KILL_SANDBOX, ProbeError},
    policy::{POLICY_AUDIT_EXEC, POLICY_ENFORCE_EXEC, POLICY_KILL_ON_EXEC},
};

use crate::exec::{KERNEL_OFFSETS, exec_allowed, file_identity, read_at};
use crate::identity::current_sandbox;
use crate::maps::{count_error, count_lost, ring_of};
use crate::wake;

const EPERM: i32 = 1;

/// `int bprm_check_security(struct linux_binprm *bprm)`.
#[lsm(hook = "bprm_check_security")]
pub fn guard_bprm_check(ctx: LsmContext) -> i32 {
    let Some((cgroup_id, policy)) = current_sandbox() else {
        return 0;
    };
    if policy.flags & POLICY_ENFORCE_EXEC == 0 {
        return 0;
    }
    let off = KERNEL_OFFSETS.load();
    let bprm: u64 = ctx.arg(0);
    let allowed = if off.valid == 0 {
        Err(ProbeError::NoOffsets)
    } else {
        read_at::<u64>(bprm, off.bprm_file)
            .and_then(|file| file_identity(&off, file))
            .and_then(|exe| {
                Ok(exec_allowed(&off, cgroup_id, &exe)?
                    || crate::script::lsm_script_allowed(&off, bprm, cgroup_id, &exe)?)
            })
    };
    let rule = match allowed {
        Ok(true) => return 0,
        Ok(false) => Rule::ProcessExec,
        // Fail closed: an exec that cannot be checked does not happen.
        Err(step) => {
            count_error(step);
            Rule::ProbeError
        }
    };
    let audit = policy.flags & POLICY_AUDIT_EXEC != 0;
    let mut flags = 0;
    if !audit && policy.flags & POLICY_KILL_ON_EXEC != 0 {
        flags |= FLAG_KILL_SANDBOX;
    }
    // The record says what was refused; the tracepoint never sees this exec.
    if let Some(ring) = ring_of(policy.ring_slot) {
        if let Some(mut entry) = ring.reserve_untyped::<ExecEvent>(0) {
            let event = entry.as_mut_ptr();
            let pid_tgid = bpf_get_current_pid_tgid();
            // SAFETY: `event` points to a reserved record; only the header and lengths are
            // written, the strings stay empty (the supervisor names the exec from its pid).
            unsafe {
                core::ptr::write_bytes(event.cast::<u8>(), 0, size_of::<ExecEvent>());
                (*event).header = EventHeader {
                    etype: EventType::Exec as u32,
                    flags,
                    ktime_ns: bpf_ktime_get_ns(),
                    cgroup_id,
                    pid: (pid_tgid >> 32) as u32,
                    tid: pid_tgid as u32,
                    sandbox_id: policy.sandbox_id,
                    verdict: if audit { Verdict::Audit } else { Verdict::Deny } as u32,
                    rule: rule as u32,
                };
            }
            // Always a refusal (or an audited one): wake the supervisor now.
            entry.submit(wake::submit_flags::<ExecEvent>(ring, true));
        } else {
            count_error(ProbeError::RingBufFull);
            count_lost(cgroup_id);
        }
    } else {
        count_lost(cgroup_id);
    }
    if audit { 0 } else { -EPERM }
}
