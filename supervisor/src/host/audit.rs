//! The kernel's audit subsystem, as far as guard needs it: Landlock (ABI 7, Linux 6.15) reports
//! its denials only as audit records, and only while auditing is enabled.
//!
//! Enabling auditing is a host setting, so guard changes it only this way: a sandbox that needs
//! Landlock's records holds [`AuditSession`] (a shared lock on `/run/guard/audit.lock`) for its
//! lifetime. The first session that finds auditing off turns it on and leaves a marker; when
//! the last session ends (it gets the lock exclusively), it turns auditing off again if the
//! marker says guard turned it on. Auditing that was already on, or locked (`enabled = 2`), is
//! never touched. With auditing on and no audit daemon, the kernel also prints each record to
//! its log (rate limited); `guard doctor` says so.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// `NETLINK_AUDIT`.
const NETLINK_AUDIT: libc::c_int = 9;
const AUDIT_GET: u16 = 1000;
const AUDIT_SET: u16 = 1001;
/// `AUDIT_STATUS_ENABLED` in `audit_status.mask`.
const STATUS_ENABLED: u32 = 1;
/// The multicast group that receives every audit record (needs CAP_AUDIT_READ).
pub const NLGRP_READLOG: u32 = 1;

const LOCK: &str = "/run/guard/audit.lock";
const MARKER: &str = "/run/guard/audit.enabled-by-guard";

/// `audit_status.enabled`: 0 off, 1 on, 2 on and locked until reboot.
pub fn enabled() -> Result<u32, Errno> {
    let sock = socket(0)?;
    send(&sock, AUDIT_GET, &[])?;
    loop {
        let (kind, payload) = recv(&sock)?;
        match kind {
            AUDIT_GET if payload.len() >= 8 => {
                return Ok(u32::from_ne_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
            // NLMSG_ERROR carrying 0 is the ack; a negative value is the error.
            2 if payload.len() >= 4 => {
                let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                if code != 0 {
                    return Err(Errno::from_raw(-code));
                }
            }
            _ => {}
        }
    }
}

fn set_enabled(on: bool) -> Result<(), Errno> {
    let sock = socket(0)?;
    let mut status = [0u8; 32];
    status[0..4].copy_from_slice(&STATUS_ENABLED.to_ne_bytes());
    status[4..8].copy_from_slice(&u32::from(on).to_ne_bytes());
    send(&sock, AUDIT_SET, &status)?;
    let (kind, payload) = recv(&sock)?;
    if kind == 2 && payload.len() >= 4 {
        let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
        if code != 0 {
            return Err(Errno::from_raw(-code));
        }
    }
    Ok(())
}

/// A netlink audit socket, bound to `groups` (0 for requests only).
pub fn socket(groups: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = Errno::result(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_AUDIT,
        )
    })?;
    // SAFETY: `fd` was just created and is owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_groups = groups;
    // SAFETY: `addr` is a valid sockaddr_nl of the size passed.
    Errno::result(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(sock)
}

fn send(sock: &OwnedFd, kind: u16, payload: &[u8]) -> Result<(), Errno> {
    let len = 16 + payload.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    // NLM_F_REQUEST | NLM_F_ACK
    msg.extend_from_slice(&(1u16 | 4).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(payload);
    // SAFETY: sends `msg`, which outlives the call, to the kernel (default destination).
    Errno::result(unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) })?;
    Ok(())
}

/// One netlink message: its type and payload.
pub fn recv(sock: &OwnedFd) -> Result<(u16, Vec<u8>), Errno> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: receives into `buf`, which has the length passed.
    let n = Errno::result(unsafe {
        libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
    })?;
    let n = usize::try_from(n).unwrap_or(0);
    if n < 16 {
        return Err(Errno::EBADMSG);
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    let len = usize::try_from(u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]))
        .unwrap_or(n)
        .min(n);
    Ok((kind, buf[16..len.max(16)].to_vec()))
}

/// What a session found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Auditing was already on (by the host's own setting or an earlier guard session).
    AlreadyOn,
    /// This session turned auditing on.
    TurnedOn,
}

/// A sandbox's claim on auditing being enabled; see the module docs.
pub struct AuditSession {
    lock: Option<Flock<File>>,
    pub state: SessionState,
}

/// Why auditing cannot be used for this sandbox.
#[derive(Debug, thiserror::Error)]
pub enum AuditSessionError {
    #[error("opening {LOCK}")]
    Lock(#[source] std::io::Error),
    #[error("locking {LOCK}: {0}")]
    Flock(Errno),
    #[error("asking the kernel whether auditing is enabled: {0}")]
    Status(Errno),
    #[error("enabling the kernel's auditing: {0}")]
    Enable(Errno),
}

impl AuditSession {
    /// Makes sure auditing is on for as long as the session lives.
    pub fn begin() -> Result<Self, AuditSessionError> {
        if let Some(dir) = Path::new(LOCK).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK)
            .map_err(AuditSessionError::Lock)?;
        // Shared for the sandbox's life. Two sandboxes starting together may both turn it on,
        // which is idempotent; an ending one restores only when it can lock exclusively, that
        // is when no other session holds the lock, and a starting one waits for that restore
        // to finish before it looks.
        let shared = Flock::lock(file, FlockArg::LockShared)
            .map_err(|(_, e)| AuditSessionError::Flock(e))?;
        let state = match enabled().map_err(AuditSessionError::Status)? {
            0 => {
                set_enabled(true).map_err(AuditSessionError::Enable)?;
                let _ = std::fs::write(MARKER, b"guard enabled auditing for Landlock's records\n");
                SessionState::TurnedOn
            }
            _ => SessionState::AlreadyOn,
        };
        Ok(AuditSession {
            lock: Some(shared),
            state,
        })
    }
}

impl Drop for AuditSession {
    fn drop(&mut self) {
        let Some(shared) = self.lock.take() else {
            return;
        };
        let Ok(file) = shared.unlock() else {
            return;
        };
        // The last session out restores what guard changed; anyone still running keeps it on.
        if let Ok(_exclusive) = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            && Path::new(MARKER).exists()
            && set_enabled(false).is_ok()
        {
            let _ = std::fs::remove_file(MARKER);
        }
    }
}

/// Whether guard turned auditing on and has not yet turned it off (for `guard doctor`).
pub fn enabled_by_guard() -> bool {
    Path::new(MARKER).exists()
}
