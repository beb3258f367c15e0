//! `guard daemon` end to end, as root on this host: throw-away users call `guard exec` through a
//! daemon on a private socket and get local mode's behaviour, or a refusal; concurrency, hostile
//! frames, SIGKILL of the daemon, status, stop and reload, all observed from outside.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::daemon_support::{
    Daemon, TestGroup, TestUser, process_alive, sandbox_cgroups, shared_guard, wait_for, world_dir,
};
use crate::support::{COUNT_INTS, Run, TempDir, ctrl_c_on_a_terminal, require_root};

/// A shell profile writing only to `write`, with a marker in the environment.
fn shell_profile(name: &str, write: &Path, extra: &str) -> String {
    format!(
        r#"
name = "{name}"
extends = ["base"]
allow_weaker = ["ebpf.network", "ebpf.exec"]

[filesystem]
read = ["/usr/bin", "/bin", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "${{CWD}}"]
write = ["{write}"]
execute = ["/usr/bin", "/bin"]

[process]
env = {{ keep = ["PATH", "MARK"], set = {{ PROFILE = "{name}" }} }}
{extra}
"#,
        write = write.display()
    )
}

/// One allowed user, a work directory, and a daemon granting that user `e2e-d-shell` (which
/// writes to `<work>/w` only).
struct Setup {
    user: TestUser,
    work: TempDir,
    daemon: Daemon,
}

impl Setup {
    fn new(label: &str) -> Self {
        let user = TestUser::new(&[]);
        let work = TempDir::new(label);
        let writable = world_dir(&work, "w");
        let daemon = Daemon::start(
            &format!(
                "[[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-d-shell\"]\n",
                user.name
            ),
            &[("e2e-d-shell", &shell_profile("e2e-d-shell", &writable, ""))],
        );
        Setup { user, work, daemon }
    }
}

/// `stderr` split into the tool's text (guard's whole lines cut out wherever they landed) and
/// guard's `guard: denied` lines with their pids blanked.
fn split_guard_lines(stderr: &str) -> (String, Vec<String>) {
    let mut tool = String::new();
    let mut guard = Vec::new();
    let mut rest = stderr;
    while let Some(at) = rest.find("guard: denied ") {
        tool.push_str(&rest[..at]);
        let line_end = rest[at..].find('\n').map_or(rest.len(), |i| at + i + 1);
        guard.push(without_pids(rest[at..line_end].trim_end()));
        rest = &rest[line_end..];
    }
    tool.push_str(rest);
    (tool, guard)
}

/// `guard: killed 1234 /usr/bin/sleep: ...` and `guard: denied 1234 ...` with the pid
/// replaced, to compare two runs.
fn without_pids(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| {
            for prefix in ["guard: killed ", "guard: denied "] {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return format!(
                        "{prefix}PID {}",
                        rest.split_once(' ').map_or(rest, |(_, r)| r)
                    );
                }
            }
            line.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_allowed_user_gets_local_behaviour_as_itself() {
    require_root!();
    let user = TestUser::new(&[]);
    let work = TempDir::new("daemon-local");
    let writable = world_dir(&work, "w");
    // Writable for everyone as far as file modes go: only the sandbox may refuse it.
    let forbidden = world_dir(&work, "r");
    let shell = shell_profile("e2e-d-shell", &writable, "");
    let slow = shell_profile("e2e-d-slow", &writable, "[limits]\nwall_time = \"1s\"\n");
    let daemon = Daemon::start(
        &format!(
            "[[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-d-shell\", \"e2e-d-slow\"]\n",
            user.name
        ),
        &[("e2e-d-shell", &shell), ("e2e-d-slow", &slow)],
    );
    let script = format!(
        "id -u; echo $MARK $PROFILE; pwd; echo ok >> {w}/made; echo no > {r}/denied; exit 3",
        w = writable.display(),
        r = forbidden.display()
    );
    let cwd = world_dir(&work, "cwd");
    let through = user.run_env(
        &daemon.socket,
        &cwd,
        &[
            "exec",
            "--profile",
            "e2e-d-shell",
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[("MARK", "from-the-caller")],
    );
    assert_eq!(through.code(), 3, "{through}\n{}", daemon.log_text());
    let mut lines = through.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(user.uid.to_string().as_str()),
        "{through}"
    );
    assert_eq!(
        lines.next(),
        Some("from-the-caller e2e-d-shell"),
        "{through}"
    );
    assert_eq!(lines.next(), Some(cwd.to_str().unwrap()), "{through}");
    let made = std::fs::metadata(writable.join("made")).unwrap();
    assert_eq!(made.uid(), user.uid, "the sandbox must run as its caller");
    assert!(!forbidden.join("denied").exists(), "{through}");
    assert!(
        through.stderr.contains("Permission denied")
            || through.stderr.contains("Read-only file system"),
        "{through}"
    );

    // The same profile and command in local mode, as root: same status, same denial. Root in a
    // sandbox has no capabilities, so it could not append to the caller's file: start afresh.
    std::fs::remove_file(writable.join("made")).unwrap();
    let local: Run = Command::new(shared_guard())
        .args(["exec", "--profile"])
        .arg(daemon.dir.path().join("profiles/e2e-d-shell.toml"))
        .args(["--", "sh", "-c", &script])
        .env("MARK", "from-the-caller")
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(local.code(), through.code(), "{local}");
    // The same denial from the tool and the same line from guard. Guard writes its line in one
    // write(2) while the tool writes its own in pieces, so the two may interleave: compare the
    // tool's text with guard's lines cut out, and guard's lines with their pids blanked.
    let (local_tool, local_guard) = split_guard_lines(&local.stderr);
    let (through_tool, through_guard) = split_guard_lines(&through.stderr);
    assert_eq!(local_tool, through_tool, "{local}\n{through}");
    assert_eq!(local_guard, through_guard, "{local}\n{through}");

    // A limit kill: status 137 and the same `guard: killed` line.
    let args = ["exec", "--profile", "e2e-d-slow", "--", "sleep", "5"];
    let through = user.run(&daemon.socket, &cwd, &args);
    let local: Run = Command::new(shared_guard())
        .args(["exec", "--profile"])
        .arg(daemon.dir.path().join("profiles/e2e-d-slow.toml"))
        .args(["--", "sleep", "5"])
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(through.code(), 137, "{through}");
    assert_eq!(local.code(), 137, "{local}");
    assert!(
        through.stderr.contains("(rule limits.wall_time)"),
        "{through}"
    );
    assert_eq!(without_pids(&through.stderr), without_pids(&local.stderr));

    // Not found is 127 either way.
    let through = user.run(
        &daemon.socket,
        &cwd,
        &[
            "exec",
            "--profile",
            "e2e-d-shell",
            "--",
            "no-such-command-here",
        ],
    );
    assert_eq!(through.code(), 127, "{through}");

    // The central audit log has the sandboxes' records, chained, each under its own id.
    let records = daemon.audit();
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "exit" && r["detail"]["guard_exit"] == 3),
        "{records:?}"
    );
}

#[test]
fn strangers_and_ungranted_profiles_are_refused_with_125_and_recorded() {
    require_root!();
    let allowed = TestUser::new(&[]);
    let stranger = TestUser::new(&[]);
    let work = TempDir::new("daemon-refuse");
    let writable = world_dir(&work, "w");
    let daemon = Daemon::start(
        &format!(
            "[[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-d-shell\"]\n",
            allowed.name
        ),
        &[
            ("e2e-d-shell", &shell_profile("e2e-d-shell", &writable, "")),
            ("e2e-d-other", &shell_profile("e2e-d-other", &writable, "")),
        ],
    );
    let touch = format!("echo x > {}/ran", writable.display());
    let cases: [(&TestUser, &[&str], &str); 4] = [
        (
            &stranger,
            &["exec", "--profile", "e2e-d-shell"],
            "may not use the guard daemon",
        ),
        (
            &allowed,
            &["exec", "--profile", "e2e-d-other"],
            "may not use profile `e2e-d-other` (allowed: e2e-d-shell)",
        ),
        (
            &allowed,
            &["exec", "--mode", "audit", "--profile", "e2e-d-shell"],
            "may not use --mode audit",
        ),
        (
            &allowed,
            &["exec", "--profile", "/tmp/mine.toml"],
            "runs profiles by NAME",
        ),
    ];
    for (user, args, message) in cases {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--", "sh", "-c", &touch]);
        let out = user.run(&daemon.socket, work.path(), &full);
        assert_eq!(out.code(), 125, "{args:?}: {out}");
        assert!(out.stderr.contains(message), "{args:?}: {out}");
        assert!(!writable.join("ran").exists(), "{args:?} ran");
    }
    // The three refusals the daemon saw (the path is refused by the client already).
    let refusals: Vec<_> = daemon
        .audit()
        .into_iter()
        .filter(|r| r["rule"] == "daemon.allow")
        .collect();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    for r in &refusals {
        assert_eq!(r["event"], "violation");
        assert_eq!(r["verdict"], "deny");
        assert_eq!(r["enforcer"], "supervisor");
    }
    assert_eq!(refusals[0]["detail"]["uid"], stranger.uid);
    assert_eq!(refusals[1]["profile"], "e2e-d-other");
}

#[test]
fn fifty_concurrent_execs_from_three_users_get_their_own_profiles_and_statuses() {
    require_root!();
    let group = TestGroup::new();
    let users = [
        TestUser::new(&[]),
        TestUser::new(&[]),
        TestUser::new(&[&group]),
    ];
    let work = TempDir::new("daemon-many");
    let writable = world_dir(&work, "w");
    let profiles: Vec<(String, String)> = ["e2e-d-a", "e2e-d-b", "e2e-d-c"]
        .iter()
        .map(|n| (n.to_string(), shell_profile(n, &writable, "")))
        .collect();
    let profile_refs: Vec<(&str, &str)> = profiles
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let daemon = Daemon::start(
        &format!(
            "[[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-d-a\"]\n\
             [[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-d-b\"]\n\
             [[allow]]\ngroups = [\"{}\"]\nprofiles = [\"e2e-d-c\"]\n",
            users[0].name, users[1].name, group.name
        ),
        &profile_refs,
    );
    let names = ["e2e-d-a", "e2e-d-b", "e2e-d-c"];
    let children: Vec<_> = (0..50)
        .map(|i| {
            let who = i % 3;
            let code = (i * 7) % 100;
            let script = format!("echo $(id -u) $PROFILE; sleep 0.2; exit {code}");
            let child = users[who]
                .guard(
                    &daemon.socket,
                    work.path(),
                    &["exec", "--profile", names[who], "--", "sh", "-c", &script],
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (who, code, child)
        })
        .collect();
    for (who, code, child) in children {
        let out: Run = child.wait_with_output().unwrap().into();
        assert_eq!(out.code(), code as i32, "{out}\n{}", daemon.log_text());
        assert_eq!(
            out.stdout.trim(),
            format!("{} {}", users[who].uid, names[who]),
            "{out}"
        );
    }
    assert!(
        wait_for(Duration::from_secs(5), || daemon.status().is_empty()),
        "{:?}",
        daemon.status()
    );
}

#[test]
fn garbage_truncated_and_huge_frames_leave_the_daemon_serving() {
    require_root!();
    let Setup {
        user,
        work,
        mut daemon,
    } = Setup::new("daemon-garbage");
    // A connection that sends nothing stays open during all of the below.
    let idle = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    let frame = |body: &str| {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(body.as_bytes());
        bytes
    };
    let mut huge = (64u32 << 20).to_be_bytes().to_vec();
    huge.extend(std::iter::repeat_n(b'x', 2 << 20));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: guard\r\n\r\n".to_vec()),
        ("huge", huge),
        ("max header", u32::MAX.to_be_bytes().to_vec()),
        ("truncated header", vec![0, 0]),
        ("truncated body", {
            let mut b = 100u32.to_be_bytes().to_vec();
            b.extend_from_slice(b"{\"version\":1,");
            b
        }),
        ("empty frame", 0u32.to_be_bytes().to_vec()),
        ("not json", frame("\u{0}\u{1}\u{2}not json at all")),
        (
            "other version",
            frame(r#"{"version":99,"message":{"type":"status"}}"#),
        ),
        (
            "unknown type",
            frame(r#"{"version":1,"message":{"type":"root_shell"}}"#),
        ),
        (
            "exec without descriptors",
            frame(
                r#"{"version":1,"message":{"type":"exec","profile":"e2e-d-shell","mode":"enforce","command":["true"],"env":[],"umask":18}}"#,
            ),
        ),
        (
            "signal first",
            frame(r#"{"version":1,"message":{"type":"signal","signal":2}}"#),
        ),
    ];
    for (what, bytes) in cases {
        let answer = daemon.raw(&bytes);
        let text = String::from_utf8_lossy(&answer);
        assert!(
            daemon.alive(),
            "{what} killed the daemon:\n{}",
            daemon.log_text()
        );
        if what != "truncated header" {
            assert!(text.contains("refused"), "{what}: {text}");
        }
        if what == "other version" {
            assert!(text.contains("unsupported protocol version 99"), "{text}");
        }
    }
    // Descriptors on a request that takes none.
    {
        use std::os::fd::AsRawFd;
        let stream = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
        let body = frame(r#"{"version":1,"message":{"type":"status"}}"#);
        let fds = [std::io::stdin().as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        nix::sys::socket::sendmsg::<()>(
            stream.as_raw_fd(),
            &[std::io::IoSlice::new(&body)],
            &cmsg,
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .unwrap();
        let mut answer = String::new();
        let _ = (&stream).read_to_string(&mut answer);
        assert!(answer.contains("descriptors"), "{answer}");
    }
    assert!(daemon.alive(), "{}", daemon.log_text());
    assert!(daemon.status().is_empty());
    let out = user.run(
        &daemon.socket,
        work.path(),
        &[
            "exec",
            "--profile",
            "e2e-d-shell",
            "--",
            "sh",
            "-c",
            "exit 9",
        ],
    );
    assert_eq!(out.code(), 9, "{out}\n{}", daemon.log_text());
    drop(idle);
}

/// Starts `sleep 300` twice in the background under `user` and `profile` through the daemon and waits until
/// the sandbox runs; returns the client, the sandbox id and its processes.
fn start_sleepers(
    daemon: &Daemon,
    user: &TestUser,
    cwd: &Path,
    profile: &str,
) -> (std::process::Child, String, Vec<i32>) {
    let mut client = user
        .guard(
            &daemon.socket,
            cwd,
            &[
                "exec",
                "--profile",
                profile,
                "--",
                "sh",
                "-c",
                "sleep 300 & sleep 300 & echo started; wait",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(client.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "started", "{}", daemon.log_text());
    // The owner's own view: it works on every kernel (root's view of every sandbox needs
    // SO_PEERPIDFD, see `Daemon::start`).
    let out: Run = user
        .guard(&daemon.socket, cwd, &["status", "--json"])
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code(), 0, "{out}");
    let status: Vec<serde_json::Value> =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(status.len(), 1, "{status:?}");
    let id = status[0]["id"].as_str().unwrap().to_owned();
    let dirs = sandbox_cgroups(&id);
    assert!(!dirs.is_empty(), "no cgroup for {id}");
    let mut pids: Vec<i32> = dirs
        .iter()
        .map(|d| std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "sh and two sleeps expected: {pids:?}");
    (client, id, pids)
}

#[test]
fn sigkill_of_the_daemon_kills_its_sandboxes_and_a_restart_leaves_nothing_behind() {
    require_root!();
    let Setup {
        user,
        work,
        mut daemon,
    } = Setup::new("daemon-kill9");
    let (client, id, pids) = start_sleepers(&daemon, &user, work.path(), "e2e-d-shell");
    let cgroup_id = cgroup_id_of(&id);
    assert_ne!(
        has_probe_entries(cgroup_id),
        Some(false),
        "not under the probes"
    );
    daemon.kill9();
    assert!(
        wait_for(Duration::from_secs(10), || pids
            .iter()
            .all(|p| !process_alive(*p))),
        "sandbox processes outlived the daemon: {pids:?}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || sandbox_cgroups(&id).is_empty()),
        "cgroups left: {:?}",
        sandbox_cgroups(&id)
    );
    let out: Run = client.wait_with_output().unwrap().into();
    assert_eq!(out.code(), 137, "{out}");
    assert!(out.stderr.contains("the guard daemon went away"), "{out}");

    // Restarted, it serves again and nothing of the old run is left.
    daemon.spawn();
    assert!(daemon.status().is_empty());
    assert!(sandbox_cgroups(&id).is_empty());
    assert_ne!(
        has_probe_entries(cgroup_id),
        Some(true),
        "eBPF entries of the dead sandbox left"
    );
    let out = user.run(
        &daemon.socket,
        work.path(),
        &["exec", "--profile", "e2e-d-shell", "--", "true"],
    );
    assert_eq!(out.code(), 0, "{out}");
}

#[test]
fn sandboxes_whose_sentinel_died_too_are_swept_when_the_daemon_restarts() {
    require_root!();
    let Setup {
        user,
        work,
        mut daemon,
    } = Setup::new("daemon-orphans");
    let (mut client, id, pids) = start_sleepers(&daemon, &user, work.path(), "e2e-d-shell");
    let cgroup_id = cgroup_id_of(&id);
    assert_ne!(
        has_probe_entries(cgroup_id),
        Some(false),
        "not under the probes"
    );
    // What a service manager's SIGKILL of the whole service does: the sentinel dies with the
    // daemon and the worker, and the backgrounded sleeps (in the sandbox cgroup) are left.
    let worker = children(daemon.pid());
    assert_eq!(worker.len(), 1, "{worker:?}");
    let sentinel: Vec<i32> = children(worker[0])
        .into_iter()
        .filter(|p| !pids.contains(p))
        .collect();
    assert_eq!(sentinel.len(), 1, "{sentinel:?}");
    kill9(sentinel[0]);
    assert!(wait_for(Duration::from_secs(5), || !process_alive(
        sentinel[0]
    )));
    daemon.kill9();
    // Only the status: the sleeps still hold the client's output pipes (the daemon passed them
    // on), so reading them to the end would wait for the sweep below, or for `sleep 300`.
    let status = client.wait().unwrap();
    assert_eq!(status.code(), Some(137), "{status:?}");
    assert!(
        wait_for(Duration::from_secs(5), || !process_alive(worker[0])),
        "the worker outlived the daemon"
    );
    // The backgrounded sleeps are not children of the worker: nothing kills them now but a
    // sweep. (A daemon of a test running in parallel may sweep them first; that is a sweep too.)
    daemon.spawn();
    assert!(
        wait_for(Duration::from_secs(10), || pids
            .iter()
            .all(|p| !process_alive(*p))),
        "orphans not killed at restart:\n{}",
        daemon.log_text()
    );
    // Another test's daemon may sweep it first (every daemon sweeps every orphan); either way
    // it must be gone.
    assert!(
        wait_for(Duration::from_secs(5), || sandbox_cgroups(&id).is_empty()),
        "{:?}",
        sandbox_cgroups(&id)
    );
    assert_ne!(
        has_probe_entries(cgroup_id),
        Some(true),
        "eBPF entries of the dead sandbox left"
    );
}

/// The cgroup id (cgroup2 inode) of sandbox `id`, which keys its entries in the eBPF maps.
fn cgroup_id_of(id: &str) -> u64 {
    let dir = guard::sandbox::cgroup::guard_cgroup2_dir()
        .unwrap()
        .join(id);
    std::fs::metadata(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .ino()
}

/// Whether the shared probes hold entries for cgroup `cgroup_id`; `None` when this host has no
/// probes (then there is nothing to leave behind).
fn has_probe_entries(cgroup_id: u64) -> Option<bool> {
    let dir = guard::sandbox::cgroup::guard_cgroup2_dir().unwrap();
    match guard::ebpf::Probes::open_or_load(&dir) {
        Ok(probes) => Some(probes.sandbox_ids().contains(&cgroup_id)),
        Err(err) => {
            eprintln!("skipping the eBPF entry check: probes not available: {err}");
            None
        }
    }
}

fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

#[test]
fn signals_to_the_client_reach_the_sandbox() {
    require_root!();
    let Setup { user, work, daemon } = Setup::new("daemon-signals");
    for (signal, code) in [
        (nix::sys::signal::Signal::SIGINT, 42),
        (nix::sys::signal::Signal::SIGTERM, 43),
    ] {
        let script =
            "trap 'exit 42' INT; trap 'exit 43' TERM; echo ready; while :; do sleep 0.05; done";
        let mut client = user
            .guard(
                &daemon.socket,
                work.path(),
                &["exec", "--profile", "e2e-d-shell", "--", "sh", "-c", script],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(client.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        // setpriv execs guard: the client is this pid.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(client.id() as i32), signal).unwrap();
        let out: Run = client.wait_with_output().unwrap().into();
        assert_eq!(out.code(), code, "{signal}: {out}");
    }
}

#[test]
fn ctrl_c_on_the_callers_terminal_reaches_the_command_once() {
    require_root!();
    let Setup { user, work, daemon } = Setup::new("daemon-tty");
    let command = user.guard(
        &daemon.socket,
        work.path(),
        &[
            "exec",
            "--profile",
            "e2e-d-shell",
            "--",
            "sh",
            "-c",
            COUNT_INTS,
        ],
    );
    let (status, seen) = ctrl_c_on_a_terminal(command);
    assert_eq!(status.code(), Some(0), "{seen}");
    assert!(
        seen.contains("ints=1"),
        "Ctrl-C not delivered exactly once: {seen}"
    );
    assert!(seen.contains("is-a-tty"), "{seen}");
}

#[test]
fn status_shows_own_sandboxes_and_stop_kills_only_own() {
    require_root!();
    let owner = TestUser::new(&[]);
    let other = TestUser::new(&[]);
    let work = TempDir::new("daemon-status");
    let writable = world_dir(&work, "w");
    let daemon = Daemon::start(
        &format!(
            "[[allow]]\nusers = [\"{}\", \"{}\"]\nprofiles = [\"e2e-d-shell\"]\n",
            owner.name, other.name
        ),
        &[("e2e-d-shell", &shell_profile("e2e-d-shell", &writable, ""))],
    );
    let (client, id, pids) = start_sleepers(&daemon, &owner, work.path(), "e2e-d-shell");
    let mine = owner.run(&daemon.socket, work.path(), &["status", "--json"]);
    let mine: Vec<serde_json::Value> = serde_json::from_str(&mine.stdout).unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], id.as_str());
    assert_eq!(mine[0]["profile"], "e2e-d-shell");
    assert_eq!(mine[0]["uid"], owner.uid);
    assert!(
        pids.contains(&(mine[0]["pid"].as_i64().unwrap() as i32)),
        "{mine:?}"
    );
    assert!(mine[0]["memory_bytes"].as_u64().unwrap() > 0, "{mine:?}");
    let table = owner.run(&daemon.socket, work.path(), &["status"]);
    assert!(table.stdout.starts_with("ID "), "{table}");
    assert!(table.stdout.contains(&id), "{table}");
    let theirs = other.run(&daemon.socket, work.path(), &["status", "--json"]);
    assert_eq!(theirs.stdout.trim(), "[]", "{theirs}");

    let refused = other.run(&daemon.socket, work.path(), &["stop", &id]);
    assert_eq!(refused.code(), 1, "{refused}");
    assert!(pids.iter().all(|p| process_alive(*p)));
    let stopped = owner.run(&daemon.socket, work.path(), &["stop", &id]);
    assert_eq!(stopped.code(), 0, "{stopped}");
    let out: Run = client.wait_with_output().unwrap().into();
    assert_eq!(out.code(), 137, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "guard: sandbox {id} killed: stopped by `guard stop`"
        )),
        "{out}"
    );
    assert!(pids.iter().all(|p| !process_alive(*p)));
    assert!(sandbox_cgroups(&id).is_empty());
}

#[test]
fn sighup_reloads_the_config_and_a_bad_config_is_refused_with_its_position() {
    require_root!();
    let user = TestUser::new(&[]);
    let work = TempDir::new("daemon-reload");
    let writable = world_dir(&work, "w");
    let allow_a = format!(
        "[[allow]]\nusers = [\"{}\"]\nprofiles = [\"e2e-d-a\"]\n",
        user.name
    );
    let daemon = Daemon::start(
        &allow_a,
        &[
            ("e2e-d-a", &shell_profile("e2e-d-a", &writable, "")),
            ("e2e-d-b", &shell_profile("e2e-d-b", &writable, "")),
        ],
    );
    let run_b = || {
        user.run(
            &daemon.socket,
            work.path(),
            &["exec", "--profile", "e2e-d-b", "--", "true"],
        )
    };
    assert_eq!(run_b().code(), 125);
    // A sandbox started before the reload keeps running through it.
    let (client, _id, pids) = start_sleepers(&daemon, &user, work.path(), "e2e-d-a");
    let config = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        config.replace("[\"e2e-d-a\"]", "[\"e2e-d-a\", \"e2e-d-b\"]"),
    )
    .unwrap();
    hangup(daemon.pid());
    assert!(
        wait_for(Duration::from_secs(5), || run_b().code() == 0),
        "{}",
        daemon.log_text()
    );
    assert!(
        pids.iter().all(|p| process_alive(*p)),
        "reload touched a sandbox"
    );

    // A broken file on reload keeps the running configuration.
    std::fs::write(&daemon.config, "[[allow]]\nusers = 7\n").unwrap();
    hangup(daemon.pid());
    assert!(wait_for(Duration::from_secs(5), || daemon
        .log_text()
        .contains("reload failed")));
    assert_eq!(run_b().code(), 0, "{}", daemon.log_text());
    for pid in &pids {
        kill9(*pid);
    }
    let _ = client.wait_with_output();

    // The same broken file at start: 125 and FILE:LINE:COL: key: message.
    let out: Run = Command::new(shared_guard())
        .args(["daemon", "--config"])
        .arg(&daemon.config)
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code(), 125, "{out}");
    let expected = format!("{}:2:9: allow[0].users:", daemon.config.display());
    assert!(out.stderr.contains(&expected), "{out}");
}

fn hangup(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

#[test]
fn sigterm_stops_the_daemon_after_killing_its_sandboxes_with_their_exit_records() {
    require_root!();
    let Setup {
        user,
        work,
        mut daemon,
    } = Setup::new("daemon-term");
    let (client, id, pids) = start_sleepers(&daemon, &user, work.path(), "e2e-d-shell");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out: Run = client.wait_with_output().unwrap().into();
    assert_eq!(out.code(), 137, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "guard: sandbox {id} killed: the guard daemon is stopping"
        )),
        "{out}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || !daemon.alive()),
        "{}",
        daemon.log_text()
    );
    assert!(pids.iter().all(|p| !process_alive(*p)));
    assert!(sandbox_cgroups(&id).is_empty());
    assert!(!daemon.socket.exists(), "the daemon's socket file was left");
    let exit = daemon
        .audit()
        .into_iter()
        .find(|r| r["sandbox"] == id.as_str() && r["event"] == "exit");
    assert!(exit.is_some_and(|r| r["detail"]["guard_exit"] == 137));
}

#[test]
fn the_daemon_serves_the_socket_systemd_passes() {
    require_root!();
    // systemd-socket-activate (from the systemd package `cargo xtask setup` installs) passes a
    // listening socket the way guard.socket does: fd 3, LISTEN_PID, LISTEN_FDS.
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("skipping: systemd-socket-activate not available");
        return;
    }
    let dir = TempDir::new("daemon-activate");
    let socket = dir.path().join("activated.sock");
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "socket = \"{}\"\naudit_log = \"{}\"\n{}",
            dir.path().join("not-this-one.sock").display(),
            dir.path().join("audit.jsonl").display(),
            crate::daemon_support::root_allow_without_peer_pidfd(),
        ),
    )
    .unwrap();
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg(shared_guard())
        .args(["daemon", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || socket.exists()));
    let out: Run = Command::new(shared_guard())
        .args([
            "exec",
            "--daemon",
            "--profile",
            "minimal",
            "--",
            "/usr/bin/true",
        ])
        .env("GUARD_SOCKET", &socket)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code(), 0, "{out}");
    assert!(!dir.path().join("not-this-one.sock").exists());
    // The activator exec'd the daemon: same process.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(activator.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = activator.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
}
