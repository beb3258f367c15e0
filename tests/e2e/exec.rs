//! `guard exec` end to end, as root on this host: what the confined tool can and cannot do, the
//! exit-status contract, limits, cleanup and the audit log, all observed from outside.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    COUNT_INTS, TempDir, ctrl_c_on_a_terminal, guard, require_root, write_profile,
};

/// A profile that can run the shell and coreutils, read `read_dir`, write `write_dir`.
fn shell_profile(dir: &TempDir, read_dir: &Path, write_dir: &Path, extra: &str) -> String {
    write_profile(
        dir,
        "shell",
        &format!(
            r#"
name = "e2e-shell"
extends = ["base"]
allow_weaker = ["ebpf.unix"]

[filesystem]
read = ["{read}"]
write = ["{write}"]
execute = ["/usr/bin", "/bin"]

[process]
env = {{ keep = ["PATH"] }}
{extra}
"#,
            read = read_dir.display(),
            write = write_dir.display(),
        ),
    )
}

#[test]
fn allowed_reads_and_writes_work_and_others_fail_with_eacces() {
    require_root!();
    let dir = TempDir::new("fs");
    let readable = dir.mkdir("readable");
    let writable = dir.mkdir("writable");
    let secret = dir.mkdir("secret");
    fs::write(readable.join("hello"), "hello from readable\n").unwrap();
    fs::write(secret.join("key"), "top secret\n").unwrap();
    let profile = shell_profile(&dir, &readable, &writable, "");

    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "cat",
        &format!("{}/hello", readable.display()),
    ]);
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.contains("hello from readable"), "{out}");

    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "cat",
        &format!("{}/key", secret.display()),
    ]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
    assert!(!out.stdout.contains("top secret"), "{out}");

    let inside = writable.join("made-inside");
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "sh",
        "-c",
        &format!("echo ok > {}", inside.display()),
    ]);
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(fs::read_to_string(&inside).unwrap(), "ok\n");

    let outside = readable.join("made-outside");
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "sh",
        "-c",
        &format!("echo pwned > {}", outside.display()),
    ]);
    assert_ne!(out.code(), 0, "{out}");
    // Landlock's EACCES, or EROFS where the read-only file tree answers first (creating a
    // file outside the write paths).
    assert!(
        out.stderr.contains("Permission denied") || out.stderr.contains("Read-only file system"),
        "{out}"
    );
    assert!(
        !outside.exists(),
        "a write outside the profile went through"
    );
}

#[test]
fn exec_outside_the_profile_is_denied_by_the_kernel() {
    require_root!();
    let dir = TempDir::new("exec");
    let tools = dir.mkdir("tools");
    let marker = dir.path().join("marker");
    let script = tools.join("forbidden.sh");
    fs::write(&script, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    crate::support::make_executable(&script);
    let profile = shell_profile(&dir, dir.path(), &dir.mkdir("w"), "");

    // The initial command itself: not executable under the profile -> 126, nothing ran.
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        script.to_str().unwrap(),
    ]);
    assert_eq!(out.code(), 126, "{out}");
    assert!(!marker.exists(), "the forbidden program ran");

    // From inside a shell the profile allows.
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "sh",
        "-c",
        &format!("{}; echo rc=$?", script.display()),
    ]);
    assert!(out.stdout.contains("rc=126"), "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
    assert!(!marker.exists(), "the forbidden program ran");
}

#[test]
fn exit_status_follows_the_contract() {
    require_root!();
    let dir = TempDir::new("status");
    let profile = shell_profile(&dir, dir.path(), &dir.mkdir("w"), "");
    let run = |args: &[&str]| {
        let mut all = vec!["exec", "--profile", profile.as_str(), "--"];
        all.extend_from_slice(args);
        guard(&all)
    };
    assert_eq!(run(&["true"]).code(), 0);
    assert_eq!(run(&["sh", "-c", "exit 3"]).code(), 3);
    assert_eq!(run(&["sh", "-c", "kill -TERM $$"]).code(), 143);
    assert_eq!(run(&["no-such-command-anywhere"]).code(), 127);
    assert_eq!(run(&["/etc/hostname"]).code(), 126);
}

#[test]
fn bad_input_exits_125_and_runs_nothing() {
    require_root!();
    let dir = TempDir::new("bad");
    let marker = dir.path().join("marker");
    let touch = format!("touch {}", marker.display());
    let broken = write_profile(
        &dir,
        "broken",
        "name = \"b\"\n[limits]\nmemory = \"12 parsecs\"\n",
    );
    let unknown = write_profile(
        &dir,
        "unknown",
        "name = \"u\"\nfavourite_colour = \"blue\"\n",
    );
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "exec",
            "--profile",
            "no-such-profile-anywhere",
            "--",
            "sh",
            "-c",
            &touch,
        ],
        vec!["exec", "--profile", &broken, "--", "sh", "-c", &touch],
        vec!["exec", "--profile", &unknown, "--", "sh", "-c", &touch],
        vec![
            "exec",
            "--profile",
            &broken,
            "--mode",
            "loud",
            "--",
            "sh",
            "-c",
            &touch,
        ],
        vec!["exec", "--no-such-flag", "--", "sh", "-c", &touch],
    ];
    for args in cases {
        let out = guard(&args);
        assert_eq!(out.code(), 125, "{args:?}: {out}");
        assert!(!out.stderr.trim().is_empty(), "{args:?}: no error message");
        assert!(!marker.exists(), "{args:?}: the command ran");
    }
    let out = guard(&["exec", "--profile", &broken, "--", "true"]);
    assert!(
        out.stderr.contains("limits.memory"),
        "the error names the key: {out}"
    );
}

#[test]
fn the_tool_has_no_privileges() {
    require_root!();
    let dir = TempDir::new("privs");
    let profile = shell_profile(&dir, Path::new("/proc"), &dir.mkdir("w"), "");
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(out.code(), 0, "{out}");
    for line in [
        "CapInh:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
    ] {
        assert!(out.stdout.contains(line), "missing {line:?} in {out}");
    }
    assert!(
        out.stdout.contains("Seccomp:\t2"),
        "no seccomp filter: {out}"
    );
}

#[test]
fn escapes_are_refused_by_the_kernel() {
    require_root!();
    let dir = TempDir::new("escape");
    let profile = shell_profile(&dir, Path::new("/usr/lib/python3.11"), &dir.mkdir("w"), "");
    let python = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def attempt(name, *args):
    r = libc.syscall(*args)
    print(name, "ok" if r >= 0 else os.strerror(ctypes.get_errno()))
attempt("ptrace", 101, 0, 0, 0, 0)            # PTRACE_TRACEME
attempt("bpf", 321, 0, 0, 0)                  # BPF_MAP_CREATE with no attr
attempt("unshare-user", 272, 0x10000000)      # CLONE_NEWUSER
attempt("mount", 165, b"none", b"/mnt", b"tmpfs", 0, 0)
attempt("setns", 308, 0, 0)
attempt("clone-newuser", 56, 0x10000000 | 17, 0, 0, 0, 0)   # CLONE_NEWUSER | SIGCHLD
import fcntl, termios
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"x")
    print("tiocsti ok")
except OSError as e:
    print("tiocsti", e.strerror)
"#;
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        python,
    ]);
    assert_eq!(out.code(), 0, "{out}");
    assert!(
        out.stdout.contains("tiocsti Operation not permitted"),
        "TIOCSTI not refused by seccomp: {out}"
    );
    for name in [
        "ptrace",
        "bpf",
        "unshare-user",
        "mount",
        "setns",
        "clone-newuser",
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line: {out}"));
        assert!(!line.ends_with(" ok"), "{name} succeeded: {out}");
    }
    let out = guard(&["exec", "--profile", &profile, "--", "unshare", "-U", "true"]);
    assert_ne!(out.code(), 0, "unshare -U succeeded: {out}");
}

#[test]
fn guard_environment_does_not_leak_into_the_tool() {
    require_root!();
    let dir = TempDir::new("env");
    let profile = shell_profile(&dir, Path::new("/proc"), &dir.mkdir("w"), "");
    let out = crate::support::guard_with_env(
        &[
            "exec",
            "--profile",
            &profile,
            "--",
            "sh",
            "-c",
            "env; echo ---; cat /proc/$PPID/environ; echo rc=$?",
        ],
        &[("GUARD_E2E_SECRET", "hunter2")],
    );
    assert!(!out.stdout.contains("hunter2"), "the secret leaked: {out}");
    assert!(
        out.stdout.contains("rc=1"),
        "guard's environ was readable: {out}"
    );
}

#[test]
fn fork_bomb_is_contained_by_pids_limit() {
    require_root!();
    let dir = TempDir::new("forkbomb");
    let profile = shell_profile(
        &dir,
        dir.path(),
        &dir.mkdir("w"),
        "[limits]\npids = 32\nwall_time = \"3s\"\n",
    );
    let log = dir.path().join("audit.jsonl");
    let mut bomb = std::process::Command::new(crate::support::guard_bin())
        .args([
            "exec",
            "--profile",
            &profile,
            "--audit-log",
            log.to_str().unwrap(),
            "--",
            "bash",
            "-c",
            "b() { b | b & }; b; sleep 30",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While the bomb goes off, the host still forks and runs programs.
    std::thread::sleep(Duration::from_millis(1000));
    for _ in 0..20 {
        assert!(
            std::process::Command::new("true")
                .status()
                .unwrap()
                .success(),
            "the host cannot fork"
        );
    }
    let status = bomb.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(137),
        "the bomb was not ended by wall_time"
    );
    let records = fs::read_to_string(&log).unwrap();
    assert!(
        records.contains("\"event\":\"limit\"") && records.contains("limits.pids"),
        "no pids limit record: {records}"
    );
    assert!(
        records.contains("limits.wall_time"),
        "no wall_time record: {records}"
    );
}

#[test]
fn memory_hog_is_oom_killed_in_its_cgroup() {
    require_root!();
    let dir = TempDir::new("oom");
    let profile = shell_profile(
        &dir,
        Path::new("/usr/lib/python3.11"),
        &dir.mkdir("w"),
        "[limits]\nmemory = \"64MiB\"\n",
    );
    let log = dir.path().join("audit.jsonl");
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--audit-log",
        log.to_str().unwrap(),
        "--",
        "/usr/bin/python3",
        "-c",
        "b = b'x' * (512 << 20); print('survived')",
    ]);
    assert_eq!(out.code(), 137, "{out}");
    assert!(!out.stdout.contains("survived"), "{out}");
    let records = fs::read_to_string(&log).unwrap();
    assert!(
        records.contains("\"event\":\"limit\"") && records.contains("limits.memory"),
        "no memory limit record: {records}"
    );
}

#[test]
fn wall_time_kills_a_spinner() {
    require_root!();
    let dir = TempDir::new("walltime");
    let profile = shell_profile(
        &dir,
        dir.path(),
        &dir.mkdir("w"),
        "[limits]\nwall_time = \"2s\"\n",
    );
    let started = Instant::now();
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let took = started.elapsed();
    assert_eq!(out.code(), 137, "{out}");
    assert!(
        out.stderr.contains("guard: killed") && out.stderr.contains("limits.wall_time"),
        "{out}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "the spinner lived {took:?}"
    );
}

#[test]
fn a_double_forked_daemon_does_not_outlive_guard() {
    require_root!();
    let dir = TempDir::new("daemon");
    let w = dir.mkdir("w");
    let pidfile = w.join("pid");
    let profile = shell_profile(&dir, dir.path(), &w, "");
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "sh",
        "-c",
        &format!(
            "setsid sh -c 'sleep 300 & echo $! > {}' & sleep 0.5",
            pidfile.display()
        ),
    ]);
    assert_eq!(out.code(), 0, "{out}");
    let pid: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The daemon's pid must be gone (or, if reused, not be our sleep).
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !cmdline.starts_with("sleep\x00300"),
        "the daemon survived as pid {pid}"
    );
}

#[test]
fn audit_log_records_start_exec_and_exit_in_a_verified_chain() {
    require_root!();
    let dir = TempDir::new("audit");
    let profile = shell_profile(&dir, dir.path(), &dir.mkdir("w"), "");
    let log = dir.path().join("audit.jsonl");
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--audit-log",
        log.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(out.code(), 7, "{out}");
    let text = fs::read_to_string(&log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["start", "exec", "exit", "seal"], "{text}");
    for (seq, record) in records.iter().enumerate() {
        assert_eq!(record["seq"], seq as u64);
        for field in [
            "ts",
            "sandbox",
            "profile",
            "profile_sha256",
            "pid",
            "exe",
            "verdict",
            "rule",
            "enforcer",
            "detail",
            "prev",
        ] {
            assert!(
                record.get(field).is_some(),
                "record {seq} lacks {field}: {text}"
            );
        }
    }
    assert_eq!(records[2]["detail"]["status"], 7, "{text}");
    guard::audit::verify_chain(fs::File::open(&log).unwrap()).expect("the chain verifies");
}

#[test]
fn audit_mode_records_instead_of_denying_files() {
    require_root!();
    let dir = TempDir::new("auditmode");
    let readable = dir.mkdir("r");
    let target = readable.join("written-in-audit-mode");
    let profile = shell_profile(&dir, &readable, &dir.mkdir("w"), "");
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--mode",
        "audit",
        "--",
        "sh",
        "-c",
        &format!("echo x > {}", target.display()),
    ]);
    assert_eq!(out.code(), 0, "{out}");
    assert!(target.exists());
}

/// The command is in the sandbox's cgroups when it starts, whichever way guard put it there
/// (clone3 into the cgroup on pure cgroup v2, fork and move on hybrid hosts): its own
/// `/proc/self/cgroup`, read by the command itself, names the sandbox in the unified hierarchy
/// and in every v1 hierarchy that holds a controller guard limits with.
#[test]
fn the_command_starts_inside_the_sandbox_cgroup() {
    require_root!();
    let dir = TempDir::new("incgroup");
    let profile = shell_profile(
        &dir,
        Path::new("/proc"),
        &dir.mkdir("w"),
        "[limits]\nmemory = \"128MiB\"\npids = 64\n",
    );
    let log = dir.path().join("audit.jsonl");
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--audit-log",
        log.to_str().unwrap(),
        "--",
        "/bin/cat",
        "/proc/self/cgroup",
    ]);
    assert_eq!(out.code(), 0, "{out}");
    let records = fs::read_to_string(&log).unwrap();
    let start: serde_json::Value = serde_json::from_str(records.lines().next().unwrap()).unwrap();
    let sandbox = start["sandbox"].as_str().unwrap();
    let expected = format!("/guard/{sandbox}");
    // Lines are `hierarchy-id:controllers:path`; `0::path` is cgroup2.
    let path_of = |wanted: &dyn Fn(&str) -> bool| -> Option<&str> {
        out.stdout.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            wanted(controllers).then_some(path)
        })
    };
    assert_eq!(
        path_of(&|c| c.is_empty()),
        Some(expected.as_str()),
        "cgroup2: {out}"
    );
    for controller in ["memory", "pids"] {
        // Present on hybrid hosts only; on pure cgroup v2 the line above is the whole story.
        if let Some(path) = path_of(&|c| c.split(',').any(|name| name == controller)) {
            assert_eq!(path, expected, "{controller}: {out}");
        }
    }
}

#[test]
fn no_sandbox_cgroup_is_left_behind() {
    require_root!();
    let dir = TempDir::new("cleanup");
    let profile = shell_profile(
        &dir,
        dir.path(),
        &dir.mkdir("w"),
        "[limits]\nmemory = \"128MiB\"\npids = 64\n",
    );
    let out = guard(&["exec", "--profile", &profile, "--", "sh", "-c", "echo $$"]);
    assert_eq!(out.code(), 0, "{out}");
    let pid = out.stdout.trim().to_string();
    for root in [
        "/sys/fs/cgroup/memory/guard",
        "/sys/fs/cgroup/pids/guard",
        "/sys/fs/cgroup/unified/guard",
        "/sys/fs/cgroup/guard",
    ] {
        let Ok(entries) = fs::read_dir(root) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                let procs =
                    fs::read_to_string(entry.path().join("cgroup.procs")).unwrap_or_default();
                assert!(
                    !procs.lines().any(|p| p == pid),
                    "pid {pid} still in {}",
                    entry.path().display()
                );
            }
        }
    }
}

/// Starts guard in the background with its output piped.
fn spawn_guard(args: &[&str]) -> std::process::Child {
    std::process::Command::new(crate::support::guard_bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `path` exists (the sandboxed command wrote it), for at most 10 s.
fn wait_for_file(path: &Path) -> String {
    for _ in 0..200 {
        if let Ok(text) = fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

fn alive(pid: i32) -> bool {
    // Zombies count as dead: they run nothing.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn sigterm_to_guard_is_relayed_to_the_command() {
    require_root!();
    let dir = TempDir::new("sigterm");
    let w = dir.mkdir("w");
    let ready = w.join("ready");
    let profile = shell_profile(&dir, dir.path(), &w, "");
    let script = format!(
        "trap 'echo got-term; exit 42' TERM; echo $$ > {}; while :; do sleep 0.1; done",
        ready.display()
    );
    let child = spawn_guard(&["exec", "--profile", &profile, "--", "sh", "-c", &script]);
    wait_for_file(&ready);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out: crate::support::Run = child.wait_with_output().unwrap().into();
    assert_eq!(out.code(), 42, "{out}");
    assert!(out.stdout.contains("got-term"), "{out}");
}

#[test]
fn killing_guard_kills_the_whole_sandbox() {
    require_root!();
    let dir = TempDir::new("killguard");
    let w = dir.mkdir("w");
    let pids = w.join("pids");
    let profile = shell_profile(&dir, dir.path(), &w, "");
    // A grandchild in its own session: PDEATHSIG of the first process does not reach it.
    let script = format!(
        "setsid sh -c 'echo $$ >> {p}; exec sleep 300' & echo $$ >> {p}; wait",
        p = pids.display()
    );
    let mut child = spawn_guard(&["exec", "--profile", &profile, "--", "sh", "-c", &script]);
    let mut text = wait_for_file(&pids);
    for _ in 0..100 {
        if text.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        text = fs::read_to_string(&pids).unwrap();
    }
    let sandboxed: Vec<i32> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(sandboxed.len(), 2, "{text}");
    assert!(sandboxed.iter().all(|&pid| alive(pid)));
    child.kill().unwrap(); // SIGKILL: guard gets no chance to clean up itself
    child.wait().unwrap();
    let mut survivors = sandboxed.clone();
    for _ in 0..100 {
        survivors.retain(|&pid| alive(pid));
        if survivors.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        survivors.is_empty(),
        "sandboxed processes {survivors:?} outlived guard"
    );
}

#[test]
fn ctrl_c_on_a_terminal_reaches_the_command_once() {
    require_root!();
    let dir = TempDir::new("tty");
    let profile = shell_profile(&dir, dir.path(), &dir.mkdir("w"), "");
    let mut command = std::process::Command::new(crate::support::guard_bin());
    command.args(["exec", "--profile", &profile, "--", "sh", "-c", COUNT_INTS]);
    let (status, seen) = ctrl_c_on_a_terminal(command);
    assert_eq!(status.code(), Some(0), "{seen}");
    assert!(
        seen.contains("ints=1"),
        "Ctrl-C not delivered exactly once: {seen}"
    );
    assert!(seen.contains("is-a-tty"), "{seen}");
}

#[test]
fn the_tool_cannot_signal_or_reach_abstract_sockets_outside_its_sandbox() {
    require_root!();
    let dir = TempDir::new("scope");
    let abi = crate::support::landlock_abi();
    // From Landlock ABI 6: unix sockets allowed for one path, so AF_UNIX sockets may exist and
    // it is Landlock's scoping (not seccomp) that must stop the abstract connect. Below it guard
    // refuses unix paths (vm::scoping_below_landlock_abi_6_is_refused_only_with_unix_paths), so
    // the profile has none: seccomp refuses every AF_UNIX socket, and guard itself refuses the
    // signal.
    let network = if abi >= 6 {
        "[network]\nunix = [\"/run/guard-e2e-unused.sock\"]\n"
    } else {
        ""
    };
    let profile = shell_profile(
        &dir,
        Path::new("/usr/lib/python3.11"),
        &dir.mkdir("w"),
        network,
    );
    // A process of the same uid outside the sandbox, and an abstract unix socket listener.
    let mut outsider = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let name = format!("guard-e2e-scope-{}", std::process::id());
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&address).unwrap();
    listener.set_nonblocking(true).unwrap();

    let python = format!(
        r#"
import os, socket
try:
    os.kill({pid}, 0)
    print("signal ok")
except OSError as e:
    print("signal", e.strerror)
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0{name}")
    print("abstract ok")
except OSError as e:
    print("abstract", e.strerror)
"#,
        pid = outsider.id()
    );
    // Bare, both reach the outside: the attack works without guard.
    let bare = std::process::Command::new("/usr/bin/python3")
        .args(["-c", &python])
        .output()
        .unwrap();
    let bare_out = String::from_utf8_lossy(&bare.stdout);
    assert!(bare_out.contains("signal ok"), "bare: {bare_out}");
    assert!(bare_out.contains("abstract ok"), "bare: {bare_out}");
    assert!(listener.accept().is_ok(), "the bare connect never arrived");

    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        &python,
    ]);
    let accepted = listener.accept().is_ok();
    outsider.kill().unwrap();
    outsider.wait().unwrap();
    assert_eq!(out.code(), 0, "ABI {abi}: {out}");
    assert!(
        out.stdout.contains("signal Operation not permitted"),
        "ABI {abi}: {out}"
    );
    // EPERM from Landlock's scope; below ABI 6 seccomp's refusal of the AF_UNIX socket.
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("abstract ") && l != "abstract ok"),
        "ABI {abi}: {out}"
    );
    assert!(
        !accepted,
        "the listener outside the sandbox got a connection"
    );
}

#[test]
fn a_profile_without_network_cannot_send_a_single_packet() {
    require_root!();
    let dir = TempDir::new("nonet");
    let profile = shell_profile(&dir, Path::new("/usr/lib/python3.11"), &dir.mkdir("w"), "");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp4 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp4.set_nonblocking(true).unwrap();
    let udp6 = std::net::UdpSocket::bind("[::1]:0").unwrap();
    udp6.set_nonblocking(true).unwrap();
    let python = format!(
        r#"
import socket
def attempt(name, family, kind, addr):
    try:
        s = socket.socket(family, kind)
        if kind == socket.SOCK_STREAM:
            s.connect(addr)
        else:
            s.sendto(b"leak", addr)
        print(name, "ok")
    except OSError as e:
        print(name, e.strerror)
attempt("tcp4", socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", {tcp}))
attempt("udp4", socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", {udp4}))
attempt("udp6", socket.AF_INET6, socket.SOCK_DGRAM, ("::1", {udp6}))
"#,
        tcp = tcp.local_addr().unwrap().port(),
        udp4 = udp4.local_addr().unwrap().port(),
        udp6 = udp6.local_addr().unwrap().port(),
    );
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        &python,
    ]);
    assert_eq!(out.code(), 0, "{out}");
    for name in ["tcp4", "udp4", "udp6"] {
        assert!(
            out.stdout
                .contains(&format!("{name} Operation not permitted")),
            "{name}: {out}"
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut buf = [0u8; 16];
    assert!(tcp.accept().is_err(), "the TCP listener got a connection");
    assert!(
        udp4.recv_from(&mut buf).is_err(),
        "the UDP listener got a datagram"
    );
    assert!(
        udp6.recv_from(&mut buf).is_err(),
        "the UDP6 listener got a datagram"
    );
}

#[test]
fn the_probes_are_attached_without_any_allow_weaker() {
    require_root!();
    let dir = TempDir::new("gaps");
    let marker = dir.path().join("marker");
    let strict = write_profile(
        &dir,
        "strict",
        "name = \"strict\"\nextends = [\"base\"]\n[filesystem]\nexecute = [\"/usr/bin\"]\nwrite = [\"/tmp\"]\n",
    );
    let out = guard(&[
        "exec",
        "--profile",
        &strict,
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(out.code(), 0, "{out}");
    assert!(marker.exists());
}

#[test]
fn unix_socket_paths_run_only_where_the_kernel_checks_them() {
    require_root!();
    let dir = TempDir::new("unix-gap");
    let marker = dir.path().join("marker");
    let unix = write_profile(
        &dir,
        "unix",
        "name = \"unix\"\nextends = [\"base\"]\n[filesystem]\nexecute = [\"/usr/bin\"]\nwrite = [\"/tmp\"]\n\
         [network]\nunix = [\"/run/some.sock\"]\n",
    );
    let out = guard(&[
        "exec",
        "--profile",
        &unix,
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    match crate::unix::unix_hooks_skip_reason() {
        // Linux 6.7+: the cgroup unix hooks check each path, nothing to accept.
        None => {
            assert_eq!(out.code(), 0, "{out}");
            assert!(marker.exists(), "the command did not run");
        }
        // Older kernels: refused until the profile accepts the gap by name.
        Some(_) => {
            assert_eq!(out.code(), 125, "{out}");
            assert!(
                out.stderr.contains("allow_weaker = [\"ebpf.unix\"]"),
                "{out}"
            );
            assert!(!marker.exists(), "the command ran although guard refused");
        }
    }
}

#[test]
fn the_tool_cannot_make_a_root_owned_file_setuid() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("setuid");
    let outside = dir.mkdir("outside");
    let target = outside.join("tool");
    fs::copy("/usr/bin/id", &target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
    let profile = shell_profile(&dir, &dir.mkdir("r"), &dir.mkdir("w"), "");
    for mode in ["4755", "2755", "u+s"] {
        let out = guard(&[
            "exec",
            "--profile",
            &profile,
            "--",
            "chmod",
            mode,
            target.to_str().unwrap(),
        ]);
        assert_ne!(out.code(), 0, "chmod {mode} succeeded: {out}");
        assert!(out.stderr.contains("Operation not permitted"), "{out}");
        let now = fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(now, 0o755, "chmod {mode} changed the mode to {now:o}");
    }
}

#[test]
fn a_profile_without_unix_sockets_cannot_reach_one_outside() {
    require_root!();
    let dir = TempDir::new("unixsock");
    let path = dir.path().join("outside.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let profile = shell_profile(&dir, Path::new("/usr/lib/python3.11"), &dir.mkdir("w"), "");
    let python = format!(
        r#"
import socket
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("{path}")
    s.send(b"leak")
    print("unix ok")
except OSError as e:
    print("unix", e.strerror)
a, b = socket.socketpair()
a.send(b"x")
print("socketpair", b.recv(1).decode())
"#,
        path = path.display()
    );
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        &python,
    ]);
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.contains("unix Operation not permitted"), "{out}");
    assert!(
        out.stdout.contains("socketpair x"),
        "socketpair must keep working: {out}"
    );
    assert!(
        listener.accept().is_err(),
        "the listener outside got a connection"
    );
}

#[test]
fn signals_stay_inside_the_sandbox_on_every_landlock_abi() {
    // Not require_root!: below Landlock ABI 6 guard keeps signals in itself, which is the point.
    require_root!();
    let dir = TempDir::new("signals");
    let profile = shell_profile(&dir, Path::new("/usr/lib/python3.11"), &dir.mkdir("w"), "");
    // A process of the same uid outside the sandbox. Bare, a signal reaches it (kill -0).
    let mut outsider = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = outsider.id();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None)
        .expect("a signal reaches it bare");
    // Inside: its own child can be signalled, the outsider cannot.
    let script = format!(
        "sleep 30 & kill -TERM $! && wait $!; echo own=$?; kill -TERM {pid}; echo outside=$?"
    );
    let out = guard(&["exec", "--profile", &profile, "--", "bash", "-c", &script]);
    assert!(out.stdout.contains("own=143"), "{out}");
    assert!(out.stdout.contains("outside=1"), "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
    // Seen from outside: the outsider is still running.
    assert!(
        outsider.try_wait().unwrap().is_none(),
        "the signal reached the outsider"
    );
    let _ = outsider.kill();
    let _ = outsider.wait();
}
