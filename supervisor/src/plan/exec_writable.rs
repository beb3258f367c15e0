//! Exec entries that overlap a write path: what the tool may run, it could first rewrite.
//!
//! The exec check identifies an allowed file by device and inode, and an allowed directory by
//! everything beneath it. A listed binary inside a write path can be replaced by any payload
//! (opened for writing, truncated and filled: same inode), and an executable directory above or
//! below a write path lets the tool drop a new binary where it may run it. So such a profile is
//! refused unless it says `process.exec_writable = true` (a build profile that runs what it just
//! compiled), and `guard explain` then says the exec allowlist is only as strong as the write
//! paths.

use std::path::{Path, PathBuf};

/// Write grants that name a character device, not a place files can be written to.
const DEVICE_FILES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// One exec entry and the write path it overlaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub exec: PathBuf,
    pub write: PathBuf,
}

/// The first exec entry that is, lies beneath, or lies above a write path (compared by
/// components, so `/tmpx` does not overlap `/tmp`). The character devices profiles write to
/// ([`DEVICE_FILES`]) hold no executable and are ignored; any other path under `/dev`, such as
/// `/dev/shm`, is a directory a payload can be written to and counts.
pub fn first_overlap(exec: &[PathBuf], write: &[&Path]) -> Option<Overlap> {
    exec.iter().find_map(|exec| {
        write
            .iter()
            .filter(|write| !DEVICE_FILES.iter().any(|d| write.as_os_str() == *d))
            .find(|write| exec.starts_with(write) || write.starts_with(exec))
            .map(|write| Overlap {
                exec: exec.clone(),
                write: write.to_path_buf(),
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn beneath_above_and_equal_overlap_but_siblings_do_not() {
        let write = [Path::new("/work/p"), Path::new("/dev/null")];
        let hit = |e: &[&str]| first_overlap(&paths(e), &write);
        assert_eq!(
            hit(&["/usr/bin", "/work/p/target/tool"]),
            Some(Overlap {
                exec: "/work/p/target/tool".into(),
                write: "/work/p".into()
            })
        );
        assert!(hit(&["/work"]).is_some(), "an exec dir above a write path");
        assert!(hit(&["/work/p"]).is_some());
        assert_eq!(hit(&["/work/pp", "/usr/bin", "/dev"]), None);
    }
}
