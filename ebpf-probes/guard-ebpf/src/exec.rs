//! `sched/sched_process_exec`: checks and records every exec in a watched cgroup.
//!
//! The tracepoint fires after the new image is installed and before it runs its first
//! instruction, so a SIGKILL sent here means the image never runs. The check is on the file's
//! identity (`mm->exe_file`: device and inode), not on the name passed to execve: a copy of an
//! allowed binary is a different inode and is killed; running the dynamic loader, a memfd or an
//! fd directly makes *that* file the exe, so it is checked, not whatever it loads next.
//!
//! Offsets into `task_struct`, `mm_struct`, `file`, `inode`, `super_block` and `dentry` come
//! from the running kernel's BTF, written by the loader into [`KERNEL_OFFSETS`].
//!
//! Failure policy: an exec in a watched sandbox that cannot be checked or recorded (a read
//! failed, offsets missing, the ring buffer full) is killed. A flood must never become a way
//! past the exec policy.
//!
//! # Minimum kernel version
//!
//! The tracepoint exists since 3.4; `bpf_send_signal` needs 5.3, `bpf_get_current_cgroup_id`
//! 4.18 and ring buffers 5.8, so the minimum kernel version for this probe is 5.8.

use aya_ebpf::{
    EbpfContext as _, Global,
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns,
        bpf_probe_read_kernel, bpf_send_signal,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use guard_common::{
    ARGV_LEN, EventHeader, EventType, ExecEvent, FILENAME_LEN, KernelOffsets, Rule, SandboxPolicy,
    Verdict,
    event::{FLAG_ARGV_TRUNCATED, FLAG_KILL_SANDBOX, FLAG_TRUNCATED, ProbeError},
    policy::{
        EXEC_ALLOW_FILE, EXEC_ALLOW_TREE, EXEC_TREE_DEPTH, ExecKey, POLICY_AUDIT_EXEC,
        POLICY_ENFORCE_EXEC, POLICY_KILL_ON_EXEC, POLICY_REPORT_EXEC,
    },
};

use crate::identity::current_sandbox;
use crate::maps::{EXEC_ALLOW, SANDBOX_STATE, count_error, count_lost, ring_of};
use crate::rate;
use crate::wake;

/// Set by the loader (`EbpfLoader::set_global`) from `/sys/kernel/btf/vmlinux`.
#[unsafe(no_mangle)]
pub(crate) static KERNEL_OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    task_mm: 0,
    mm_exe_file: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
    file_inode: 0,
    file_dentry: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    dentry_parent: 0,
    dentry_inode: 0,
    bprm_file: 0,
    valid: 0,
    bprm_filename: 0,
});

// Field offsets from `events/sched/sched_process_exec/format`, stable since the tracepoint was
// added: 8 bytes of common fields, then `__data_loc char[] filename`, `pid_t pid`,
// `pid_t old_pid`. A `__data_loc` is a u32: low 16 bits offset from the record start, high 16
// bits length. (The tracepoint format is an ABI; kernel structs are not, hence BTF for those.)
const FILENAME_DATA_LOC: usize = 8;
const OLD_PID: usize = 16;

const SIGKILL: u32 = 9;

#[tracepoint(category = "sched", name = "sched_process_exec")]
pub fn guard_sched_process_exec(ctx: TracePointContext) -> u32 {
    let Some((cgroup_id, policy)) = current_sandbox() else {
        // Not a sandbox (nor below one): not ours, do nothing.
        return 0;
    };
    let kill = match check_and_record(&ctx, cgroup_id, &policy) {
        Ok(kill) => kill,
        Err(step) => {
            count_error(step);
            true
        }
    };
    if kill {
        // SAFETY: plain helper call, signals the current process.
        if unsafe { bpf_send_signal(SIGKILL) } != 0 {
            count_error(ProbeError::SendSignal);
        }
    }
    0
}

/// The executed file's identity.
pub(crate) struct Exe {
    /// `struct file *` of `mm->exe_file`.
    pub(crate) file: u64,
    /// `struct mm_struct *` of the new image.
    pub(crate) mm: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// Decides and records one exec. `Ok(true)`: kill the process.
#[inline(always)]
fn check_and_record(
    ctx: &TracePointContext,
    cgroup_id: u64,
    policy: &SandboxPolicy,
) -> Result<bool, ProbeError> {
    // `Global` reads the value the loader wrote, not the zeroes the compiler saw.
    let off = KERNEL_OFFSETS.load();
    if off.valid == 0 {
        return Err(ProbeError::NoOffsets);
    }
    let exe = read_exe(&off)?;

    let mut violated = None;
    if policy.flags & POLICY_ENFORCE_EXEC != 0
        && !exec_allowed(&off, cgroup_id, &exe)?
        && !crate::script::script_allowed(ctx, cgroup_id, &exe)?
    {
        violated = Some(Rule::ProcessExec);
    }
    if violated.is_none() && policy.execs_per_minute != 0 {
        let Some(state) = SANDBOX_STATE.get_ptr_mut(cgroup_id) else {
            return Err(ProbeError::NoRing);
        };
        // SAFETY: map value pointer from a successful lookup.
        let bucket = unsafe { core::ptr::addr_of_mut!((*state).execs) };
        if !rate::take(bucket, policy.execs_per_minute) {
            violated = Some(Rule::ExecsPerMinute);
        }
    }
    let mut flags = 0;
    let verdict = match violated {
        None => Verdict::Allow,
        Some(_) if policy.flags & POLICY_AUDIT_EXEC != 0 => Verdict::Audit,
        Some(_) => {
            if policy.flags & POLICY_KILL_ON_EXEC != 0 {
                flags |= FLAG_KILL_SANDBOX;
            }
            Verdict::Kill
        }
    };
    let kill = verdict == Verdict::Kill;

    if policy.flags & POLICY_REPORT_EXEC == 0 && !kill {
        return Ok(false);
    }
    let Some(ring) = ring_of(policy.ring_slot) else {
        count_lost(cgroup_id);
        return Err(ProbeError::NoRing);
    };
    let Some(mut entry) = ring.reserve_untyped::<ExecEvent>(0) else {
        count_lost(cgroup_id);
        return Err(ProbeError::RingBufFull);
    };
    let event = entry.as_mut_ptr();
    let header = Header {
        cgroup_id,
        sandbox_id: policy.sandbox_id,
        flags,
        verdict,
        rule: violated.unwrap_or(Rule::None),
    };
    // The reservation must be submitted or discarded on every path, or the verifier rejects the
    // program; so the fallible part is a separate function and this is the only exit.
    // SAFETY: `event` points to a reserved record of the right size for the duration of this call.
    match unsafe { fill_exec(ctx, event, &off, &exe, &header) } {
        Ok(()) => {
            entry.submit(wake::submit_flags::<ExecEvent>(
                ring,
                verdict != Verdict::Allow,
            ));
            Ok(kill)
        }
        Err(step) => {
            entry.discard(0);
            count_lost(cgroup_id);
            Err(step)
        }
    }
}

/// Reads a kernel value at `base + offset`.
#[inline(always)]
pub(crate) fn read_at<T>(base: u64, offset: u32) -> Result<T, ProbeError> {
    // SAFETY: bpf_probe_read_kernel copes with any address; a bad one is an error, not a fault.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }
        .map_err(|_| ProbeError::ReadKernel)
}

#[inline(always)]
fn read_exe(off: &KernelOffsets) -> Result<Exe, ProbeError> {
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    let mm: u64 = read_at(task, off.task_mm)?;
    let file: u64 = read_at(mm, off.mm_exe_file)?;
    let mut exe = file_identity(off, file)?;
    exe.mm = mm;
    if mm == 0 {
        return Err(ProbeError::ReadKernel);
    }
    Ok(exe)
}

/// Device and inode of the `struct file *` at `file`.
#[inline(always)]
pub(crate) fn file_identity(off: &KernelOffsets, file: u64) -> Result<Exe, ProbeError> {
    let inode: u64 = read_at(file, off.file_inode)?;
    let ino: u64 = read_at(inode, off.inode_ino)?;
    let sb: u64 = read_at(inode, off.inode_sb)?;
    let dev: u32 = read_at(sb, off.sb_dev)?;
    if file == 0 || inode == 0 || sb == 0 {
        return Err(ProbeError::ReadKernel);
    }
    Ok(Exe {
        file,
        mm: 0,
        dev: dev as u64,
        ino,
    })
}

/// Whether `exe` is an allowed file, or lies beneath an allowed directory (walking up at most
/// `EXEC_TREE_DEPTH` levels, within its file system).
#[inline(always)]
pub(crate) fn exec_allowed(
    off: &KernelOffsets,
    cgroup_id: u64,
    exe: &Exe,
) -> Result<bool, ProbeError> {
    let mut key = ExecKey {
        cgroup_id,
        dev: exe.dev,
        ino: exe.ino,
    };
    if let Some(kind) = EXEC_ALLOW.get_ptr(key) {
        // SAFETY: map value pointer from a successful lookup.
        if unsafe { *kind } & EXEC_ALLOW_FILE != 0 {
            return Ok(true);
        }
    }
    let mut dentry: u64 = read_at(exe.file, off.file_dentry)?;
    let mut level = 0;
    while level < EXEC_TREE_DEPTH {
        let parent: u64 = read_at(dentry, off.dentry_parent)?;
        if parent == 0 || parent == dentry {
            // The root of the file system: nothing above it on this device.
            break;
        }
        let inode: u64 = read_at(parent, off.dentry_inode)?;
        key.ino = read_at(inode, off.inode_ino)?;
        if let Some(kind) = EXEC_ALLOW.get_ptr(key) {
            // SAFETY: map value pointer from a successful lookup.
            if unsafe { *kind } & EXEC_ALLOW_TREE != 0 {
                return Ok(true);
            }
        }
        dentry = parent;
        level += 1;
    }
    Ok(false)
}

/// The decision part of the record's header.
struct Header {
    cgroup_id: u64,
    sandbox_id: u64,
    flags: u32,
    verdict: Verdict,
    rule: Rule,
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
    off: &KernelOffsets,
    exe: &Exe,
    header: &Header,
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
    let mut flags = header.flags;
    // The tracepoint's length includes the NUL; a longer string than our buffer was cut.
    if (data_loc >> 16) as usize > FILENAME_LEN {
        flags |= FLAG_TRUNCATED;
    }

    // The argument area of the new image: argv strings, NUL-separated, in user memory the exec
    // just wrote (so it is present; a failed read is recorded as empty, not fatal).
    let arg_start: u64 = read_at(exe.mm, off.mm_arg_start)?;
    let arg_end: u64 = read_at(exe.mm, off.mm_arg_end)?;
    let mut argv_len = arg_end.saturating_sub(arg_start) as u32;
    if argv_len > ARGV_LEN as u32 {
        argv_len = ARGV_LEN as u32;
        flags |= FLAG_ARGV_TRUNCATED;
    }
    // Masking proves the bound to the verifier (ARGV_LEN is a power of two) without a branch
    // it might not follow.
    let read_len = argv_len & (ARGV_LEN as u32 * 2 - 1);
    let read_len = if read_len > ARGV_LEN as u32 {
        ARGV_LEN as u32
    } else {
        read_len
    };
    // SAFETY: `event` is valid for writes; at most ARGV_LEN bytes are written into argv.
    let read = unsafe {
        bpf_probe_read_user(
            core::ptr::addr_of_mut!((*event).data.argv).cast(),
            read_len,
            arg_start as *const core::ffi::c_void,
        )
    };
    let argv_len = if read < 0 { 0 } else { read_len };

    // SAFETY: `event` is valid for writes (caller); fields are written by raw place, never read.
    unsafe {
        (*event).header = EventHeader {
            etype: EventType::Exec as u32,
            flags,
            ktime_ns: bpf_ktime_get_ns(),
            cgroup_id: header.cgroup_id,
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            sandbox_id: header.sandbox_id,
            verdict: header.verdict as u32,
            rule: header.rule as u32,
        };
        (*event).data.filename_len = copied as u32;
        (*event).data.argv_len = argv_len;
        (*event).data.old_pid = old_pid;
        (*event).data.reserved = 0;
        (*event).data.dev = exe.dev;
        (*event).data.ino = exe.ino;
        (*event).data.comm = comm;
    }
    Ok(())
}
