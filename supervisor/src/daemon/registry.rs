//! The daemon's table of live sandboxes: who started each, its worker, and how to find, measure
//! and kill the sandbox itself.
//!
//! The worker names its sandbox `g<worker pid>-<start time>` (launch.rs), so the daemon finds
//! the sandbox cgroup by that prefix and needs nothing back from the worker.

use std::collections::BTreeMap;
use std::time::Instant;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::auth::Caller;
use super::protocol::SandboxStatus;
use crate::sandbox::cgroup;

/// One sandbox the daemon started.
#[derive(Debug, Clone)]
pub struct Entry {
    pub worker: i32,
    pub caller: Caller,
    pub user: Option<String>,
    pub profile: String,
    pub command: String,
    pub started: Instant,
    /// Set when the daemon (not the command) ended it: the line the client prints.
    pub stop_note: Option<String>,
}

/// Live sandboxes by connection serial.
#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<u64, Entry>,
    next: u64,
}

impl Registry {
    /// Registers a sandbox and returns its serial.
    pub fn add(&mut self, entry: Entry) -> u64 {
        self.next += 1;
        self.entries.insert(self.next, entry);
        self.next
    }

    pub fn remove(&mut self, serial: u64) -> Option<Entry> {
        self.entries.remove(&serial)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn serials(&self) -> Vec<u64> {
        self.entries.keys().copied().collect()
    }

    pub fn get(&self, serial: u64) -> Option<&Entry> {
        self.entries.get(&serial)
    }

    pub fn get_mut(&mut self, serial: u64) -> Option<&mut Entry> {
        self.entries.get_mut(&serial)
    }

    /// The serial of the sandbox with id `id` (as `guard status` shows it).
    pub fn find(&self, id: &str) -> Option<u64> {
        self.entries
            .iter()
            .find(|(_, e)| sandbox_id(e.worker).as_deref() == Some(id))
            .map(|(serial, _)| *serial)
    }

    /// `guard status` lines for the sandboxes `viewer` may see: root sees all, others their own.
    pub fn status(&self, viewer: &Caller, violations: impl Fn(&str) -> u64) -> Vec<SandboxStatus> {
        self.entries
            .values()
            .filter(|e| viewer.is_root() || e.caller.uid == viewer.uid)
            .map(|e| {
                let id = sandbox_id(e.worker);
                let manager = id
                    .as_deref()
                    .and_then(|id| cgroup::open_existing(id).ok().flatten());
                SandboxStatus {
                    id: id.clone().unwrap_or_else(|| "starting".to_owned()),
                    profile: e.profile.clone(),
                    uid: e.caller.uid,
                    user: e.user.clone(),
                    pid: manager
                        .as_deref()
                        .and_then(|m| command_pid(e.worker, m.cgroup2_path())),
                    age_secs: e.started.elapsed().as_secs(),
                    memory_bytes: manager
                        .as_deref()
                        .and_then(|m| m.memory_current().ok().flatten()),
                    violations: id.as_deref().map_or(0, &violations),
                    command: e.command.clone(),
                }
            })
            .collect()
    }
}

/// The id of the sandbox `worker` created, once its cgroup exists.
pub fn sandbox_id(worker: i32) -> Option<String> {
    let prefix = format!("g{worker}-");
    cgroup::list_sandboxes()
        .ok()?
        .into_iter()
        .find(|id| id.starts_with(&prefix))
}

/// The command's first process: the worker's child that sits in the sandbox cgroup (the other
/// child is the sentinel).
fn command_pid(worker: i32, cgroup2: &std::path::Path) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{worker}/task/{worker}/children")).ok()?;
    let members = std::fs::read_to_string(cgroup2.join("cgroup.procs")).ok()?;
    children
        .split_whitespace()
        .find(|pid| members.lines().any(|m| m.trim() == *pid))
        .and_then(|pid| pid.parse().ok())
}

/// Kills the sandbox of `worker`. Once the command is in its cgroup, every process there dies at
/// once (the worker then sees its command die, kills what is left and reports as usual, exit
/// record included). Before that, the worker itself is killed: its command dies of PDEATHSIG
/// before running and its sentinel removes the cgroup.
pub fn kill_sandbox(worker: i32) {
    if let Some(id) = sandbox_id(worker)
        && let Ok(Some(manager)) = cgroup::open_existing(&id)
    {
        let dir = manager.cgroup2_path();
        let members: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if !members.is_empty() {
            let kill_file = dir.join("cgroup.kill");
            if kill_file.exists() && std::fs::write(&kill_file, "1").is_ok() {
                return;
            }
            // Kernels before 5.14: SIGKILL to each member; the worker's cleanup catches forks.
            for pid in members {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            return;
        }
    }
    let _ = kill(Pid::from_raw(worker), Signal::SIGKILL);
}
