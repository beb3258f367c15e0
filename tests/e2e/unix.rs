//! `network.unix` by path, from outside: listeners the test owns (stream and datagram) count
//! what reaches them, a real guard daemon stands for the socket a tool must never reach, and
//! the audit log is read back.

use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::daemon_support::Daemon;
use crate::support::{Run, TempDir, guard, guard_with_env, require_root, write_profile};

/// Why this kernel cannot check unix socket paths (no cgroup unix hooks before Linux 6.7), as
/// `guard explain` says it; `None` where it can.
pub fn unix_hooks_skip_reason() -> Option<String> {
    let dir = TempDir::new("unix-probe");
    let p = write_profile(
        &dir,
        "probe",
        "extends = [\"base\"]\n[network]\nunix = [\"/run/guard-e2e-probe.sock\"]\n",
    );
    let out = guard(&["explain", &p]);
    out.stdout
        .lines()
        .find(|l| l.contains("no unix socket path hook"))
        .map(|l| format!("this kernel cannot check unix socket paths ({})", l.trim()))
}

/// Skips a test that needs the unix socket hooks, saying why; the 6.12 VM runs it.
macro_rules! require_unix_hooks {
    () => {
        if let Some(reason) = unix_hooks_skip_reason() {
            eprintln!("skipping: {reason}");
            return;
        }
    };
}

/// Sockets the test listens on, and what reached each.
struct Listeners {
    dir: TempDir,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Listeners {
    /// Stream sockets `names` and datagram sockets `dgrams` in a fresh directory.
    fn new(names: &[&str], dgrams: &[&str]) -> Self {
        let dir = TempDir::new("unix-listeners");
        let seen = Arc::new(Mutex::new(Vec::new()));
        for name in names {
            let listener = UnixListener::bind(dir.path().join(name)).unwrap();
            let (seen, name) = (seen.clone(), (*name).to_owned());
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    seen.lock().unwrap().push(name.clone());
                    drop(stream);
                }
            });
        }
        for name in dgrams {
            let socket = UnixDatagram::bind(dir.path().join(name)).unwrap();
            let (seen, name) = (seen.clone(), (*name).to_owned());
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while socket.recv(&mut buf).is_ok() {
                    seen.lock().unwrap().push(name.clone());
                }
            });
        }
        Self { dir, seen }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// How often `name` was reached, after a moment for the listener threads.
    fn reached(&self, name: &str) -> usize {
        std::thread::sleep(std::time::Duration::from_millis(200));
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|n| *n == name)
            .count()
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

/// Connects (stream) or sends (datagram) to each argument, `s:PATH` or `d:PATH`, and prints
/// what happened; run from its own directory so relative paths name sockets there.
const CLIENT: &str = r#"
import socket, sys
for arg in sys.argv[1:]:
    kind, path = arg.split(":", 1)
    try:
        if kind == "s":
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect(path)
        else:
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"x", path)
        print(f"{arg} ok")
    except OSError as e:
        print(f"{arg} errno {e.errno}")
"#;

/// Runs the client bare (`profile` None) or under `profile`, with the audit log at `log`.
fn client(dir: &Path, profile: Option<&str>, log: &Path, args: &[String]) -> Run {
    let script = dir.join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let mut argv: Vec<String> = Vec::new();
    if let Some(profile) = profile {
        argv.extend(
            [
                "exec",
                "--profile",
                profile,
                "--audit-log",
                log.to_str().unwrap(),
                "--workdir",
                dir.to_str().unwrap(),
                "--",
            ]
            .map(String::from),
        );
    }
    argv.push("/usr/bin/python3".into());
    argv.push(script.display().to_string());
    argv.extend(args.iter().cloned());
    if profile.is_some() {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        // The python profile writes ${TMPDIR}: a private one, not the /tmp holding the
        // listeners (guard refuses a listed socket the tool could replace).
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        guard_with_env(&argv, &[("TMPDIR", tmp.to_str().unwrap())])
    } else {
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(dir)
            .output()
            .unwrap()
            .into()
    }
}

fn profile(dir: &TempDir, unix: &[PathBuf], read: &Path) -> String {
    let list: Vec<String> = unix
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    write_profile(
        dir,
        "unix",
        &format!(
            "extends = [\"python\"]\n[filesystem]\nread = [{read:?}]\n[network]\nunix = [{}]\n",
            list.join(", "),
            read = read.display().to_string()
        ),
    )
}

fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_listed_socket_is_reached_and_another_and_the_daemons_are_not() {
    require_root!();
    require_unix_hooks!();
    let l = Listeners::new(&["ok.sock", "other.sock"], &["okd.sock", "otherd.sock"]);
    let daemon = Daemon::start("", &[]);
    let work = TempDir::new("unix-work");
    let logs = TempDir::new("unix-logs");
    let log = logs.path().join("audit.jsonl");
    let args: Vec<String> = vec![
        format!("s:{}", l.path("ok.sock").display()),
        format!("s:{}", l.path("other.sock").display()),
        format!("d:{}", l.path("okd.sock").display()),
        format!("d:{}", l.path("otherd.sock").display()),
        format!("s:{}", daemon.socket.display()),
    ];
    // Bare, every socket is reached, the daemon's included.
    let bare = client(work.path(), None, &log, &args);
    for arg in &args {
        assert!(bare.stdout.contains(&format!("{arg} ok")), "{bare}");
    }
    for name in ["ok.sock", "other.sock", "okd.sock", "otherd.sock"] {
        assert_eq!(l.reached(name), 1, "{name} bare");
    }
    l.clear();
    let daemon_records = daemon.audit().len();

    let p = profile(
        &work,
        &[l.path("ok.sock"), l.path("okd.sock")],
        l.dir.path(),
    );
    let out = client(work.path(), Some(&p), &log, &args);
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.contains(&format!("{} ok", args[0])), "{out}");
    assert!(
        out.stdout.contains(&format!("{} errno 1", args[1])),
        "{out}"
    );
    assert!(out.stdout.contains(&format!("{} ok", args[2])), "{out}");
    assert!(
        out.stdout.contains(&format!("{} errno 1", args[3])),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("{} errno 1", args[4])),
        "{out}"
    );
    assert_eq!(l.reached("ok.sock"), 1);
    assert_eq!(l.reached("okd.sock"), 1);
    assert_eq!(
        l.reached("other.sock"),
        0,
        "the unlisted stream socket was reached"
    );
    assert_eq!(
        l.reached("otherd.sock"),
        0,
        "the unlisted datagram socket got data"
    );
    // The daemon never heard from the sandbox (the bare connection left its records).
    assert_eq!(
        daemon.audit().len(),
        daemon_records,
        "the daemon heard from the sandbox"
    );
    let denied: Vec<String> = records(&log)
        .iter()
        .filter(|r| r["verdict"] == "deny" && r["rule"] == "network.unix")
        .map(|r| r["detail"]["path"].as_str().unwrap_or_default().to_owned())
        .collect();
    for path in [
        &l.path("other.sock"),
        &l.path("otherd.sock"),
        &daemon.socket,
    ] {
        assert!(
            denied.contains(&path.display().to_string()),
            "no record for {}: {denied:?}",
            path.display()
        );
    }
}

#[test]
fn another_spelling_of_a_listed_socket_is_refused() {
    require_root!();
    require_unix_hooks!();
    let l = Listeners::new(&["ok.sock", "other.sock"], &[]);
    let work = TempDir::new("unix-spelling");
    let logs = TempDir::new("unix-spelling-logs");
    let log = logs.path().join("audit.jsonl");
    // A link the tool could make in its workspace, to the unlisted socket; and the listed one
    // by a relative path from its directory.
    std::os::unix::fs::symlink(l.path("other.sock"), work.path().join("link.sock")).unwrap();
    let args = vec![
        format!("s:{}", work.path().join("link.sock").display()),
        format!("s:{}", l.path("ok.sock").display()),
    ];
    let bare = client(work.path(), None, &log, &args);
    assert!(bare.stdout.contains(&format!("{} ok", args[0])), "{bare}");
    l.clear();
    let p = profile(&work, &[l.path("ok.sock")], l.dir.path());
    let out = client(work.path(), Some(&p), &log, &args);
    assert!(
        out.stdout.contains(&format!("{} errno 1", args[0])),
        "{out}"
    );
    assert!(out.stdout.contains(&format!("{} ok", args[1])), "{out}");
    assert_eq!(
        l.reached("other.sock"),
        0,
        "the link led to the unlisted socket"
    );
    l.clear();
    // The listed socket by a relative path: not the listed spelling, refused (fail closed).
    let relative = format!(
        "s:../{}/ok.sock",
        l.dir.path().file_name().unwrap().to_str().unwrap()
    );
    let bare = client(work.path(), None, &log, std::slice::from_ref(&relative));
    assert!(bare.stdout.contains(&format!("{relative} ok")), "{bare}");
    let out = client(work.path(), Some(&p), &log, std::slice::from_ref(&relative));
    assert!(out.stdout.contains(&format!("{relative} errno 1")), "{out}");
}

#[test]
fn a_listed_socket_the_tool_could_replace_is_refused_before_anything_runs() {
    require_root!();
    let work = TempDir::new("unix-replaceable");
    let marker = work.path().join("ran");
    // The python profile writes ${CWD}: a socket there could be swapped for a link.
    let p = write_profile(
        &work,
        "replaceable",
        "extends = [\"python\"]\n[network]\nunix = [\"${CWD}/app.sock\"]\n",
    );
    let check = guard(&["check", &p]);
    assert_ne!(check.code(), 0, "{check}");
    assert!(check.stderr.contains("lies in the write path"), "{check}");
    let out = guard(&[
        "exec",
        "--profile",
        &p,
        "--workdir",
        work.path().to_str().unwrap(),
        "--",
        "/usr/bin/python3",
        "-c",
        &format!("open({:?}, 'w')", marker.display().to_string()),
    ]);
    assert_eq!(out.code(), 125, "{out}");
    assert!(out.stderr.contains("network.unix"), "{out}");
    assert!(!marker.exists(), "the command ran");
}
