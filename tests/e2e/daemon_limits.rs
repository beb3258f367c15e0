//! The daemon trusts the kernel, not the caller (issue 16 point 5): held partial frames cost it
//! nothing it keeps, uid 0 without root's capabilities is an ordinary user, `${CWD}` at `/` is
//! refused, and a request too large for a frame is said as such. Observed from outside: the
//! daemon's VmRSS, exit statuses, files the command would have written, the audit log.

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::daemon_support::{Daemon, TestUser, shared_guard, world_dir};
use crate::support::{Run, TempDir, guard_bin, require_peer_pidfd, require_root, write_profile};

/// A profile writing `${CWD}` (what a build tool gets) and reading the system.
fn cwd_profile(name: &str) -> String {
    format!(
        r#"
name = "{name}"
extends = ["base"]
allow_weaker = ["ebpf.network", "ebpf.exec"]

[filesystem]
read = ["/usr", "/bin", "/etc", "/lib", "/lib64"]
write = ["${{CWD}}"]
execute = ["/usr/bin", "/bin", "/usr/lib", "/lib", "/lib64"]

[process]
env = {{ keep = ["PATH"] }}
"#
    )
}

/// The daemon's resident memory in KiB (`VmRSS` of /proc/<pid>/status).
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// Opens `n` connections to `socket` as `user`, sends each a frame header announcing 1 MiB and
/// 60 KiB of it, prints `held <n>` and keeps them until its stdin closes.
const HOLDER: &str = r#"
import resource, socket, struct, sys
n, path = int(sys.argv[1]), sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 64)), hard))
held, closed = [], 0
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    try:
        s.send(struct.pack(">I", 1 << 20) + b"x" * (60 * 1024))
    except OSError:
        closed += 1
    held.append(s)
print("held", len(held), "refused-at-send", closed, flush=True)
sys.stdin.read()
"#;

#[test]
fn a_thousand_held_partial_frames_leave_the_daemon_small_and_serving() {
    require_root!();
    let user = TestUser::new(&[]);
    let work = TempDir::new("daemon-frames");
    let _w = world_dir(&work, "w");
    let daemon = Daemon::start(
        &format!(
            "[[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-l-cwd\"]\n",
            user.name
        ),
        &[("e2e-l-cwd", &cwd_profile("e2e-l-cwd"))],
    );
    let before = rss_kib(daemon.pid());
    // The attacker is a user the daemon serves (a stranger is refused before anything is read).
    let mut holder = Command::new("setpriv")
        .args([
            "--reuid",
            &user.name,
            "--regid",
            &user.name,
            "--init-groups",
        ])
        .args(["/usr/bin/python3", "-c", HOLDER, "1000"])
        .arg(&daemon.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    println!("holder: {}", line.trim());
    assert!(line.starts_with("held 1000"), "{line}");
    // The daemon has seen them all by now: a request of root's is accepted after them.
    let start = Instant::now();
    let out = daemon.root(&[
        "exec",
        "--daemon",
        "--profile",
        "e2e-l-cwd",
        "--",
        "sh",
        "-c",
        "echo served",
    ]);
    let served_in = start.elapsed();
    let during = rss_kib(daemon.pid());
    println!(
        "daemon VmRSS {before} KiB before, {during} KiB with 1000 held partial frames; a request was served in {served_in:?}"
    );
    assert_eq!(out.code(), 0, "{out}\n{}", daemon.log_text());
    assert_eq!(out.stdout.trim(), "served", "{out}");
    assert!(
        during < 64 * 1024,
        "daemon grew to {during} KiB:\n{}",
        daemon.log_text()
    );
    drop(holder.stdin.take());
    let _ = holder.wait();
    let log = daemon.log_text();
    assert!(log.contains("too many connections"), "{log}");
}

#[test]
fn uid_0_without_root_capabilities_is_an_ordinary_user_of_the_daemon() {
    require_root!();
    require_peer_pidfd!();
    let work = TempDir::new("daemon-capless");
    let daemon = Daemon::start("", &[("e2e-l-cwd", &cwd_profile("e2e-l-cwd"))]);
    let marker = work.path().join("ran");
    let touch = format!("echo x > {}", marker.display());
    let args = [
        "exec",
        "--daemon",
        "--profile",
        "e2e-l-cwd",
        "--",
        "sh",
        "-c",
        &touch,
    ];
    // Root with its capabilities is root: served without an [[allow]] entry.
    let root: Run = Command::new(shared_guard())
        .args(args)
        .env("GUARD_SOCKET", &daemon.socket)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(root.code(), 0, "{root}\n{}", daemon.log_text());
    assert!(marker.exists(), "root's request did not run");
    std::fs::remove_file(&marker).unwrap();
    // The same uid with every capability dropped (bounding set emptied before exec) is not.
    let capless: Run = Command::new("setpriv")
        .args(["--bounding-set=-all", "--inh-caps=-all"])
        .arg(shared_guard())
        .args(args)
        .env("GUARD_SOCKET", &daemon.socket)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(capless.code(), 125, "{capless}");
    assert!(
        capless.stderr.contains("without root's capabilities")
            && capless.stderr.contains("may not use the guard daemon"),
        "{capless}"
    );
    assert!(!marker.exists(), "the capability-less caller's command ran");
    let refusals: Vec<_> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["rule"] == "daemon.allow")
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["detail"]["uid"], 0);
}

#[test]
fn cwd_at_the_root_directory_is_refused_locally_and_through_the_daemon() {
    require_root!();
    let work = TempDir::new("cwd-root");
    let profile = write_profile(&work, "cwd", &cwd_profile("e2e-l-cwd"));
    let marker = Path::new("/guard-e2e-cwd-root-marker");
    let _ = std::fs::remove_file(marker);
    let touch = format!("echo x > {}", marker.display());
    // Bare, from `/`, root writes there: what `${CWD}` = `/` would grant.
    let bare = Command::new("sh")
        .args(["-c", &touch])
        .current_dir("/")
        .status()
        .unwrap();
    assert!(bare.success() && marker.exists());
    std::fs::remove_file(marker).unwrap();
    for mode in ["enforce", "audit"] {
        let out: Run = Command::new(guard_bin())
            .args(["exec", "--mode", mode, "--profile", &profile, "--"])
            .args(["sh", "-c", &touch])
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into();
        assert_eq!(out.code(), 125, "{mode}: {out}");
        assert!(
            out.stderr.contains("${CWD} is `/`, the root directory"),
            "{mode}: {out}"
        );
        assert!(!marker.exists(), "{mode}: the command ran");
    }
    let user = TestUser::new(&[]);
    let daemon = Daemon::start(
        &format!(
            "[[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-l-cwd\"]\naudit_mode = true\n",
            user.name
        ),
        &[("e2e-l-cwd", &cwd_profile("e2e-l-cwd"))],
    );
    for mode in ["enforce", "audit"] {
        let out = user.run(
            &daemon.socket,
            Path::new("/"),
            &[
                "exec",
                "--mode",
                mode,
                "--profile",
                "e2e-l-cwd",
                "--",
                "sh",
                "-c",
                &touch,
            ],
        );
        assert_eq!(out.code(), 125, "{mode}: {out}");
        assert!(
            out.stderr.contains("${CWD} is `/`, the root directory"),
            "{mode}: {out}"
        );
        assert!(!marker.exists(), "{mode}: the command ran");
    }
}

#[test]
fn a_request_over_the_frame_limit_says_so_before_connecting() {
    require_root!();
    let work = TempDir::new("daemon-bigenv");
    let daemon = Daemon::start("", &[("e2e-l-cwd", &cwd_profile("e2e-l-cwd"))]);
    // 12 variables of 100 KiB: 1.2 MiB of environment (each under the kernel's 128 KiB limit
    // per string, the whole under ARG_MAX), over the 1 MiB frame limit.
    let value = "v".repeat(100 * 1024);
    let mut command = Command::new(shared_guard());
    command
        .args(["exec", "--daemon", "--profile", "e2e-l-cwd", "--", "true"])
        .env("GUARD_SOCKET", &daemon.socket)
        .current_dir(work.path())
        .stdin(Stdio::null());
    for i in 0..12 {
        command.env(format!("GUARD_E2E_BIG{i}"), &value);
    }
    let out: Run = command.output().unwrap().into();
    assert_eq!(out.code(), 125, "{out}");
    assert!(
        out.stderr
            .contains("over the guard daemon's limit of 1048576 bytes (1 MiB)"),
        "{out}"
    );
    assert!(!out.stderr.contains("4294967295"), "{out}");
    // A request just under the limit is served.
    let mut command = Command::new(shared_guard());
    command
        .args(["exec", "--daemon", "--profile", "e2e-l-cwd", "--", "true"])
        .env("GUARD_SOCKET", &daemon.socket)
        .current_dir(work.path())
        .stdin(Stdio::null());
    for i in 0..9 {
        command.env(format!("GUARD_E2E_BIG{i}"), &value);
    }
    let out: Run = command.output().unwrap().into();
    assert_eq!(out.code(), 0, "{out}\n{}", daemon.log_text());
    let _ = std::io::stdout().flush();
}

#[test]
fn an_unfinished_request_is_closed_after_the_request_timeout() {
    require_root!();
    use std::io::Read as _;
    let daemon = Daemon::start("", &[]);
    let mut stream = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    // Root passes the checks before reading, so the daemon does read this partial frame.
    stream.write_all(&1000u32.to_be_bytes()).unwrap();
    stream.write_all(b"{\"version\":1,").unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    println!(
        "the daemon closed the idle connection after {:?}",
        start.elapsed()
    );
    assert!(read.is_ok(), "still open after 30 s: {read:?}");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    let log = daemon.log_text();
    assert!(log.contains("no request within 10s"), "{log}");
    // And it still serves.
    let out = daemon.root(&["status"]);
    assert_eq!(out.code(), 0, "{out}");
}

#[test]
fn the_client_gives_up_on_a_daemon_that_never_accepts_and_says_why() {
    require_root!();
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
    };
    use std::os::fd::AsRawFd as _;
    let dir = TempDir::new("client-timeout");
    let path = dir.path().join("hung.sock");
    // A "daemon" that listens and never accepts, its queue filled by connections of ours.
    let listener = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let addr = UnixAddr::new(&path).unwrap();
    bind(listener.as_raw_fd(), &addr).unwrap();
    listen(&listener, Backlog::new(0).unwrap()).unwrap();
    let mut queued = Vec::new();
    loop {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => queued.push(fd),
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(err) => panic!("{err}"),
        }
        assert!(queued.len() < 1000, "the queue never filled");
    }
    // Bare: a blocking connect would wait for as long as the daemon hangs.
    let start = Instant::now();
    let out: Run = Command::new(shared_guard())
        .args(["exec", "--daemon", "--profile", "minimal", "--", "true"])
        .env("GUARD_SOCKET", &path)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    println!("the client gave up after {:?}", start.elapsed());
    assert_eq!(out.code(), 125, "{out}");
    assert!(
        out.stderr
            .contains("gave up connecting to the guard daemon")
            && out.stderr.contains("queue of new connections stayed full"),
        "{out}"
    );
    drop(queued);
}

#[test]
fn uid_0_without_root_capabilities_does_not_switch_to_a_profiles_user() {
    require_root!();
    require_peer_pidfd!();
    let work = TempDir::new("daemon-capless-user");
    let out_dir = crate::daemon_support::world_dir(&work, "w");
    let profile = format!(
        r#"
name = "e2e-l-as"
extends = ["base"]
allow_weaker = ["ebpf.network", "ebpf.exec"]
[filesystem]
read = ["/usr", "/bin", "/etc", "/lib", "/lib64"]
write = ["{w}"]
execute = ["/usr/bin", "/bin", "/usr/lib", "/lib", "/lib64"]
[process]
user = "nobody"
env = {{ keep = ["PATH"] }}
"#,
        w = out_dir.display()
    );
    // uid 0 is granted the profile by name, as any user could be.
    let daemon = Daemon::start(
        "[[allow]]\nusers = [\"root\"]\nprofiles = [\"e2e-l-as\"]\n",
        &[("e2e-l-as", &profile)],
    );
    let id_file = out_dir.join("id");
    let write_id = format!("id -u > {}", id_file.display());
    let args = [
        "exec",
        "--daemon",
        "--profile",
        "e2e-l-as",
        "--",
        "sh",
        "-c",
        &write_id,
    ];
    // Root switches to the profile's user, as it would locally.
    let root: Run = Command::new(shared_guard())
        .args(args)
        .env("GUARD_SOCKET", &daemon.socket)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(root.code(), 0, "{root}\n{}", daemon.log_text());
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid;
    assert_eq!(
        std::fs::read_to_string(&id_file).unwrap().trim(),
        nobody.to_string()
    );
    std::fs::remove_file(&id_file).unwrap();
    // Without root's capabilities it could not switch users itself; the daemon does not do it.
    let capless: Run = Command::new("setpriv")
        .args(["--bounding-set=-all", "--inh-caps=-all"])
        .arg(shared_guard())
        .args(args)
        .env("GUARD_SOCKET", &daemon.socket)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(capless.code(), 125, "{capless}");
    assert!(
        capless.stderr.contains("does not switch to another user"),
        "{capless}"
    );
    assert!(!id_file.exists(), "the command ran");
}
