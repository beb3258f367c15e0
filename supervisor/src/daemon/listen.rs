//! The daemon's listening socket: the one systemd passes (socket activation), or one it binds at
//! the configured path with the configured mode and group; and `sd_notify` readiness.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::config::DaemonConfig;

/// The first descriptor systemd passes (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: i32 = 3;

/// Getting the listening socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("systemd passed {0} sockets; guard.socket must define exactly one")]
    SocketCount(usize),
    #[error("creating the socket directory {}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another guard daemon is already listening on {}", .0.display())]
    InUse(PathBuf),
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    #[error("removing the stale socket {}", path.display())]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("binding {}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setting mode {mode:o} and group of {}", path.display())]
    Permissions {
        path: PathBuf,
        mode: u32,
        #[source]
        source: std::io::Error,
    },
}

/// Where the daemon listens, and whether it owns the socket file.
#[derive(Debug)]
pub struct Listening {
    pub listener: UnixListener,
    /// The path the daemon bound and must remove on exit; `None` for a socket from systemd.
    pub bound: Option<PathBuf>,
}

/// The socket systemd passed, if this process was socket-activated; else a fresh one bound at
/// `config.socket`.
pub fn listen(config: &DaemonConfig) -> Result<Listening, ListenError> {
    if let Some(listener) = from_systemd()? {
        return Ok(Listening {
            listener,
            bound: None,
        });
    }
    bind(config).map(|listener| Listening {
        listener,
        bound: Some(config.socket.clone()),
    })
}

/// `LISTEN_PID`/`LISTEN_FDS` (sd_listen_fds(3)); the variables are removed so workers do not
/// see them.
fn from_systemd() -> Result<Option<UnixListener>, ListenError> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    // SAFETY: the daemon is still single-threaded here, nothing reads the environment at once.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !for_us || count == 0 {
        return Ok(None);
    }
    if count != 1 {
        return Err(ListenError::SocketCount(count));
    }
    // The descriptor is ours to keep but must not leak into workers.
    // SAFETY: fcntl on the descriptor systemd passed.
    unsafe {
        libc::fcntl(LISTEN_FDS_START, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // SAFETY: systemd passed fd 3 to this process (LISTEN_PID matched) and nothing owns it yet.
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    Ok(Some(UnixListener::from(fd)))
}

fn bind(config: &DaemonConfig) -> Result<UnixListener, ListenError> {
    let path = &config.socket;
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)))
            .map_err(|source| ListenError::Directory {
                path: dir.to_owned(),
                source,
            })?;
    }
    remove_stale(path)?;
    // Bound with no permissions for anyone else, then opened up to the configured mode: there is
    // no moment where the socket is reachable with wider rights than configured.
    // SAFETY: umask only changes this process's file creation mask, restored right after.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|source| ListenError::Bind {
        path: path.clone(),
        source,
    })?;
    let permissions = || -> std::io::Result<()> {
        if let Some(gid) = config.socket_group {
            std::os::unix::fs::chown(path, None, Some(gid))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(config.socket_mode))
    };
    permissions().map_err(|source| ListenError::Permissions {
        path: path.clone(),
        mode: config.socket_mode,
        source,
    })?;
    Ok(listener)
}

/// Removes a socket file left by a daemon that died, refusing when one still answers on it.
fn remove_stale(path: &Path) -> Result<(), ListenError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket(path.to_owned()));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(ListenError::InUse(path.to_owned()));
    }
    std::fs::remove_file(path).map_err(|source| ListenError::RemoveStale {
        path: path.to_owned(),
        source,
    })
}

/// Tells systemd (Type=notify) the daemon's state, e.g. `READY=1`; nothing without
/// `$NOTIFY_SOCKET`. Failures are ignored: readiness is a courtesy, serving is what matters.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(datagram) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(socket.as_os_str());
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)
            .and_then(|addr| datagram.send_to_addr(state.as_bytes(), &addr)),
        None => datagram.send_to(state.as_bytes(), Path::new(&socket)),
    };
    let _ = sent;
}
