//! Sandbox cgroups on a pure cgroup v2 host: `<root>/guard/<sandbox-id>` with the memory, pids
//! and cpu controllers enabled, killed atomically through `cgroup.kill`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;

use super::files::{self, Freezer, NoFreezer};
use super::{CgroupError, CgroupEvents, CgroupManager, GUARD_DIR, cgroup2_id_of};
use crate::plan::CgroupLimits;

/// The controllers guard enables for its sandboxes when the host offers them.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// How long `cgroup.kill` gets to empty the cgroup before the kill loop takes over.
const CGROUP_KILL_WAIT: Duration = Duration::from_secs(5);

/// A sandbox cgroup on a pure cgroup v2 host.
#[derive(Debug)]
pub struct V2Manager {
    path: PathBuf,
    id: u64,
    /// `cgroup.kill`, open from creation on (see [`files::open_kill_file`]).
    kill_file: Option<std::fs::File>,
}

impl V2Manager {
    /// Creates `<root>/guard/<sandbox_id>`, enabling in `root` and `root/guard` the controllers
    /// `limits` needs (and memory and pids for events when available). Limits are not written
    /// here: see [`CgroupManager::apply`].
    pub fn create(
        root: &Path,
        sandbox_id: &str,
        limits: &CgroupLimits,
    ) -> Result<Self, CgroupError> {
        let available = files::read_controllers(root)?;
        for (name, wanted) in [
            ("memory", limits.memory_bytes.is_some()),
            ("pids", limits.pids.is_some()),
            ("cpu", limits.cpu.is_some()),
        ] {
            if wanted && !available.iter().any(|c| c == name) {
                return Err(CgroupError::MissingController(name));
            }
        }
        let enable: Vec<&str> = CONTROLLERS
            .into_iter()
            .filter(|c| available.iter().any(|a| a == c))
            .collect();
        let parent = root.join(GUARD_DIR);
        // Controllers reach a cgroup only when every ancestor enables them for its children.
        enable_controllers(root, &enable)?;
        files::ensure_dir(&parent)?;
        enable_controllers(&parent, &enable)?;
        let path = parent.join(sandbox_id);
        files::create_new_dir(&path)?;
        match cgroup2_id_of(&path) {
            Ok(id) => Ok(V2Manager {
                kill_file: files::open_kill_file(&path),
                path,
                id,
            }),
            Err(e) => {
                let _ = files::remove_dir(&path);
                Err(e)
            }
        }
    }
}

impl V2Manager {
    /// The existing directory of sandbox `sandbox_id` under `<root>/guard`, for the daemon to
    /// inspect, kill or remove a sandbox another process created; `None` when it is not there.
    pub fn open(root: &Path, sandbox_id: &str) -> Result<Option<Self>, CgroupError> {
        let path = root.join(GUARD_DIR).join(sandbox_id);
        if !path.is_dir() {
            return Ok(None);
        }
        let id = cgroup2_id_of(&path)?;
        Ok(Some(V2Manager {
            kill_file: files::open_kill_file(&path),
            path,
            id,
        }))
    }
}

/// Adds the missing ones of `controllers` to `dir/cgroup.subtree_control`; never disables any.
fn enable_controllers(dir: &Path, controllers: &[&str]) -> Result<(), CgroupError> {
    let enabled = files::read_optional(dir, "cgroup.subtree_control")?.unwrap_or_default();
    let additions = subtree_additions(&enabled, controllers);
    if additions.is_empty() {
        return Ok(());
    }
    files::write(dir, "cgroup.subtree_control", &additions)
}

/// `+name` for each of `wanted` not in `enabled` (the content of `cgroup.subtree_control`).
fn subtree_additions(enabled: &str, wanted: &[&str]) -> String {
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    wanted
        .iter()
        .filter(|c| !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The memory controller: a hard limit, and no swap so the limit cannot be dodged by swapping.
pub mod memory {
    use super::*;

    pub fn apply(limits: &CgroupLimits, dir: &Path) -> Result<(), CgroupError> {
        let Some(bytes) = limits.memory_bytes else {
            return Ok(());
        };
        files::write(dir, "memory.max", &bytes.to_string())?;
        // Absent when the kernel runs without swap accounting; then there is no swap to limit.
        if files::exists(dir, "memory.swap.max") {
            files::write(dir, "memory.swap.max", "0")?;
        }
        Ok(())
    }
}

/// The pids controller: a fork past `pids.max` fails with EAGAIN.
pub mod pids {
    use super::*;

    pub fn apply(limits: &CgroupLimits, dir: &Path) -> Result<(), CgroupError> {
        match limits.pids {
            Some(max) => files::write(dir, "pids.max", &max.to_string()),
            None => Ok(()),
        }
    }
}

/// The cpu controller: CFS bandwidth, `cpu.max` = "quota period".
pub mod cpu {
    use super::*;
    use crate::sandbox::cgroup::{CPU_PERIOD_US, cpu_quota_us};

    pub fn apply(limits: &CgroupLimits, dir: &Path) -> Result<(), CgroupError> {
        let Some(cpus) = limits.cpu else {
            return Ok(());
        };
        let quota = cpu_quota_us(cpus)?;
        files::write(dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))
    }
}

/// `cgroup.freeze` (kernel 5.2) for the fallback kill loop.
struct V2Freezer<'a>(&'a Path);

impl Freezer for V2Freezer<'_> {
    fn freeze(&self) -> Result<(), CgroupError> {
        files::write(self.0, "cgroup.freeze", "1")?;
        // `frozen 1` in cgroup.events once every task stopped; a task stuck in the kernel may
        // never get there, and killing it anyway is still right.
        files::wait_until(Duration::from_secs(1), || {
            files::keyed_counter(self.0, "cgroup.events", "frozen").map(|f| f == 1)
        })?;
        Ok(())
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        // Children with their own `cgroup.freeze = 1` stay frozen otherwise.
        super::tree::thaw_v2_tree(self.0)
    }
}

impl CgroupManager for V2Manager {
    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        files::write(&self.path, "cgroup.procs", &pid.as_raw().to_string())
    }

    fn clone_into_dir(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn apply(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        memory::apply(limits, &self.path)?;
        pids::apply(limits, &self.path)?;
        cpu::apply(limits, &self.path)
    }

    fn events(&self) -> Result<CgroupEvents, CgroupError> {
        Ok(CgroupEvents {
            oom_kills: files::keyed_counter(&self.path, "memory.events", "oom_kill")?,
            pids_max: files::keyed_counter(&self.path, "pids.events", "max")?,
        })
    }

    /// # Minimum kernel version
    /// `memory.peak` needs kernel 5.19; before that this returns `None`.
    fn memory_peak(&self) -> Result<Option<u64>, CgroupError> {
        files::number(&self.path, "memory.peak")
    }

    fn memory_current(&self) -> Result<Option<u64>, CgroupError> {
        files::number(&self.path, "memory.current")
    }

    /// # Minimum kernel version
    /// Atomic through `cgroup.kill` from kernel 5.14; before that a freeze-kill-thaw loop.
    fn kill_all(&self) -> Result<(), CgroupError> {
        if let Some(kill_file) = &self.kill_file {
            // The kernel kills every task and any child forked meanwhile in one step.
            files::write_kill(kill_file, &self.path)?;
            let emptied = files::wait_until(CGROUP_KILL_WAIT, || {
                files::keyed_counter(&self.path, "cgroup.events", "populated").map(|p| p == 0)
            })?;
            if emptied {
                return Ok(());
            }
        }
        if files::exists(&self.path, "cgroup.freeze") {
            files::kill_until_empty(&[&self.path], &V2Freezer(&self.path))
        } else {
            files::kill_until_empty(&[&self.path], &NoFreezer)
        }
    }

    fn remove(&self) -> Result<(), CgroupError> {
        super::tree::remove_tree(&self.path)
    }

    fn cgroup2_path(&self) -> &Path {
        &self.path
    }

    fn cgroup2_id(&self) -> u64 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::cgroup::test_support::TempDir;

    fn limits() -> CgroupLimits {
        CgroupLimits {
            memory_bytes: Some(512 << 20),
            pids: Some(64),
            cpu: Some(1.5),
        }
    }

    /// A v2 sandbox directory as the kernel creates it, with default values.
    fn sandbox_dir(swap: bool) -> TempDir {
        let dir = TempDir::new();
        for (file, default) in [
            ("memory.max", "max\n"),
            ("pids.max", "max\n"),
            ("cpu.max", "max 100000\n"),
        ] {
            dir.file(file, default);
        }
        if swap {
            dir.file("memory.swap.max", "max\n");
        }
        dir
    }

    #[test]
    fn memory_with_and_without_swap_accounting() {
        let dir = sandbox_dir(true);
        memory::apply(&limits(), dir.path()).unwrap();
        assert_eq!(dir.read("memory.max"), "536870912");
        assert_eq!(dir.read("memory.swap.max"), "0");

        let dir = sandbox_dir(false);
        memory::apply(&limits(), dir.path()).unwrap();
        assert_eq!(dir.read("memory.max"), "536870912");
        assert!(!dir.path().join("memory.swap.max").exists());
    }

    #[test]
    fn pids_and_cpu() {
        let dir = sandbox_dir(true);
        pids::apply(&limits(), dir.path()).unwrap();
        cpu::apply(&limits(), dir.path()).unwrap();
        assert_eq!(dir.read("pids.max"), "64");
        assert_eq!(dir.read("cpu.max"), "150000 100000");
    }

    #[test]
    fn unset_limits_leave_files_alone() {
        let dir = sandbox_dir(true);
        let none = CgroupLimits::default();
        memory::apply(&none, dir.path()).unwrap();
        pids::apply(&none, dir.path()).unwrap();
        cpu::apply(&none, dir.path()).unwrap();
        assert_eq!(dir.read("memory.max"), "max\n");
        assert_eq!(dir.read("pids.max"), "max\n");
        assert_eq!(dir.read("cpu.max"), "max 100000\n");
    }

    #[test]
    fn missing_controller_file_is_an_error() {
        let dir = TempDir::new();
        assert!(matches!(
            pids::apply(&limits(), dir.path()),
            Err(CgroupError::Write { .. })
        ));
    }

    #[test]
    fn subtree_control_only_adds_what_is_missing() {
        assert_eq!(subtree_additions("", &["memory", "pids"]), "+memory +pids");
        assert_eq!(
            subtree_additions("cpu memory\n", &["memory", "pids", "cpu"]),
            "+pids"
        );
        assert_eq!(subtree_additions("memory pids", &["memory", "pids"]), "");
    }

    #[test]
    fn create_in_a_fake_root_and_read_events() {
        let root = TempDir::new();
        root.file("cgroup.controllers", "cpuset cpu io memory pids\n");
        root.file("cgroup.subtree_control", "memory\n");
        // A plain directory stands in for cgroupfs, so the kernel-made files of `guard/` are
        // created by hand first.
        std::fs::create_dir(root.path().join(GUARD_DIR)).unwrap();
        std::fs::write(root.path().join("guard/cgroup.subtree_control"), "").unwrap();
        let m = V2Manager::create(root.path(), "sb1", &limits()).unwrap();
        assert_eq!(root.read("cgroup.subtree_control"), "+pids +cpu");
        assert_eq!(
            root.read("guard/cgroup.subtree_control"),
            "+memory +pids +cpu"
        );
        assert_eq!(m.cgroup2_path(), root.path().join("guard/sb1"));
        assert!(m.cgroup2_id() > 0);

        std::fs::write(
            m.cgroup2_path().join("memory.events"),
            "max 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        std::fs::write(m.cgroup2_path().join("pids.events"), "max 7\n").unwrap();
        assert_eq!(
            m.events().unwrap(),
            CgroupEvents {
                oom_kills: 1,
                pids_max: 7
            }
        );
        assert!(matches!(
            V2Manager::create(root.path(), "sb1", &limits()),
            Err(CgroupError::AlreadyExists(_))
        ));
    }

    #[test]
    fn create_refuses_a_limit_without_its_controller() {
        let root = TempDir::new();
        root.file("cgroup.controllers", "memory pids\n");
        let err = V2Manager::create(root.path(), "sb", &limits()).unwrap_err();
        assert!(
            matches!(err, CgroupError::MissingController("cpu")),
            "{err}"
        );
        assert!(!root.path().join(GUARD_DIR).exists());
    }
}
