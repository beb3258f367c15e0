//! Ring buffer records as typed events.
//!
//! A record is `guard_common::Event<T>`: the header tells the type, the type tells the payload.
//! Parsing is a pure function over bytes so it is tested without a kernel.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use guard_common::event::{
    FLAG_ARGV_TRUNCATED, FLAG_DNS_GATE, FLAG_KILL_SANDBOX, FLAG_LEARNED, FLAG_TRUNCATED,
    FLAG_V4_MAPPED,
};
use guard_common::{
    EventHeader, EventType, ExecData, ExecEvent, NetData, NetEvent, Rule, UnixEvent, Verdict,
};

/// A record from the probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    Exec(ExecRecord),
    Net(NetRecord),
    Unix(UnixRecord),
}

impl ProbeEvent {
    pub fn header(&self) -> &EventHeader {
        match self {
            ProbeEvent::Exec(e) => &e.header,
            ProbeEvent::Net(n) => &n.header,
            ProbeEvent::Unix(u) => &u.header,
        }
    }

    /// What the probe did.
    pub fn verdict(&self) -> Verdict {
        Verdict::from_u32(self.header().verdict).unwrap_or(Verdict::Deny)
    }

    /// The rule that decided.
    pub fn rule(&self) -> Rule {
        Rule::from_u32(self.header().rule).unwrap_or(Rule::ProbeError)
    }

    /// The profile says this violation ends the whole sandbox.
    pub fn kills_sandbox(&self) -> bool {
        self.header().flags & FLAG_KILL_SANDBOX != 0
    }
}

/// A process in a watched cgroup executed a new image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    pub header: EventHeader,
    /// The path the kernel resolved for the exec (`bprm->filename`), possibly relative when the
    /// caller passed a relative path.
    pub filename: PathBuf,
    /// The filename did not fit in the record and was cut.
    pub truncated: bool,
    /// The argv strings of the new image (cut at the record's size, see `argv_truncated`).
    pub argv: Vec<String>,
    pub argv_truncated: bool,
    /// The pid before exec (differs from `header.pid` when a non-leader thread exec'd).
    pub old_pid: u32,
    /// Identity of the executed file: kernel dev_t and inode.
    pub dev: u64,
    pub ino: u64,
    /// The new image's `comm`.
    pub comm: String,
}

/// Which socket operation a network record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetOp {
    Connect,
    Bind,
    Send,
}

impl NetOp {
    /// The audit log's `event` for it.
    pub fn as_str(self) -> &'static str {
        match self {
            NetOp::Connect => "connect",
            NetOp::Bind => "bind",
            NetOp::Send => "send",
        }
    }
}

/// A connect, bind or UDP send in a watched cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRecord {
    pub header: EventHeader,
    pub op: NetOp,
    /// Destination (or bind address) as the caller passed it.
    pub addr: SocketAddr,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...
    pub sock_type: u16,
    pub protocol: u16,
    /// An IPv4 address reached through an IPv6 socket.
    pub v4_mapped: bool,
    /// DNS sent to the sandbox's gate instead of `addr`.
    pub dns_gate: bool,
    /// Allowed by an address the DNS gate learned, not a listed one.
    pub learned: bool,
}

impl NetRecord {
    /// "tcp", "udp" or the protocol number.
    pub fn protocol_name(&self) -> Cow<'static, str> {
        match (self.protocol, self.sock_type) {
            (6, _) | (0, 1) => "tcp".into(),
            (17, _) | (0, 2) => "udp".into(),
            (p, _) => p.to_string().into(),
        }
    }
}

/// A unix socket connect or datagram send to a path (or abstract name) in a watched cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixRecord {
    pub header: EventHeader,
    /// `connect` or `send`.
    pub op: NetOp,
    /// The path as the caller passed it; an abstract name is shown as `@name`.
    pub path: String,
    pub sock_type: u32,
}

/// A record that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("record of {len} bytes is shorter than the {need} bytes of its type")]
    TooShort { len: usize, need: usize },
    #[error("record has unknown event type {0} (probe object newer than this supervisor?)")]
    UnknownType(u32),
}

/// Reads a `#[repr(C)]` plain-data value from the start of `bytes`.
fn read_pod<T: aya::Pod>(bytes: &[u8]) -> Result<T, EventError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(EventError::TooShort {
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: `bytes` holds at least size_of::<T>() bytes and `T: Pod` accepts any bit pattern;
    // read_unaligned because a byte slice promises no alignment.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// Parses one ring buffer record.
pub fn parse_record(bytes: &[u8]) -> Result<ProbeEvent, EventError> {
    let header: EventHeader = read_pod(bytes)?;
    match EventType::from_u32(header.etype) {
        Some(EventType::Exec) => {
            let event: ExecEvent = read_pod(bytes)?;
            Ok(ProbeEvent::Exec(exec_record(header, &event.data)))
        }
        Some(kind @ (EventType::Connect | EventType::Bind | EventType::Send)) => {
            let event: NetEvent = read_pod(bytes)?;
            let op = match kind {
                EventType::Connect => NetOp::Connect,
                EventType::Bind => NetOp::Bind,
                _ => NetOp::Send,
            };
            Ok(ProbeEvent::Net(net_record(header, op, &event.data)))
        }
        Some(kind @ (EventType::UnixConnect | EventType::UnixSend)) => {
            let event: UnixEvent = read_pod(bytes)?;
            let len = (event.data.path_len as usize).min(event.data.path.len());
            let raw = &event.data.path[..len];
            let path = match raw.split_first() {
                Some((0, name)) => format!("@{}", String::from_utf8_lossy(name)),
                _ => String::from_utf8_lossy(raw).into_owned(),
            };
            Ok(ProbeEvent::Unix(UnixRecord {
                header,
                op: if kind == EventType::UnixConnect {
                    NetOp::Connect
                } else {
                    NetOp::Send
                },
                path,
                sock_type: event.data.sock_type,
            }))
        }
        None => Err(EventError::UnknownType(header.etype)),
    }
}

fn exec_record(header: EventHeader, data: &ExecData) -> ExecRecord {
    ExecRecord {
        header,
        filename: PathBuf::from(OsStr::from_bytes(data.filename_bytes())),
        truncated: header.flags & FLAG_TRUNCATED != 0,
        argv: data
            .argv_strings()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
        argv_truncated: header.flags & FLAG_ARGV_TRUNCATED != 0,
        old_pid: data.old_pid,
        dev: data.dev,
        ino: data.ino,
        comm: String::from_utf8_lossy(data.comm_bytes()).into_owned(),
    }
}

const AF_INET: u16 = 2;

fn net_record(header: EventHeader, op: NetOp, data: &NetData) -> NetRecord {
    let ip = if data.family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(
            data.addr[0],
            data.addr[1],
            data.addr[2],
            data.addr[3],
        ))
    } else {
        IpAddr::V6(Ipv6Addr::from(data.addr))
    };
    NetRecord {
        header,
        op,
        addr: SocketAddr::new(ip, data.port),
        sock_type: data.sock_type,
        protocol: data.protocol,
        v4_mapped: header.flags & FLAG_V4_MAPPED != 0,
        dns_gate: header.flags & FLAG_DNS_GATE != 0,
        learned: header.flags & FLAG_LEARNED != 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guard_common::{ARGV_LEN, COMM_LEN, Event, FILENAME_LEN};

    fn header(etype: EventType, flags: u32, verdict: Verdict, rule: Rule) -> EventHeader {
        EventHeader {
            etype: etype as u32,
            flags,
            ktime_ns: 7,
            cgroup_id: 1234,
            pid: 42,
            tid: 42,
            sandbox_id: 9,
            verdict: verdict as u32,
            rule: rule as u32,
        }
    }

    fn bytes_of<T: aya::Pod>(value: &T) -> Vec<u8> {
        // SAFETY: T is Pod: reading its bytes is defined.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn exec_bytes(filename: &[u8], filename_len: u32, argv: &[u8], flags: u32) -> Vec<u8> {
        let mut data = ExecData {
            filename: [0; FILENAME_LEN],
            argv: [0; ARGV_LEN],
            filename_len,
            argv_len: argv.len() as u32,
            old_pid: 41,
            reserved: 0,
            dev: 8 << 20,
            ino: 77,
            comm: [0; COMM_LEN],
        };
        data.filename[..filename.len()].copy_from_slice(filename);
        data.argv[..argv.len()].copy_from_slice(argv);
        data.comm[..4].copy_from_slice(b"true");
        let event: ExecEvent = Event {
            header: header(EventType::Exec, flags, Verdict::Allow, Rule::None),
            data,
        };
        let mut bytes = bytes_of(&event.header);
        bytes.extend(bytes_of(&event.data));
        bytes
    }

    #[test]
    fn exec_record_round_trips() {
        // The probe's length includes the NUL, as bpf_probe_read_kernel_str returns it.
        let bytes = exec_bytes(b"/bin/true\0", 10, b"true\0--version\0", 0);
        let ProbeEvent::Exec(rec) = parse_record(&bytes).unwrap() else {
            panic!("not an exec record");
        };
        assert_eq!(rec.filename, PathBuf::from("/bin/true"));
        assert_eq!(rec.argv, ["true", "--version"]);
        assert_eq!(rec.comm, "true");
        assert_eq!((rec.dev, rec.ino), (8 << 20, 77));
        assert_eq!(rec.header.pid, 42);
        assert_eq!(rec.header.sandbox_id, 9);
        assert_eq!(rec.old_pid, 41);
        assert!(!rec.truncated && !rec.argv_truncated);
    }

    #[test]
    fn flags_and_empty_argv_are_decoded() {
        let bytes = exec_bytes(b"/x\0", 3, b"", FLAG_TRUNCATED | FLAG_KILL_SANDBOX);
        let event = parse_record(&bytes).unwrap();
        assert!(event.kills_sandbox());
        let ProbeEvent::Exec(rec) = event else {
            panic!("not an exec record");
        };
        assert!(rec.truncated);
        assert!(rec.argv.is_empty());
    }

    #[test]
    fn a_length_past_the_buffer_is_clamped() {
        let bytes = exec_bytes(b"/a", u32::MAX, b"a", 0);
        let ProbeEvent::Exec(rec) = parse_record(&bytes).unwrap() else {
            panic!("not an exec record");
        };
        assert_eq!(rec.filename, PathBuf::from("/a"));
    }

    #[test]
    fn net_records_decode_addresses() {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let event = NetEvent {
            header: header(EventType::Connect, 0, Verdict::Deny, Rule::NetworkConnect),
            data: NetData {
                addr,
                port: 8080,
                family: 2,
                sock_type: 1,
                protocol: 6,
                reserved: [0; 2],
            },
        };
        let mut bytes = bytes_of(&event.header);
        bytes.extend(bytes_of(&event.data));
        let parsed = parse_record(&bytes).unwrap();
        assert_eq!(parsed.verdict(), Verdict::Deny);
        assert_eq!(parsed.rule(), Rule::NetworkConnect);
        let ProbeEvent::Net(rec) = parsed else {
            panic!("not a net record");
        };
        assert_eq!(rec.op, NetOp::Connect);
        assert_eq!(rec.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(rec.protocol_name(), "tcp");

        let v6 = NetEvent {
            header: header(EventType::Send, FLAG_V4_MAPPED, Verdict::Allow, Rule::None),
            data: NetData {
                addr: Ipv6Addr::LOCALHOST.octets(),
                port: 53,
                family: 10,
                sock_type: 2,
                protocol: 17,
                reserved: [0; 2],
            },
        };
        let mut bytes = bytes_of(&v6.header);
        bytes.extend(bytes_of(&v6.data));
        let ProbeEvent::Net(rec) = parse_record(&bytes).unwrap() else {
            panic!("not a net record");
        };
        assert_eq!(rec.op, NetOp::Send);
        assert_eq!(rec.addr, "[::1]:53".parse().unwrap());
        assert!(rec.v4_mapped);
        assert_eq!(rec.protocol_name(), "udp");
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let bytes = exec_bytes(b"/bin/true\0", 10, b"", 0);
        assert!(matches!(
            parse_record(&bytes[..20]),
            Err(EventError::TooShort { len: 20, need: 48 })
        ));
        assert!(matches!(
            parse_record(&bytes[..100]),
            Err(EventError::TooShort { len: 100, .. })
        ));
        let mut unknown = bytes.clone();
        unknown[..4].copy_from_slice(&999u32.to_ne_bytes());
        assert_eq!(parse_record(&unknown), Err(EventError::UnknownType(999)));
    }
}
