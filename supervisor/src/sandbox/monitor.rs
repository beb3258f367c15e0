//! The supervise loop's view of a running sandbox: its cgroup (CPU time, kill) and, once the
//! probes are attached, their event ring buffer.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::cgroup::CgroupManager;
use super::launch::error_chain;
use super::supervise::Watcher;

/// Watches one sandbox for [`super::supervise::supervise`].
pub struct Monitor<'a> {
    cgroup: &'a dyn CgroupManager,
}

impl<'a> Monitor<'a> {
    pub fn new(cgroup: &'a dyn CgroupManager) -> Self {
        Monitor { cgroup }
    }
}

impl Watcher for Monitor<'_> {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        Vec::new()
    }

    fn drain(&mut self) {}

    fn cpu_used(&mut self) -> Option<Duration> {
        None
    }

    fn kill_sandbox(&mut self) {
        if let Err(err) = self.cgroup.kill_all() {
            eprintln!("guard: error: killing the sandbox: {}", error_chain(&err));
        }
    }
}
