//! Audit mode's view of file access. Landlock cannot let an access through and record it, so
//! audit mode applies no Landlock and instead parks the file syscalls for guard (seccomp user
//! notification, answered "go on"): while the caller is parked guard reads the path it named
//! and whether it reads, writes or executes, and the monitor records the accesses the profile's
//! file rules would have refused. The path is taken as the process named it, made absolute
//! against its working directory or directory fd, without following symlinks.

use std::os::unix::fs::FileExt as _;
use std::path::{Component, Path, PathBuf};

use crate::plan::landlock::FileAccess;

/// The file syscalls audit mode watches, with where their path (and directory fd) is.
const WATCHED: &[(&str, Shape)] = &[
    (
        "open",
        Shape::Path {
            path: 0,
            flags: Some(1),
        },
    ),
    (
        "creat",
        Shape::Write {
            dirfd: None,
            path: 0,
        },
    ),
    (
        "openat",
        Shape::At {
            dirfd: 0,
            path: 1,
            flags: Some(2),
        },
    ),
    (
        "openat2",
        Shape::At {
            dirfd: 0,
            path: 1,
            flags: None,
        },
    ),
    (
        "execve",
        Shape::Exec {
            dirfd: None,
            path: 0,
        },
    ),
    (
        "execveat",
        Shape::Exec {
            dirfd: Some(0),
            path: 1,
        },
    ),
    (
        "mkdir",
        Shape::Write {
            dirfd: None,
            path: 0,
        },
    ),
    (
        "mkdirat",
        Shape::Write {
            dirfd: Some(0),
            path: 1,
        },
    ),
    (
        "unlink",
        Shape::Write {
            dirfd: None,
            path: 0,
        },
    ),
    (
        "unlinkat",
        Shape::Write {
            dirfd: Some(0),
            path: 1,
        },
    ),
    (
        "rmdir",
        Shape::Write {
            dirfd: None,
            path: 0,
        },
    ),
    (
        "rename",
        Shape::Write {
            dirfd: None,
            path: 1,
        },
    ),
    (
        "renameat",
        Shape::Write {
            dirfd: Some(2),
            path: 3,
        },
    ),
    (
        "renameat2",
        Shape::Write {
            dirfd: Some(2),
            path: 3,
        },
    ),
    (
        "link",
        Shape::Write {
            dirfd: None,
            path: 1,
        },
    ),
    (
        "linkat",
        Shape::Write {
            dirfd: Some(2),
            path: 3,
        },
    ),
    (
        "symlink",
        Shape::Write {
            dirfd: None,
            path: 1,
        },
    ),
    (
        "symlinkat",
        Shape::Write {
            dirfd: Some(1),
            path: 2,
        },
    ),
    (
        "truncate",
        Shape::Write {
            dirfd: None,
            path: 0,
        },
    ),
    (
        "mknod",
        Shape::Write {
            dirfd: None,
            path: 0,
        },
    ),
    (
        "mknodat",
        Shape::Write {
            dirfd: Some(0),
            path: 1,
        },
    ),
];

/// Where a syscall's path, directory fd and open flags are among its arguments.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `open(path, flags)`.
    Path {
        path: usize,
        flags: Option<usize>,
    },
    /// `openat(dirfd, path, flags)`; `openat2` keeps its flags in memory: read access assumed.
    At {
        dirfd: usize,
        path: usize,
        flags: Option<usize>,
    },
    /// Creates, removes or changes the named path.
    Write {
        dirfd: Option<usize>,
        path: usize,
    },
    Exec {
        dirfd: Option<usize>,
        path: usize,
    },
}

/// The names of the watched syscalls, for the filter.
pub fn watched() -> impl Iterator<Item = &'static str> {
    WATCHED.iter().map(|(name, _)| *name)
}

/// For `open`/`openat`: the argument holding the flags, so enforce mode parks only opens that
/// write.
pub fn open_flags_arg(syscall: &str) -> Option<u32> {
    match WATCHED.iter().find(|(name, _)| *name == syscall)?.1 {
        Shape::Path { flags, .. } | Shape::At { flags, .. } => {
            flags.and_then(|i| u32::try_from(i).ok())
        }
        _ => None,
    }
}

/// Whether the syscall never writes by itself (exec, or openat2 whose flags are in memory):
/// enforce mode does not park it.
pub fn reads_only(syscall: &str) -> bool {
    matches!(
        WATCHED
            .iter()
            .find(|(name, _)| *name == syscall)
            .map(|w| w.1),
        Some(Shape::Exec { .. } | Shape::At { flags: None, .. })
    )
}

/// Paths whose writes the read-only tree does not decide (device nodes, and /proc's links to
/// open files, which lead elsewhere): Landlock reports those itself where it can, and guard does
/// not guess.
pub fn decided_elsewhere(path: &Path) -> bool {
    path.starts_with("/dev") || path.starts_with("/proc") || path.starts_with("/sys")
}

/// The file and access of a parked `syscall` of `pid`, when it is one audit mode watches.
pub fn observe(pid: u32, syscall: &str, args: &[u64; 6]) -> Option<(PathBuf, FileAccess)> {
    let (_, shape) = WATCHED.iter().find(|(name, _)| *name == syscall)?;
    let open_access = |flags: Option<usize>| match flags {
        Some(i)
            if args[i] & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u64
                != 0 =>
        {
            FileAccess::Write
        }
        _ => FileAccess::Read,
    };
    let (dirfd, path, access) = match *shape {
        Shape::Path { path, flags } => (None, path, open_access(flags)),
        Shape::At { dirfd, path, flags } => (Some(dirfd), path, open_access(flags)),
        Shape::Write { dirfd, path } => (dirfd, path, FileAccess::Write),
        Shape::Exec { dirfd, path } => (dirfd, path, FileAccess::Execute),
    };
    let name = read_string(pid, args[path])?;
    let base = if name.starts_with('/') {
        PathBuf::from("/")
    } else {
        base_dir(pid, dirfd.map(|i| args[i]))?
    };
    Some((normalize(&base.join(name)), access))
}

/// The directory a relative path starts from: the working directory, or the directory fd.
fn base_dir(pid: u32, dirfd: Option<u64>) -> Option<PathBuf> {
    // The kernel reads dirfd as an int: AT_FDCWD is -100 in the low 32 bits.
    let fd = dirfd.map(|d| d as u32 as i32);
    match fd {
        None | Some(libc::AT_FDCWD) => std::fs::read_link(format!("/proc/{pid}/cwd")).ok(),
        Some(fd) => std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok(),
    }
}

/// A NUL-terminated string at `addr` in `pid`'s memory (at most PATH_MAX bytes).
fn read_string(pid: u32, addr: u64) -> Option<String> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = mem.read_at(&mut buf, addr).ok()?;
    let end = buf[..n].iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// `.` and `..` resolved by name (no symlinks followed), as the path reads.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_by_name() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../etc")), PathBuf::from("/etc"));
    }

    #[test]
    fn reads_a_path_from_our_own_memory() {
        let s = b"/etc/hostname\0";
        let pid = std::process::id();
        let got = read_string(pid, s.as_ptr() as u64);
        assert_eq!(got.as_deref(), Some("/etc/hostname"));
        let args = [
            libc::AT_FDCWD as u32 as u64,
            s.as_ptr() as u64,
            libc::O_WRONLY as u64,
            0,
            0,
            0,
        ];
        assert_eq!(
            observe(pid, "openat", &args),
            Some((PathBuf::from("/etc/hostname"), FileAccess::Write))
        );
    }
}
