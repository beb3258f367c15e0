//! Listed `#!` scripts running through an unlisted interpreter (exec tracepoint side).
//!
//! When the kernel runs a script, `binfmt_script` opens the interpreter named in its `#!`
//! line and execs that: at `sched_process_exec` the new image (`mm->exe_file`) is the
//! interpreter, and the script's own `struct file` has already been released (only
//! `binfmt_misc` with the `O` flag keeps it in `bprm->executable`), so the script's inode is
//! no longer reachable from this tracepoint. What is still there is `bprm->filename`, the
//! tracepoint's `filename` field: the path the kernel opened the script by.
//!
//! So a script is allowed when the pair (interpreter identity, exec path) is listed in
//! `SCRIPTS`, one exact-key hash lookup (no argv parsing, no string loop, no path walk: the
//! program grows by a few dozen instructions). Why that is as strong as an inode check here:
//! - running the interpreter directly (`/bin/sh x.sh`, `sh -c ...`) makes the exec path the
//!   interpreter's own path, never a listed script path: denied;
//! - the path must be the absolute path the supervisor resolved (it canonicalizes the script
//!   and checks that file's `#!` interpreter identity before writing the key), byte for byte:
//!   relative paths, `/proc/self/fd/N`, `/dev/fd/N` (fexecve, execveat) and symlinks never
//!   match, so they are denied (guard itself execs the tool's program by its absolute path);
//! - the sandbox cannot make that path name another file: listed exec entries lying under a
//!   write path are refused, and the mount tree is read-only outside the write paths;
//! - a copy of the script elsewhere has another path: denied.
//!
//! The BPF LSM hook (VM) checks the same way (see `lsm.rs`), keeping both paths consistent.

use aya_ebpf::{
    EbpfContext as _, helpers::generated::bpf_probe_read_kernel_str, programs::TracePointContext,
};
use guard_common::{KernelOffsets, event::ProbeError, policy::SCRIPT_PATH_LEN};

use crate::exec::{Exe, read_at};
use crate::maps::{SCRIPT_SCRATCH, SCRIPTS};

/// `__data_loc char[] filename` of `sched_process_exec` (see `exec.rs`).
const FILENAME_DATA_LOC: usize = 8;

/// Whether this exec is a listed script running through its interpreter `exe`.
#[inline(always)]
pub(crate) fn script_allowed(
    ctx: &TracePointContext,
    cgroup_id: u64,
    exe: &Exe,
) -> Result<bool, ProbeError> {
    // SAFETY: reading the tracepoint record at the offset of its fixed format.
    let data_loc: u32 =
        unsafe { ctx.read_at(FILENAME_DATA_LOC) }.map_err(|_| ProbeError::ReadTracepoint)?;
    // A path that does not fit (with its NUL) cannot be a listed one.
    if (data_loc >> 16) as usize > SCRIPT_PATH_LEN {
        return Ok(false);
    }
    let src = (ctx.as_ptr() as *const u8).wrapping_add((data_loc & 0xffff) as usize);
    listed(cgroup_id, exe, src)
}

/// The BPF LSM side: `bprm_check_security` runs once per binfmt level, first with the script
/// file (allowed when it is listed in `EXEC_ALLOW`), then with its interpreter as
/// `bprm->file` and the script's path still in `bprm->filename`: the same pair as above.
#[inline(always)]
pub(crate) fn lsm_script_allowed(
    off: &KernelOffsets,
    bprm: u64,
    cgroup_id: u64,
    exe: &Exe,
) -> Result<bool, ProbeError> {
    if off.bprm_filename == 0 {
        return Err(ProbeError::NoOffsets);
    }
    let filename: u64 = read_at(bprm, off.bprm_filename)?;
    listed(cgroup_id, exe, filename as *const u8)
}

/// Looks (cgroup, interpreter, NUL-terminated kernel string at `src`) up in `SCRIPTS`.
#[inline(always)]
fn listed(cgroup_id: u64, exe: &Exe, src: *const u8) -> Result<bool, ProbeError> {
    let Some(key) = SCRIPT_SCRATCH.get_ptr_mut(0) else {
        return Err(ProbeError::ReadKernel);
    };
    // SAFETY: a per-CPU map value pointer from a successful lookup, used only in this call
    // (programs are not preempted on a CPU mid-run).
    unsafe {
        (*key).cgroup_id = cgroup_id;
        (*key).dev = exe.dev;
        (*key).ino = exe.ino;
        // The key is compared whole: the bytes after the NUL must be zero, as the supervisor
        // wrote them.
        let words = core::ptr::addr_of_mut!((*key).path).cast::<u64>();
        let mut i = 0;
        while i < SCRIPT_PATH_LEN / 8 {
            *words.add(i) = 0;
            i += 1;
        }
        let copied = bpf_probe_read_kernel_str(
            core::ptr::addr_of_mut!((*key).path).cast(),
            SCRIPT_PATH_LEN as u32,
            src.cast(),
        );
        if copied < 0 {
            return Err(ProbeError::ReadKernel);
        }
        // Exactly filled without room for the NUL: longer than any listed path.
        if copied as usize >= SCRIPT_PATH_LEN && (*key).path[SCRIPT_PATH_LEN - 1] != 0 {
            return Ok(false);
        }
        Ok(SCRIPTS.get_ptr(*key).is_some())
    }
}
