//! The eBPF probes end to end, seen from outside the way a user or an attacker would: listeners
//! the tests own count what arrived, marker files show whether a killed program ever ran, and
//! the audit log must hold one record per decision.
//!
//! Landlock also filters TCP ports, so the network tests use one port on two loopback addresses
//! (127.0.0.1 allowed, 127.0.0.2 not): Landlock lets both through and only the probes can tell
//! them apart.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crate::support::{TempDir, guard, require_root, write_profile};

const PYTHON: &str = "/usr/bin/python3";

/// A profile with enough file access for bash, coreutils, curl and python, plus `extra` TOML
/// (network, process, limits, on_violation sections).
fn profile(dir: &TempDir, name: &str, extra: &str) -> String {
    write_profile(
        dir,
        name,
        &format!(
            r#"
name = "{name}"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "{dir}"]
write = ["{dir}"]
execute = ["/usr/bin", "/usr/lib"]
{extra}
"#,
            dir = dir.path().display()
        ),
    )
}

/// A TCP listener on 127.0.0.1 and one on 127.0.0.2 with the same port.
fn tcp_pair() -> (TcpListener, TcpListener, u16) {
    for _ in 0..20 {
        let allowed = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = allowed.local_addr().expect("addr").port();
        if let Ok(denied) = TcpListener::bind(("127.0.0.2", port)) {
            allowed.set_nonblocking(true).expect("nonblocking");
            denied.set_nonblocking(true).expect("nonblocking");
            return (allowed, denied, port);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

/// Connections waiting to be accepted (the kernel completes handshakes without accept).
fn accepted(listener: &TcpListener) -> usize {
    let mut n = 0;
    loop {
        match listener.accept() {
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Datagrams waiting on `socket`.
fn received(socket: &UdpSocket) -> usize {
    let mut buf = [0u8; 64];
    let mut n = 0;
    loop {
        match socket.recv(&mut buf) {
            Ok(_) => n += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

fn udp(addr: &str) -> UdpSocket {
    let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    socket.set_nonblocking(true).expect("nonblocking");
    socket
}

/// The audit log's records as JSON.
fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

/// `guard exec --profile P --audit-log LOG -- COMMAND...`
fn exec_logged(profile: &str, log: &Path, command: &[&str]) -> crate::support::Run {
    let log = log.to_string_lossy();
    let mut args = vec!["exec", "--profile", profile, "--audit-log", &log, "--"];
    args.extend_from_slice(command);
    guard(&args)
}

fn violations<'a>(records: &'a [serde_json::Value], op: &str) -> Vec<&'a serde_json::Value> {
    records
        .iter()
        .filter(|r| r["event"] == "violation" && r["detail"]["op"] == op)
        .collect()
}

#[test]
fn tcp_connects_outside_the_rules_fail_and_the_listener_sees_nothing() {
    require_root!();
    let (allowed, denied, port) = tcp_pair();
    let dir = TempDir::new("ebpf-tcp");
    let p = profile(
        &dir,
        "tcp",
        &format!("[network]\nconnect = [\"127.0.0.1:{port}\"]"),
    );
    // Outside the profile's write path: guard refuses to run with its own log writable.
    let logs = TempDir::new("logs");
    let log = logs.path().join("audit.jsonl");
    let script = format!(
        "echo a >/dev/tcp/127.0.0.1/{port} && echo ok-allowed; \
         echo b >/dev/tcp/127.0.0.2/{port} && echo ok-denied; exit 0"
    );
    let run = exec_logged(&p, &log, &["bash", "-c", &script]);
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("ok-allowed"), "{run}");
    assert!(!run.stdout.contains("ok-denied"), "{run}");
    assert!(run.stderr.contains("Operation not permitted"), "{run}");
    assert!(
        run.stderr
            .contains(&format!("connect to 127.0.0.2:{port}/tcp")),
        "{run}"
    );
    assert_eq!(accepted(&allowed), 1);
    assert_eq!(accepted(&denied), 0, "the denied listener saw a connection");

    let records = records(&log);
    let denied_records = violations(&records, "connect");
    assert_eq!(denied_records.len(), 1, "{records:#?}");
    let v = denied_records[0];
    assert_eq!(v["verdict"], "deny");
    assert_eq!(v["rule"], "network.connect");
    assert_eq!(v["enforcer"], "ebpf");
    assert_eq!(v["detail"]["dst"], format!("127.0.0.2:{port}"));
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "connect" && r["detail"]["dst"] == format!("127.0.0.1:{port}")),
        "{records:#?}"
    );
}

#[test]
fn udp_to_denied_hosts_never_arrives_connected_or_not() {
    require_root!();
    let allowed = udp("127.0.0.1:0");
    let port = allowed.local_addr().expect("addr").port();
    let denied = udp(&format!("127.0.0.2:{port}"));
    let dir = TempDir::new("ebpf-udp");
    let p = profile(
        &dir,
        "udp",
        &format!("[network]\nconnect = [\"127.0.0.1:{port}\"]"),
    );
    // bash's /dev/udp connects the socket (connect4); python's sendto does not (sendmsg4).
    let script = format!(
        "echo a >/dev/udp/127.0.0.1/{port}; echo b >/dev/udp/127.0.0.2/{port}; \
         {PYTHON} -c \"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for host in ('127.0.0.1', '127.0.0.2'):
    try:
        s.sendto(b'x', (host, {port}))
        print('sent', host)
    except OSError as e:
        print('refused', host, e.errno)
\"; exit 0"
    );
    let run = guard(&["exec", "--profile", &p, "--", "bash", "-c", &script]);
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("sent 127.0.0.1"), "{run}");
    assert!(
        run.stdout.contains("refused 127.0.0.2 1"),
        "EPERM expected: {run}"
    );
    assert_eq!(received(&allowed), 2, "{run}");
    assert_eq!(
        received(&denied),
        0,
        "the denied host got a datagram: {run}"
    );
}

#[test]
fn ipv6_and_ipv4_through_ipv6_sockets_follow_the_rules() {
    require_root!();
    let (allowed4, denied4, port) = tcp_pair();
    let Ok(allowed6) = TcpListener::bind(("::1", port)) else {
        eprintln!("skipping: [::1]:{port} is not available on this host (no IPv6 loopback)");
        return;
    };
    allowed6.set_nonblocking(true).expect("nonblocking");
    let denied_udp = udp(&format!("127.0.0.2:{port}"));
    let dir = TempDir::new("ebpf-v6");
    let p = profile(
        &dir,
        "v6",
        &format!("[network]\nconnect = [\"[::1]:{port}\", \"127.0.0.1:{port}\"]"),
    );
    let script = format!(
        "
import socket
def tcp6(host):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.connect((host, {port}))
        print('connected', host)
    except OSError as e:
        print('refused', host, e.errno)
    s.close()
for host in ('::1', '::ffff:127.0.0.1', '::ffff:127.0.0.2'):
    tcp6(host)
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try:
    u.sendto(b'x', ('::ffff:127.0.0.2', {port}))
    print('sent mapped')
except OSError as e:
    print('refused udp mapped', e.errno)
"
    );
    let run = guard(&["exec", "--profile", &p, "--", PYTHON, "-c", &script]);
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("connected ::1\n"), "{run}");
    assert!(run.stdout.contains("connected ::ffff:127.0.0.1"), "{run}");
    assert!(run.stdout.contains("refused ::ffff:127.0.0.2 1"), "{run}");
    assert!(run.stdout.contains("refused udp mapped 1"), "{run}");
    assert_eq!(accepted(&allowed6), 1);
    assert_eq!(accepted(&allowed4), 1);
    assert_eq!(
        accepted(&denied4),
        0,
        "reached through an IPv6 socket: {run}"
    );
    assert_eq!(received(&denied_udp), 0, "{run}");
}

/// A one-shot HTTP server answering `body`; returns its port and how many requests it served.
fn http_server(body: &'static str) -> (u16, Arc<AtomicUsize>, Arc<AtomicBool>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let served = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (count, done) = (served.clone(), stop.clone());
    let handle = std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking");
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf);
                    let _ = write!(
                        stream,
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    });
    (port, served, stop, handle)
}

#[test]
fn curl_reaches_the_allowed_server_and_not_the_other() {
    require_root!();
    let (good, good_served, stop_good, good_thread) = http_server("hello from the allowed one");
    let (bad, bad_served, stop_bad, bad_thread) = http_server("you should not see this");
    let dir = TempDir::new("ebpf-curl");
    let p = profile(
        &dir,
        "curl",
        &format!("[network]\nconnect = [\"127.0.0.1:{good}\"]"),
    );
    let script = format!(
        "curl -sS -m 5 http://127.0.0.1:{good}/; echo; curl -sS -m 5 http://127.0.0.1:{bad}/; \
         echo rc=$?"
    );
    let run = guard(&["exec", "--profile", &p, "--", "bash", "-c", &script]);
    stop_good.store(true, Ordering::Relaxed);
    stop_bad.store(true, Ordering::Relaxed);
    good_thread.join().expect("server thread");
    bad_thread.join().expect("server thread");
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("hello from the allowed one"), "{run}");
    assert!(!run.stdout.contains("you should not see this"), "{run}");
    assert!(!run.stdout.contains("rc=0"), "{run}");
    assert_eq!(good_served.load(Ordering::Relaxed), 1);
    assert_eq!(bad_served.load(Ordering::Relaxed), 0);
}

/// A profile that may execute /usr/bin and the test dir (Landlock) but only bash and touch
/// (`process.exec`), so anything else that runs was let through by Landlock and must be killed
/// by the exec probe.
fn exec_profile(dir: &TempDir) -> String {
    // Landlock may execute the test dir; `process.exec` (bash, touch) does not overlap the
    // write path, so the profile needs no `exec_writable`.
    write_profile(
        dir,
        "exec",
        &format!(
            r#"
name = "exec"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "{dir}"]
write = ["{dir}"]
execute = ["/usr/bin", "/usr/lib", "{dir}"]
[process]
exec = ["/usr/bin/bash", "/usr/bin/touch"]
"#,
            dir = dir.path().display()
        ),
    )
}

#[test]
fn forbidden_binaries_die_before_their_first_instruction() {
    require_root!();
    let dir = TempDir::new("ebpf-exec");
    let p = exec_profile(&dir);
    let copy = dir.path().join("touch-copy");
    std::fs::copy("/usr/bin/touch", &copy).expect("copy touch");
    let loader = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .into_iter()
        .find(|l| Path::new(l).exists())
        .expect("a dynamic loader");
    let marker = |name: &str| dir.path().join(name);
    let cases: [(&str, Vec<String>); 3] = [
        (
            "a copy of an allowed binary",
            vec![
                copy.display().to_string(),
                marker("by-copy").display().to_string(),
            ],
        ),
        (
            "a binary outside process.exec",
            vec![
                "/usr/bin/mkdir".into(),
                marker("by-mkdir").display().to_string(),
            ],
        ),
        (
            "an allowed binary run through the dynamic loader",
            vec![
                loader.into(),
                "/usr/bin/touch".into(),
                marker("by-loader").display().to_string(),
            ],
        ),
    ];
    // Where the kernel runs BPF LSM programs (the VM of `cargo xtask vm-test`),
    // bprm_check_security refuses the exec itself: EPERM, 126, nothing ran. Elsewhere the exec
    // tracepoint kills the new image before its first instruction: 137.
    let lsm = crate::support::bpf_lsm_available();
    for (what, command) in &cases {
        let mut args = vec!["exec", "--profile", &p, "--"];
        args.extend(command.iter().map(String::as_str));
        let run = guard(&args);
        if lsm {
            assert_eq!(run.code(), 126, "{what}: {run}");
            assert!(
                run.stderr.contains("Operation not permitted"),
                "{what}: {run}"
            );
        } else {
            assert_eq!(run.code(), 137, "{what}: {run}");
            assert!(
                run.stderr
                    .contains("not in the exec allowlist (rule process.exec)"),
                "{what}: {run}"
            );
        }
        let made = command.last().expect("marker");
        assert!(!Path::new(made).exists(), "{what} ran: {made} exists");
    }
    let ok = guard(&[
        "exec",
        "--profile",
        &p,
        "--",
        "bash",
        "-c",
        &format!(
            "touch {a} && /usr/bin/touch {b}",
            a = marker("ok-a").display(),
            b = marker("ok-b").display()
        ),
    ]);
    assert_eq!(ok.code(), 0, "{ok}");
    assert!(marker("ok-a").exists() && marker("ok-b").exists());
}

#[test]
fn two_sandboxes_at_once_each_get_their_own_policy() {
    require_root!();
    let (one, two, port) = tcp_pair();
    let dir = TempDir::new("ebpf-two");
    let p1 = profile(
        &dir,
        "one",
        &format!("[network]\nconnect = [\"127.0.0.1:{port}\"]"),
    );
    let p2 = profile(
        &dir,
        "two",
        &format!("[network]\nconnect = [\"127.0.0.2:{port}\"]"),
    );
    // Both sleep first so that both are registered in the probes at the same time.
    let script = format!(
        "sleep 0.5; for h in 127.0.0.1 127.0.0.2; do echo x >/dev/tcp/$h/{port} && echo \"ok $h\"; \
         done; exit 0"
    );
    let spawn = |p: String, script: String| {
        std::thread::spawn(move || guard(&["exec", "--profile", &p, "--", "bash", "-c", &script]))
    };
    let a = spawn(p1, script.clone());
    let b = spawn(p2, script);
    let (a, b) = (a.join().expect("run one"), b.join().expect("run two"));
    assert!(
        a.stdout.contains("ok 127.0.0.1") && !a.stdout.contains("ok 127.0.0.2"),
        "{a}"
    );
    assert!(
        b.stdout.contains("ok 127.0.0.2") && !b.stdout.contains("ok 127.0.0.1"),
        "{b}"
    );
    assert_eq!(accepted(&one), 1);
    assert_eq!(accepted(&two), 1);
}

#[test]
fn rate_limits_are_counted_per_sandbox_in_the_kernel() {
    require_root!();
    let (listener, _, port) = tcp_pair();
    let dir = TempDir::new("ebpf-rate");
    let p = profile(
        &dir,
        "rate",
        &format!(
            "[network]\nconnect = [\"127.0.0.1:{port}\"]\n\
             [limits]\nexecs_per_minute = 3\nconnects_per_minute = 2"
        ),
    );
    // bash is the first exec of the three allowed.
    let script = format!(
        "for i in 1 2 3; do echo x >/dev/tcp/127.0.0.1/{port}; echo \"connect$i=$?\"; done; \
         for i in 1 2 3; do /usr/bin/true; echo \"exec$i=$?\"; done"
    );
    let run = guard(&["exec", "--profile", &p, "--", "bash", "-c", &script]);
    assert!(run.stdout.contains("connect1=0"), "{run}");
    assert!(run.stdout.contains("connect2=0"), "{run}");
    assert!(run.stdout.contains("connect3=1"), "{run}");
    assert!(run.stdout.contains("exec1=0"), "{run}");
    assert!(run.stdout.contains("exec2=0"), "{run}");
    assert!(run.stdout.contains("exec3=137"), "{run}");
    assert!(
        run.stderr.contains("rule limits.connects_per_minute")
            && run.stderr.contains("rule limits.execs_per_minute"),
        "{run}"
    );
    assert_eq!(accepted(&listener), 2);
}

#[test]
fn on_violation_kill_ends_the_whole_sandbox() {
    require_root!();
    let (_, denied, port) = tcp_pair();
    let dir = TempDir::new("ebpf-kill");
    let p = profile(
        &dir,
        "kill",
        &format!("[network]\nconnect = [\"127.0.0.1:{port}\"]\n[on_violation]\nnetwork = \"kill\""),
    );
    let survived = dir.path().join("survived");
    let script = format!(
        "echo x >/dev/tcp/127.0.0.2/{port}; sleep 3; touch {}",
        survived.display()
    );
    let run = guard(&["exec", "--profile", &p, "--", "bash", "-c", &script]);
    assert_eq!(run.code(), 137, "{run}");
    assert!(run.stderr.contains("guard: killed"), "{run}");
    assert!(run.stderr.contains("on_violation = kill"), "{run}");
    assert!(
        !survived.exists(),
        "the sandbox went on after the violation"
    );
    assert_eq!(accepted(&denied), 0);
}

#[test]
fn audit_mode_lets_it_through_and_records_it() {
    require_root!();
    let (_, other, port) = tcp_pair();
    let dir = TempDir::new("ebpf-audit");
    let p = profile(
        &dir,
        "audit",
        &format!("[network]\nconnect = [\"127.0.0.1:{port}\"]"),
    );
    // Outside the profile's write path: guard refuses to run with its own log writable.
    let logs = TempDir::new("logs");
    let log = logs.path().join("audit.jsonl");
    let run = guard(&[
        "exec",
        "--profile",
        &p,
        "--mode",
        "audit",
        "--audit-log",
        &log.to_string_lossy(),
        "--",
        "bash",
        "-c",
        &format!("echo x >/dev/tcp/127.0.0.2/{port}"),
    ]);
    assert_eq!(run.code(), 0, "{run}");
    assert_eq!(accepted(&other), 1);
    let records = records(&log);
    // bash's name-service lookup also tries nscd's unix socket, recorded under network.unix.
    let audited: Vec<_> = violations(&records, "connect")
        .into_iter()
        .filter(|r| r["detail"]["protocol"] != "unix")
        .collect();
    assert_eq!(audited.len(), 1, "{records:#?}");
    assert_eq!(audited[0]["verdict"], "audit");
}

#[test]
fn ten_thousand_execs_and_connects_are_all_recorded_or_reported_lost() {
    require_root!();
    const N: usize = 10_000;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = Arc::new(AtomicBool::new(false));
    let done = stop.clone();
    listener.set_nonblocking(true).expect("nonblocking");
    let acceptor = std::thread::spawn(move || {
        let mut n = 0usize;
        while !done.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok(_) => n += 1,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        n + accepted(&listener)
    });
    let dir = TempDir::new("ebpf-storm");
    let p = profile(
        &dir,
        "storm",
        &format!("[network]\nconnect = [\"127.0.0.1:{port}\"]"),
    );
    // Outside the profile's write path: guard refuses to run with its own log writable.
    let logs = TempDir::new("logs");
    let log = logs.path().join("audit.jsonl");
    let script = format!(
        "for ((i = 0; i < {N}; i++)); do /usr/bin/true; done; {PYTHON} -c \"
import socket
for _ in range({N}):
    s = socket.create_connection(('127.0.0.1', {port}))
    s.close()
\""
    );
    let run = exec_logged(&p, &log, &["bash", "-c", &script]);
    stop.store(true, Ordering::Relaxed);
    let connections = acceptor.join().expect("acceptor");
    assert_eq!(run.code(), 0, "{run}");
    assert_eq!(connections, N);

    let records = records(&log);
    let execs = records
        .iter()
        .filter(|r| r["event"] == "exec" && r["detail"]["path"] == "/usr/bin/true")
        .count();
    let connects = records
        .iter()
        .filter(|r| r["event"] == "connect" && r["detail"]["dst"] == format!("127.0.0.1:{port}"))
        .count();
    let lost: u64 = records
        .iter()
        .filter(|r| r["rule"] == "audit.lost_events")
        .map(|r| r["detail"]["lost"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        (execs + connects) as u64 + lost,
        2 * N as u64,
        "execs {execs}, connects {connects}, reported lost {lost}"
    );
    if lost > 0 {
        assert!(run.stderr.contains("were lost"), "{run}");
    }
}

#[test]
fn a_finished_sandbox_leaves_nothing_in_the_probes() {
    require_root!();
    let dir = TempDir::new("ebpf-clean");
    let p = profile(&dir, "clean", "");
    // Outside the profile's write path: guard refuses to run with its own log writable.
    let logs = TempDir::new("logs");
    let log = logs.path().join("audit.jsonl");
    let run = exec_logged(&p, &log, &["/usr/bin/true"]);
    assert_eq!(run.code(), 0, "{run}");
    // Registering and removing the sandbox's entries is silent when all goes well.
    assert!(run.stderr.is_empty(), "{run}");
    let records = records(&log);
    let start = records.first().expect("start record");
    let cgroup_id = start["detail"]["cgroup_id"].as_u64().expect("cgroup_id");
    assert!(
        start["detail"]["probes"] == "loaded" || start["detail"]["probes"] == "pinned",
        "{start}"
    );
    let mut checked = 0;
    for dir in guard::ebpf::pins::all_pin_dirs() {
        let Ok(data) = aya::maps::MapData::from_pin(dir.join("SANDBOXES")) else {
            continue;
        };
        let map: aya::maps::HashMap<_, u64, guard::ebpf::SandboxPolicy> =
            aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(data).expect("map"))
                .expect("hash map");
        assert!(
            map.get(&cgroup_id, 0).is_err(),
            "cgroup {cgroup_id} still has a policy in {}",
            dir.display()
        );
        checked += 1;
    }
    assert!(checked > 0, "no pinned probes found to check");
}

#[test]
fn concurrent_sandboxes_each_read_only_their_own_records_from_reused_ring_slots() {
    require_root!();
    let dir = TempDir::new("ebpf-rings");
    let p = profile(&dir, "rings", "");
    // Two waves of four sandboxes at once: the second wave claims the ring slots the first one
    // used (a slot keeps its ring buffer), so a record left in a reused ring would show up in
    // the wrong log.
    let logs = TempDir::new("ring-logs");
    for wave in 0..2 {
        let runs: Vec<_> = (0..4)
            .map(|i| {
                let marker = format!("marker-{wave}-{i}");
                let log = logs.path().join(format!("{marker}.jsonl"));
                let p = p.clone();
                std::thread::spawn(move || {
                    let script = format!("sleep 0.3; /usr/bin/echo {marker}");
                    let run = exec_logged(&p, &log, &["bash", "-c", &script]);
                    (marker, log, run)
                })
            })
            .collect();
        for handle in runs {
            let (marker, log, run) = handle.join().expect("sandbox thread");
            assert_eq!(run.code(), 0, "{run}");
            assert!(run.stdout.contains(&marker), "{run}");
            let records = records(&log);
            let echoes: Vec<_> = records
                .iter()
                .filter(|r| r["event"] == "exec" && r["exe"] == "/usr/bin/echo")
                .collect();
            assert_eq!(echoes.len(), 1, "{marker}: {records:#?}");
            assert_eq!(
                echoes[0]["detail"]["argv"][1],
                marker.as_str(),
                "{records:#?}"
            );
            for record in &records {
                let text = record.to_string();
                assert!(
                    !text.contains("marker-") || text.contains(&marker),
                    "{marker}'s log has another sandbox's record: {text}"
                );
            }
        }
    }
}
