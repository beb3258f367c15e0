//! After the test suite: the suite must leave nothing of its own in the kernel or in cgroupfs,
//! and must not touch what it did not create: another guard (a daemon, another checkout's
//! tests) may run on the same host.
//!
//! [`Snapshot::take`] before the suite records the pin directories and sandbox cgroups that
//! already exist; [`check`] after it runs `guard unload` (the test binary's build; refused, and
//! tolerated, while sandboxes that were there before still use the probes) and fails on every
//! pin directory or sandbox cgroup that is new since the snapshot, named so it can be found.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cmd;

/// Another guard's sandbox for the suite to run beside: a copy of the debug binary (so not the
/// one the tests run) confining `sleep`, ended by pid when dropped. The suite must neither touch
/// it nor depend on being alone; the clean step then judges only what the suite created.
pub struct Neighbour {
    child: Option<std::process::Child>,
}

impl Neighbour {
    pub fn start() -> Self {
        let built = cmd::run(Command::new("cargo").args(["build", "--locked", "--bin", "guard"]));
        let copy = Path::new("target/neighbour-guard");
        let child = built
            .ok()
            .and_then(|()| std::fs::copy("target/debug/guard", copy).ok())
            .and_then(|_| {
                Command::new(copy)
                    .args(["exec", "--profile", "minimal", "--", "sleep", "3600"])
                    .stdin(std::process::Stdio::null())
                    .spawn()
                    .ok()
            });
        match &child {
            Some(c) => eprintln!(
                "xtask: a neighbour guard sandbox runs beside the suite (pid {})",
                c.id()
            ),
            None => eprintln!(
                "xtask: warning: could not start the neighbour guard; the suite runs alone"
            ),
        }
        Neighbour { child }
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM to the guard we started: it ends its sandbox and exits.
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on the pid of our own child process.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = child.wait();
        }
    }
}

/// What of guard's existed before the suite ran.
#[derive(Debug, Default)]
pub struct Snapshot {
    existing: Vec<PathBuf>,
}

impl Snapshot {
    pub fn take() -> Self {
        let existing = guard_state();
        if !existing.is_empty() {
            eprintln!(
                "xtask: another guard is running here ({} pin dirs or sandbox cgroups); the suite leaves them alone",
                existing.len()
            );
        }
        Snapshot { existing }
    }
}

/// Pin directories and sandbox cgroups of any guard on this host.
fn guard_state() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf/guard") {
        found.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    for root in cgroup_roots() {
        let dir = root.join("guard");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            found.extend(
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
    }
    found
}

/// Unloads guard's probes and fails when anything the suite created is still there.
pub fn check(before: &Snapshot) -> anyhow::Result<()> {
    let guard = Path::new("target/debug/guard");
    if !guard.exists() {
        bail!(
            "{} is missing; the test step should have built it",
            guard.display()
        );
    }
    let unloaded = cmd::run(Command::new(guard).arg("unload")).context("guard unload");
    if let Err(err) = unloaded {
        if before.existing.is_empty() {
            return Err(err);
        }
        eprintln!("xtask: guard unload refused while the other guard runs: {err:#}");
    }
    let left: Vec<PathBuf> = guard_state()
        .into_iter()
        .filter(|p| !before.existing.contains(p))
        .collect();
    if !left.is_empty() {
        let names: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
        bail!("left behind by the suite: {}", names.join(", "));
    }
    eprintln!("nothing the suite created is left: no pins, no sandbox cgroups of its own");
    Ok(())
}

/// Every cgroup mount point (v1 hierarchies and cgroup2).
fn cgroup_roots() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, fstype) = (fields.next()?, fields.next()?, fields.next()?);
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(point))
        })
        .collect()
}
