//! Compile tests (pure) and forked-child tests that load the filter.
//!
//! A loaded filter cannot be removed, so every load happens in a child forked from the test
//! harness (youki's `test_in_child_process`): the child makes only raw syscalls, reports through
//! its exit status, and the parent asserts. Each test has its own child, so they need no
//! serialisation among themselves.

use libseccomp::{ScmpArch, ScmpSyscall};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

use super::*;
use crate::plan::seccomp_groups::{BASELINE_MARKERS, GROUPS};

/// Exit status of a child whose syscall unexpectedly succeeded.
const SUCCEEDED: i32 = 200;

fn plan(deny: &[&str], action: SeccompAction) -> SeccompPlan {
    SeccompPlan {
        deny: deny.iter().map(|s| (*s).to_owned()).collect(),
        action,
        baseline: Vec::new(),
        audit: false,
    }
}

fn compiled(deny: &[&str], action: SeccompAction) -> CompiledSeccomp {
    compile(&plan(deny, action)).unwrap_or_else(|e| panic!("compiling {deny:?}: {e}"))
}

/// Runs `body` in a forked child and returns how the child ended. `body` must be
/// async-signal-safe: the harness is multithreaded.
fn in_child(body: impl FnOnce() -> i32) -> WaitStatus {
    // SAFETY: the child runs only raw syscalls (the body's contract) and leaves with `_exit`,
    // never returning into the harness.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = body();
            // SAFETY: `_exit` skips atexit handlers and stdio flushing that belong to the parent.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            waitpid(child, None).unwrap_or_else(|e| panic!("waitpid {child}: {e}"))
        }
        Err(e) => panic!("fork: {e}"),
    }
}

/// Installs `filter` and runs `probe`, exiting with its errno (or [`SUCCEEDED`]).
fn errno_in_filtered_child(
    filter: &CompiledSeccomp,
    probe: impl FnOnce() -> libc::c_long,
) -> WaitStatus {
    in_child(|| {
        // A SIGSYS kill would dump core into the test's working directory.
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain setrlimit with a valid pointer.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &raw const no_core) };
        if let Err(e) = install(filter) {
            return 100 + e as i32;
        }
        outcome(probe())
    })
}

fn outcome(ret: libc::c_long) -> i32 {
    if ret == -1 {
        Errno::last_raw()
    } else {
        SUCCEEDED
    }
}

fn assert_exit(status: WaitStatus, code: i32, what: &str) {
    match status {
        WaitStatus::Exited(_, got) => assert_eq!(
            got,
            code,
            "{what}: child exited {got}, expected {code} ({})",
            Errno::from_raw(code)
        ),
        other => panic!("{what}: child ended with {other:?}, expected exit {code}"),
    }
}

fn assert_killed_by_sigsys(status: WaitStatus, what: &str) {
    assert!(
        matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
        "{what}: child ended with {status:?}, expected SIGSYS"
    );
}

// ---- compile ----

#[test]
fn compile_produces_a_program_ending_in_return() {
    let filter = compiled(&["ptrace"], SeccompAction::Errno);
    let insns = filter.instructions();
    assert!(!insns.is_empty());
    let last = insns[insns.len() - 1];
    // BPF_RET | BPF_K: every path of a seccomp program must end in a return.
    assert_eq!(last.code, 0x06, "{filter:?}");
}

#[test]
fn empty_plan_still_compiles() {
    assert!(
        !compiled(&[], SeccompAction::Errno)
            .instructions()
            .is_empty()
    );
}

#[test]
fn unknown_syscall_is_an_error() {
    let err = compile(&plan(&["no_such_syscall"], SeccompAction::Errno)).err();
    assert!(
        matches!(&err, Some(SeccompError::ResolveSyscall { name, .. }) if name == "no_such_syscall"),
        "{err:?}"
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn syscall_of_another_architecture_is_an_error_when_named_alone() {
    // socketcall exists on i386, not on x86_64; no group lists it.
    let err = compile(&plan(&["socketcall"], SeccompAction::Errno)).err();
    assert!(
        matches!(&err, Some(SeccompError::SyscallNotOnArch { name }) if name == "socketcall"),
        "{err:?}"
    );
}

#[test]
fn groups_expand_and_skip_members_this_architecture_lacks() {
    let all: Vec<&str> = GROUPS.iter().map(|(name, _)| *name).collect();
    let with_groups = compiled(&all, SeccompAction::Errno);
    let single = compiled(&["ptrace"], SeccompAction::Errno);
    assert!(with_groups.instructions().len() > single.instructions().len());
}

#[test]
fn unknown_group_is_an_error() {
    let err = compile(&plan(&["@nope"], SeccompAction::Kill)).err();
    assert!(
        matches!(err, Some(SeccompError::ExpandGroups(_))),
        "{err:?}"
    );
}

#[test]
fn every_group_member_is_a_syscall_libseccomp_knows() {
    // Catches typos: a misspelt member would be skipped silently as "not on this architecture".
    let arches = [
        ScmpArch::X8664,
        ScmpArch::X86,
        ScmpArch::Aarch64,
        ScmpArch::Arm,
        ScmpArch::Ppc64,
        ScmpArch::S390X,
        ScmpArch::Mips,
    ];
    for (group, members) in GROUPS {
        for member in members.iter().filter(|m| !m.starts_with('@')) {
            let known = arches.iter().any(|arch| {
                ScmpSyscall::from_name_by_arch(member, *arch).is_ok_and(|s| s.as_raw_syscall() >= 0)
            });
            assert!(known, "{group}: libseccomp knows no syscall `{member}`");
        }
    }
}

#[test]
fn markers_compile_with_every_action_and_alongside_outright_denials() {
    for action in [
        SeccompAction::Errno,
        SeccompAction::Kill,
        SeccompAction::Log,
    ] {
        compiled(BASELINE_MARKERS, action);
        let mut deny = BASELINE_MARKERS.to_vec();
        deny.extend(["ioctl", "clone", "clone3", "unshare"]);
        compiled(&deny, action);
    }
}

#[test]
fn decode_rejects_a_partial_instruction() {
    let err = decode(&[0; 12]).err();
    assert!(
        matches!(err, Some(SeccompError::TruncatedProgram { bytes: 12 })),
        "{err:?}"
    );
}

// ---- loaded in a child ----

#[test]
fn errno_action_denies_listed_syscall_and_allows_others() {
    let filter = compiled(&["ptrace"], SeccompAction::Errno);
    let status = errno_in_filtered_child(&filter, || {
        // SAFETY: PTRACE_TRACEME takes no pointers.
        let traced = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
        if traced != -1 || Errno::last() != Errno::EPERM {
            return 0;
        }
        // SAFETY: getpid has no arguments.
        unsafe { libc::syscall(libc::SYS_getpid) }
    });
    // getpid succeeded after ptrace failed with EPERM.
    assert_exit(status, SUCCEEDED, "ptrace denied, getpid allowed");
}

#[test]
fn kill_action_kills_with_sigsys() {
    let filter = compiled(&["ptrace"], SeccompAction::Kill);
    // SAFETY: PTRACE_TRACEME takes no pointers.
    let status = errno_in_filtered_child(&filter, || unsafe {
        libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0)
    });
    assert_killed_by_sigsys(status, "ptrace under kill action");
}

#[test]
fn group_member_is_denied() {
    let filter = compiled(&["@debug"], SeccompAction::Errno);
    // SAFETY: a null iovec with count 0 is never dereferenced.
    let status = errno_in_filtered_child(&filter, || unsafe {
        libc::syscall(libc::SYS_process_vm_readv, 1, 0, 0, 0, 0, 0)
    });
    assert_exit(status, libc::EPERM, "process_vm_readv from @debug");
}

#[test]
fn unshare_newuser_is_denied_but_other_unshare_flags_pass() {
    let filter = compiled(BASELINE_MARKERS, SeccompAction::Errno);
    // SAFETY: unshare takes flags only.
    let status = errno_in_filtered_child(&filter, || unsafe {
        libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)
    });
    assert_exit(status, libc::EPERM, "unshare(CLONE_NEWUSER)");

    // SAFETY: unshare takes flags only; CLONE_FILES only unshares the fd table.
    let status = errno_in_filtered_child(&filter, || unsafe {
        libc::syscall(libc::SYS_unshare, libc::CLONE_FILES)
    });
    assert_exit(status, SUCCEEDED, "unshare(CLONE_FILES)");
}

#[test]
fn clone_newuser_is_denied() {
    let filter = compiled(BASELINE_MARKERS, SeccompAction::Errno);
    let status = errno_in_filtered_child(&filter, || {
        let flags = libc::c_long::from(libc::CLONE_NEWUSER | libc::SIGCHLD);
        // SAFETY: a fork-like clone (no new stack); a child created by a broken filter exits at once.
        let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
        if ret == 0 {
            // SAFETY: leaving the accidental grandchild.
            unsafe { libc::_exit(0) }
        }
        ret
    });
    assert_exit(status, libc::EPERM, "clone(CLONE_NEWUSER)");
}

#[test]
fn clone3_fails_with_enosys_and_libc_falls_back() {
    let filter = compiled(BASELINE_MARKERS, SeccompAction::Errno);
    // SAFETY: the filter answers before the kernel reads the (null) argument.
    let status =
        errno_in_filtered_child(&filter, || unsafe { libc::syscall(libc::SYS_clone3, 0, 0) });
    assert_exit(status, libc::ENOSYS, "clone3");

    // fork() and pthread_create() still work: glibc uses clone, or falls back to it.
    let status = errno_in_filtered_child(&filter, || {
        // SAFETY: the grandchild exits at once; the child reaps it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: leaving the grandchild without touching the harness.
            unsafe { libc::_exit(0) }
        }
        if pid < 0 {
            return -1;
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        unsafe { libc::waitpid(pid, &raw mut status, 0) };
        extern "C" fn thread_main(_: *mut libc::c_void) -> *mut libc::c_void {
            std::ptr::null_mut()
        }
        let mut thread: libc::pthread_t = 0;
        // SAFETY: default attributes, a valid start routine, joined below.
        let created = unsafe {
            libc::pthread_create(
                &raw mut thread,
                std::ptr::null(),
                thread_main,
                std::ptr::null_mut(),
            )
        };
        if created != 0 {
            Errno::set_raw(created);
            return -1;
        }
        // SAFETY: joining the thread created above.
        unsafe { libc::pthread_join(thread, std::ptr::null_mut()) };
        0
    });
    assert_exit(
        status,
        SUCCEEDED,
        "fork and pthread_create under the filter",
    );
}

#[test]
fn tiocsti_and_tioclinux_are_denied_even_with_high_bits_set() {
    let filter = compiled(BASELINE_MARKERS, SeccompAction::Errno);
    let requests = [
        libc::TIOCSTI as libc::c_long,
        libc::TIOCLINUX as libc::c_long,
        // The kernel truncates cmd to 32 bits, so this is TIOCSTI too.
        libc::TIOCSTI as libc::c_long | (1 << 32),
    ];
    for request in requests {
        let byte = b'x';
        // SAFETY: the pointer argument points at one readable byte.
        let status = errno_in_filtered_child(&filter, || unsafe {
            libc::syscall(libc::SYS_ioctl, 0, request, &raw const byte)
        });
        assert_exit(status, libc::EPERM, &format!("ioctl(0, {request:#x})"));
    }
    // Other ioctls go on: TCGETS on stdin gives data or ENOTTY, never EPERM.
    let mut termios = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: TCGETS writes at most one termios into the buffer.
    let status = errno_in_filtered_child(&filter, || unsafe {
        libc::syscall(libc::SYS_ioctl, 0, libc::TCGETS, termios.as_mut_ptr())
    });
    assert!(
        !matches!(status, WaitStatus::Exited(_, code) if code == libc::EPERM),
        "TCGETS: {status:?}"
    );
}

/// `getpid` through the i386 ABI (`int 0x80`, syscall 20), from 64-bit code.
#[cfg(target_arch = "x86_64")]
fn int80_getpid() -> libc::c_long {
    let ret: i64;
    // SAFETY: i386 getpid takes no arguments and touches no memory; the kernel may clobber
    // r8-r11 on the compat path, declared here.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("rax") 20_i64 => ret,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

#[cfg(target_arch = "x86_64")]
#[test]
fn i386_syscalls_kill_the_process() {
    // Control: without a filter, does this kernel run i386 syscalls at all?
    let control = in_child(|| {
        // SAFETY: getpid has no arguments.
        let pid = unsafe { libc::syscall(libc::SYS_getpid) };
        i32::from(int80_getpid() as i32 as libc::c_long != pid)
    });
    match control {
        WaitStatus::Exited(_, 0) => {}
        other => {
            eprintln!("skipping: ia32 emulation not available ({other:?})");
            return;
        }
    }
    // An empty deny list: the native-architecture check alone must catch it.
    let filter = compiled(&[], SeccompAction::Errno);
    let status = errno_in_filtered_child(&filter, int80_getpid);
    assert_killed_by_sigsys(status, "int 0x80 getpid");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_syscalls_kill_the_process() {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    let filter = compiled(&[], SeccompAction::Errno);
    // SAFETY: getpid has no arguments, whichever ABI runs it.
    let status = errno_in_filtered_child(&filter, || unsafe {
        libc::syscall(libc::SYS_getpid | X32_SYSCALL_BIT)
    });
    assert_killed_by_sigsys(status, "x32 getpid");
}

// ---- process reach and the baseline's action ----

fn baseline_plan(baseline: &[&str], action: SeccompAction) -> SeccompPlan {
    SeccompPlan {
        baseline: baseline.iter().map(|s| (*s).to_owned()).collect(),
        ..plan(baseline, action)
    }
}

fn prlimit_nofile(pid: libc::pid_t) -> libc::c_long {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: raw prlimit64 reading (not setting) a limit into a valid struct.
    unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            pid,
            libc::RLIMIT_NOFILE,
            std::ptr::null::<libc::rlimit>(),
            &raw mut old,
        )
    }
}

#[test]
fn prlimit64_works_on_self_and_is_refused_on_another_process() {
    use crate::plan::seccomp_groups::MARKER_PROCESS_REACH;
    let filter = compile(&baseline_plan(
        &[MARKER_PROCESS_REACH],
        SeccompAction::Errno,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let parent = std::process::id().cast_signed();
    // Bare, the child may read its parent's limits.
    let bare = in_child(|| outcome(prlimit_nofile(parent)));
    assert_exit(bare, SUCCEEDED, "bare prlimit64(parent)");
    let own = errno_in_filtered_child(&filter, || prlimit_nofile(0));
    assert_exit(own, SUCCEEDED, "prlimit64(0)");
    let other = errno_in_filtered_child(&filter, || prlimit_nofile(parent));
    assert_exit(other, libc::EPERM, "prlimit64(parent)");
}

#[test]
fn setpriority_on_the_user_or_another_process_is_refused() {
    use crate::plan::seccomp_groups::MARKER_PROCESS_REACH;
    let filter = compile(&baseline_plan(
        &[MARKER_PROCESS_REACH],
        SeccompAction::Errno,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let parent = std::process::id();
    // The current nice value: were the filter to let a call through, it would change nothing.
    // SAFETY: getpriority with integer arguments.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    // SAFETY: raw setpriority calls with integer arguments.
    let own = errno_in_filtered_child(&filter, || unsafe {
        libc::syscall(libc::SYS_setpriority, libc::PRIO_PROCESS, 0, nice)
    });
    assert_exit(own, SUCCEEDED, "setpriority(PRIO_PROCESS, 0)");
    let other = errno_in_filtered_child(&filter, || unsafe {
        libc::syscall(libc::SYS_setpriority, libc::PRIO_PROCESS, parent, nice)
    });
    assert_exit(other, libc::EPERM, "setpriority(PRIO_PROCESS, parent)");
    let user = errno_in_filtered_child(&filter, || unsafe {
        libc::syscall(libc::SYS_setpriority, libc::PRIO_USER, 0, nice)
    });
    assert_exit(user, libc::EPERM, "setpriority(PRIO_USER, 0)");
}

#[test]
fn profile_log_action_does_not_weaken_the_baseline() {
    use crate::plan::seccomp_groups::MARKER_USERNS;
    // The baseline (user namespaces) and a profile entry (getppid) under `syscalls.action = log`.
    let mut p = baseline_plan(&[MARKER_USERNS], SeccompAction::Log);
    p.deny.push("getppid".to_owned());
    let filter = compile(&p).unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: unshare and getppid with integer arguments, in a throwaway child.
    let userns = errno_in_filtered_child(&filter, || unsafe {
        libc::unshare(libc::CLONE_NEWUSER).into()
    });
    assert_exit(
        userns,
        libc::EPERM,
        "unshare(CLONE_NEWUSER) under a log profile",
    );
    let logged = errno_in_filtered_child(&filter, || unsafe { libc::getppid().into() });
    assert_exit(logged, SUCCEEDED, "profile's own entry is only logged");
    // Audit mode logs the baseline as well: the same call goes through, if the host allows it.
    p.audit = true;
    let audit = compile(&p).unwrap_or_else(|e| panic!("{e}"));
    let bare = in_child(|| outcome(unsafe { libc::unshare(libc::CLONE_NEWUSER).into() }));
    if bare != WaitStatus::Exited(bare_pid(bare), SUCCEEDED) {
        eprintln!("skipping the audit half: unshare(CLONE_NEWUSER) fails bare here ({bare:?})");
        return;
    }
    let userns = errno_in_filtered_child(&audit, || unsafe {
        libc::unshare(libc::CLONE_NEWUSER).into()
    });
    assert_exit(
        userns,
        SUCCEEDED,
        "unshare(CLONE_NEWUSER) in audit mode is only logged",
    );
}

fn bare_pid(status: WaitStatus) -> nix::unistd::Pid {
    status.pid().unwrap_or(nix::unistd::Pid::from_raw(0))
}

fn socket_errno(filter: &CompiledSeccomp, domain: i32, ty: i32, proto: i32) -> WaitStatus {
    // SAFETY: socket with integer arguments in a throwaway child; the fd dies with it.
    errno_in_filtered_child(filter, || unsafe { libc::socket(domain, ty, proto).into() })
}

#[test]
fn only_policed_sockets_can_be_created() {
    use crate::plan::seccomp_groups::MARKER_SOCKETS;
    let filter = compile(&baseline_plan(&[MARKER_SOCKETS], SeccompAction::Errno))
        .unwrap_or_else(|e| panic!("{e}"));
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    for (what, domain, ty, proto) in [
        ("tcp", libc::AF_INET, libc::SOCK_STREAM | flags, 0),
        ("tcp6", libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP),
        (
            "udp",
            libc::AF_INET,
            libc::SOCK_DGRAM | flags,
            libc::IPPROTO_UDP,
        ),
        (
            "netlink route",
            libc::AF_NETLINK,
            libc::SOCK_RAW,
            libc::NETLINK_ROUTE,
        ),
        ("unix", libc::AF_UNIX, libc::SOCK_STREAM, 0),
    ] {
        assert_exit(socket_errno(&filter, domain, ty, proto), SUCCEEDED, what);
    }
    for (what, domain, ty, proto) in [
        ("icmp", libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP),
        (
            "icmpv6",
            libc::AF_INET6,
            libc::SOCK_DGRAM | flags,
            libc::IPPROTO_ICMPV6,
        ),
        ("raw", libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP),
        (
            "udplite",
            libc::AF_INET,
            libc::SOCK_DGRAM,
            libc::IPPROTO_UDPLITE,
        ),
        ("sctp", libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP),
        (
            "mptcp",
            libc::AF_INET,
            libc::SOCK_STREAM,
            libc::IPPROTO_MPTCP,
        ),
        ("packet", libc::AF_PACKET, libc::SOCK_RAW, 0),
        ("vsock", libc::AF_VSOCK, libc::SOCK_STREAM, 0),
        (
            "sock_diag",
            libc::AF_NETLINK,
            libc::SOCK_RAW,
            libc::NETLINK_SOCK_DIAG,
        ),
        ("family 200", 200, libc::SOCK_STREAM, 0),
    ] {
        assert_exit(socket_errno(&filter, domain, ty, proto), libc::EPERM, what);
    }
    // High bits above the kernel's int do not hide a refused protocol.
    let hidden = errno_in_filtered_child(&filter, || unsafe {
        libc::syscall(
            libc::SYS_socket,
            libc::AF_INET,
            libc::SOCK_DGRAM,
            (1_i64 << 32) | i64::from(libc::IPPROTO_ICMP),
        )
    });
    assert_exit(hidden, libc::EPERM, "icmp with high bits");
}

#[test]
fn routing_socket_options_are_refused() {
    use crate::plan::seccomp_groups::MARKER_SOCKETS;
    let filter = compile(&baseline_plan(&[MARKER_SOCKETS], SeccompAction::Errno))
        .unwrap_or_else(|e| panic!("{e}"));
    let probe = |level: i32, name: i32| {
        errno_in_filtered_child(&filter, move || {
            // SAFETY: socket and setsockopt with a valid one-int option buffer.
            unsafe {
                let fd = libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
                if fd < 0 {
                    return -1;
                }
                let one: libc::c_int = 1;
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    (&raw const one).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
                .into()
            }
        })
    };
    assert_exit(
        probe(libc::SOL_IPV6, libc::IPV6_RTHDR),
        libc::EPERM,
        "IPV6_RTHDR",
    );
    assert_exit(
        probe(libc::SOL_SOCKET, libc::SO_BINDTODEVICE),
        libc::EPERM,
        "SO_BINDTODEVICE",
    );
    assert_exit(
        probe(libc::SOL_SOCKET, libc::SO_REUSEADDR),
        SUCCEEDED,
        "SO_REUSEADDR",
    );
}
