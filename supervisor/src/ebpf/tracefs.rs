//! Making tracefs available: attaching a tracepoint needs its id from
//! `events/<category>/<name>/id` under tracefs, and hosts without systemd (this one) may boot
//! without tracefs mounted.

use std::path::{Path, PathBuf};

use super::EbpfError;

/// Where the kernel expects tracefs (since 4.1); the directory exists even when nothing is
/// mounted there.
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// The older place, under debugfs.
pub const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// How tracefs was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracefs {
    /// Already mounted at this path.
    Mounted(PathBuf),
    /// guard mounted it at this path just now.
    MountedByGuard(PathBuf),
}

/// The mounted tracefs, if any (same test aya uses: the directory is not empty).
pub fn find() -> Option<PathBuf> {
    [TRACEFS, DEBUGFS_TRACING]
        .into_iter()
        .map(Path::new)
        .find(|dir| {
            std::fs::read_dir(dir)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(false)
        })
        .map(Path::to_path_buf)
}

/// Returns the mounted tracefs, mounting it at [`TRACEFS`] when it is not mounted anywhere.
///
/// The mount stays: it is the kernel's designated place (systemd mounts the same at every boot),
/// and unmounting it under another tracer that found it a moment ago would break that tracer.
pub fn ensure_mounted() -> Result<Tracefs, EbpfError> {
    if let Some(dir) = find() {
        return Ok(Tracefs::Mounted(dir));
    }
    use nix::mount::{MsFlags, mount};
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        flags,
        None::<&str>,
    )
    .map_err(|errno| EbpfError::MountTracefs {
        path: PathBuf::from(TRACEFS),
        source: errno.into(),
    })?;
    Ok(Tracefs::MountedByGuard(PathBuf::from(TRACEFS)))
}
