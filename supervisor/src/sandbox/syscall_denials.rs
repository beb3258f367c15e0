//! Seccomp denials as evidence. The sandbox's filter returns `SECCOMP_RET_USER_NOTIF` for its
//! deny rules (see [`super::seccomp::Recording::Supervisor`]): the kernel parks the calling
//! thread and tells guard, which answers EPERM (in audit mode: lets the call go on) and writes
//! an audit record naming the process and the syscall. Without the answer the call never runs:
//! if guard is gone the kernel fails it with ENOSYS.
//!
//! The listener is created by the child when it loads the filter and handed over on a unix
//! socket pair ([`receive_listener`]) before the command runs.
//!
//! # Minimum kernel version
//! 5.0 (user notification); 5.5 for letting a call go on in audit mode.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// How guard answers a parked syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The call fails with EPERM.
    Deny,
    /// The call runs (audit mode): recorded, not refused.
    Continue,
}

/// One syscall the filter handed to guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub pid: u32,
    pub nr: i32,
    /// The syscall's name for this architecture, or `syscall_<nr>`.
    pub name: String,
    pub args: [u64; 6],
    pub answer: Answer,
    /// The executable of the caller, read while it was parked (`?` if unreadable).
    pub exe: String,
    /// A signal aimed outside the sandbox, refused because Landlock cannot scope signals here.
    pub signal: bool,
    /// For a file syscall audit mode watches: the path and the access (see `file_observer`).
    pub file: Option<(std::path::PathBuf, crate::plan::landlock::FileAccess)>,
}

/// The listener of one sandbox's filter.
#[derive(Debug)]
pub struct SyscallListener {
    fd: OwnedFd,
    answer: Answer,
    /// The sandbox's cgroup2 path, when guard decides signals (Landlock ABI < 6).
    signal_scope: Option<std::path::PathBuf>,
}

/// Receives the listener the child sent on `socket`, if it sent one (the socket reads EOF when
/// the filter has none or the child ended first).
pub fn receive_listener(socket: &OwnedFd) -> Result<Option<OwnedFd>, Errno> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(std::os::fd::RawFd);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg
            && let Some(&fd) = fds.first()
        {
            // SAFETY: SCM_RIGHTS installed `fd` in this process for us; nothing else owns it.
            return Ok(Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }));
        }
    }
    Ok(None)
}

impl SyscallListener {
    pub fn new(fd: OwnedFd, answer: Answer) -> Self {
        SyscallListener {
            fd,
            answer,
            signal_scope: None,
        }
    }

    /// Decides the parked signal syscalls: those aimed inside `sandbox` (a cgroup2 path) go on.
    pub fn scope_signals(mut self, sandbox: std::path::PathBuf) -> Self {
        self.signal_scope = Some(sandbox);
        self
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Answers every syscall parked now and returns them; never blocks.
    pub fn answer_pending(&self) -> Vec<Denial> {
        let mut out = Vec::new();
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(n) if n > 0 => {}
                _ => return out,
            }
            let readable = fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLIN));
            if !readable {
                return out;
            }
            match self.answer_one() {
                Ok(Some(denial)) => out.push(denial),
                // The caller died between notification and receipt: nothing to answer.
                Ok(None) => {}
                Err(_) => return out,
            }
        }
    }

    fn answer_one(&self) -> Result<Option<Denial>, Errno> {
        // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed before RECV.
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV writes one seccomp_notif into the buffer we pass.
        let ret = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &raw mut notif,
            )
        };
        if ret < 0 {
            let err = Errno::last();
            return if err == Errno::ENOENT || err == Errno::EINTR {
                Ok(None)
            } else {
                Err(err)
            };
        }
        // Read while the caller is parked: it cannot exit or be replaced before the answer.
        let exe = std::fs::read_link(format!("/proc/{}/exe", notif.pid))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "?".to_owned());
        let name = syscall_name(notif.data.nr);
        // A watched file syscall is recorded, never refused here: the kernel decides it.
        let file = super::file_observer::observe(notif.pid, &name, &notif.data.args);
        let mut resp = libc::seccomp_notif_resp {
            id: notif.id,
            val: 0,
            error: 0,
            flags: 0,
        };
        // A signal aimed inside the sandbox goes on (it was parked only to be looked at).
        let signal_inside = self.signal_scope.as_deref().is_some_and(|sandbox| {
            super::signal_scope::target(notif.pid, &name, &notif.data.args)
                .is_some_and(|t| super::signal_scope::inside(&t, sandbox))
        });
        if signal_inside {
            resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
            // SAFETY: SEND reads one seccomp_notif_resp from the buffer we pass.
            unsafe {
                libc::ioctl(
                    self.fd.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_SEND,
                    &raw mut resp,
                )
            };
            return Ok(None);
        }
        match (self.answer, &file) {
            (Answer::Deny, None) => resp.error = -libc::EPERM,
            _ => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        }
        // SAFETY: SEND reads one seccomp_notif_resp from the buffer we pass.
        let sent = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &raw mut resp,
            )
        };
        // ENOENT: the caller was killed while parked; the denial still happened.
        if sent < 0 && Errno::last() != Errno::ENOENT {
            return Err(Errno::last());
        }
        let nr = notif.data.nr;
        let signal = self.signal_scope.is_some()
            && super::signal_scope::target(notif.pid, &name, &notif.data.args).is_some();
        Ok(Some(Denial {
            pid: notif.pid,
            nr,
            name,
            args: notif.data.args,
            answer: self.answer,
            exe,
            file,
            signal,
        }))
    }
}

/// The native name of syscall `nr`.
fn syscall_name(nr: i32) -> String {
    libseccomp::ScmpSyscall::from(nr)
        .get_name()
        .unwrap_or_else(|_| format!("syscall_{nr}"))
}
