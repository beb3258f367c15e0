//! The daemon's event loop: accept connections, serve each request, reload on SIGHUP, stop on
//! SIGTERM/SIGINT.
//!
//! The runtime is tokio's current-thread runtime on the daemon's main thread. Besides keeping
//! state in `Rc`/`RefCell` without locks, this matters for crash safety: workers are spawned
//! with `PR_SET_PDEATHSIG`, which fires when the *thread* that forked them ends, so they must
//! be forked from a thread that lives exactly as long as the daemon.
//!
//! A connection carries one request. An exec connection stays open while the sandbox runs: the
//! client sends relayed signals on it and gets the exit status back; if the client goes away
//! (killed), the sandbox is killed, as it would be with a killed local `guard exec`. Anything a
//! client sends that is not a well-formed frame ends that connection only.

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracing::{error, info, warn};

use super::auth::{self, Caller};
use super::config::{self, DaemonConfig, SystemNames};
use super::evidence::{self, ViolationCounts};
use super::protocol::{self, ExecRequest, ProtocolError, Request, Response};
use super::registry::{self, Entry, Registry};
use super::sandboxed;
use super::wire::{self, FrameReader};
use super::worker::{self, Job};
use crate::sandbox::launch::error_chain;
use crate::sandbox::supervise::RELAYED;

/// How long a client has to send its request after connecting; then the connection is closed
/// and its partial frame freed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused client gets to finish writing its request (which is discarded).
const DRAIN_TIME: Duration = Duration::from_secs(2);
/// Open connections (waiting, being read, or carrying a running sandbox) per uid and in all;
/// more are closed at once. Sized so the daemon stays within `LimitNOFILE` of the unit.
const CONNECTIONS_PER_UID: usize = 256;
const CONNECTIONS_TOTAL: usize = 4096;
/// Requests read at the same time, per uid and in all. Each may buffer up to
/// [`protocol::MAX_FRAME`] (1 MiB), so partial frames take at most 16 MiB however many
/// connections are held; the others wait without a buffer.
const PENDING_PER_UID: usize = 4;
const PENDING_TOTAL: usize = 16;
/// How long running sandboxes get to end after the daemon is asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The daemon's state, shared by the connection tasks of the one runtime thread.
struct Daemon {
    config_path: PathBuf,
    config: RefCell<Rc<DaemonConfig>>,
    registry: RefCell<Registry>,
    violations: RefCell<ViolationCounts>,
    /// Signalled whenever a sandbox ends (shutdown waits for the registry to empty).
    ended: Notify,
    /// Connection and request counts per uid.
    limits: Rc<RefCell<Limits>>,
    /// Signalled whenever a request has been read (a reading slot is free).
    slot_freed: Rc<Notify>,
}

/// Open connections and requests being read, per uid and in all.
#[derive(Debug, Default)]
struct Limits {
    connections: std::collections::HashMap<u32, usize>,
    connections_total: usize,
    pending: std::collections::HashMap<u32, usize>,
    pending_total: usize,
}

/// One open connection, counted until dropped.
struct Slot {
    limits: Rc<RefCell<Limits>>,
    uid: u32,
}

impl Slot {
    fn take(limits: &Rc<RefCell<Limits>>, uid: u32) -> Option<Slot> {
        let mut l = limits.borrow_mut();
        let mine = l.connections.get(&uid).copied().unwrap_or(0);
        if mine >= CONNECTIONS_PER_UID || l.connections_total >= CONNECTIONS_TOTAL {
            return None;
        }
        l.connections.insert(uid, mine + 1);
        l.connections_total += 1;
        Some(Slot {
            limits: Rc::clone(limits),
            uid,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut l = self.limits.borrow_mut();
        l.connections_total -= 1;
        if let Some(n) = l.connections.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                l.connections.remove(&self.uid);
            }
        }
    }
}

/// One request being read, counted until dropped.
struct Pending {
    limits: Rc<RefCell<Limits>>,
    freed: Rc<Notify>,
    uid: u32,
}

impl Pending {
    /// Waits until fewer than the limits of requests are being read, then counts this one.
    async fn wait(limits: &Rc<RefCell<Limits>>, freed: &Rc<Notify>, uid: u32) -> Pending {
        loop {
            // Created before the check: on this single thread no task can run between the
            // check and the first poll of `notified`, so no wake-up is missed.
            let notified = freed.notified();
            {
                let mut l = limits.borrow_mut();
                let mine = l.pending.get(&uid).copied().unwrap_or(0);
                if mine < PENDING_PER_UID && l.pending_total < PENDING_TOTAL {
                    l.pending.insert(uid, mine + 1);
                    l.pending_total += 1;
                    return Pending {
                        limits: Rc::clone(limits),
                        freed: Rc::clone(freed),
                        uid,
                    };
                }
            }
            notified.await;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        {
            let mut l = self.limits.borrow_mut();
            l.pending_total -= 1;
            if let Some(n) = l.pending.get_mut(&self.uid) {
                *n -= 1;
                if *n == 0 {
                    l.pending.remove(&self.uid);
                }
            }
        }
        self.freed.notify_waiters();
    }
}

/// Serves until SIGTERM or SIGINT.
pub async fn serve(
    config_path: &Path,
    config: DaemonConfig,
    listener: std::os::unix::net::UnixListener,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = UnixListener::from_std(listener)?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let daemon = Rc::new(Daemon {
        config_path: config_path.to_owned(),
        violations: RefCell::new(ViolationCounts::new(&config.audit_log)),
        config: RefCell::new(Rc::new(config)),
        registry: RefCell::new(Registry::default()),
        ended: Notify::new(),
        limits: Rc::default(),
        slot_freed: Rc::new(Notify::new()),
    });
    super::listen::notify("READY=1");
    info!("serving");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let daemon = Rc::clone(&daemon);
                    tokio::task::spawn_local(async move { daemon.connection(stream).await });
                }
                // EMFILE and friends: log, back off a little, keep serving.
                Err(err) => {
                    warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = hangup.recv() => daemon.reload(),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    super::listen::notify("STOPPING=1");
    drop(listener);
    daemon.stop_all().await;
    Ok(())
}

impl Daemon {
    /// SIGHUP: a new configuration for new requests; running sandboxes keep what they started
    /// with (their workers hold their plans). A bad file keeps the old configuration.
    fn reload(&self) {
        match config::load(&self.config_path, &SystemNames) {
            Ok(new) => {
                let old = self.config.borrow().clone();
                if new.socket != old.socket
                    || new.socket_mode != old.socket_mode
                    || new.socket_group != old.socket_group
                {
                    warn!("socket settings changed; they take effect when the daemon restarts");
                }
                if new.audit_log != old.audit_log {
                    *self.violations.borrow_mut() = ViolationCounts::new(&new.audit_log);
                }
                info!(
                    "reloaded {}: {} allow entries",
                    new.file.display(),
                    new.allow.len()
                );
                *self.config.borrow_mut() = Rc::new(new);
            }
            Err(err) => error!(
                "reload failed, keeping the previous configuration: {}",
                error_chain(&err)
            ),
        }
    }

    /// Kills every sandbox and waits (bounded) for the workers to report.
    async fn stop_all(&self) {
        let serials = self.registry.borrow().serials();
        if serials.is_empty() {
            return;
        }
        info!("stopping: killing {} running sandbox(es)", serials.len());
        for serial in serials {
            self.kill(serial, "the guard daemon is stopping".to_owned());
        }
        let deadline = Instant::now() + STOP_GRACE;
        while !self.registry.borrow().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                warn!("sandboxes still running at exit; their sentinels end them");
                break;
            }
            let _ = tokio::time::timeout(left, self.ended.notified()).await;
        }
    }

    /// Kills sandbox `serial`, noting why for its client.
    fn kill(&self, serial: u64, why: String) {
        let worker = {
            let mut registry = self.registry.borrow_mut();
            let Some(entry) = registry.get_mut(serial) else {
                return;
            };
            let id = registry::sandbox_id(entry.worker).unwrap_or_else(|| "starting".into());
            entry.stop_note = Some(format!("guard: sandbox {id} killed: {why}"));
            entry.worker
        };
        registry::kill_sandbox(worker);
    }

    async fn connection(self: Rc<Self>, stream: UnixStream) {
        let caller = match auth::peer(stream.as_fd()) {
            Ok(caller) => caller,
            Err(err) => {
                warn!("dropping a connection: {}", error_chain(&err));
                return;
            }
        };
        let started = Instant::now();
        let Some(_slot) = Slot::take(&self.limits, caller.uid) else {
            let message = format!(
                "too many connections to the guard daemon (at most {CONNECTIONS_PER_UID} per user, {CONNECTIONS_TOTAL} in all); try again when some have ended"
            );
            warn!("{} (pid {}): {message}", caller.describe(), caller.pid);
            // A fresh socket's buffer takes this at once; never wait on a peer that does not read.
            let _ = tokio::time::timeout(
                Duration::from_millis(100),
                wire::send(&stream, &Response::Refused { message }),
            )
            .await;
            return;
        };
        // Who may talk at all is decided from the kernel's view of the caller before a byte of
        // the request is read: strangers and sandboxed tools make the daemon buffer nothing.
        if let Some(message) = self.refusal_before_reading(&stream, &caller) {
            warn!("refused: {message}");
            let log = self.config.borrow().audit_log.clone();
            if let Err(err) = evidence::record_refusal(&log, &caller, "", &[], &message) {
                error!(
                    "writing the refusal to the audit log: {}",
                    error_chain(&err)
                );
            }
            let _ = wire::send(&stream, &Response::Refused { message }).await;
            // The client writes its whole request before reading the answer: let it finish
            // (discarding, bounded in bytes and time) so it hears the refusal, not EPIPE.
            let _ = tokio::time::timeout(DRAIN_TIME, wire::discard(&stream)).await;
            return;
        }
        // At most PENDING_PER_UID requests per user (PENDING_TOTAL in all) are being read at
        // once; the others wait here holding only their socket, within the same deadline.
        let Ok(reading) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            Pending::wait(&self.limits, &self.slot_freed, caller.uid),
        )
        .await
        else {
            warn!(
                "{}: no request within {REQUEST_TIMEOUT:?} (waiting to be read)",
                caller.describe()
            );
            return;
        };
        let mut reader = FrameReader::default();
        let left = REQUEST_TIMEOUT.saturating_sub(started.elapsed());
        let first = match tokio::time::timeout(left, reader.next(&stream)).await {
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return,
            Ok(Err(err)) => return self.bad_frame(&stream, &caller, &err).await,
            Err(_) => {
                // Dropping the reader here frees the partial frame with the connection.
                warn!(
                    "{}: no request within {REQUEST_TIMEOUT:?}",
                    caller.describe()
                );
                return;
            }
        };
        drop(reading);
        let request = match protocol::decode::<Request>(&first.payload) {
            Ok(request) => request,
            Err(err) => return self.bad_frame(&stream, &caller, &err).await,
        };
        let fds = first.fds;
        if !matches!(request, Request::Exec(_)) && !fds.is_empty() {
            let err = ProtocolError::Descriptors(fds.len(), 0);
            return self.bad_frame(&stream, &caller, &err).await;
        }
        match request {
            Request::Exec(exec) => self.exec(stream, reader, caller, exec, fds).await,
            Request::Status => {
                self.violations.borrow_mut().update();
                let sandboxes = {
                    let violations = self.violations.borrow();
                    self.registry
                        .borrow()
                        .status(&caller, |id| violations.count(id))
                };
                let _ = wire::send(&stream, &Response::Status { sandboxes }).await;
            }
            Request::Stop { id } => {
                let response = self.stop(&caller, &id);
                let _ = wire::send(&stream, &response).await;
            }
            Request::Signal { .. } => {
                let message = "no sandbox runs on this connection".to_owned();
                let _ = wire::send(&stream, &Response::Refused { message }).await;
            }
        }
    }

    /// Why `caller` may not use the daemon at all, decided before its request is read: it runs
    /// inside a guard sandbox (or that cannot be established), or no `[[allow]]` entry names it.
    fn refusal_before_reading(&self, stream: &UnixStream, caller: &Caller) -> Option<String> {
        // A sandboxed tool must not get a sandbox (or a stop, or the list) from outside its own.
        match sandboxed::caller_sandbox(stream.as_fd(), caller.pid) {
            Ok(None) => {}
            Ok(Some(sandbox)) => {
                return Some(format!(
                    "{} (pid {}) runs inside guard sandbox {sandbox}: sandboxed processes may not use the guard daemon",
                    caller.describe(),
                    caller.pid
                ));
            }
            Err(err) => {
                return Some(format!(
                    "cannot tell whether {} runs inside a guard sandbox: {}",
                    caller.describe(),
                    error_chain(&err)
                ));
            }
        }
        let config = self.config.borrow().clone();
        auth::may_connect(&config, caller)
            .err()
            .map(|refusal| refusal.to_string())
    }

    /// A frame that could not be read or decoded: logged, answered if the peer still listens,
    /// and the connection closed. Nothing else is affected.
    async fn bad_frame(&self, stream: &UnixStream, caller: &Caller, err: &ProtocolError) {
        warn!(
            "{} (pid {}): rejected frame: {}",
            caller.describe(),
            caller.pid,
            error_chain(err)
        );
        let message = format!("rejected request: {}", error_chain(err));
        let _ = wire::send(stream, &Response::Refused { message }).await;
    }

    fn stop(&self, caller: &Caller, id: &str) -> Response {
        let found = {
            let registry = self.registry.borrow();
            registry
                .find(id)
                .and_then(|serial| registry.get(serial).map(|e| (serial, e.caller.uid)))
        };
        match found {
            Some((serial, owner)) if caller.is_root() || owner == caller.uid => {
                info!("{} stops sandbox {id}", caller.describe());
                self.kill(
                    serial,
                    format!("stopped by `guard stop` ({})", caller.describe()),
                );
                Response::Stopped { id: id.to_owned() }
            }
            // Someone else's sandbox is reported like a missing one: ids are not secrets, but
            // there is nothing to gain from confirming them.
            _ => Response::Refused {
                message: format!("no sandbox {id} of yours is running"),
            },
        }
    }

    async fn exec(
        &self,
        stream: UnixStream,
        mut reader: FrameReader,
        caller: Caller,
        request: ExecRequest,
        fds: Vec<OwnedFd>,
    ) {
        let config = self.config.borrow().clone();
        let command: Vec<String> = request
            .command
            .iter()
            .map(|a| a.to_os().to_string_lossy().into_owned())
            .collect();
        if let Err(refusal) = auth::authorize(&config, &caller, &request.profile, request.mode) {
            let message = refusal.to_string();
            warn!("refused: {message}");
            if let Err(err) = evidence::record_refusal(
                &config.audit_log,
                &caller,
                &request.profile,
                &command,
                &message,
            ) {
                error!(
                    "writing the refusal to the audit log: {}",
                    error_chain(&err)
                );
            }
            let _ = wire::send(&stream, &Response::Refused { message }).await;
            return;
        }
        let mut fds = fds;
        // A request that asks for events without sending their descriptor is refused below (four
        // are expected then, five arrived, or the reverse): a harness must never believe it gets
        // a stream that is not there.
        let events = if request.events && fds.len() == protocol::MAX_EXEC_FDS {
            fds.pop()
        } else {
            None
        };
        if request.events && events.is_none() {
            let message = "an exec request with events must carry its event stream as a fifth \
                           descriptor"
                .to_owned();
            let _ = wire::send(&stream, &Response::Refused { message }).await;
            return;
        }
        let Ok([stdin, stdout, stderr, cwd]) = <[OwnedFd; 4]>::try_from(fds) else {
            let message = format!(
                "an exec request must carry {} descriptors (stdin, stdout, stderr, cwd), and \
                 one more with events",
                protocol::EXEC_FDS
            );
            let _ = wire::send(&stream, &Response::Refused { message }).await;
            return;
        };
        let job = Job {
            profile: request.profile.clone(),
            profile_path: config.profile_path.clone(),
            mode: request.mode,
            command: request.command,
            env: request.env,
            umask: request.umask,
            audit_log: config.audit_log.clone(),
            caller: caller.clone(),
            events: events.is_some(),
            narrowing: request.narrowing,
        };
        let spawned = worker::spawn(&job, [stdin, stdout, stderr], &cwd, events.as_ref());
        drop(events);
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                let message = format!("cannot start the sandbox: {}", error_chain(&err));
                error!("{message}");
                let _ = wire::send(&stream, &Response::Refused { message }).await;
                return;
            }
        };
        drop(cwd);
        let Some(worker) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
            return;
        };
        let serial = self.registry.borrow_mut().add(Entry {
            worker,
            user: auth::user_name(caller.uid),
            caller: caller.clone(),
            profile: request.profile.clone(),
            command: command.join(" "),
            started: Instant::now(),
            stop_note: None,
        });
        info!(
            "{} runs profile {} as worker {worker}: {}",
            caller.describe(),
            request.profile,
            command.join(" ")
        );
        // If the client is already gone, the loop below notices and kills the sandbox.
        let mut client_gone = wire::send(&stream, &Response::Started).await.is_err();
        if client_gone {
            self.kill(serial, "the client went away".to_owned());
        }
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                frame = reader.next(&stream), if !client_gone => match client_frame(frame) {
                    ClientFrame::Relay(signal) => {
                        let _ = kill(Pid::from_raw(worker), signal);
                    }
                    ClientFrame::Ignored => warn!("{}: ignored a request", caller.describe()),
                    ClientFrame::Gone => {
                        // A killed local `guard exec` takes its sandbox along; so does this.
                        client_gone = true;
                        self.kill(serial, "the client went away".to_owned());
                    }
                },
            }
        };
        let entry = self.registry.borrow_mut().remove(serial);
        self.ended.notify_waiters();
        let code = match status {
            Ok(status) => exit_code(status),
            Err(err) => {
                error!("waiting for worker {worker}: {err}");
                crate::sandbox::exit::GUARD_FAILED
            }
        };
        info!("worker {worker} ({}) ended with {code}", caller.describe());
        if !client_gone {
            let note = entry.and_then(|e| e.stop_note);
            let _ = wire::send(&stream, &Response::Exited { code, note }).await;
        }
    }
}

/// What a frame from a client whose sandbox runs means.
enum ClientFrame {
    /// Relay this signal to the sandbox.
    Relay(Signal),
    /// Well-formed but not for a running sandbox (another request, a signal that is not relayed).
    Ignored,
    /// End of stream or a frame that breaks the protocol: the client is gone or broken.
    Gone,
}

fn client_frame(frame: Result<Option<protocol::Received>, ProtocolError>) -> ClientFrame {
    let Ok(Some(frame)) = frame else {
        return ClientFrame::Gone;
    };
    if !frame.fds.is_empty() {
        return ClientFrame::Gone;
    }
    match protocol::decode::<Request>(&frame.payload) {
        Ok(Request::Signal { signal }) => match Signal::try_from(signal) {
            Ok(signal) if RELAYED.contains(&signal) => ClientFrame::Relay(signal),
            _ => ClientFrame::Ignored,
        },
        Ok(_) => ClientFrame::Ignored,
        Err(_) => ClientFrame::Gone,
    }
}

/// The worker's status as the client's exit status: the worker already follows the contract;
/// a worker killed by a signal (by the daemon, before its command ran) is 128+N like a shell.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => 128u8.saturating_add((signal & 0x7f) as u8),
        (None, None) => crate::sandbox::exit::GUARD_FAILED,
    }
}
