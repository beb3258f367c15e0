//! Opening the paths of Landlock rules without following links the sandbox planted.
//!
//! A Landlock rule grants access beneath the inode its path resolves to when the supervisor
//! opens it. A path that lies beneath one of the profile's write paths is under the tool's
//! control: an earlier run may have replaced `${CWD}/target` with a symlink to `/etc`, and the
//! next run's rule for `${CWD}/target` would then grant its rights on `/etc`. So every rule
//! path beneath a write path is resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`
//! from the outermost write path above it: links that stay inside that write path still work,
//! a link that leaves it refuses the whole run (fail closed; the profile names a path the
//! sandbox has redirected). Paths outside every write path are opened as before: the tool
//! cannot have changed them.
//!
//! # Minimum kernel version
//! `openat2` needs Linux 5.6; without it rule paths beneath write paths are refused.

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
use nix::sys::stat::Mode;

/// Why a rule path could not be opened safely.
#[derive(Debug, thiserror::Error)]
pub enum RulePathError {
    #[error(
        "{path} lies beneath the write path {beneath} and resolves outside it (a symlink the \
         sandbox can create); refusing to grant rules through it"
    )]
    Escapes { path: PathBuf, beneath: PathBuf },
    #[error("opening {path} beneath the write path {beneath}")]
    OpenBeneath {
        path: PathBuf,
        beneath: PathBuf,
        #[source]
        source: Errno,
    },
}

/// Opens `path` (absolute) as an `O_PATH` fd for a Landlock rule. `write_paths` are the
/// profile's write paths. `Ok(None)` when the path does not exist (it grants nothing).
pub fn open_rule_path(
    path: &Path,
    write_paths: &[&Path],
) -> Result<Option<OwnedFd>, RulePathError> {
    let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    let Some(root) = outermost_write_ancestor(path, write_paths) else {
        return Ok(open(path, flags, Mode::empty()).ok());
    };
    let Ok(root_fd) = open(root, flags | OFlag::O_DIRECTORY, Mode::empty()) else {
        // The write path itself is missing, so nothing beneath it exists either.
        return Ok(None);
    };
    let rest = path.strip_prefix(root).unwrap_or(path);
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(&root_fd, rest, how) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        // EXDEV: resolution left `root`; ELOOP: a magic link (/proc/*/fd style) on the way.
        Err(Errno::EXDEV | Errno::ELOOP) => Err(RulePathError::Escapes {
            path: path.to_path_buf(),
            beneath: root.to_path_buf(),
        }),
        Err(source) => Err(RulePathError::OpenBeneath {
            path: path.to_path_buf(),
            beneath: root.to_path_buf(),
            source,
        }),
    }
}

/// The shortest write path that is a strict ancestor of `path`, compared by components (so
/// `/tmpx` is not beneath `/tmp`). The outermost one, because a nested write path can itself
/// be a link planted inside the outer one.
fn outermost_write_ancestor<'a>(path: &Path, write_paths: &[&'a Path]) -> Option<&'a Path> {
    write_paths
        .iter()
        .copied()
        .filter(|write| path != *write && path.starts_with(write))
        .filter(|write| !is_root(write))
        .min_by_key(|write| write.components().count())
}

/// `/` as a write path: everything is beneath it and there is nothing outside to escape to.
fn is_root(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::RootDir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::cgroup::test_support::TempDir;
    use std::os::unix::fs::symlink;

    #[test]
    fn the_outermost_write_ancestor_is_chosen_by_components() {
        let tmp = Path::new("/tmp");
        let work = Path::new("/tmp/work");
        let writes = [work, tmp];
        assert_eq!(
            outermost_write_ancestor(Path::new("/tmp/work/target"), &writes),
            Some(tmp)
        );
        assert_eq!(
            outermost_write_ancestor(Path::new("/tmpx/a"), &writes),
            None
        );
        // A write path is not beneath itself, but a nested one is beneath the outer.
        assert_eq!(outermost_write_ancestor(tmp, &writes), None);
        assert_eq!(outermost_write_ancestor(work, &writes), Some(tmp));
        assert_eq!(
            outermost_write_ancestor(Path::new("/etc"), &[Path::new("/")]),
            None
        );
    }

    #[test]
    fn a_planted_symlink_out_of_the_write_path_is_refused() {
        let dir = TempDir::new();
        let target_outside = TempDir::new();
        let link = dir.path().join("target");
        symlink(target_outside.path(), &link).expect("symlink");
        let result = open_rule_path(&link, &[dir.path()]);
        assert!(
            matches!(result, Err(RulePathError::Escapes { .. })),
            "{result:?}"
        );
        // The same path outside any write path is opened as the profile says.
        assert!(matches!(open_rule_path(&link, &[]), Ok(Some(_))));
    }

    #[test]
    fn links_that_stay_inside_and_missing_paths_are_fine() {
        let dir = TempDir::new();
        std::fs::create_dir(dir.path().join("real")).expect("mkdir");
        symlink("real", dir.path().join("alias")).expect("symlink");
        let writes = [dir.path()];
        assert!(matches!(
            open_rule_path(&dir.path().join("alias"), &writes),
            Ok(Some(_))
        ));
        assert!(matches!(
            open_rule_path(&dir.path().join("missing/x"), &writes),
            Ok(None)
        ));
    }
}
