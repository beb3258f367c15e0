//! Sandboxes nobody supervises any more, found and removed when the daemon starts.
//!
//! Normally none exist: a worker dies with the daemon (PDEATHSIG) and its sentinel kills the
//! sandbox and removes its cgroups. But a service manager stopping the daemon kills the whole
//! service cgroup, sentinels included, and forked processes of a sandbox live in the sandbox's
//! own cgroup, out of its reach. A sandbox named `g<pid>-...` is such an orphan when nothing
//! holds its supervisor lock ([`crate::sandbox::liveness`]: the creating worker or local
//! `guard exec`, or its sentinel, hold it while they live, and the lock is seen from every PID
//! namespace) and its creator pid names no guard process here: its processes are killed and
//! its directories removed in every hierarchy. Sandboxes of live supervisors are never touched,
//! whichever PID namespace they or the daemon run in.

use crate::sandbox::cgroup::{self, CgroupError};

/// What the sweep did.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Orphans killed and removed.
    pub removed: Vec<String>,
    /// Orphans that could not be removed, with why.
    pub failed: Vec<(String, CgroupError)>,
}

/// Kills and removes every orphaned sandbox.
pub fn sweep() -> Result<Sweep, CgroupError> {
    let mut sweep = Sweep::default();
    for id in cgroup::list_sandboxes()? {
        if !is_orphan(&id) {
            continue;
        }
        let result = cgroup::open_existing(&id).and_then(|manager| match manager {
            Some(manager) => manager.kill_all().and_then(|()| manager.remove()),
            None => Ok(()),
        });
        match result {
            Ok(()) => sweep.removed.push(id),
            // Someone else finished the job meanwhile (a sentinel that was still cleaning up,
            // another daemon's sweep): the directories vanishing under us is success.
            Err(_) if matches!(cgroup::open_existing(&id), Ok(None)) => sweep.removed.push(id),
            Err(err) => sweep.failed.push((id, err)),
        }
    }
    Ok(sweep)
}

/// Whether sandbox `id` was created by a process that is gone. Ids that do not follow guard's
/// `g<pid>-<hex>` pattern are left alone: guard did not create them.
fn is_orphan(id: &str) -> bool {
    if creator_pid(id).is_none() {
        return false;
    }
    // The lock first: it answers for supervisors in any PID namespace. The pid check stays for
    // the instants between a cgroup's creation and its lock.
    let supervised =
        cgroup::guard_cgroup2_dir().is_ok_and(|dir| crate::sandbox::liveness::held(&dir.join(id)));
    !supervised && creator_gone(id)
}

/// Whether the pid in `id` names no guard process in this PID namespace.
fn creator_gone(id: &str) -> bool {
    let Some(pid) = creator_pid(id) else {
        return false;
    };
    // A pid reused by an unrelated process means the creator is gone too. The executable, not
    // `comm`, is compared: a worker started through /proc/self/exe is called `exe`.
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(exe) => !exe
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "guard" || n.starts_with("guard ")),
        Err(_) => true,
    }
}

/// The pid in a sandbox id `g<pid>-<hex>`.
fn creator_pid(id: &str) -> Option<u32> {
    let rest = id.strip_prefix('g')?;
    let (pid, stamp) = rest.split_once('-')?;
    if stamp.is_empty() || !stamp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_guard_ids_name_a_creator() {
        assert_eq!(creator_pid("g1234-5f3a"), Some(1234));
        for other in [
            "g1234",
            "x1234-5f",
            "g-5f",
            "g12-",
            "g12-zz",
            "system.slice",
        ] {
            assert_eq!(creator_pid(other), None, "{other}");
        }
    }

    #[test]
    fn a_live_guard_process_is_not_an_orphan_a_dead_one_is() {
        // This test binary is not called guard: its sandboxes would count as orphaned.
        let me = std::process::id();
        assert!(is_orphan(&format!("g{me}-1")));
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(is_orphan("g4194305-1"));
        assert!(!is_orphan("not-guard"));
    }
}
