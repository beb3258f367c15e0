//! How the command's process is started ([`spawn`]) and what it does between its start and
//! `execve` ([`run`]).
//!
//! The supervisor may hold threads (aya, the daemon), so after the fork or clone the child only
//! runs async-signal-safe raw syscalls on data the parent prepared: no allocation, no locks, no
//! `std::process`. Every step reports its failure as a [`ChildFailure`] on the report pipe and
//! ends the child with status 125 (126/127 for the exec step), so nothing of the command runs
//! when confinement could not be completed.

use std::ffi::{CString, c_char};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid, fork};

use super::handshake::{ChildFailure, ChildStep, GO};
use super::mounts::{self, MountPlan};
use super::seccomp::CompiledSeccomp;
use crate::plan::UserIds;

/// Everything the child needs, prepared by the parent before `fork`.
pub struct ChildSetup<'a> {
    /// Absolute path of the program (PATH lookup was done in the parent).
    pub program: &'a CString,
    /// NULL-terminated `argv` pointing into strings the parent owns.
    pub argv: &'a [*const c_char],
    /// NULL-terminated `envp` pointing into strings the parent owns.
    pub envp: &'a [*const c_char],
    pub workdir: &'a CString,
    /// RLIMIT_* resource and value pairs.
    pub rlimits: &'a [(libc::__rlimit_resource_t, libc::rlimit)],
    /// Highest capability number of this kernel (/proc/sys/kernel/cap_last_cap).
    pub last_cap: u32,
    pub user: Option<UserIds>,
    /// Supplementary groups set with `user` (ignored without it).
    pub groups: &'a [libc::gid_t],
    /// The Landlock ruleset fd; `None` when Landlock is not applied (audit mode, no Landlock).
    pub landlock_ruleset: Option<RawFd>,
    /// `landlock_restrict_self` flags (`LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON` when guard reads
    /// Landlock's audit records: denials after the exec are then logged).
    pub landlock_flags: u32,
    pub seccomp: Option<&'a CompiledSeccomp>,
    /// The read-only file tree; `None` in audit mode (nothing is denied there).
    pub mounts: Option<&'a MountPlan>,
    /// Read end of the go pipe.
    pub go: RawFd,
    /// Write end of the close-on-exec report pipe.
    pub report: RawFd,
    /// The supervisor's pid, to notice if it died before we set PDEATHSIG.
    pub supervisor_pid: libc::pid_t,
    /// The child's end of a unix socket pair: the seccomp listener is sent through it when
    /// the filter has one (`-1` otherwise).
    pub listener_socket: RawFd,
}

/// Capability header version 3 (64-bit capability sets in two 32-bit words).
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `clone3` flag: start the child in the cgroup2 directory `clone_args.cgroup` names (5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, kernel 5.7), the size the kernel
/// is told: an older kernel that does not know the `cgroup` field refuses the size with E2BIG.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The child the parent got back from [`spawn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spawned {
    /// Started inside the sandbox's cgroup2 directory: nothing is left to move.
    InCgroup(Pid),
    /// Forked into guard's own cgroups: the parent must move it with `add_task` before `GO`.
    Forked(Pid),
}

/// Starts the child, which runs [`run`] and waits for `GO` before anything else.
///
/// With `cgroup` (the sandbox's cgroup2 directory, on a host where that directory is the whole
/// sandbox) the child is created there by `clone3(CLONE_INTO_CGROUP)`: a fork followed by a write
/// of its pid to `cgroup.procs` takes `cgroup_threadgroup_rwsem` for writing, which waits for an
/// RCU grace period (about 10 ms), while a clone into the cgroup only takes it for reading. A
/// kernel without it (before 5.7 for the flag, 5.3 for `clone3`), or a seccomp policy around
/// guard that refuses `clone3`, gets the fork.
///
/// `clone3` is called as a raw syscall, so none of glibc's fork handlers run in the child: its
/// locks and thread list are whatever they were in the parent. [`run`] does not depend on them
/// (raw syscalls only), for the fork as well.
///
/// # Safety
/// The pointers in `setup` must be valid; see [`run`].
pub unsafe fn spawn(
    setup: &ChildSetup<'_>,
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<Spawned, Errno> {
    if let Some(cgroup) = cgroup {
        let args = CloneArgs {
            flags: CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            // The fd is a small non-negative int; the kernel reads it from a u64.
            cgroup: cgroup.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: `args` is a valid clone_args of the size given. Without CLONE_VM and with no
        // stack the child continues on a copy of this stack, like after fork, and only runs
        // `run`, which never returns.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &raw const args,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match pid {
            0 => unsafe { run(setup) },
            pid if pid > 0 => return Ok(Spawned::InCgroup(Pid::from_raw(pid as libc::pid_t))),
            _ => match Errno::last() {
                // No clone3, no CLONE_INTO_CGROUP, or clone3 refused by a filter (container
                // runtimes once answered EPERM): the fork below does the same in two steps.
                Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL | Errno::EPERM => {}
                err => return Err(err),
            },
        }
    }
    // SAFETY: the child only runs `run`, which uses raw syscalls on prepared memory.
    match unsafe { fork() }? {
        ForkResult::Child => unsafe { run(setup) },
        ForkResult::Parent { child } => Ok(Spawned::Forked(child)),
    }
}

/// Runs the child's confinement steps in order and execs the command. Never returns.
///
/// # Safety
/// Must only be called in the child right after [`spawn`] created it; the pointers in `setup`
/// must be valid.
pub unsafe fn run(setup: &ChildSetup<'_>) -> ! {
    // SAFETY: every call below is a raw syscall on memory prepared before fork.
    unsafe {
        // If the supervisor dies, so does the child: no confined tool outlives its supervisor
        // unsupervised. The getppid check closes the race with a parent that died before prctl.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
            || libc::getppid() != setup.supervisor_pid
        {
            fail(setup.report, ChildStep::WaitForGo, errno(), 125);
        }

        // 1. Working directory before Landlock, so that a workdir outside the profile still
        //    becomes the cwd (reads there are then denied by Landlock, as they should be).
        if libc::chdir(setup.workdir.as_ptr()) != 0 {
            fail(setup.report, ChildStep::Workdir, errno(), 125);
        }

        // 2. rlimits (open_files, cpu_time per process as a backstop to the cgroup-wide check).
        for (resource, limit) in setup.rlimits {
            if libc::setrlimit(*resource, limit) != 0 {
                fail(setup.report, ChildStep::Rlimits, errno(), 125);
            }
        }

        // 2b. A private IPC namespace (issue 11): System V shared memory, message queues and
        //     semaphores of the host are invisible to the tool, and what the tool creates dies
        //     with the namespace when its last process exits, so nothing outlives the run. Done
        //     here, before the capabilities go, because it needs CAP_SYS_ADMIN; in the child
        //     rather than as a clone flag so the clone3 and the fork paths behave alike.
        if libc::unshare(libc::CLONE_NEWIPC) != 0 {
            fail(setup.report, ChildStep::IpcNamespace, errno(), 125);
        }

        // 2c. A mount namespace whose tree is read-only outside the write paths (see
        //     `mounts`): metadata changes (chmod, utimensat, setxattr, chattr) that Landlock
        //     cannot refuse fail with EROFS. Needs CAP_SYS_ADMIN, so before step 3. The working
        //     directory is entered again: the one from step 1 may now be covered by a writable
        //     clone of a write path.
        if let Some(plan) = setup.mounts {
            if let Err(code) = mounts::seal(plan) {
                fail(setup.report, ChildStep::Mounts, code, 125);
            }
            if libc::chdir(setup.workdir.as_ptr()) != 0 {
                fail(setup.report, ChildStep::Workdir, errno(), 125);
            }
        }

        // 3. Capabilities, bounding set first: dropping it needs CAP_SETPCAP, which the user
        //    switch below takes away.
        for cap in 0..=setup.last_cap {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                && errno() != libc::EINVAL
            {
                fail(setup.report, ChildStep::DropBoundingSet, errno(), 125);
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            fail(setup.report, ChildStep::DropBoundingSet, errno(), 125);
        }

        // 4. process.user: groups, then gid, then uid (setuid last, it takes the right to the rest).
        //    Raw syscalls, not glibc's wrappers: those take a lock and signal every thread glibc
        //    knows of, which after a raw clone3 are the parent's threads (and its lock state).
        if let Some(user) = setup.user
            && (libc::syscall(
                libc::SYS_setgroups,
                setup.groups.len(),
                setup.groups.as_ptr(),
            ) != 0
                || libc::syscall(libc::SYS_setresgid, user.gid, user.gid, user.gid) != 0
                || libc::syscall(libc::SYS_setresuid, user.uid, user.uid, user.uid) != 0)
        {
            fail(setup.report, ChildStep::SwitchUser, errno(), 125);
        }
        // A change of the effective uid or gid clears the parent-death signal: set it again,
        // and check again that the supervisor is still there.
        if setup.user.is_some()
            && (libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                || libc::getppid() != setup.supervisor_pid)
        {
            fail(setup.report, ChildStep::SwitchUser, errno(), 125);
        }

        // 5. Empty the effective, permitted and inheritable sets (bounding and ambient are done).
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [CapData {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        if libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) != 0 {
            fail(setup.report, ChildStep::ClearCapabilities, errno(), 125);
        }

        // 6. no_new_privs: no setuid binary or file capability can give anything back, and it is
        //    what allows an unprivileged Landlock and seccomp.
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(setup.report, ChildStep::NoNewPrivs, errno(), 125);
        }

        // 7. Landlock: files, TCP ports, scopes.
        if let Some(ruleset) = setup.landlock_ruleset {
            if libc::syscall(
                libc::SYS_landlock_restrict_self,
                ruleset,
                setup.landlock_flags,
            ) != 0
            {
                fail(setup.report, ChildStep::Landlock, errno(), 125);
            }
            libc::close(ruleset);
        }

        // 8. Nothing the supervisor holds (BPF maps, audit log, cgroup fds, fds it inherited)
        //    may reach the tool: mark every descriptor above stderr close-on-exec.
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            fail(setup.report, ChildStep::Stdio, errno(), 125);
        }

        // 9. Wait until the parent has put us in the sandbox cgroups and the probes watch them:
        //    anything the command does must already be accounted and policed. The steps above
        //    only take rights away from this process, so they run before, while the parent
        //    moves us (which waits for an RCU grace period on v1 hierarchies), not after it.
        //    Signals stay blocked until here: one that arrives meanwhile is delivered after GO,
        //    as if the child had waited for GO first.
        let mut byte = 0u8;
        loop {
            let n = libc::read(setup.go, (&raw mut byte).cast(), 1);
            if n == 1 && byte == GO {
                break;
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            // EOF or anything else: the supervisor gave up; run nothing.
            libc::_exit(125);
        }
        libc::close(setup.go);

        // 10. The supervisor blocks signals it reads through signalfd and Rust ignores SIGPIPE;
        //     both would be inherited through execve, so reset them to what a shell would give.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            fail(setup.report, ChildStep::ResetSignals, errno(), 125);
        }
        for signal in [libc::SIGPIPE, libc::SIGXFSZ] {
            libc::signal(signal, libc::SIG_DFL);
        }

        // 11. seccomp last: the steps above need syscalls the filter may deny.
        if let Some(filter) = setup.seccomp {
            match super::seccomp::install(filter) {
                Err(err) => fail(setup.report, ChildStep::Seccomp, err as i32, 125),
                // The supervisor answers (and records) every denied syscall from now on, so
                // it needs the listener before the command runs.
                Ok(Some(listener)) => {
                    if send_fd(setup.listener_socket, listener) != 0 {
                        fail(setup.report, ChildStep::SeccompListener, errno(), 125);
                    }
                    libc::close(listener);
                }
                Ok(None) => {}
            }
        }
        if setup.listener_socket >= 0 {
            libc::close(setup.listener_socket);
        }

        // 12. exec. EACCES (Landlock execute right, noexec) is 126, ENOENT 127 (contract).
        libc::execve(
            setup.program.as_ptr(),
            setup.argv.as_ptr(),
            setup.envp.as_ptr(),
        );
        let err = errno();
        let status = if err == libc::ENOENT || err == libc::ENOTDIR {
            127
        } else {
            126
        };
        fail(setup.report, ChildStep::Exec, err, status)
    }
}

/// Sends `fd` over the unix socket `socket` (SCM_RIGHTS) with one byte of data, from stack
/// memory only (the child may not allocate). Returns 0 or -1 with errno set.
unsafe fn send_fd(socket: RawFd, fd: RawFd) -> isize {
    // Room for one cmsghdr and one int, aligned for cmsghdr (CMSG_SPACE(4) is 24 on 64-bit).
    let mut control = [0u64; 4];
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: msghdr is plain data; every pointer set below points at live stack memory.
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if cmsg.is_null() {
            return -1;
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        if libc::sendmsg(socket, &raw const msg, libc::MSG_NOSIGNAL) < 0 {
            -1
        } else {
            0
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Reports `step` failed with `err` and ends the child with `status`.
unsafe fn fail(report: RawFd, step: ChildStep, err: i32, status: i32) -> ! {
    let message = ChildFailure { step, errno: err }.encode();
    // SAFETY: raw write of a stack buffer, then _exit without running destructors or atexit.
    unsafe {
        libc::write(report, message.as_ptr().cast(), message.len());
        libc::_exit(status)
    }
}
