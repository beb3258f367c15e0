//! `guard unload`: removes every pinned program, link and map of guard from the kernel.
//!
//! Refused while anything uses the probes (a running `guard exec`, its sentinel, the daemon):
//! pulling them from under a sandbox would leave it unenforced. The users lock in `/run/guard`
//! says so only while that directory is intact, so the kernel's own state decides too: any
//! sandbox cgroup (in any hierarchy), or any map entry of a cgroup that still exists, refuses
//! the unload whatever is left of `/run/guard`. Entries of cgroups that are gone are removed
//! first; they belong to no sandbox. Unpinning is enough to unload:
//! once no process holds a handle, the kernel detaches the links and frees programs and maps.

use std::path::PathBuf;

use super::EbpfError;
use super::pins::{self, LoadLock, UsersLock};
use super::ring_pool;

/// What `guard unload` did.
#[derive(Debug, Default)]
pub struct Unloaded {
    /// The pin directories removed.
    pub removed: Vec<PathBuf>,
}

/// Why unloading did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UnloadError {
    #[error("sandboxes are running (or guard processes still use the probes); stop them first")]
    InUse,
    #[error("sandbox cgroups exist ({}); stop their sandboxes first", .0.join(", "))]
    SandboxCgroups(Vec<String>),
    #[error(
        "the maps in {} hold entries of {} live cgroup(s); stop their sandboxes first",
        dir.display(),
        count
    )]
    LiveEntries { dir: PathBuf, count: usize },
    #[error("cannot tell whether sandboxes exist: {0}")]
    Cgroups(String),
    #[error(transparent)]
    Sweep(#[from] super::stale::SweepError),
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
    #[error("removing {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Removes all of guard's pins, unless the probes are in use.
/// `sandboxes` lists the sandbox cgroups that exist (by name) and `live` their ids, as the
/// caller finds them in the cgroup tree.
pub fn unload(
    sandboxes: &dyn Fn() -> Result<std::collections::BTreeSet<String>, String>,
    live: super::stale::LiveCgroups<'_>,
) -> Result<Unloaded, UnloadError> {
    let _load = LoadLock::acquire()?;
    let Some(_users) = UsersLock::try_exclusive()? else {
        return Err(UnloadError::InUse);
    };
    let sandboxes = sandboxes().map_err(UnloadError::Cgroups)?;
    if !sandboxes.is_empty() {
        return Err(UnloadError::SandboxCgroups(sandboxes.into_iter().collect()));
    }
    for dir in pins::all_pin_dirs() {
        // Pins of another build may not open as this build's maps: those are judged by the
        // cgroups above alone.
        if let Ok(mut probes) = super::Probes::open(&dir, super::Start::Warm) {
            probes.forget_dead_sandboxes(live)?;
            let count = probes.sandbox_ids().len();
            if count > 0 {
                return Err(UnloadError::LiveEntries { dir, count });
            }
        }
    }
    let mut unloaded = Unloaded::default();
    for dir in pins::all_pin_dirs() {
        std::fs::remove_dir_all(&dir).map_err(|source| UnloadError::Remove {
            path: dir.clone(),
            source,
        })?;
        unloaded.removed.push(dir);
    }
    let gone = |result: std::io::Result<()>, path: &str| match result {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(UnloadError::Remove {
            path: PathBuf::from(path),
            source: err,
        }),
        _ => Ok(()),
    };
    gone(std::fs::remove_dir(pins::PIN_ROOT), pins::PIN_ROOT)?;
    // The ring pools' slot locks: nobody holds one, since every holder also holds the users
    // lock shared.
    gone(
        std::fs::remove_dir_all(ring_pool::SLOT_LOCK_ROOT),
        ring_pool::SLOT_LOCK_ROOT,
    )?;
    Ok(unloaded)
}

/// Names of loaded BPF programs starting with `prefix` (after a short grace period: the kernel
/// frees programs asynchronously once their last link and fd are gone).
pub fn loaded_programs_named(prefix: &str) -> Vec<String> {
    let list = || -> Vec<String> {
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .filter_map(|info| info.name_as_str().map(str::to_owned))
            .filter(|name| name.starts_with(prefix))
            .collect()
    };
    for _ in 0..20 {
        let names = list();
        if names.is_empty() {
            return names;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    list()
}
