//! Sandbox cgroups on a hybrid host: limits through the v1 memory, pids and cpu hierarchies
//! (`/sys/fs/cgroup/<controller>/guard/<sandbox-id>`), membership also in
//! `<cgroup2>/guard/<sandbox-id>` because eBPF policy is keyed by the cgroup2 id, and killing
//! by freezing the v1 freezer hierarchy (when mounted) around SIGKILLs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;

use super::files::{self, Freezer, NoFreezer};
use super::{CgroupError, CgroupEvents, CgroupManager, GUARD_DIR, cgroup2_id_of};
use crate::plan::CgroupLimits;

/// A sandbox's directories on a hybrid host.
#[derive(Debug)]
pub struct HybridManager {
    memory: PathBuf,
    pids: PathBuf,
    /// Absent when the host has no v1 cpu hierarchy and the profile sets no cpu limit.
    cpu: Option<PathBuf>,
    /// Absent when the host has no v1 freezer hierarchy; killing then has no freeze step.
    freezer: Option<PathBuf>,
    unified: PathBuf,
    unified_id: u64,
    /// The unified directory's `cgroup.kill`, open from creation on (see
    /// [`files::open_kill_file`]).
    kill_file: Option<std::fs::File>,
}

impl HybridManager {
    /// Creates the sandbox directory in each v1 hierarchy of `v1` (controller -> mount point)
    /// guard uses, and in the cgroup2 mount `unified`. On failure the directories created so far
    /// are removed.
    pub fn create(
        v1: &BTreeMap<String, PathBuf>,
        unified: &Path,
        sandbox_id: &str,
        limits: &CgroupLimits,
    ) -> Result<Self, CgroupError> {
        let mut created = Vec::new();
        let result = Self::create_dirs(v1, unified, sandbox_id, limits, &mut created);
        if result.is_err() {
            for dir in created.iter().rev() {
                let _ = files::remove_dir(dir);
            }
        }
        result
    }

    fn create_dirs(
        v1: &BTreeMap<String, PathBuf>,
        unified: &Path,
        sandbox_id: &str,
        limits: &CgroupLimits,
        created: &mut Vec<PathBuf>,
    ) -> Result<Self, CgroupError> {
        let mut make = |mount: &Path| -> Result<PathBuf, CgroupError> {
            let parent = mount.join(GUARD_DIR);
            files::ensure_dir(&parent)?;
            let dir = parent.join(sandbox_id);
            files::create_new_dir(&dir)?;
            created.push(dir.clone());
            Ok(dir)
        };
        let mount_of = |controller: &'static str| {
            v1.get(controller)
                .ok_or(CgroupError::MissingController(controller))
        };
        let memory = make(mount_of("memory")?)?;
        let pids = make(mount_of("pids")?)?;
        let cpu = match (v1.get("cpu"), limits.cpu) {
            (Some(mount), _) => Some(make(mount)?),
            (None, Some(_)) => return Err(CgroupError::MissingController("cpu")),
            (None, None) => None,
        };
        let freezer = v1.get("freezer").map(|m| make(m)).transpose()?;
        let unified = make(unified)?;
        let unified_id = cgroup2_id_of(&unified)?;
        Ok(HybridManager {
            memory,
            pids,
            cpu,
            freezer,
            kill_file: files::open_kill_file(&unified),
            unified,
            unified_id,
        })
    }

    /// The existing directories of sandbox `sandbox_id`, for the daemon to inspect, kill or
    /// remove a sandbox another process created (or left behind half-created); `None` when no
    /// hierarchy has it. Missing v1 directories count as empty and removed.
    pub fn open(
        v1: &BTreeMap<String, PathBuf>,
        unified: &Path,
        sandbox_id: &str,
    ) -> Result<Option<Self>, CgroupError> {
        let dir_in = |mount: &Path| mount.join(GUARD_DIR).join(sandbox_id);
        let existing =
            |controller: &str| v1.get(controller).map(|m| dir_in(m)).filter(|d| d.is_dir());
        let mount_of = |controller: &'static str| {
            v1.get(controller)
                .ok_or(CgroupError::MissingController(controller))
        };
        let memory = dir_in(mount_of("memory")?);
        let pids = dir_in(mount_of("pids")?);
        let cpu = existing("cpu");
        let freezer = existing("freezer");
        let unified = dir_in(unified);
        let any = [&memory, &pids, &unified].iter().any(|d| d.is_dir())
            || cpu.is_some()
            || freezer.is_some();
        if !any {
            return Ok(None);
        }
        // A half-created sandbox may lack its cgroup2 directory; it has no id then.
        let unified_id = if unified.is_dir() {
            cgroup2_id_of(&unified)?
        } else {
            0
        };
        Ok(Some(HybridManager {
            memory,
            pids,
            cpu,
            freezer,
            kill_file: files::open_kill_file(&unified),
            unified,
            unified_id,
        }))
    }

    /// Every directory of the sandbox; the cgroup2 one last, since eBPF keys by it and it should
    /// be the last to lose a process.
    fn dirs(&self) -> Vec<&Path> {
        let mut dirs = vec![self.memory.as_path(), self.pids.as_path()];
        dirs.extend(self.cpu.as_deref());
        dirs.extend(self.freezer.as_deref());
        dirs.push(&self.unified);
        dirs
    }
}

/// The v1 memory controller: `memory.limit_in_bytes`, and the same value for memory+swap when
/// swap accounting is on, so the sandbox cannot swap its way past the limit.
pub mod memory {
    use super::*;

    pub fn apply(limits: &CgroupLimits, dir: &Path) -> Result<(), CgroupError> {
        let Some(bytes) = limits.memory_bytes else {
            return Ok(());
        };
        let bytes = bytes.to_string();
        // The kernel requires memsw >= limit at every moment; starting from "unlimited" the
        // memory limit must therefore be lowered first.
        files::write(dir, "memory.limit_in_bytes", &bytes)?;
        if files::exists(dir, "memory.memsw.limit_in_bytes") {
            files::write(dir, "memory.memsw.limit_in_bytes", &bytes)?;
        }
        Ok(())
    }
}

/// The v1 pids controller: `pids.max` has the same name and format as on v2.
pub use super::v2::pids;

/// The v1 cpu controller: CFS bandwidth as `cpu.cfs_period_us` and `cpu.cfs_quota_us`.
pub mod cpu {
    use super::*;
    use crate::sandbox::cgroup::{CPU_PERIOD_US, cpu_quota_us};

    pub fn apply(limits: &CgroupLimits, dir: &Path) -> Result<(), CgroupError> {
        let Some(cpus) = limits.cpu else {
            return Ok(());
        };
        let quota = cpu_quota_us(cpus)?;
        // The period first: the quota is interpreted relative to it.
        files::write(dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
        files::write(dir, "cpu.cfs_quota_us", &quota.to_string())
    }
}

/// The v1 freezer: `freezer.state` FROZEN / THAWED.
pub(super) struct V1Freezer<'a>(pub(super) &'a Path);

impl Freezer for V1Freezer<'_> {
    fn freeze(&self) -> Result<(), CgroupError> {
        files::write(self.0, "freezer.state", "FROZEN")?;
        // FREEZING until every task stopped; a task stuck in the kernel may never get there,
        // and killing it anyway is still right.
        files::wait_until(Duration::from_secs(1), || {
            Ok(
                files::read_optional(self.0, "freezer.state")?
                    .is_some_and(|s| s.trim() == "FROZEN"),
            )
        })?;
        Ok(())
    }

    fn thaw(&self) -> Result<(), CgroupError> {
        // The whole tree: a child cgroup frozen on its own stays FROZEN when only its parent is
        // thawed, and its members would never receive their SIGKILL.
        super::tree::thaw_v1_tree(self.0)
    }
}

impl CgroupManager for HybridManager {
    fn add_task(&self, pid: Pid) -> Result<(), CgroupError> {
        let pid = pid.as_raw().to_string();
        for dir in self.dirs() {
            files::write(dir, "cgroup.procs", &pid)?;
        }
        Ok(())
    }

    fn apply(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        memory::apply(limits, &self.memory)?;
        pids::apply(limits, &self.pids)?;
        match &self.cpu {
            Some(dir) => cpu::apply(limits, dir),
            None if limits.cpu.is_some() => Err(CgroupError::MissingController("cpu")),
            None => Ok(()),
        }
    }

    fn events(&self) -> Result<CgroupEvents, CgroupError> {
        Ok(CgroupEvents {
            // `oom_kill` in memory.oom_control needs kernel 4.13.
            oom_kills: files::keyed_counter(&self.memory, "memory.oom_control", "oom_kill")?,
            pids_max: files::keyed_counter(&self.pids, "pids.events", "max")?,
        })
    }

    fn memory_current(&self) -> Result<Option<u64>, CgroupError> {
        files::number(&self.memory, "memory.usage_in_bytes")
    }

    fn memory_peak(&self) -> Result<Option<u64>, CgroupError> {
        files::number(&self.memory, "memory.max_usage_in_bytes")
    }

    /// # Minimum kernel version
    /// The cgroup2 `cgroup.kill` step needs kernel 5.14; without it the freeze-kill-thaw loop
    /// alone does the work.
    fn kill_all(&self) -> Result<(), CgroupError> {
        // cgroup.kill exists on cgroup2 directories even without controllers, and kills every
        // member atomically, forks included; the loop below then only confirms that every v1
        // directory is empty too.
        if let Some(kill_file) = &self.kill_file {
            files::write_kill(kill_file, &self.unified)?;
        }
        let dirs = self.dirs();
        match &self.freezer {
            Some(dir) => files::kill_until_empty(&dirs, &V1Freezer(dir)),
            None => files::kill_until_empty(&dirs, &NoFreezer),
        }
    }

    fn remove(&self) -> Result<(), CgroupError> {
        // Every directory is attempted; the first failure is reported.
        let mut first_error = None;
        for dir in self.dirs() {
            if let Err(e) = super::tree::remove_tree(dir) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn cgroup2_path(&self) -> &Path {
        &self.unified
    }

    fn cgroup2_id(&self) -> u64 {
        self.unified_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::cgroup::test_support::TempDir;

    fn limits() -> CgroupLimits {
        CgroupLimits {
            memory_bytes: Some(64 << 20),
            pids: Some(16),
            cpu: Some(0.5),
        }
    }

    #[test]
    fn memory_sets_memsw_when_present() {
        let dir = TempDir::new();
        dir.file("memory.limit_in_bytes", "9223372036854771712\n");
        memory::apply(&limits(), dir.path()).unwrap();
        assert_eq!(dir.read("memory.limit_in_bytes"), "67108864");
        assert!(!dir.path().join("memory.memsw.limit_in_bytes").exists());

        dir.file("memory.memsw.limit_in_bytes", "9223372036854771712\n");
        memory::apply(&limits(), dir.path()).unwrap();
        assert_eq!(dir.read("memory.memsw.limit_in_bytes"), "67108864");
    }

    #[test]
    fn pids_and_cpu() {
        let dir = TempDir::new();
        dir.file("pids.max", "max\n");
        dir.file("cpu.cfs_period_us", "100000\n");
        dir.file("cpu.cfs_quota_us", "-1\n");
        pids::apply(&limits(), dir.path()).unwrap();
        cpu::apply(&limits(), dir.path()).unwrap();
        assert_eq!(dir.read("pids.max"), "16");
        assert_eq!(dir.read("cpu.cfs_period_us"), "100000");
        assert_eq!(dir.read("cpu.cfs_quota_us"), "50000");
    }

    #[test]
    fn unset_limits_leave_files_alone() {
        let dir = TempDir::new();
        let none = CgroupLimits::default();
        memory::apply(&none, dir.path()).unwrap();
        pids::apply(&none, dir.path()).unwrap();
        cpu::apply(&none, dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// Fake mount points in a tempdir, one per hierarchy, plus the cgroup2 mount.
    fn fake_mounts(root: &TempDir, controllers: &[&str]) -> (BTreeMap<String, PathBuf>, PathBuf) {
        let mut v1 = BTreeMap::new();
        for c in controllers {
            let mount = root.path().join(c);
            std::fs::create_dir(&mount).unwrap();
            v1.insert((*c).to_owned(), mount);
        }
        let unified = root.path().join("unified");
        std::fs::create_dir(&unified).unwrap();
        (v1, unified)
    }

    #[test]
    fn create_makes_one_dir_per_hierarchy_under_guard() {
        let root = TempDir::new();
        let (v1, unified) = fake_mounts(&root, &["memory", "pids", "cpu", "freezer"]);
        let m = HybridManager::create(&v1, &unified, "sb7", &limits()).unwrap();
        for c in ["memory", "pids", "cpu", "freezer", "unified"] {
            assert!(root.path().join(c).join("guard/sb7").is_dir(), "{c}");
        }
        assert_eq!(m.cgroup2_path(), unified.join("guard/sb7"));
        m.remove().unwrap();
        for c in ["memory", "pids", "cpu", "freezer", "unified"] {
            assert!(!root.path().join(c).join("guard/sb7").exists(), "{c}");
            assert!(
                root.path().join(c).join("guard").is_dir(),
                "shared parent {c} stays"
            );
        }
    }

    #[test]
    fn failed_create_leaves_nothing_behind() {
        let root = TempDir::new();
        let (v1, unified) = fake_mounts(&root, &["memory", "pids"]);
        // A leftover cgroup2 directory of the same id makes the last step fail.
        std::fs::create_dir_all(unified.join("guard/sb8")).unwrap();
        let err =
            HybridManager::create(&v1, &unified, "sb8", &CgroupLimits::default()).unwrap_err();
        assert!(matches!(err, CgroupError::AlreadyExists(_)), "{err}");
        assert!(!root.path().join("memory/guard/sb8").exists());
        assert!(!root.path().join("pids/guard/sb8").exists());
        assert!(
            unified.join("guard/sb8").exists(),
            "the pre-existing dir is not ours to remove"
        );

        let err = HybridManager::create(&v1, &unified, "sb9", &limits()).unwrap_err();
        assert!(
            matches!(err, CgroupError::MissingController("cpu")),
            "{err}"
        );
        assert!(!root.path().join("memory/guard/sb9").exists());
    }

    #[test]
    fn events_from_v1_files() {
        let root = TempDir::new();
        let (v1, unified) = fake_mounts(&root, &["memory", "pids"]);
        let m = HybridManager::create(&v1, &unified, "sb", &CgroupLimits::default()).unwrap();
        std::fs::write(
            root.path().join("memory/guard/sb/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(root.path().join("pids/guard/sb/pids.events"), "max 5\n").unwrap();
        assert_eq!(
            m.events().unwrap(),
            CgroupEvents {
                oom_kills: 2,
                pids_max: 5
            }
        );
    }
}
