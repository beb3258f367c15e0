//! The client side of the daemon: `guard exec` for callers that are not root (or with
//! `--daemon`), `guard status` and `guard stop`.
//!
//! `guard exec` through the daemon is meant to be indistinguishable from local mode for the
//! caller: the command gets the caller's own stdin, stdout, stderr (passed as descriptors, so a
//! terminal stays a terminal and pipes stay pipes), working directory and environment; the
//! `guard:` lines reach the caller's stderr from the worker directly; INT, TERM, HUP and QUIT
//! sent to the client are relayed to the sandbox; and the client exits with the sandbox's
//! status.
//!
//! The socket is `$GUARD_SOCKET` or `/run/guard/guard.sock`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::sys::signal::SigSet;
use nix::sys::stat::Mode;

use crate::commands::exec::{ExecArgs, ModeArg};
use crate::daemon::config::DEFAULT_SOCKET;
use crate::daemon::protocol::{
    self, ExecRequest, ProtocolError, Request, Response, SandboxStatus, WireBytes, WireMode,
};
use crate::sandbox::exit::{GUARD_FAILED, KILLED};
use crate::sandbox::launch::error_chain;
use crate::sandbox::supervise::RELAYED;

/// The daemon's socket for this client.
pub fn socket_path() -> PathBuf {
    std::env::var_os("GUARD_SOCKET")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from)
}

/// Why the client could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--events {0}: use an open descriptor above 2 (0, 1 and 2 are the command's)")]
    EventsFd(i32),
    #[error(
        "cannot reach the guard daemon at {}; `guard exec` needs root or a running `guard daemon`",
        path.display()
    )]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "gave up connecting to the guard daemon at {} after {waited:?}: its queue of new connections stayed full (the daemon is overloaded or hung; see `journalctl -u guard`)",
        path.display()
    )]
    ConnectTimeout {
        path: PathBuf,
        waited: std::time::Duration,
    },
    #[error("the guard daemon runs profiles by NAME; give --profile a name, not a path")]
    ProfilePath,
    #[error(
        "--audit-log is not available through the daemon: it writes every record to its central audit log"
    )]
    AuditLog,
    #[error("opening the working directory {}", path.display())]
    Workdir {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("opening /dev/null for a closed standard descriptor")]
    DevNull(#[source] nix::Error),
    #[error("blocking the relayed signals")]
    Signals(#[source] nix::Error),
    #[error("talking to the guard daemon")]
    Protocol(#[source] ProtocolError),
    #[error("the guard daemon closed the connection without an answer")]
    NoAnswer,
    #[error("unexpected answer from the guard daemon: {0}")]
    Unexpected(String),
}

/// `guard exec` through the daemon.
pub fn exec(args: &ExecArgs) -> ExitCode {
    match try_exec(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("guard: {}", error_chain(&err));
            ExitCode::from(GUARD_FAILED)
        }
    }
}

fn try_exec(args: &ExecArgs) -> Result<u8, ClientError> {
    if crate::profile::lookup::is_path(&args.profile) {
        return Err(ClientError::ProfilePath);
    }
    if args.audit_log.is_some() {
        return Err(ClientError::AuditLog);
    }
    let workdir = args.workdir.clone().unwrap_or_else(|| PathBuf::from("."));
    // Opened by the caller, with the caller's rights: the daemon uses this directory, not a
    // path it would resolve as root.
    let cwd = nix::fcntl::open(
        &workdir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| ClientError::Workdir {
        path: workdir.clone(),
        source,
    })?;
    let stdio = standard_fds()?;
    // Blocked before connecting, so a Ctrl-C from now on is relayed, never lost or fatal to the
    // client alone.
    let mut relayed = SigSet::empty();
    for signal in RELAYED {
        relayed.add(signal);
    }
    relayed.thread_block().map_err(ClientError::Signals)?;

    let request = Request::Exec(ExecRequest {
        profile: args.profile.clone(),
        mode: match args.mode {
            ModeArg::Enforce => WireMode::Enforce,
            ModeArg::Audit => WireMode::Audit,
        },
        command: args.command.iter().map(|a| WireBytes::from_os(a)).collect(),
        env: std::env::vars_os()
            .map(|(k, v)| (WireBytes::from_os(&k), WireBytes::from_os(&v)))
            .collect(),
        umask: current_umask(),
        events: args.events.is_some(),
        narrowing: args.narrowing(),
    });
    let mut fds: Vec<BorrowedFd<'_>> = stdio.iter().map(StdFd::as_fd).collect();
    fds.push(cwd.as_fd());
    if let Some(fd) = args.events {
        // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
        if fd <= 2 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(ClientError::EventsFd(fd));
        }
        // SAFETY: open (checked above); this process keeps it open until the request is sent.
        fds.push(unsafe { BorrowedFd::borrow_raw(fd) });
    }
    // Too large a request (a huge environment) is said before connecting, with its size.
    protocol::encode(&request).map_err(ClientError::Protocol)?;
    let stream = connect()?;
    if let Err(err) = protocol::send_blocking(&stream, &request, &fds) {
        // A caller the daemon refuses is answered before its request is read; that answer
        // explains more than the broken pipe.
        if let Ok(Some(Response::Refused { message })) = protocol::read_blocking(&stream) {
            eprintln!("guard: {message}");
            return Ok(GUARD_FAILED);
        }
        return Err(ClientError::Protocol(err));
    }
    drop(stdio);
    drop(cwd);

    let mut started = false;
    loop {
        match protocol::read_blocking::<Response>(&stream) {
            Ok(Some(Response::Started)) if !started => {
                started = true;
                spawn_relay(&stream, relayed);
            }
            Ok(Some(Response::Exited { code, note })) => {
                if let Some(note) = note {
                    eprintln!("{note}");
                }
                return Ok(code);
            }
            Ok(Some(Response::Refused { message })) => {
                eprintln!("guard: {message}");
                return Ok(GUARD_FAILED);
            }
            Ok(Some(other)) => return Err(ClientError::Unexpected(format!("{other:?}"))),
            Ok(None) | Err(_) if started => {
                // The daemon died with the sandbox running: its worker and sentinel kill the
                // sandbox, as a killed local guard's sentinel would.
                eprintln!("guard: the guard daemon went away; the sandbox was killed with it");
                return Ok(KILLED);
            }
            Ok(None) => return Err(ClientError::NoAnswer),
            Err(err) => return Err(ClientError::Protocol(err)),
        }
    }
}

/// A standard descriptor to pass: the client's own, or /dev/null when it is closed.
enum StdFd {
    Own(BorrowedFd<'static>),
    Null(OwnedFd),
}

impl StdFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            StdFd::Own(fd) => *fd,
            StdFd::Null(fd) => fd.as_fd(),
        }
    }
}

fn standard_fds() -> Result<Vec<StdFd>, ClientError> {
    [0, 1, 2]
        .into_iter()
        .map(|raw| {
            // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
            if unsafe { libc::fcntl(raw, libc::F_GETFD) } >= 0 {
                // SAFETY: the standard descriptors are open (checked) and this process never closes
                // them, so the borrow can last for the whole run.
                Ok(StdFd::Own(unsafe { BorrowedFd::borrow_raw(raw) }))
            } else {
                nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
                    .map(StdFd::Null)
                    .map_err(ClientError::DevNull)
            }
        })
        .collect()
}

fn current_umask() -> u32 {
    // SAFETY: umask has no failure mode; the value is put back at once (single-threaded here).
    unsafe {
        let mask = libc::umask(0o022);
        libc::umask(mask);
        mask
    }
}

/// Relays the blocked signals to the daemon as messages from a thread of their own, while the
/// main thread waits for the exit status.
fn spawn_relay(stream: &UnixStream, signals: SigSet) {
    let Ok(stream) = stream.try_clone() else {
        return;
    };
    std::thread::spawn(move || {
        while let Ok(signal) = signals.wait() {
            let request = Request::Signal {
                signal: signal as i32,
            };
            if protocol::send_blocking(&stream, &request, &[]).is_err() {
                return;
            }
        }
    });
}

/// How long the client keeps trying while the daemon's accept queue is full.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connects to the daemon. A full accept queue (the daemon is overloaded or hung) makes a
/// blocking `connect` wait forever on a unix socket; this one retries without blocking for
/// [`CONNECT_TIMEOUT`] and then says so.
fn connect() -> Result<UnixStream, ClientError> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    let path = socket_path();
    let fail = |source: std::io::Error| ClientError::Connect {
        path: path.clone(),
        source,
    };
    let addr = UnixAddr::new(&path).map_err(|e| fail(e.into()))?;
    let deadline = std::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| fail(e.into()))?;
        match connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
            Ok(()) => {
                let stream = UnixStream::from(fd);
                stream.set_nonblocking(false).map_err(fail)?;
                return Ok(stream);
            }
            Err(nix::errno::Errno::EAGAIN) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(nix::errno::Errno::EAGAIN) => {
                return Err(ClientError::ConnectTimeout {
                    path,
                    waited: CONNECT_TIMEOUT,
                });
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(fail(errno.into())),
        }
    }
}

/// One request, one answer (status, stop).
fn ask(request: &Request) -> Result<Response, ClientError> {
    let stream = connect()?;
    protocol::send_blocking(&stream, request, &[]).map_err(ClientError::Protocol)?;
    protocol::read_blocking::<Response>(&stream)
        .map_err(ClientError::Protocol)?
        .ok_or(ClientError::NoAnswer)
}

/// The live sandboxes the daemon shows this caller.
pub fn status() -> Result<Vec<SandboxStatus>, ClientError> {
    match ask(&Request::Status)? {
        Response::Status { sandboxes } => Ok(sandboxes),
        Response::Refused { message } => Err(ClientError::Unexpected(message)),
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}

/// Asks the daemon to kill sandbox `id`; `Ok(Err(message))` when it refused.
pub fn stop(id: &str) -> Result<Result<(), String>, ClientError> {
    match ask(&Request::Stop { id: id.to_owned() })? {
        Response::Stopped { .. } => Ok(Ok(())),
        Response::Refused { message } => Ok(Err(message)),
        other => Err(ClientError::Unexpected(format!("{other:?}"))),
    }
}
