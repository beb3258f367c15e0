//! The harness interface: what an agent harness wrapping guard sees and can ask for.
//!
//! - `guard exec --events FD` streams JSON lines to the caller: the start record (with the
//!   sandbox id) first, each denial as it happens, the exit record last; locally and through
//!   the daemon, and the same records as the audit log.
//! - `--no-network` and `--read-only` take rights away from the named profile for one call and
//!   never add any; the start record says which were applied.

use std::io::{BufReader, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::daemon_support::{Daemon, TestUser, world_dir};
use crate::support::{Run, TempDir, guard_bin, require_root, write_profile};

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().unwrap()
}

/// Makes `command` get `fd` as its descriptor 3.
fn with_fd3(command: &mut Command, fd: &OwnedFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe and `raw` stays open until spawn returns.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A profile that reads python and writes `write`, with `extra` TOML appended.
fn python_profile(dir: &TempDir, name: &str, write: &Path, extra: &str) -> String {
    write_profile(
        dir,
        name,
        &format!(
            r#"
name = "{name}"
extends = ["base"]
[filesystem]
read = ["/usr/lib/python3.11", "/usr/lib/python3", "${{CWD}}"]
write = ["{write}"]
execute = ["/usr/bin/python3"]
{extra}
[process]
env = {{ keep = ["PATH"] }}
"#,
            write = write.display()
        ),
    )
}

/// Reads JSON lines from `reader` until one has `event` == `until`.
fn read_events_until(reader: &mut impl std::io::BufRead, until: &str) -> Vec<serde_json::Value> {
    read_events_until_match(reader, until, |e| e["event"] == until)
}

/// Reads JSON lines from `reader` until `done` says so of one (`what` names it for a failure).
fn read_events_until_match(
    reader: &mut impl std::io::BufRead,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the event stream ended before {what}: {events:#?}");
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let found = done(&event);
        events.push(event);
        if found {
            return events;
        }
    }
}

#[test]
fn events_stream_the_sandbox_id_then_each_denial_as_it_happens_then_the_exit() {
    require_root!();
    let dir = TempDir::new("events");
    let work = dir.mkdir("work");
    let profile = python_profile(&dir, "events", &work, "");
    let log = dir.path().join("audit.jsonl");
    // The tool tries to write outside its profile, says so, then waits for the test. (A write
    // outside the write paths is recorded on every kernel; Landlock's own read denials only
    // from ABI 7.)
    let outside = dir.path().join("outside.txt");
    let script = format!(
        "import sys\n\
         try:\n    open({outside:?}, 'w')\nexcept OSError as e:\n    print('denied', e.strerror, flush=True)\n\
         sys.stdin.read()\n\
         print('done')\n",
        outside = outside.display().to_string()
    );
    let (events_read, events_write) = pipe();
    let mut command = Command::new(guard_bin());
    command
        .args(["exec", "--profile", &profile, "--audit-log"])
        .arg(&log)
        .args(["--events", "3", "--", "/usr/bin/python3", "-c", &script])
        .current_dir(&work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    with_fd3(&mut command, &events_write);
    let mut child = command.spawn().unwrap();
    drop(events_write);
    let mut events = BufReader::new(std::fs::File::from(events_read));

    // While the tool still runs: the start record, then the denial.
    let target = outside.display().to_string();
    let seen = read_events_until_match(&mut events, "the write denial", |e| {
        e["detail"]["path"] == target.as_str()
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "guard ended before the denial was streamed"
    );
    assert_eq!(seen[0]["event"], "start", "{seen:#?}");
    let id = seen[0]["sandbox"]
        .as_str()
        .expect("a sandbox id")
        .to_owned();
    let denial = seen.last().unwrap();
    assert_eq!(denial["verdict"], "deny", "{denial}");
    assert_eq!(denial["rule"], "filesystem.write", "{denial}");
    assert_eq!(denial["sandbox"], id.as_str());

    // Let it finish: the exit record ends the stream.
    child.stdin.take().unwrap().write_all(b"").unwrap();
    let rest = read_events_until(&mut events, "exit");
    let out: Run = child.wait_with_output().unwrap().into();
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.contains("denied Read-only file system"), "{out}");
    assert!(!outside.exists());
    let exit = rest.last().unwrap();
    assert_eq!(exit["detail"]["status"], 0, "{exit}");
    let mut tail = String::new();
    std::io::Read::read_to_string(&mut events, &mut tail).unwrap();
    assert!(tail.is_empty(), "more after the exit record: {tail}");

    // The stream is the audit log's start, non-allow and exit records, field for field (less
    // the chain).
    let streamed: Vec<serde_json::Value> = seen.into_iter().chain(rest).collect();
    let logged: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "start" || r["event"] == "exit" || r["verdict"] != "allow")
        .filter(|r| r["event"] != "seal")
        .map(|mut r| {
            let o = r.as_object_mut().unwrap();
            o.remove("prev");
            o.remove("hash");
            r
        })
        .collect();
    assert_eq!(streamed, logged);
}

#[test]
fn narrowing_flags_take_network_and_writes_away_and_say_so() {
    require_root!();
    let dir = TempDir::new("narrow");
    let work = dir.mkdir("work");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let profile = python_profile(
        &dir,
        "narrow",
        &work,
        &format!("[network]\nconnect = [\"127.0.0.1:{port}\"]\n"),
    );
    let script = format!(
        "import socket\n\
         try:\n    open('made', 'w').write('x'); print('wrote')\nexcept OSError as e:\n    print('write', e.strerror)\n\
         try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')\n\
         except OSError as e:\n    print('connect', e.strerror)\n"
    );
    let log = dir.path().join("audit.jsonl");
    let run = |flags: &[&str]| -> Run {
        let _ = std::fs::remove_file(work.join("made"));
        let mut args = vec![
            "exec",
            "--profile",
            &profile,
            "--audit-log",
            log.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "/usr/bin/python3", "-c", &script]);
        Command::new(guard_bin())
            .args(&args)
            .current_dir(&work)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    };

    // The profile as written: both work.
    let out = run(&[]);
    assert!(
        out.stdout.contains("wrote") && out.stdout.contains("connected"),
        "{out}"
    );
    assert!(work.join("made").exists());
    assert!(
        listener.accept().is_ok(),
        "the allowed connect never arrived"
    );

    // Narrowed: neither, and the listener sees nothing.
    let out = run(&["--no-network", "--read-only"]);
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.contains("write Read-only file system"), "{out}");
    assert!(!out.stdout.contains("connected"), "{out}");
    assert!(
        !work.join("made").exists(),
        "--read-only let the tool write"
    );
    assert!(
        listener.accept().is_err(),
        "--no-network let a connect through"
    );
    let starts: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "start")
        .collect();
    assert_eq!(starts[0]["detail"]["narrowed"], serde_json::json!([]));
    assert_eq!(
        starts[1]["detail"]["narrowed"],
        serde_json::json!(["no_network", "read_only"])
    );
}

#[test]
fn the_daemon_streams_events_and_applies_narrowing_for_its_callers() {
    require_root!();
    let user = TestUser::new(&[]);
    let work = TempDir::new("events-daemon");
    let writable = world_dir(&work, "w");
    let profile = format!(
        r#"
name = "e2e-h"
extends = ["base"]
[filesystem]
read = ["/usr/bin", "/bin", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "${{CWD}}"]
write = ["{w}"]
execute = ["/usr/bin", "/bin"]
[process]
env = {{ keep = ["PATH"] }}
"#,
        w = writable.display()
    );
    let daemon = Daemon::start(
        &format!(
            "[[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-h\"]\n",
            user.name
        ),
        &[("e2e-h", &profile)],
    );
    let target = writable.join("made");
    let script = format!("echo x > {}", target.display());
    let (events_read, events_write) = pipe();
    let mut command = user.guard(
        &daemon.socket,
        &writable,
        &[
            "exec",
            "--read-only",
            "--events",
            "3",
            "--profile",
            "e2e-h",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    with_fd3(&mut command, &events_write);
    let child = command.spawn().unwrap();
    drop(events_write);
    let mut events = BufReader::new(std::fs::File::from(events_read));
    let streamed = read_events_until(&mut events, "exit");
    let out: Run = child.wait_with_output().unwrap().into();
    assert_ne!(out.code(), 0, "{out}\n{}", daemon.log_text());
    assert!(
        !target.exists(),
        "--read-only did not reach the daemon's sandbox"
    );
    assert_eq!(streamed[0]["event"], "start", "{streamed:#?}");
    assert_eq!(
        streamed[0]["detail"]["narrowed"],
        serde_json::json!(["read_only"])
    );
    let id = streamed[0]["sandbox"].as_str().unwrap();
    assert!(
        streamed
            .iter()
            .any(|e| e["verdict"] == "deny" && e["detail"]["path"] == target.to_str().unwrap()),
        "{streamed:#?}"
    );
    // The same sandbox in the daemon's central log.
    assert!(
        daemon
            .audit()
            .iter()
            .any(|r| r["sandbox"] == id && r["event"] == "exit"),
        "{}",
        daemon.log_text()
    );
}
