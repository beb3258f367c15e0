//! The gate's sockets and the thread that serves them.
//!
//! One gate per sandbox, in its supervisor: UDP and TCP on 127.0.0.1 (one port for both) and
//! on ::1 where the host has IPv6 loopback. The probes send every DNS packet of the sandbox
//! here ([`super`]); what arrives is answered only for names the profile covers, by asking the
//! host's resolvers a rebuilt question, and every decision becomes a [`GateRecord`] for the
//! supervisor's audit log. The thread runs a current-thread tokio runtime: queries are
//! answered concurrently, and the learned table needs no lock.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use nix::sys::eventfd::{EfdFlags, EventFd};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::answer::resolved;
use super::learned::{Learned, LearnedNames, monotonic_ns, trusted_for};
use super::names::{NameRules, normalize};
use super::upstream;
use crate::audit::Verdict;

/// How often expired grants are swept out of the kernel map.
const SWEEP: Duration = Duration::from_millis(500);
/// How long an idle TCP connection to the gate stays open.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The classic UDP answer limit, for a query without EDNS.
const PLAIN_UDP: usize = 512;

/// What the gate enforces for one sandbox.
#[derive(Debug, Clone)]
pub struct GateConfig {
    pub names: NameRules,
    /// The host's resolvers, asked for permitted names.
    pub servers: Vec<SocketAddr>,
    /// Audit mode: a name outside the profile is answered too, and recorded as `audit`.
    pub audit: bool,
    /// `on_violation.network = "kill"`: a refused name ends the whole sandbox.
    pub kill: bool,
}

/// One decision of the gate, for the audit log (event `dns`).
#[derive(Debug, Clone, PartialEq)]
pub struct GateRecord {
    pub verdict: Verdict,
    pub name: String,
    pub detail: Value,
}

/// The gate's sockets, bound before the sandbox's policy is written (which names their ports).
pub struct BoundGate {
    udp4: UdpSocket,
    tcp4: TcpListener,
    v6: Option<(UdpSocket, TcpListener)>,
}

impl BoundGate {
    /// Binds UDP and TCP on one free port of 127.0.0.1, and of ::1 if the host has it.
    pub fn bind() -> std::io::Result<Self> {
        let (udp4, tcp4) = bind_pair(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
        let v6 = bind_pair(IpAddr::V6(Ipv6Addr::LOCALHOST)).ok();
        Ok(Self { udp4, tcp4, v6 })
    }

    /// The ports for the probes: IPv4, and IPv6 (0 without IPv6 loopback).
    pub fn ports(&self) -> (u16, u16) {
        let port = |s: &UdpSocket| s.local_addr().map(|a| a.port()).unwrap_or(0);
        (
            port(&self.udp4),
            self.v6.as_ref().map(|(u, _)| port(u)).unwrap_or(0),
        )
    }

    /// Starts serving on a thread of its own.
    pub fn start(self, config: GateConfig, learned: Learned) -> std::io::Result<RunningGate> {
        let wake = Arc::new(EventFd::from_flags(
            EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
        )?);
        let wake_writer = wake.clone();
        let (records_tx, records) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let names = learned.names();
        let thread = std::thread::Builder::new()
            .name("guard-dns-gate".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(err) => {
                        eprintln!("guard: error: the DNS gate cannot start: {err}");
                        return learned;
                    }
                };
                let state = Rc::new(State {
                    config,
                    learned: RefCell::new(learned),
                    records: records_tx,
                    wake: wake_writer,
                });
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, serve(self, state.clone(), stopped));
                drop(local);
                match Rc::try_unwrap(state) {
                    Ok(state) => state.learned.into_inner(),
                    // Unreachable once the LocalSet is dropped; the entries still expire.
                    Err(_) => Learned::new(None, 0, LearnedNames::default()),
                }
            })?;
        Ok(RunningGate {
            thread: Some(thread),
            stop: Some(stop),
            records,
            wake,
            names,
        })
    }
}

/// Binds UDP on a free port of `ip` and TCP on the same port (retrying if TCP's is taken).
fn bind_pair(ip: IpAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(ip, port)) {
            Ok(tcp) => {
                udp.set_nonblocking(true)?;
                tcp.set_nonblocking(true)?;
                return Ok((udp, tcp));
            }
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

/// A serving gate. [`RunningGate::stop`] it when the sandbox ended.
pub struct RunningGate {
    thread: Option<std::thread::JoinHandle<Learned>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    records: mpsc::Receiver<GateRecord>,
    wake: Arc<EventFd>,
    names: LearnedNames,
}

impl RunningGate {
    /// Readable when records wait.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Which name each learned address came from.
    pub fn names(&self) -> LearnedNames {
        self.names.clone()
    }

    /// The records made since the last call.
    pub fn records(&self) -> Vec<GateRecord> {
        let _ = self.wake.read();
        self.records.try_iter().collect()
    }

    /// Stops serving, removes the sandbox's learned addresses from the kernel and returns the
    /// last records.
    pub fn stop(mut self) -> Vec<GateRecord> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && let Ok(mut learned) = thread.join()
        {
            learned.clear();
        }
        self.records.try_iter().collect()
    }
}

/// What the serving tasks share.
struct State {
    config: GateConfig,
    learned: RefCell<Learned>,
    records: mpsc::Sender<GateRecord>,
    wake: Arc<EventFd>,
}

impl State {
    fn record(&self, record: GateRecord) {
        let _ = self.records.send(record);
        let _ = self.wake.write(1);
    }
}

async fn serve(gate: BoundGate, state: Rc<State>, stopped: tokio::sync::oneshot::Receiver<()>) {
    let mut sockets = vec![(gate.udp4, gate.tcp4)];
    sockets.extend(gate.v6);
    for (udp, tcp) in sockets {
        match (
            tokio::net::UdpSocket::from_std(udp),
            tokio::net::TcpListener::from_std(tcp),
        ) {
            (Ok(udp), Ok(tcp)) => {
                tokio::task::spawn_local(serve_udp(Rc::new(udp), state.clone()));
                tokio::task::spawn_local(serve_tcp(tcp, state.clone()));
            }
            (Err(err), _) | (_, Err(err)) => {
                eprintln!("guard: error: the DNS gate cannot serve: {err}");
            }
        }
    }
    let sweeper = state.clone();
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(SWEEP);
        loop {
            tick.tick().await;
            sweeper.learned.borrow_mut().sweep(monotonic_ns());
        }
    });
    let _ = stopped.await;
}

async fn serve_udp(socket: Rc<tokio::net::UdpSocket>, state: Rc<State>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (socket, state) = (socket.clone(), state.clone());
        tokio::task::spawn_local(async move {
            if let Some(reply) = answer(&state, &query, Transport::Udp).await {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, state: Rc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::task::spawn_local(serve_stream(stream, state.clone()));
    }
}

/// DNS over TCP: two-byte length, message; repeated. Anything that is not a DNS message ends
/// the connection (so a TCP/53 stream carries nothing but questions).
async fn serve_stream(mut stream: tokio::net::TcpStream, state: Rc<State>) {
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return;
        };
        let mut query = vec![0u8; usize::from(len)];
        if tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query))
            .await
            .is_err()
        {
            return;
        }
        let Some(reply) = answer(&state, &query, Transport::Tcp).await else {
            return;
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return;
        };
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// The reply to one message from the sandbox, or `None` to say nothing (not DNS at all).
async fn answer(state: &State, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
    if bytes.len() < 12 {
        state.record(refusal("", "not a DNS message", transport));
        return None;
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    let Ok(query) = Message::from_vec(bytes) else {
        state.record(refusal("", "not a DNS message", transport));
        return error_reply(id, None, ResponseCode::FormErr);
    };
    let question = match query.queries.as_slice() {
        [q] if query.metadata.message_type == MessageType::Query
            && query.metadata.op_code == OpCode::Query =>
        {
            q.clone()
        }
        _ => {
            state.record(refusal(
                "",
                "only a standard query with one question is answered",
                transport,
            ));
            return error_reply(id, None, ResponseCode::Refused);
        }
    };
    let name = normalize(&question.name.to_ascii());
    let qtype = question.query_type.to_string();
    let covered = state.config.names.covering(&name);
    if covered.is_none() && !state.config.audit {
        let mut record = refusal(&name, "not covered by network.connect", transport);
        record.detail["type"] = json!(qtype);
        if state.config.kill {
            record.verdict = Verdict::Kill;
        }
        state.record(record);
        return error_reply(id, Some(&query), ResponseCode::Refused);
    }
    let asked = upstream::rebuild(&question);
    let mut upstream_answer = match upstream::ask(&state.config.servers, &asked).await {
        Ok(answer) => answer,
        Err(err) => {
            state.record(GateRecord {
                verdict: if covered.is_some() {
                    Verdict::Allow
                } else {
                    Verdict::Audit
                },
                name: name.clone(),
                detail: json!({
                    "name": name,
                    "type": qtype,
                    "transport": transport.as_str(),
                    "upstream": err.to_string(),
                }),
            });
            return error_reply(id, Some(&query), ResponseCode::ServFail);
        }
    };
    let found = resolved(&upstream_answer, &name);
    let now = monotonic_ns();
    let mut learned = Vec::new();
    let mut not_learned = Vec::new();
    if let Some(covered) = &covered {
        let mut table = state.learned.borrow_mut();
        for (addr, ttl) in &found.addrs {
            match table.learn(*addr, &name, &covered.ports, *ttl, now) {
                Ok(()) => learned.push(json!({
                    "addr": addr.to_string(),
                    "ttl": ttl,
                    "trusted_s": trusted_for(*ttl).as_secs(),
                })),
                Err(err) => not_learned.push(json!({
                    "addr": addr.to_string(),
                    "why": err.to_string(),
                })),
            }
        }
    }
    let mut detail = json!({
        "name": name,
        "type": qtype,
        "transport": transport.as_str(),
        "rcode": upstream_answer.metadata.response_code.to_string(),
        "answers": learned,
    });
    if let Some(covered) = &covered {
        detail["rules"] = json!(covered.rules);
    } else {
        detail["answers"] = json!(
            found
                .addrs
                .iter()
                .map(|(a, _)| a.to_string())
                .collect::<Vec<_>>()
        );
    }
    if !found.aliases.is_empty() {
        detail["aliases"] = json!(found.aliases);
    }
    if !not_learned.is_empty() {
        detail["not_learned"] = json!(not_learned);
    }
    state.record(GateRecord {
        verdict: if covered.is_some() {
            Verdict::Allow
        } else {
            Verdict::Audit
        },
        name,
        detail,
    });

    // The tool's id and question (its case), the resolver's answer.
    upstream_answer.metadata.id = id;
    upstream_answer.queries = query.queries.clone();
    let limit = match (&query.edns, transport) {
        (_, Transport::Tcp) => usize::from(u16::MAX),
        (Some(edns), Transport::Udp) => usize::from(edns.max_payload()).max(PLAIN_UDP),
        (None, Transport::Udp) => PLAIN_UDP,
    };
    if query.edns.is_none() {
        upstream_answer.edns = None;
    }
    let bytes = upstream_answer.to_vec().ok()?;
    if bytes.len() > limit {
        // Too large for the tool's UDP buffer: tell it to ask again over TCP.
        return upstream_answer.truncate().to_vec().ok();
    }
    Some(bytes)
}

/// A refusal record.
fn refusal(name: &str, why: &str, transport: Transport) -> GateRecord {
    GateRecord {
        verdict: Verdict::Deny,
        name: name.to_owned(),
        detail: json!({
            "name": name,
            "transport": transport.as_str(),
            "why": why,
        }),
    }
}

/// An error reply echoing the question (if it could be read).
fn error_reply(id: u16, query: Option<&Message>, code: ResponseCode) -> Option<Vec<u8>> {
    let mut reply = Message::error_msg(id, OpCode::Query, code);
    reply.metadata.recursion_available = true;
    if let Some(query) = query {
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.queries = query.queries.clone();
    }
    reply.to_vec().ok()
}
