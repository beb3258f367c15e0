//! After the test suite: guard must leave nothing of its own in the kernel or in cgroupfs.
//!
//! Runs `guard unload` (the test binary's build) and then looks for what could remain: pins
//! under `/sys/fs/bpf/guard`, sandbox cgroups under any `guard` cgroup directory. A leftover
//! is a failure of the suite, named so it can be found.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cmd;

/// Unloads guard's probes and fails when anything of guard's is still there.
pub fn check() -> anyhow::Result<()> {
    let guard = Path::new("target/debug/guard");
    if !guard.exists() {
        bail!(
            "{} is missing; the test step should have built it",
            guard.display()
        );
    }
    cmd::run(Command::new(guard).arg("unload")).context("guard unload")?;
    let mut left: Vec<PathBuf> = Vec::new();
    if Path::new("/sys/fs/bpf/guard").exists() {
        left.push(PathBuf::from("/sys/fs/bpf/guard"));
    }
    for root in cgroup_roots() {
        let dir = root.join("guard");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            left.extend(
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
    }
    if !left.is_empty() {
        let names: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
        bail!("left behind by the suite: {}", names.join(", "));
    }
    eprintln!("nothing of guard is left: no pins, no programs, no sandbox cgroups");
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
