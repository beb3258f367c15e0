//! Where the shared probes live in bpffs, and the lock that makes loading them a one-at-a-time
//! affair.
//!
//! Layout: `/sys/fs/bpf/guard/<stamp>/` holds the pinned maps and links of one build of the
//! probes attached below one guard cgroup. The stamp is a hash of the embedded object and the
//! id of the cgroup the network hooks are attached to, so a guard binary with a different probe
//! layout, or a recreated guard cgroup, never reuses pins it does not match; it loads its own
//! beside them. `guard unload` removes them all.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use super::EbpfError;

/// Where bpffs is mounted by convention.
pub const BPFFS: &str = "/sys/fs/bpf";
/// The directory of guard's pins inside bpffs.
pub const PIN_ROOT: &str = "/sys/fs/bpf/guard";
/// guard's run-time directory (tmpfs, root's): lock files, the offsets cache.
pub const RUN_DIR: &str = "/run/guard";
/// The lock file serializing loads and unloads.
pub const LOCK_FILE: &str = "/run/guard/probes.lock";
/// Held shared by every process using the probes (each `guard exec`, its sentinel, the
/// daemon) for as long as it does; `guard unload` needs it exclusively, so it can never pull
/// the probes from under a running sandbox.
pub const USERS_LOCK_FILE: &str = "/run/guard/probes.users";

/// bpffs's magic number (`statfs` f_type).
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// The pin directory for the object with `stamp` ([`super::stamp::stamp_of`]) attached below
/// the cgroup with id `guard_cgroup_id`.
pub fn pin_dir(stamp: &str, guard_cgroup_id: u64) -> PathBuf {
    Path::new(PIN_ROOT).join(format!("{stamp}-cg{guard_cgroup_id}"))
}

/// Mounts bpffs at [`BPFFS`] when nothing is mounted there, so pins survive this process.
pub fn ensure_bpffs() -> Result<(), EbpfError> {
    if is_bpffs(Path::new(BPFFS)) {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        BPFFS,
        Some("bpf"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|errno| EbpfError::Pin {
        path: PathBuf::from(BPFFS),
        source: std::io::Error::from(errno),
    })
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
        .unwrap_or(false)
}

/// An exclusive lock on [`LOCK_FILE`], released on drop (or when the process dies).
pub struct LoadLock {
    _file: File,
}

impl LoadLock {
    pub fn acquire() -> Result<Self, EbpfError> {
        Ok(Self {
            _file: flock(Path::new(LOCK_FILE), libc::LOCK_EX)?
                .ok_or_else(|| would_block(LOCK_FILE))?,
        })
    }
}

/// A lock on [`USERS_LOCK_FILE`]: shared while probes are in use, exclusive to remove them.
/// Inherited by forked processes (the sentinel), so it lasts as long as any of them.
pub struct UsersLock {
    _file: File,
}

impl UsersLock {
    /// Waits for a shared lock (only an unload in progress holds it exclusively, briefly).
    pub fn shared() -> Result<Self, EbpfError> {
        Ok(Self {
            _file: flock(Path::new(USERS_LOCK_FILE), libc::LOCK_SH)?
                .ok_or_else(|| would_block(USERS_LOCK_FILE))?,
        })
    }

    /// The exclusive lock, or `None` right away when someone uses the probes.
    pub fn try_exclusive() -> Result<Option<Self>, EbpfError> {
        Ok(
            flock(Path::new(USERS_LOCK_FILE), libc::LOCK_EX | libc::LOCK_NB)?
                .map(|file| Self { _file: file }),
        )
    }
}

/// An exclusive lock on `path` (created with its directory if missing), or `None` right away
/// when another process holds it. Released when the file is closed, or its process dies.
pub fn try_lock(path: &Path) -> Result<Option<File>, EbpfError> {
    flock(path, libc::LOCK_EX | libc::LOCK_NB)
}

fn would_block(path: &str) -> EbpfError {
    EbpfError::Lock {
        path: PathBuf::from(path),
        source: std::io::Error::from(std::io::ErrorKind::WouldBlock),
    }
}

/// Opens (creating) `path` and flocks it; `Ok(None)` when a non-blocking lock is taken.
fn flock(path: &Path, operation: libc::c_int) -> Result<Option<File>, EbpfError> {
    let io = |source| EbpfError::Lock {
        path: path.to_path_buf(),
        source,
    };
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    };
    // The directory usually exists: try the open first, create the directory only if needed.
    let file = match open() {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            open()
        }
        other => other,
    }
    .map_err(io)?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(io(err));
    }
    Ok(Some(file))
}

/// Every pin directory of guard (all stamps).
pub fn all_pin_dirs() -> Vec<PathBuf> {
    std::fs::read_dir(PIN_ROOT)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_follows_object_and_cgroup() {
        use super::super::stamp::stamp_of;
        let a = pin_dir(&stamp_of(b"object one"), 7);
        assert_eq!(a, pin_dir(&stamp_of(b"object one"), 7));
        assert_ne!(a, pin_dir(&stamp_of(b"object two"), 7));
        assert_ne!(a, pin_dir(&stamp_of(b"object one"), 8));
        assert!(a.starts_with(PIN_ROOT));
        assert!(a.to_string_lossy().ends_with("-cg7"));
    }
}
