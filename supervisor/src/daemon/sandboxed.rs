//! Whether a daemon client runs inside a guard sandbox, which the daemon never serves.
//!
//! The daemon starts sandboxes outside of any caller's confinement, so a sandboxed tool that
//! reaches the socket (a profile with unix paths accepted through `allow_weaker`, or an
//! inherited descriptor) could otherwise ask for a wider profile and leave its own: a root-uid
//! tool with no write access at all had the daemon run `sh -c 'echo > outside'` under another
//! profile. `guard stop` and `guard status` would let it end or list other sandboxes too. So
//! every request from a process in a sandbox cgroup (`/guard/<id>` in any hierarchy, which the
//! tool cannot leave: no profile may write under a cgroup mount) is refused.
//!
//! The process is pinned with `SO_PEERPIDFD` (Linux 6.5) while its cgroup file is read, and
//! the pidfd is checked afterwards: a client that exits so its pid can be reused by a process
//! outside is refused, not mistaken for that process. Older kernels only give the pid.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::sandbox::cgroup::GUARD_DIR;

/// `SO_PEERPIDFD` (include/uapi/asm-generic/socket.h).
const SO_PEERPIDFD: libc::c_int = 77;

/// Why the caller's sandbox membership could not be established (the daemon then refuses).
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("reading /proc/{pid}/cgroup of the caller")]
    ReadCgroup {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("the caller (pid {0}) exited before its cgroup could be checked")]
    Exited(i32),
}

/// The id of the guard sandbox the peer of `socket` (pid `pid`) runs in, if any.
pub fn caller_sandbox(socket: BorrowedFd<'_>, pid: i32) -> Result<Option<String>, MembershipError> {
    let pidfd = peer_pidfd(socket);
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|source| MembershipError::ReadCgroup { pid, source })?;
    if let Some(pidfd) = &pidfd
        && !still_running(pidfd)
    {
        return Err(MembershipError::Exited(pid));
    }
    Ok(sandbox_of(&cgroups))
}

/// The sandbox id in a `/proc/<pid>/cgroup` text: the component after `/guard/` in any line.
fn sandbox_of(cgroups: &str) -> Option<String> {
    cgroups.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        let mut components = path.split('/').filter(|c| !c.is_empty());
        (components.next()? == GUARD_DIR)
            .then(|| components.next().map(str::to_owned))
            .flatten()
    })
}

/// A pidfd for the peer, or `None` where the kernel has no `SO_PEERPIDFD`.
pub(super) fn peer_pidfd(socket: BorrowedFd<'_>) -> Option<OwnedFd> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `fd`, a c_int.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&raw mut fd).cast(),
            &mut len,
        )
    };
    // SAFETY: on success the kernel returned a new descriptor that nothing else owns.
    (rc == 0 && fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(pidfd, 0)`: whether the pinned process is still running.
pub(super) fn still_running(pidfd: &OwnedFd) -> bool {
    // SAFETY: signal 0 with no siginfo only checks that the process exists.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_id_comes_from_any_hierarchy() {
        assert_eq!(sandbox_of("0::/guard/sb-12\n"), Some("sb-12".into()));
        assert_eq!(
            sandbox_of("4:memory:/guard/x1\n0::/user.slice\n"),
            Some("x1".into())
        );
        assert_eq!(sandbox_of("0::/guard/sb-1/child\n"), Some("sb-1".into()));
        assert_eq!(sandbox_of("0::/system.slice/guard.service\n"), None);
        assert_eq!(sandbox_of("0::/guardx/a\n0::/\n"), None);
        assert_eq!(sandbox_of("0::/guard\n"), None);
    }
}
