//! The daemon's side of the framing: reading frames and their descriptors from a tokio
//! [`UnixStream`] without trusting the peer, and writing responses.
//!
//! Reads never ask for more than the rest of the current frame, so descriptors that arrive
//! belong to the frame being read, and a frame announcing more than
//! [`protocol::MAX_FRAME`](super::protocol::MAX_FRAME) bytes is refused from its header alone.
//! Each read is one `recvmsg` and the partial frame lives in the [`FrameReader`], so a read
//! cancelled by `select!` loses nothing.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use serde::Serialize;
use tokio::io::Interest;
use tokio::net::UnixStream;

use super::protocol::{self, ProtocolError, Received};

/// At most this many bytes are read per `recvmsg`.
const CHUNK: usize = 64 * 1024;

/// The kernel's limit of descriptors per `SCM_RIGHTS` message (SCM_MAX_FD). A control buffer of
/// this size can never be truncated, so every descriptor the kernel installs in the daemon is
/// seen (and closed if unwanted) rather than leaked behind MSG_CTRUNC.
const SCM_MAX_FD: usize = 253;

/// Reads frames from one connection.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl FrameReader {
    /// The next frame, `Ok(None)` when the peer closed the connection between frames.
    pub async fn next(&mut self, stream: &UnixStream) -> Result<Option<Received>, ProtocolError> {
        loop {
            let want = if self.buf.len() < 4 {
                4 - self.buf.len()
            } else {
                let total = 4 + protocol::frame_len(header_of(&self.buf))?;
                if self.buf.len() == total {
                    let payload = self.buf.split_off(4);
                    self.buf.clear();
                    return Ok(Some(Received {
                        payload,
                        fds: std::mem::take(&mut self.fds),
                    }));
                }
                (total - self.buf.len()).min(CHUNK)
            };
            let (bytes, fds) = stream
                .async_io(Interest::READABLE, || receive(stream, want))
                .await
                .map_err(ProtocolError::Io)?;
            self.fds.extend(fds);
            if self.fds.len() > protocol::MAX_EXEC_FDS {
                return Err(ProtocolError::Descriptors(
                    self.fds.len(),
                    protocol::MAX_EXEC_FDS,
                ));
            }
            if bytes.is_empty() {
                return if self.buf.is_empty() && self.fds.is_empty() {
                    Ok(None)
                } else {
                    Err(ProtocolError::Truncated)
                };
            }
            self.buf.extend_from_slice(&bytes);
        }
    }
}

fn header_of(buf: &[u8]) -> [u8; 4] {
    [buf[0], buf[1], buf[2], buf[3]]
}

/// One non-blocking `recvmsg` of up to `want` bytes and any descriptors sent with them.
fn receive(stream: &UnixStream, want: usize) -> std::io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut data = vec![0u8; want];
    let mut control = nix::cmsg_space!([std::os::fd::RawFd; SCM_MAX_FD]);
    let mut iov = [IoSliceMut::new(&mut data)];
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel just installed these descriptors in this process for us; nothing
            // else owns them.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let n = msg.bytes;
    data.truncate(n);
    Ok((data, fds))
}

/// Reads and throws away what the peer sends, until it closes or [`protocol::MAX_FRAME`] plus a
/// header have been read: a refused client can finish writing its request without the daemon
/// keeping any of it.
pub async fn discard(stream: &UnixStream) {
    let mut sink = [0u8; 4096];
    let mut left = protocol::MAX_FRAME as usize + 4;
    while left > 0 {
        if stream.readable().await.is_err() {
            return;
        }
        // Descriptors sent along are closed by the kernel when the stream is (they are never
        // received into the daemon with a plain read).
        match stream.try_read(&mut sink) {
            Ok(0) => return,
            Ok(n) => left = left.saturating_sub(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
    }
}

/// Writes `message` as one frame.
pub async fn send<T: Serialize>(stream: &UnixStream, message: &T) -> Result<(), ProtocolError> {
    let bytes = protocol::encode(message)?;
    let mut sent = 0;
    while sent < bytes.len() {
        stream.writable().await.map_err(ProtocolError::Io)?;
        match stream.try_write(&bytes[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(ProtocolError::Io(e)),
        }
    }
    Ok(())
}
