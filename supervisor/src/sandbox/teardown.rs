//! Undoing a start that failed, in one place: [`StartGuard`] owns what the launch has created
//! so far (the cgroup, the probes' entries, the sentinel, the child) and, unless the start
//! completes, takes it down in reverse order when dropped.

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::cgroup::CgroupManager;
use super::probes::AttachedProbes;
use super::sentinel::Sentinel;

/// What a launch has set up so far. The cgroup itself is the launch's (it outlives the guard);
/// the guard kills what runs in it and removes it.
pub struct StartGuard<'a> {
    cgroup: &'a dyn CgroupManager,
    pub probes: Option<AttachedProbes>,
    sentinel: Option<Sentinel>,
    child: Option<Pid>,
}

/// A start that went through: the guard's parts, now owned by the supervision.
pub struct Started {
    pub probes: Option<AttachedProbes>,
    /// `None` never happens in practice; supervision treats it like a dismissed sentinel.
    pub sentinel: Option<Sentinel>,
}

impl<'a> StartGuard<'a> {
    pub fn new(cgroup: &'a dyn CgroupManager, sentinel: Sentinel) -> Self {
        StartGuard {
            cgroup,
            probes: None,
            sentinel: Some(sentinel),
            child: None,
        }
    }

    /// From now on a failed start kills `child` first.
    pub fn set_child(&mut self, child: Pid) {
        self.child = Some(child);
    }

    /// The start completed: nothing is undone; the supervision owns the parts now.
    pub fn started(mut self) -> Started {
        self.child = None;
        Started {
            probes: self.probes.take(),
            // Taken only here, and `self` is consumed: always present.
            sentinel: self.sentinel.take(),
        }
    }
}

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        // A completed start took the sentinel: nothing to undo.
        if self.sentinel.is_none() {
            return;
        }
        if let Some(child) = self.child.take() {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
        }
        // The probes' entries go only once nothing runs in the cgroup any more.
        let killed = self.cgroup.kill_all().is_ok();
        if let Some(attached) = self.probes.take()
            && killed
            && let Err(err) = attached.sandbox.unregister()
        {
            eprintln!("guard: error: {}", super::launch::error_chain(&err));
        }
        let removed = self.cgroup.remove().is_ok();
        // If something may still run, dropping the sentinel instead leaves the rest to it: it
        // kills and removes the sandbox once guard is gone.
        if let Some(sentinel) = self.sentinel.take()
            && killed
            && removed
        {
            sentinel.dismiss();
        }
    }
}
