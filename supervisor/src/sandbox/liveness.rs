//! Whether a sandbox still has a supervisor, asked of the kernel rather than of a pid.
//!
//! A sandbox id names the pid of the process that created it (`g<pid>-<hex>`), but that pid is
//! only meaningful in the creator's PID namespace: a daemon started in another one saw live
//! sandboxes as orphans and killed them. So the supervisor also holds a `flock` on the sandbox's
//! cgroup2 directory for as long as it runs; the sentinel, forked from it, inherits the same
//! open file and so the lock. The lock lives on the cgroup's inode, which every PID namespace
//! shares: while any of the two lives, [`held`] says so, from wherever it is asked.
//!
//! The descriptor is close-on-exec, so the sandboxed command never holds it. A tool whose
//! profile lets it read its own cgroup directory could take the lock itself; it only gains
//! anything once its supervisor and sentinel are both dead, and then it stays confined
//! (Landlock, seccomp, its cgroup limits and its eBPF entries, kept because its cgroup lives):
//! only the sweep's kill is missed.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Opens the sandbox's cgroup directory `dir` and takes the supervisor's lock on it; keep the
/// descriptor for the supervisor's lifetime.
pub fn hold(dir: &Path) -> nix::Result<OwnedFd> {
    let fd = open_dir(dir)?;
    // Shared: the supervisor and its sentinel hold it through one open file, and nothing else
    // takes it exclusively except the sweep's non-blocking probe.
    flock(&fd, libc::LOCK_SH | libc::LOCK_NB)?;
    Ok(fd)
}

/// Whether a supervisor (or its sentinel) holds the lock on cgroup directory `dir`. A
/// directory that cannot be opened is not held.
pub fn held(dir: &Path) -> bool {
    let Ok(fd) = open_dir(dir) else {
        return false;
    };
    match flock(&fd, libc::LOCK_EX | libc::LOCK_NB) {
        // Taken, so nobody held it; closing `fd` releases it at once.
        Ok(()) => false,
        Err(_) => true,
    }
}

fn open_dir(dir: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn flock(fd: &OwnedFd, operation: libc::c_int) -> nix::Result<()> {
    // SAFETY: flock on a descriptor this function borrows; no memory is passed.
    let rc = unsafe { libc::flock(fd.as_raw_fd(), operation) };
    nix::errno::Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_directory_is_seen_held_until_released() {
        let dir = std::env::temp_dir().join(format!("guard-liveness-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!held(&dir));
        let lock = hold(&dir).unwrap();
        assert!(held(&dir));
        // Asking twice does not take it over.
        assert!(held(&dir));
        drop(lock);
        assert!(!held(&dir));
        std::fs::remove_dir(&dir).unwrap();
        assert!(!held(&dir));
    }
}
