//! Asking the host's real resolvers (the name servers of guard's own `/etc/resolv.conf`) a
//! question the gate rebuilt: nothing of the tool's message but the name and type leaves.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// How long one server gets to answer one attempt.
const ATTEMPT: Duration = Duration::from_secs(2);
/// The UDP payload guard offers upstream (the size DNS flag day 2020 settled on).
const UDP_PAYLOAD: u16 = 1232;

/// Why no resolver answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no name server in /etc/resolv.conf")]
    NoServer,
    #[error("no name server answered ({0})")]
    NoAnswer(String),
}

/// The host's name servers, port 53.
pub fn servers(resolv_conf: &str) -> Vec<SocketAddr> {
    crate::ebpf::rules::resolvers(resolv_conf)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// A fresh query for `question` with a random id: recursion desired, EDNS with no options, the
/// name in lower case (so the tool cannot spell bits out in its letters' case).
pub fn rebuild(question: &Query) -> Message {
    let mut query = Message::new(random_id(), MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    let mut question = question.clone();
    question.name = question.name.to_lowercase();
    query.add_query(question);
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    query.set_edns(edns);
    query
}

/// Asks each server in turn until one answers `query`; a truncated UDP answer is asked again
/// over TCP.
pub async fn ask(servers: &[SocketAddr], query: &Message) -> Result<Message, UpstreamError> {
    if servers.is_empty() {
        return Err(UpstreamError::NoServer);
    }
    let bytes = query
        .to_vec()
        .map_err(|e| UpstreamError::NoAnswer(e.to_string()))?;
    let mut last = String::new();
    for &server in servers {
        match ask_one(server, &bytes, query.metadata.id).await {
            Ok(answer) => return Ok(answer),
            Err(why) => last = format!("{server}: {why}"),
        }
    }
    Err(UpstreamError::NoAnswer(last))
}

async fn ask_one(server: SocketAddr, query: &[u8], id: u16) -> Result<Message, String> {
    let local = match server.ip() {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(query).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    let answer = timeout(ATTEMPT, async {
        loop {
            let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
            // Anything but our id is a stray datagram (or a spoofing attempt): keep waiting.
            if let Ok(m) = Message::from_vec(&buf[..n])
                && m.metadata.id == id
            {
                return Ok::<Message, String>(m);
            }
        }
    })
    .await
    .map_err(|_| "timed out".to_owned())??;
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    timeout(ATTEMPT, ask_tcp(server, query, id))
        .await
        .map_err(|_| "timed out over TCP".to_owned())?
}

async fn ask_tcp(server: SocketAddr, query: &[u8], id: u16) -> Result<Message, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(query.len()).map_err(|e| e.to_string())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(|e| e.to_string())?;
    let len = stream.read_u16().await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(len)];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    let answer = Message::from_vec(&buf).map_err(|e| e.to_string())?;
    if answer.metadata.id != id {
        return Err("answer for another query".into());
    }
    Ok(answer)
}

/// A query id nobody else can predict (an off-path attacker would have to guess it).
fn random_id() -> u16 {
    let mut bytes = [0u8; 2];
    // SAFETY: getrandom writes at most `len` bytes into the buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != 2 {
        // getrandom(2) cannot fail for 2 bytes once the pool is initialized; the clock is a
        // weaker but working fallback.
        return super::learned::monotonic_ns() as u16;
    }
    u16::from_ne_bytes(bytes)
}
