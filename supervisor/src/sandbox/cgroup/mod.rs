//! The sandbox cgroup: resource limits, membership of every process a tool forks, and the
//! cgroup2 id that all eBPF policy is keyed by.
//!
//! One [`CgroupManager`] trait with two backends, chosen from the host by [`create`]:
//! - [`v2::V2Manager`]: a pure cgroup v2 host (memory, pids and cpu controllers on the unified
//!   hierarchy);
//! - [`v1::HybridManager`]: a hybrid host, where the controllers sit on v1 hierarchies under
//!   `/sys/fs/cgroup/<controller>` and cgroup2 is mounted without controllers. The sandbox is
//!   placed in the v1 hierarchies for limits and also in a cgroup2 directory, because eBPF cgroup
//!   hooks and `bpf_get_current_cgroup_id` only see cgroup2.
//!
//! Everything guard creates lives in a `guard` directory at the top of each hierarchy, one
//! subdirectory per sandbox named by its id; other cgroups are never touched.

mod detect;
mod existing;
mod files;
pub mod tree;
pub mod v1;
pub mod v2;

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::plan::CgroupLimits;

pub use detect::{CgroupHost, Mounts};
pub use existing::{guard_cgroup2_dir, list_sandboxes, live_sandbox_ids, open_existing};

/// The directory guard's sandbox cgroups live in, in every hierarchy.
pub const GUARD_DIR: &str = "guard";

/// What went wrong with a sandbox cgroup; each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "invalid sandbox id {0:?}: use 1-64 characters from [A-Za-z0-9._-], not starting with '.'"
    )]
    InvalidId(String),
    #[error("cannot read the mount table /proc/self/mountinfo")]
    ReadMounts(#[source] io::Error),
    #[error(
        "no cgroup2 mount: the sandbox must be in a cgroup2 directory for its eBPF policy \
         (mount cgroup2, e.g. at /sys/fs/cgroup/unified)"
    )]
    NoCgroup2,
    #[error(
        "the {0} cgroup controller is not available on this host (neither on cgroup2 nor as a v1 hierarchy)"
    )]
    MissingController(&'static str),
    #[error("invalid cpu limit {0}: must be a positive number of CPUs")]
    InvalidCpu(f64),
    #[error(
        "cgroup {0} already exists: another sandbox with this id is running or was left behind"
    )]
    AlreadyExists(PathBuf),
    #[error("cannot create cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unexpected content in {path}: {content:?}")]
    Parse { path: PathBuf, content: String },
    #[error("cannot stat cgroup2 directory {path}")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot send SIGKILL to {pid} in {path}")]
    Kill {
        path: PathBuf,
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error("processes are still in {path} after killing them for {waited_ms} ms")]
    KillTimeout { path: PathBuf, waited_ms: u64 },
    #[error("cannot remove cgroup {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Limit hits counted by the kernel since the sandbox cgroup was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupEvents {
    /// Processes the OOM killer killed because the sandbox reached `limits.memory`.
    pub oom_kills: u64,
    /// Forks refused because the sandbox reached `limits.pids`.
    pub pids_max: u64,
}

/// One sandbox's cgroup(s), whatever the cgroup version of the host.
pub trait CgroupManager: Debug + Send + Sync {
    /// Moves `pid` (a whole process) into the sandbox cgroup(s); its future children stay there.
    fn add_task(&self, pid: Pid) -> Result<(), CgroupError>;
    /// The directory a process can be started in with `clone3(CLONE_INTO_CGROUP)` so that it is
    /// in the whole sandbox from its first instruction, with no [`CgroupManager::add_task`]:
    /// only when the sandbox is a single cgroup2 directory (a pure cgroup v2 host). The flag
    /// reaches cgroup2 only, so a sandbox with v1 directories has none.
    fn clone_into_dir(&self) -> Option<&Path> {
        None
    }
    /// Writes `limits`; a limit that is `None` is left at the kernel's default (unlimited).
    fn apply(&self, limits: &CgroupLimits) -> Result<(), CgroupError>;
    /// OOM kills and refused forks so far.
    fn events(&self) -> Result<CgroupEvents, CgroupError>;
    /// The highest memory use of the sandbox in bytes, `None` when the kernel does not track it
    /// (cgroup v2 `memory.peak` needs kernel 5.19).
    fn memory_peak(&self) -> Result<Option<u64>, CgroupError>;
    /// The memory the sandbox uses now in bytes (`guard status`), `None` when unknown.
    fn memory_current(&self) -> Result<Option<u64>, CgroupError> {
        Ok(None)
    }
    /// Kills every process in the sandbox, including ones forked while killing, and returns when
    /// the cgroup is empty.
    fn kill_all(&self) -> Result<(), CgroupError>;
    /// Removes the sandbox's directories; call after [`CgroupManager::kill_all`]. Idempotent.
    fn remove(&self) -> Result<(), CgroupError>;
    /// The cgroup2 directory of the sandbox.
    fn cgroup2_path(&self) -> &Path;
    /// The id of the cgroup2 directory (its inode number), as `bpf_get_current_cgroup_id()` and
    /// the eBPF policy maps see it.
    fn cgroup2_id(&self) -> u64;
}

/// Creates the cgroup(s) of sandbox `sandbox_id` with the backend this host needs, and applies
/// `limits`. On failure nothing is left behind.
pub fn create(
    sandbox_id: &str,
    limits: &CgroupLimits,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    validate_id(sandbox_id)?;
    let host = detect_host()?;
    let manager: Box<dyn CgroupManager> = match host {
        CgroupHost::V2 { root } => Box::new(v2::V2Manager::create(&root, sandbox_id, limits)?),
        CgroupHost::Hybrid { unified, v1 } => Box::new(v1::HybridManager::create(
            &v1, &unified, sandbox_id, limits,
        )?),
    };
    if let Err(e) = manager.apply(limits) {
        // Best effort: the apply error is the one worth reporting.
        let _ = manager.remove();
        return Err(e);
    }
    Ok(manager)
}

/// The backend [`create`] uses on this host, as the enforcement model sees it: which
/// controllers limits can go through.
pub fn layout() -> crate::enforcement::CgroupLayout {
    use crate::enforcement::CgroupLayout;
    match detect_host() {
        Ok(CgroupHost::V2 { root }) => CgroupLayout::V2 {
            controllers: files::read_controllers(&root).unwrap_or_default(),
        },
        Ok(CgroupHost::Hybrid { v1, .. }) => CgroupLayout::Hybrid {
            v1: v1.into_keys().collect(),
        },
        Err(err) => CgroupLayout::Unusable(err.to_string()),
    }
}

/// The cgroup layout of this host, from the mount table.
fn detect_host() -> Result<CgroupHost, CgroupError> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::ReadMounts)?;
    let mounts = Mounts::parse(&mountinfo);
    CgroupHost::detect(&mounts, files::read_controllers)
}

/// A sandbox id becomes a directory name in each hierarchy, so it must not be able to name
/// anything outside `guard/` (no `/`, no `..`). An id equal to a control file's name fails at
/// `mkdir` with [`CgroupError::AlreadyExists`].
fn validate_id(id: &str) -> Result<(), CgroupError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CgroupError::InvalidId(id.to_owned()))
    }
}

/// The CFS bandwidth period guard uses, in microseconds (the kernel's default).
pub(crate) const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts, in microseconds.
const CPU_MIN_QUOTA_US: u64 = 1_000;

/// The CFS quota per [`CPU_PERIOD_US`] for `cpus` CPUs of bandwidth (1.5 CPUs = 150000).
pub(crate) fn cpu_quota_us(cpus: f64) -> Result<u64, CgroupError> {
    if !cpus.is_finite() || cpus <= 0.0 {
        return Err(CgroupError::InvalidCpu(cpus));
    }
    // `as` saturates, and a quota beyond u64::MAX microseconds per period is no limit anyway.
    let quota = (cpus * CPU_PERIOD_US as f64).round() as u64;
    Ok(quota.max(CPU_MIN_QUOTA_US))
}

/// The stat(2) inode number of a cgroup2 directory, which is the cgroup's id on 64-bit kernels
/// (kernfs node id).
fn cgroup2_id_of(path: &Path) -> Result<u64, CgroupError> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|source| CgroupError::Stat {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod live_tests;
#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_ids() {
        for ok in ["abc", "sb-12_3.x", "a"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "../x",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cpu_quota() {
        assert_eq!(cpu_quota_us(1.0).unwrap(), 100_000);
        assert_eq!(cpu_quota_us(1.5).unwrap(), 150_000);
        assert_eq!(cpu_quota_us(0.001).unwrap(), 1_000);
        assert_eq!(cpu_quota_us(0.0001).unwrap(), 1_000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(cpu_quota_us(bad).is_err(), "{bad}");
        }
    }
}
