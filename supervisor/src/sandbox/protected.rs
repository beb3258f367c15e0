//! Paths no profile may grant for writing: the kernel's control files and guard's own state.
//!
//! A root-uid tool without capabilities still owns root's files, so write access to a cgroup
//! mount lets it create a child cgroup or move itself out of the sandbox's, write access to
//! bpffs lets it unpin guard's probes, and write access to `/run/guard` or the audit log lets
//! it rewrite the evidence of its own run. Landlock would grant exactly what the profile says,
//! so such a grant is refused before anything starts: `guard check` exits 1 with the reason,
//! `guard exec` 125. A write path is refused when it is, lies beneath, or lies above a
//! protected path (`write = ["/"]` covers `/sys`), and when it is a block device.

use std::path::{Path, PathBuf};

/// Fixed locations and why each is protected.
const FIXED: &[(&str, &str)] = &[
    ("/sys", "kernel and cgroup control files"),
    ("/proc", "kernel settings (/proc/sys) and other processes"),
    (
        "/run/guard",
        "guard's own state (ring slots, offsets cache, daemon socket)",
    ),
    ("/etc/guard", "guard's configuration and profiles"),
    ("/var/log/guard", "guard's audit logs"),
    ("/var/lib/guard", "guard's audit signing key"),
    ("/boot", "the kernel and boot loader"),
];

/// File system types whose mount points are protected wherever they are mounted.
const PROTECTED_FS: &[(&str, &str)] = &[
    ("cgroup", "a cgroup v1 hierarchy"),
    ("cgroup2", "the cgroup v2 hierarchy"),
    ("bpf", "bpffs, where guard's probes are pinned"),
    ("debugfs", "debugfs"),
    ("tracefs", "tracefs (kprobes and tracing control)"),
    ("securityfs", "securityfs (LSM policy)"),
    ("sysfs", "sysfs"),
    ("proc", "procfs"),
    ("configfs", "configfs"),
    ("efivarfs", "EFI variables"),
    ("pstore", "pstore"),
];

/// A refused write grant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "filesystem.write: {} cannot be granted: it {relation} {} ({why})",
    path.display(),
    protected.display()
)]
pub struct ProtectedWrite {
    pub path: PathBuf,
    pub protected: PathBuf,
    pub relation: &'static str,
    pub why: String,
}

/// Why the write paths could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProtectedError {
    #[error(transparent)]
    Write(#[from] ProtectedWrite),
    /// Without the mount table a cgroup or bpf mount could go unnoticed: refuse (fail closed).
    #[error("reading /proc/self/mountinfo to find the kernel file systems no profile may write")]
    ReadMounts(#[source] std::io::Error),
}

/// Checks every write path of a plan against the fixed list, this host's mounts and
/// `audit_log` (the log of this run, when it is a file).
pub fn check_write_paths<'a>(
    write_paths: impl IntoIterator<Item = &'a Path>,
    audit_log: Option<&Path>,
) -> Result<(), ProtectedError> {
    let mounts =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(ProtectedError::ReadMounts)?;
    let mut protected: Vec<(PathBuf, String)> = FIXED
        .iter()
        .map(|(p, why)| (PathBuf::from(p), (*why).to_owned()))
        .collect();
    protected.extend(protected_mounts(&mounts));
    if let Some(log) = audit_log {
        // Relative to guard's own directory, as the log is opened; canonical where it exists,
        // so a link to it is compared as the file it names.
        let log = std::fs::canonicalize(log)
            .or_else(|_| std::path::absolute(log))
            .unwrap_or_else(|_| log.to_path_buf());
        protected.push((log, "the audit log of this run".into()));
    }
    for path in write_paths {
        // As written and as the kernel resolves it: Landlock grants the target of a symlink,
        // so a write path that is a link to /boot (or to the log's directory) is that target.
        if let Some(refusal) = refusal(path, &protected) {
            return Err(refusal.into());
        }
        if let Ok(resolved) = std::fs::canonicalize(path)
            && resolved != path
            && let Some(mut refusal) = refusal(&resolved, &protected)
        {
            refusal.path = path.to_path_buf();
            return Err(refusal.into());
        }
        if is_block_device(path) {
            return Err(ProtectedError::Write(ProtectedWrite {
                path: path.to_path_buf(),
                protected: path.to_path_buf(),
                relation: "is",
                why: "a block device: writing it bypasses every file rule".into(),
            }));
        }
    }
    Ok(())
}

/// The first protected path `path` is, lies beneath or lies above. `/dev/...` entries are
/// device nodes and handled by the block-device check, so `/dev` itself is protected as a
/// directory only (creating nodes there), not its children.
fn refusal(path: &Path, protected: &[(PathBuf, String)]) -> Option<ProtectedWrite> {
    if path == Path::new("/dev") || path == Path::new("/") {
        return Some(ProtectedWrite {
            path: path.to_path_buf(),
            protected: path.to_path_buf(),
            relation: "is",
            why: "a directory of device nodes or the whole tree".into(),
        });
    }
    protected.iter().find_map(|(p, why)| {
        let relation = if path == p {
            "is"
        } else if path.starts_with(p) {
            "lies beneath"
        } else if p.starts_with(path) {
            "contains"
        } else {
            return None;
        };
        Some(ProtectedWrite {
            path: path.to_path_buf(),
            protected: p.clone(),
            relation,
            why: why.clone(),
        })
    })
}

/// Mount points of protected file system types in a mountinfo text.
fn protected_mounts(mountinfo: &str) -> Vec<(PathBuf, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // "... mount_point options [optional fields] - fstype source super_options"
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let fstype = right.split(' ').next()?;
            let (_, why) = PROTECTED_FS.iter().find(|(t, _)| *t == fstype)?;
            Some((PathBuf::from(unescape(mount_point)), (*why).to_owned()))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as octal `\NNN`.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> Vec<(PathBuf, String)> {
        FIXED
            .iter()
            .map(|(p, w)| (PathBuf::from(p), (*w).to_owned()))
            .collect()
    }

    #[test]
    fn beneath_above_and_equal_are_refused() {
        let p = fixed();
        let r = |s: &str| refusal(Path::new(s), &p).map(|r| r.relation);
        assert_eq!(r("/sys/fs/cgroup/x"), Some("lies beneath"));
        assert_eq!(r("/run"), Some("contains"));
        assert_eq!(r("/run/guard"), Some("is"));
        assert_eq!(r("/"), Some("is"));
        assert_eq!(r("/dev"), Some("is"));
        assert_eq!(r("/dev/null"), None);
        assert_eq!(r("/tmp"), None);
        assert_eq!(r("/system"), None);
    }

    #[test]
    fn cgroup_and_bpf_mounts_are_found_wherever_they_are() {
        let info = "30 1 0:26 / /mnt/my\\040cg rw,nosuid - cgroup2 cgroup2 rw\n\
                    31 1 0:27 / /fs/bpf rw shared:9 - bpf bpf rw\n\
                    32 1 8:1 / /data rw - ext4 /dev/sda1 rw\n";
        let found: Vec<PathBuf> = protected_mounts(info).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            found,
            vec![PathBuf::from("/mnt/my cg"), PathBuf::from("/fs/bpf")]
        );
    }
}
