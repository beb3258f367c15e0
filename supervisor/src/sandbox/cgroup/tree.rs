//! A sandbox cgroup together with every child cgroup below it, for the end of a run.
//!
//! The sandbox is its cgroup and all descendants (the eBPF probes identify it by ancestry), and
//! a child cgroup can appear without guard's doing: made by a tool with delegated rights, or from
//! outside. Killing, thawing and removing therefore walk the whole tree: a process in a child
//! cgroup must die, a child frozen on its own (a v1 freezer child stays FROZEN when its parent is
//! thawed; a cgroup2 child with `cgroup.freeze = 1` likewise) must be thawed so SIGKILL can be
//! delivered, and the sandbox directory can only be removed after its children.
//!
//! These functions are public to the crate so other teardown paths (a PID namespace's init that
//! must not wait on a frozen member forever) can call them on any sandbox directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use super::CgroupError;
use super::files;

/// Deepest nesting walked below a sandbox: bounds the work against a pathological tree. A deeper
/// tree is an error rather than a partial walk (see [`descendants`]).
const MAX_DEPTH: usize = 64;

/// Every cgroup directory at or below `dir`, parents before children. An absent `dir` has none.
///
/// # Errors
/// A directory that cannot be listed, or a tree deeper than [`MAX_DEPTH`] (refusing is safer than
/// silently not killing what lies below).
pub fn descendants(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((path, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(CgroupError::Read {
                path,
                source: io::Error::other("cgroup tree deeper than guard walks"),
            });
        }
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            // Removed meanwhile (a child rmdir'd by its maker): nothing left to visit.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(CgroupError::Read { path, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| CgroupError::Read {
                path: path.clone(),
                source,
            })?;
            // Control files are regular files; only directories are child cgroups. file_type
            // does not follow symlinks, and cgroupfs has none.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((entry.path(), depth + 1));
            }
        }
        out.push(path);
    }
    // The stack visits depth-first; sort by depth so parents come before children.
    out.sort_by_key(|p| p.components().count());
    Ok(out)
}

/// The processes in `dir` and every cgroup below it.
///
/// # Errors
/// As [`descendants`] and [`files::procs`].
pub fn procs_recursive(dir: &Path) -> Result<Vec<Pid>, CgroupError> {
    let mut pids = Vec::new();
    for cgroup in descendants(dir)? {
        pids.extend(files::procs(&cgroup)?);
    }
    Ok(pids)
}

/// Thaws `dir` and every v1 freezer cgroup below it (`freezer.state = THAWED`), parents first:
/// a child is only thawed once no ancestor holds it frozen.
///
/// # Errors
/// A freezer state that cannot be written.
pub fn thaw_v1_tree(dir: &Path) -> Result<(), CgroupError> {
    write_in_tree(dir, "freezer.state", "THAWED")
}

/// Thaws `dir` and every cgroup2 directory below it (`cgroup.freeze = 0`).
///
/// # Errors
/// A `cgroup.freeze` that cannot be written.
pub fn thaw_v2_tree(dir: &Path) -> Result<(), CgroupError> {
    write_in_tree(dir, "cgroup.freeze", "0")
}

fn write_in_tree(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    for cgroup in descendants(dir)? {
        if files::exists(&cgroup, file) {
            match files::write(&cgroup, file, value) {
                Ok(()) => {}
                // Removed between the listing and the write.
                Err(CgroupError::Write { source, .. })
                    if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Removes `dir` and every cgroup below it, children first (a cgroup with children cannot be
/// removed). An absent directory counts as removed.
///
/// # Errors
/// The first directory that cannot be removed; the others are still attempted.
pub fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let mut first_error = None;
    for cgroup in descendants(dir)?.into_iter().rev() {
        if let Err(e) = files::remove_dir(&cgroup) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_lists_parents_first_and_only_directories() {
        let base = std::env::temp_dir().join(format!("guard-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("a/b/c")).unwrap();
        fs::create_dir_all(base.join("d")).unwrap();
        fs::write(base.join("a/cgroup.procs"), "1\n2\n").unwrap();
        fs::write(base.join("a/b/c/cgroup.procs"), "3\n").unwrap();
        let all = descendants(&base).unwrap();
        assert_eq!(all.len(), 5, "{all:?}");
        assert_eq!(all[0], base);
        let pos = |p: &str| all.iter().position(|x| *x == base.join(p)).unwrap();
        assert!(pos("a") < pos("a/b") && pos("a/b") < pos("a/b/c"));
        let mut pids: Vec<i32> = procs_recursive(&base)
            .unwrap()
            .into_iter()
            .map(Pid::as_raw)
            .collect();
        pids.sort_unstable();
        assert_eq!(pids, [1, 2, 3]);
        assert!(descendants(&base.join("absent")).unwrap().is_empty());
        fs::remove_dir_all(&base).unwrap();
    }
}
