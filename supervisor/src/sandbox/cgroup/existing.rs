//! Sandbox cgroups that already exist: the daemon lists them, reads a running sandbox's memory,
//! and kills and removes the ones whose supervisor and sentinel are gone (after a crash).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{CgroupError, CgroupHost, CgroupManager, GUARD_DIR, detect_host, v1, v2};

/// The ids of every sandbox directory under `guard/` in any hierarchy guard uses on this host
/// (a half-created or half-removed sandbox may be in some hierarchies only).
pub fn list_sandboxes() -> Result<BTreeSet<String>, CgroupError> {
    let mut ids = BTreeSet::new();
    match detect_host()? {
        CgroupHost::V2 { root } => add_children(&root, &mut ids)?,
        CgroupHost::Hybrid { unified, v1 } => {
            add_children(&unified, &mut ids)?;
            let mounts: BTreeSet<&Path> = v1.values().map(|p| p.as_path()).collect();
            for mount in mounts {
                add_children(mount, &mut ids)?;
            }
        }
    }
    Ok(ids)
}

/// The sandbox `sandbox_id` as it exists now, `None` when no hierarchy has it.
pub fn open_existing(sandbox_id: &str) -> Result<Option<Box<dyn CgroupManager>>, CgroupError> {
    super::validate_id(sandbox_id)?;
    Ok(match detect_host()? {
        CgroupHost::V2 { root } => {
            v2::V2Manager::open(&root, sandbox_id)?.map(|m| Box::new(m) as Box<dyn CgroupManager>)
        }
        CgroupHost::Hybrid { unified, v1 } => v1::HybridManager::open(&v1, &unified, sandbox_id)?
            .map(|m| Box::new(m) as Box<dyn CgroupManager>),
    })
}

/// The cgroup2 directory every sandbox cgroup is created in (`<cgroup2>/guard`), created if it
/// is not there yet: the eBPF network hooks are attached to it.
pub fn guard_cgroup2_dir() -> Result<PathBuf, CgroupError> {
    let cgroup2 = match detect_host()? {
        CgroupHost::V2 { root } => root,
        CgroupHost::Hybrid { unified, .. } => unified,
    };
    let dir = cgroup2.join(GUARD_DIR);
    super::files::ensure_dir(&dir)?;
    Ok(dir)
}

/// The cgroup ids (cgroup2 inode numbers) of the sandboxes that exist now.
pub fn live_sandbox_ids() -> Result<BTreeSet<u64>, CgroupError> {
    let dir = guard_cgroup2_dir()?;
    let mut ids = BTreeSet::new();
    for id in list_sandboxes()? {
        if let Ok(meta) = std::fs::metadata(dir.join(&id)) {
            ids.insert(std::os::unix::fs::MetadataExt::ino(&meta));
        }
    }
    Ok(ids)
}

/// Adds the names of the directories in `<mount>/guard` to `ids`.
fn add_children(mount: &Path, ids: &mut BTreeSet<String>) -> Result<(), CgroupError> {
    let parent = mount.join(GUARD_DIR);
    let entries = match std::fs::read_dir(&parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: parent,
                source,
            });
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Read {
            path: parent.clone(),
            source,
        })?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(name) = entry.file_name().to_str()
        {
            ids.insert(name.to_owned());
        }
    }
    Ok(())
}
