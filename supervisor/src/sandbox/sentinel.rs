//! The sentinel: a tiny process that ends the sandbox if the supervisor itself dies.
//!
//! `PR_SET_PDEATHSIG` only reaches the command's first process; whatever it forked would outlive
//! a `kill -9` of guard, unsupervised and with its cgroup left behind. The sentinel is forked
//! from guard before the command, outside the sandbox cgroup, in a session of its own (so a
//! terminal's Ctrl-C does not reach it), and blocks on a pipe. When guard finishes normally it
//! writes [`DISMISS`]; end-of-file without it means guard died, and the sentinel kills every
//! process of the sandbox and removes its cgroups.
//!
//! It also removes the sandbox's entries from the shared eBPF maps (with those of any other
//! sandbox whose cgroup is gone): only the supervisor knew them, and left behind they would
//! fill the maps until every sandbox start fails.
//!
//! The tool cannot signal the sentinel: it has no capabilities, and Landlock scoping (ABI 6)
//! confines its signals to its own sandbox.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use super::cgroup::CgroupManager;

/// The byte guard writes when it ends normally.
const DISMISS: u8 = b'D';

/// A running sentinel, dismissed when the supervisor finishes. Dropping it without
/// [`Sentinel::dismiss`] (an early error, a panic) ends the sandbox: the safe default.
pub struct Sentinel {
    pid: Pid,
    pipe: std::fs::File,
}

/// Starting the sentinel failed.
#[derive(Debug, thiserror::Error)]
pub enum SentinelError {
    #[error("creating the sentinel pipe")]
    Pipe(#[source] nix::Error),
    #[error("forking the sentinel")]
    Fork(#[source] nix::Error),
}

impl Sentinel {
    /// Forks the sentinel for `cgroup`. Call while guard is single-threaded.
    pub fn spawn(sandbox_id: &str, cgroup: &dyn CgroupManager) -> Result<Sentinel, SentinelError> {
        let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).map_err(SentinelError::Pipe)?;
        // SAFETY: guard is single-threaded here (no runtime, no helper threads), so the child may
        // allocate; it only watches the pipe and then uses the cgroup manager.
        match unsafe { fork() }.map_err(SentinelError::Fork)? {
            ForkResult::Child => {
                drop(write_end);
                watch(read_end, sandbox_id, cgroup)
            }
            ForkResult::Parent { child } => {
                drop(read_end);
                Ok(Sentinel {
                    pid: child,
                    pipe: std::fs::File::from(write_end),
                })
            }
        }
    }

    /// Tells the sentinel guard is done with the sandbox, and reaps it.
    pub fn dismiss(mut self) {
        let _ = self.pipe.write_all(&[DISMISS]);
        drop(self.pipe);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

/// The sentinel's whole life.
fn watch(read_end: OwnedFd, sandbox_id: &str, cgroup: &dyn CgroupManager) -> ! {
    // Its own session: no controlling terminal, so no Ctrl-C or hangup from guard's terminal.
    let _ = nix::unistd::setsid();
    // SAFETY: prctl with a static, NUL-terminated name.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"guard-sentinel".as_ptr(), 0, 0, 0);
    }
    let mut pipe = std::fs::File::from(read_end);
    let mut byte = [0u8; 1];
    let dismissed = loop {
        match pipe.read(&mut byte) {
            Ok(1) => break byte[0] == DISMISS,
            Ok(_) => break false,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
    };
    if !dismissed {
        eprintln!(
            "guard: the supervisor of sandbox {sandbox_id} ended without releasing it; killing the sandbox"
        );
        let _ = cgroup.kill_all();
        if cgroup.remove().is_ok() {
            // Entries are keyed by cgroup id: with the cgroup gone they are dead ones.
            if let Ok(guard_cgroup) = super::cgroup::guard_cgroup2_dir() {
                let live = || super::cgroup::live_sandbox_ids().map_err(|e| e.to_string());
                let _ = crate::ebpf::stale::forget_dead_if_pinned(&guard_cgroup, &live);
            }
        }
    }
    // SAFETY: _exit skips destructors and atexit handlers that belong to guard's process image.
    unsafe { libc::_exit(0) }
}
