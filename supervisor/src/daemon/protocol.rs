//! The wire protocol between `guard` clients and `guard daemon` on the unix socket.
//!
//! A frame is a big-endian `u32` length followed by that many bytes of JSON: a [`Frame`] with the
//! protocol [`VERSION`] and one typed message. Frames larger than [`MAX_FRAME`] are refused
//! before anything is read into memory, so a client cannot make the daemon allocate at will.
//! The version is checked on its own before the message is decoded, so a client of another
//! version gets "unsupported protocol version" rather than a confusing decoding error.
//!
//! An [`Request::Exec`] frame carries the caller's stdin, stdout, stderr and working directory as
//! descriptors (`SCM_RIGHTS`, [`EXEC_FDS`] in that order, plus the event stream when it asks
//! for `events`) on the same `sendmsg` as its bytes; any other frame carrying descriptors is
//! refused.
//!
//! This module is plain data and byte handling; the blocking client side ([`send_blocking`],
//! [`read_blocking`]) lives here too because it is small and mirrors the daemon's decoding.

use std::ffi::{OsStr, OsString};
use std::io::{IoSlice, Read};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The protocol version; bumped on any incompatible change of the messages.
pub const VERSION: u32 = 1;

/// The largest frame either side accepts: 1 MiB holds any environment and argument list the
/// kernel would pass to execve (ARG_MAX is 2 MiB of pointers and strings, shared), with room.
pub const MAX_FRAME: u32 = 1 << 20;

/// Descriptors an exec request carries: stdin, stdout, stderr, working directory.
pub const EXEC_FDS: usize = 4;

/// Descriptors an exec request with `events` carries: [`EXEC_FDS`], then the event stream.
pub const MAX_EXEC_FDS: usize = EXEC_FDS + 1;

/// A message with the protocol version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame<T> {
    pub version: u32,
    pub message: T,
}

/// Bytes that are usually text (arguments, environment): a JSON string when they are UTF-8, an
/// array of bytes otherwise, so nothing a Unix program may receive is lost or mangled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WireBytes {
    Text(String),
    Raw(Vec<u8>),
}

impl WireBytes {
    pub fn from_os(value: &OsStr) -> Self {
        match value.to_str() {
            Some(text) => WireBytes::Text(text.to_owned()),
            None => WireBytes::Raw(value.as_bytes().to_vec()),
        }
    }

    pub fn to_os(&self) -> OsString {
        match self {
            WireBytes::Text(text) => OsString::from(text),
            WireBytes::Raw(bytes) => OsString::from_vec(bytes.clone()),
        }
    }
}

/// `--mode` over the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireMode {
    Enforce,
    Audit,
}

/// What a client asks the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Run a command in a sandbox (first frame of a connection; carries [`EXEC_FDS`] fds).
    Exec(ExecRequest),
    /// Deliver this signal to the running sandbox (a relayed Ctrl-C, SIGTERM, ...).
    Signal { signal: i32 },
    /// List live sandboxes (the caller's own, or all for root).
    Status,
    /// Kill one sandbox.
    Stop { id: String },
}

/// `guard exec` as a client sends it. The profile is a NAME only: a path would let a caller
/// choose the policy file (see daemon/auth.rs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub profile: String,
    pub mode: WireMode,
    pub command: Vec<WireBytes>,
    /// The caller's environment, which `process.env.keep` picks from (not the daemon's).
    pub env: Vec<(WireBytes, WireBytes)>,
    /// The caller's umask, so files the tool creates get the modes they would locally.
    pub umask: u32,
    /// `--events`: a fifth descriptor follows the four, for the run's event stream.
    #[serde(default)]
    pub events: bool,
    /// Rights this call takes away from the profile (never adds).
    #[serde(default)]
    pub narrowing: crate::profile::narrow::Narrowing,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// The worker runs; from now on the command may run, and signals are relayed.
    Started,
    /// The sandbox ended; the client exits with `code`. `note` is one line for stderr when the
    /// daemon, not the command, ended it (`guard stop`, daemon shutdown).
    Exited {
        code: u8,
        note: Option<String>,
    },
    /// Nothing was run; the client prints `guard: <message>` and exits 125.
    Refused {
        message: String,
    },
    Status {
        sandboxes: Vec<SandboxStatus>,
    },
    Stopped {
        id: String,
    },
}

/// One line of `guard status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxStatus {
    /// The sandbox id (its cgroup and audit-log `sandbox`), or `starting` before it exists.
    pub id: String,
    pub profile: String,
    pub uid: u32,
    pub user: Option<String>,
    /// The command's first process, once it runs.
    pub pid: Option<i32>,
    pub age_secs: u64,
    pub memory_bytes: Option<u64>,
    /// Audit records with verdict deny or kill so far.
    pub violations: u64,
    pub command: String,
}

/// Why a frame could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {0} bytes is larger than the limit of {MAX_FRAME} bytes")]
    TooLarge(u32),
    #[error(
        "the request is {0} bytes (command, arguments and environment encoded), over the guard \
         daemon's limit of {MAX_FRAME} bytes (1 MiB); unset large environment variables or pass \
         the data in a file"
    )]
    RequestTooLarge(usize),
    #[error("the connection closed in the middle of a frame")]
    Truncated,
    #[error("unsupported protocol version {0} (this guard speaks {VERSION})")]
    Version(u32),
    #[error("malformed message: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("{0} descriptors attached where {1} were expected")]
    Descriptors(usize, usize),
    #[error("descriptors were truncated (too many sent)")]
    DescriptorsTruncated,
    #[error("encoding a message")]
    Encode(#[source] serde_json::Error),
    #[error("socket I/O")]
    Io(#[source] std::io::Error),
}

/// The length-prefixed bytes of `message` in a [`Frame`].
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, ProtocolError> {
    let frame = Frame {
        version: VERSION,
        message,
    };
    let body = serde_json::to_vec(&frame).map_err(ProtocolError::Encode)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len <= MAX_FRAME)
        .ok_or(ProtocolError::RequestTooLarge(body.len()))?;
    let mut bytes = Vec::with_capacity(4 + body.len());
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// The payload length announced by a frame header, refused when above [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(header);
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    Ok(len as usize)
}

/// Decodes a frame's payload: the version first, then the message.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ProtocolError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let version = serde_json::from_slice::<VersionOnly>(payload)
        .map_err(ProtocolError::Malformed)?
        .version;
    if version != VERSION {
        return Err(ProtocolError::Version(version));
    }
    serde_json::from_slice::<Frame<T>>(payload)
        .map(|frame| frame.message)
        .map_err(ProtocolError::Malformed)
}

/// Sends `message` on a blocking stream, with `fds` attached to its first byte.
pub fn send_blocking<T: Serialize>(
    stream: &UnixStream,
    message: &T,
    fds: &[BorrowedFd<'_>],
) -> Result<(), ProtocolError> {
    let bytes = encode(message)?;
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let mut sent = 0;
    while sent < bytes.len() {
        let rights = [ControlMessage::ScmRights(&raw)];
        // The descriptors travel with the first chunk only.
        let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !raw.is_empty() {
            &rights
        } else {
            &[]
        };
        let iov = [IoSlice::new(&bytes[sent..])];
        match sendmsg::<()>(
            stream.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(ProtocolError::Io(err.into())),
        }
    }
    Ok(())
}

/// Reads one message from a blocking stream; `Ok(None)` on a clean end of stream between frames.
pub fn read_blocking<T: DeserializeOwned>(
    mut stream: &UnixStream,
) -> Result<Option<T>, ProtocolError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        match stream.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ProtocolError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ProtocolError::Io(e)),
        }
    }
    let mut payload = vec![0u8; frame_len(header)?];
    stream.read_exact(&mut payload).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            ProtocolError::Truncated
        } else {
            ProtocolError::Io(e)
        }
    })?;
    decode(&payload).map(Some)
}

/// A received frame: its payload and the descriptors that came with it.
#[derive(Debug)]
pub struct Received {
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_non_utf8_bytes() {
        let request = Request::Exec(ExecRequest {
            profile: "shell-readonly".into(),
            mode: WireMode::Enforce,
            command: vec![
                WireBytes::from_os(OsStr::new("ls")),
                WireBytes::from_os(OsStr::from_bytes(b"\xff\xfe")),
            ],
            env: vec![(
                WireBytes::from_os(OsStr::new("LANG")),
                WireBytes::from_os(OsStr::new("C.UTF-8")),
            )],
            umask: 0o022,
            events: true,
            narrowing: crate::profile::narrow::Narrowing {
                no_network: true,
                read_only: false,
            },
        });
        let bytes = encode(&request).unwrap();
        let len = frame_len(bytes[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, bytes.len() - 4);
        let back: Request = decode(&bytes[4..]).unwrap();
        assert_eq!(back, request);
        let Request::Exec(exec) = back else { panic!() };
        assert_eq!(exec.command[1].to_os().as_bytes(), b"\xff\xfe");
    }

    #[test]
    fn oversized_headers_are_refused_before_reading() {
        assert!(matches!(
            frame_len((MAX_FRAME + 1).to_be_bytes()),
            Err(ProtocolError::TooLarge(_))
        ));
        assert!(frame_len(MAX_FRAME.to_be_bytes()).is_ok());
    }

    #[test]
    fn other_versions_and_garbage_are_named() {
        assert!(matches!(
            decode::<Request>(br#"{"version":7,"message":{"type":"status"}}"#),
            Err(ProtocolError::Version(7))
        ));
        for garbage in [
            &b"not json"[..],
            br#"{"version":1}"#,
            br#"{"version":1,"message":{"type":"launch_missiles"}}"#,
            br#"{"version":1,"message":{"type":"stop"}}"#,
            br#"{"version":1,"message":{"type":"status"},"extra":1}"#,
        ] {
            assert!(
                matches!(decode::<Request>(garbage), Err(ProtocolError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
        assert_eq!(
            decode::<Request>(br#"{"version":1,"message":{"type":"status"}}"#).unwrap(),
            Request::Status
        );
    }
}
