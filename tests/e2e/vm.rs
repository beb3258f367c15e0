//! What only a kernel unlike the development host's can show: BPF LSM programs that load, pure
//! cgroup v2 limits through guard's v2 backend, and older Landlock ABIs handled as the profile
//! demands. `cargo xtask vm-test` boots such a kernel (Debian 6.12 or 6.1, `lsm=...,bpf`,
//! `cgroup_no_v1=all`) and runs this whole suite there with `GUARD_VM=1`.
//!
//! Each test states what it needs with a `require_*!` macro from `support`: on a host without it
//! the test prints `skipping: <why>` and returns; in the VM a missing feature fails the test,
//! because covering it is what the VM is for. Tests of enforcement that needs BPF LSM follow
//! [`bpf_lsm_refuses_a_forbidden_exec_with_eperm_and_the_shell_goes_on`]:
//! `require_root!(); require_bpf_lsm!();`, then drive `guard exec` and assert the EPERM.

use std::path::Path;

use crate::support::{
    Run, TempDir, guard, landlock_abi, require_bpf_lsm, require_pure_cgroup2, require_root,
    require_vm, write_profile,
};

/// The value of the doctor line starting with `key`.
fn doctor_line<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` line in:\n{report}"))
}

#[test]
fn doctor_in_the_vm_reports_bpf_lsm_and_cgroup2_controllers() {
    require_vm!();
    let report = crate::support::doctor_report();
    assert_eq!(
        doctor_line(report, "bpf lsm: "),
        "bpf lsm: loadable",
        "\n{report}"
    );
    assert_eq!(
        doctor_line(report, "bpf fentry: "),
        "bpf fentry: loadable",
        "\n{report}"
    );
    assert!(
        doctor_line(report, "  the exec allowlist: ").starts_with("  the exec allowlist: BPF LSM"),
        "\n{report}"
    );
    assert_eq!(
        doctor_line(report, "cgroups: "),
        "cgroups: v2 at /sys/fs/cgroup",
        "\n{report}"
    );
    let controllers = doctor_line(report, "  controllers: ");
    for controller in ["memory", "pids", "cpu"] {
        assert!(
            controllers.split_whitespace().any(|c| c == controller),
            "no {controller} controller: {controllers}\n{report}"
        );
    }
    // The kernel the VM meant to boot, by its Landlock ABI: 6.12 has 6, 6.1 has 2.
    let release = doctor_line(report, "kernel: ");
    let expected_abi = if release.starts_with("kernel: 6.12.") {
        Some(6)
    } else if release.starts_with("kernel: 6.1.") {
        Some(2)
    } else {
        None
    };
    if let Some(abi) = expected_abi {
        assert_eq!(
            doctor_line(report, "landlock: "),
            format!("landlock: ABI {abi}"),
            "\n{report}"
        );
    }
}

#[test]
fn doctor_in_the_vm_differs_from_the_host_report() {
    require_vm!();
    let path = std::env::var("GUARD_VM_HOST_DOCTOR")
        .unwrap_or_else(|e| panic!("GUARD_VM_HOST_DOCTOR not set by the VM's init: {e}"));
    let host = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let guest = crate::support::doctor_report();
    let keys = [
        "kernel: ",
        "landlock: ",
        "bpf lsm: ",
        "bpf fentry: ",
        "cgroups: ",
    ];
    let differing: Vec<&str> = keys
        .into_iter()
        .filter(|key| doctor_line(&host, key) != doctor_line(guest, key))
        .collect();
    eprintln!("differs from the host in: {differing:?}");
    // Another kernel, booted with BPF LSM and pure cgroup v2: the report must say so, or the
    // doctor reads something other than the kernel it runs on.
    assert!(
        differing.contains(&"kernel: "),
        "same kernel release as the host?\n--- host\n{host}--- vm\n{guest}"
    );
    if doctor_line(&host, "bpf lsm: ") != "bpf lsm: loadable" {
        assert!(differing.contains(&"bpf lsm: "), "\n{host}\n{guest}");
    }
    if !doctor_line(&host, "cgroups: ").starts_with("cgroups: v2 ") {
        assert!(differing.contains(&"cgroups: "), "\n{host}\n{guest}");
    }
}

/// A profile running the shell, coreutils and python3 that may read the process's own cgroup
/// files, with `limits` appended. It accepts the Landlock gaps of old kernels, so the cgroup
/// tests run on the 6.1 VM (Landlock ABI 2) too: they test cgroups, not Landlock.
fn cgroup_profile(dir: &TempDir, limits: &str) -> String {
    write_profile(
        dir,
        "cgroup2",
        &format!(
            r#"
name = "vm-cgroup2"
extends = ["base"]
allow_weaker = ["ebpf.network", "ebpf.exec", "landlock.net", "landlock.scope"]

[filesystem]
read = ["/proc", "/sys/fs/cgroup", "/usr/lib/python3.11"]
write = ["{work}"]
execute = ["/usr/bin", "/bin"]

[process]
env = {{ keep = ["PATH"] }}

[limits]
{limits}
"#,
            work = dir.path().display()
        ),
    )
}

/// Python that prints the tool's cgroup (`/proc/self/cgroup`) and the named files of it.
fn print_cgroup_files(files: &[&str]) -> String {
    format!(
        "import sys\n\
         lines = open('/proc/self/cgroup').read().splitlines()\n\
         print('cgroup-lines', len(lines))\n\
         path = '/sys/fs/cgroup' + lines[0].split(':', 2)[2]\n\
         print('cgroup', path)\n\
         for name in {files:?}:\n    \
             print(name, open(path + '/' + name).read().strip().replace('\\n', ','))\n\
         sys.stdout.flush()\n"
    )
}

/// `guard exec --profile <profile> [--audit-log <log>] -- python3 -c <script>`.
fn python_in(profile: &str, audit_log: Option<&Path>, script: &str) -> Run {
    let mut args = vec!["exec", "--profile", profile];
    if let Some(log) = audit_log {
        args.extend(["--audit-log", log.to_str().unwrap()]);
    }
    args.extend(["--", "/usr/bin/python3", "-c", script]);
    guard(&args)
}

/// The value printed after `key ` by [`print_cgroup_files`].
fn printed<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{stdout}"))
}

#[test]
fn cgroup_v2_limits_are_the_v2_files_and_memory_is_oom_killed() {
    require_root!();
    require_pure_cgroup2!();
    let dir = TempDir::new("vm-memory");
    let profile = cgroup_profile(&dir, "memory = \"64MiB\"\npids = 16\ncpu = 0.5\n");
    // Outside the write path: guard refuses to run with its own log writable.
    let logs = TempDir::new("vm-logs");
    let log = logs.path().join("audit.jsonl");
    let script = format!(
        "{}b = b'x' * (512 << 20)\nprint('survived')\n",
        print_cgroup_files(&["memory.max", "pids.max", "cpu.max"])
    );
    let out = python_in(&profile, Some(&log), &script);
    // One line in /proc/self/cgroup, `0::/guard/<id>`: a pure v2 placement, no v1 hierarchy.
    assert_eq!(printed(&out.stdout, "cgroup-lines"), "1", "{out}");
    assert!(
        printed(&out.stdout, "cgroup").starts_with("/sys/fs/cgroup/guard/"),
        "{out}"
    );
    assert_eq!(printed(&out.stdout, "memory.max"), "67108864", "{out}");
    assert_eq!(printed(&out.stdout, "pids.max"), "16", "{out}");
    assert_eq!(printed(&out.stdout, "cpu.max"), "50000 100000", "{out}");
    // The allocation past memory.max ends in the kernel's OOM kill, reported by guard.
    assert_eq!(out.code(), 137, "{out}");
    assert!(!out.stdout.contains("survived"), "{out}");
    let records = std::fs::read_to_string(&log).unwrap();
    let limit = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["event"] == "limit" && r["rule"] == "limits.memory")
        .unwrap_or_else(|| panic!("no limits.memory record: {records}"));
    assert_eq!(limit["enforcer"], "cgroup", "{records}");
}

#[test]
fn cgroup_v2_pids_limit_makes_fork_fail_with_eagain() {
    require_root!();
    require_pure_cgroup2!();
    let dir = TempDir::new("vm-pids");
    let profile = cgroup_profile(&dir, "pids = 8\n");
    let script = r#"
import errno, os, time
kids, failure = [], None
for _ in range(64):
    try:
        pid = os.fork()
    except OSError as e:
        failure = errno.errorcode.get(e.errno)
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
print('forked', len(kids), 'then', failure)
path = '/sys/fs/cgroup' + open('/proc/self/cgroup').read().strip().split(':', 2)[2]
print('pids.events', open(path + '/pids.events').read().split()[1])
for pid in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"#;
    let out = python_in(&profile, None, script);
    assert_eq!(out.code(), 0, "{out}");
    // python3 itself is one of the eight.
    assert!(out.stdout.contains("forked 7 then EAGAIN"), "{out}");
    let refused: u64 = printed(&out.stdout, "pids.events").parse().unwrap();
    assert!(refused >= 1, "pids.events shows no refused fork: {out}");
}

#[test]
fn cgroup_v2_cpu_limit_throttles_a_busy_loop() {
    require_root!();
    require_pure_cgroup2!();
    let dir = TempDir::new("vm-cpu");
    let profile = cgroup_profile(&dir, "cpu = 0.2\n");
    // Spin for 1.5 s of wall time; at 20% of a CPU the cgroup gets about 0.3 s of it.
    let script = format!(
        "import time\n\
         end = time.monotonic() + 1.5\n\
         while time.monotonic() < end:\n    pass\n\
         {}",
        print_cgroup_files(&["cpu.max", "cpu.stat"])
    );
    let out = python_in(&profile, None, &script);
    assert_eq!(out.code(), 0, "{out}");
    assert_eq!(printed(&out.stdout, "cpu.max"), "20000 100000", "{out}");
    let stat: Vec<(&str, u64)> = printed(&out.stdout, "cpu.stat")
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(' ')?;
            Some((k, v.parse().ok()?))
        })
        .collect();
    let value = |key: &str| {
        stat.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {key} in cpu.stat: {out}"))
    };
    assert!(value("nr_throttled") >= 1, "never throttled: {out}");
    // Well below the 1.5 s the loop would use unthrottled (the limit allows about 0.3 s).
    assert!(
        value("usage_usec") < 900_000,
        "the cgroup used more CPU than its limit allows: {out}"
    );
}

/// A profile with no IP network (so it restricts TCP ports), with `unix` socket paths, accepting
/// `allow_weaker` besides the eBPF ones every profile needs today.
fn landlock_profile(dir: &TempDir, name: &str, unix: &[&str], allow_weaker: &[&str]) -> String {
    let mut accepted = vec!["ebpf.network", "ebpf.exec"];
    accepted.extend_from_slice(allow_weaker);
    write_profile(
        dir,
        name,
        &format!(
            r#"
name = "{name}"
extends = ["base"]
allow_weaker = {accepted:?}

[filesystem]
read = ["/usr/lib/python3.11"]
execute = ["/usr/bin", "/bin"]

[network]
unix = {unix:?}

[process]
env = {{ keep = ["PATH"] }}
"#
        ),
    )
}

/// Tries a TCP connect to a listener of the test from inside the sandbox.
const CONNECT: &str = r#"
import socket, sys
try:
    s = socket.socket()
    s.connect(('127.0.0.1', int(sys.argv[1])))
    print('connect ok')
except OSError as e:
    print('connect', e.strerror)
"#;

/// Runs [`CONNECT`] under `profile` against `port`.
fn connect_under(profile: &str, port: &str) -> crate::support::Run {
    guard(&[
        "exec",
        "--profile",
        profile,
        "--",
        "/usr/bin/python3",
        "-c",
        CONNECT,
        port,
    ])
}

#[test]
fn a_network_free_profile_runs_with_full_protection_on_every_landlock_abi() {
    require_root!();
    let abi = landlock_abi();
    let dir = TempDir::new("vm-landlock");
    let strict = landlock_profile(&dir, "strict", &[], &[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // Below ABI 4 the eBPF hooks decide TCP ports (and seccomp bans IP sockets for a profile
    // without network); below ABI 6 guard keeps signals in the sandbox itself and no AF_UNIX
    // socket can be made: nothing is missing, so nothing is refused or needs accepting.
    let out = connect_under(&strict, &port);
    assert_eq!(out.code(), 0, "ABI {abi}: {out}");
    assert!(
        out.stdout.contains("connect Operation not permitted"),
        "{out}"
    );
    assert!(
        listener.accept().is_err(),
        "the listener outside the sandbox got a connection"
    );
}

#[test]
fn scoping_below_landlock_abi_6_is_refused_only_with_unix_paths() {
    require_root!();
    let abi = landlock_abi();
    let dir = TempDir::new("vm-scope");
    let sock = ["/run/guard-test-absent.sock"];
    // With unix socket paths the tool may create AF_UNIX sockets, and below ABI 6 nothing keeps
    // an abstract one from reaching a listener outside: refused, naming the part and the ABI.
    let unscoped = landlock_profile(&dir, "unscoped", &sock, &["ebpf.unix"]);
    let accepting = landlock_profile(&dir, "accepting", &sock, &["ebpf.unix", "landlock.scope"]);
    let run = |profile: &str| guard(&["exec", "--profile", profile, "--", "/usr/bin/true"]);
    let out = run(&unscoped);
    if abi >= 6 {
        assert_eq!(out.code(), 0, "ABI {abi}: {out}");
    } else {
        assert_eq!(out.code(), 125, "ABI {abi}: {out}");
        assert!(
            out.stderr.contains(&format!(
                "signals and abstract unix sockets to outside the sandbox cannot be enforced: \
                 Landlock ABI {abi} < 6 (accept with allow_weaker = [\"landlock.scope\"])"
            )),
            "{out}"
        );
    }
    // Accepted by name: it runs on every ABI.
    let out = run(&accepting);
    assert_eq!(out.code(), 0, "ABI {abi}: {out}");
}

#[test]
fn bpf_lsm_refuses_a_forbidden_exec_with_eperm_and_the_shell_goes_on() {
    require_root!();
    require_bpf_lsm!();
    let dir = TempDir::new("vm-lsm");
    // Landlock lets /usr/bin execute; only the exec allowlist (bash and touch) tells mkdir apart.
    let profile = write_profile(
        &dir,
        "lsm",
        &format!(
            r#"
name = "vm-lsm"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc"]
write = ["{dir}"]
execute = ["/usr/bin"]
[process]
exec = ["/usr/bin/bash", "/usr/bin/touch"]
env = {{ keep = ["PATH"] }}
"#,
            dir = dir.path().display()
        ),
    );
    let made = dir.path().join("made-by-mkdir");
    let after = dir.path().join("after");
    // Outside the write path: guard refuses to run with its own log writable.
    let logs = TempDir::new("vm-logs");
    let log = logs.path().join("audit.jsonl");
    let script = format!(
        "/usr/bin/mkdir {made}; echo rc=$?; touch {after}",
        made = made.display(),
        after = after.display()
    );
    let out = guard(&[
        "exec",
        "--profile",
        &profile,
        "--audit-log",
        log.to_str().unwrap(),
        "--",
        "/usr/bin/bash",
        "-c",
        &script,
    ]);
    // bprm_check_security said no before the exec happened: the shell got EPERM (126) and went
    // on. The tracepoint on kernels without BPF LSM would have killed the new image instead.
    assert_eq!(out.code(), 0, "{out}");
    assert!(out.stdout.contains("rc=126"), "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
    assert!(!made.exists(), "mkdir ran");
    assert!(
        after.exists(),
        "the shell did not go on after the refused exec: {out}"
    );
    let records = std::fs::read_to_string(&log).unwrap();
    let start: serde_json::Value =
        serde_json::from_str(records.lines().next().expect("a start record")).unwrap();
    assert_eq!(start["detail"]["bpf_lsm"], true, "{records}");
}

#[test]
fn a_kernel_without_landlock_is_refused_naming_what_is_missing() {
    if !crate::support::is_root() {
        eprintln!("skipping: {}", crate::support::NOT_ROOT);
        return;
    }
    let abi = landlock_abi();
    if abi > 0 {
        eprintln!(
            "skipping: this kernel has Landlock (ABI {abi}); `cargo xtask vm-test --kernel \
             debian-5.10` boots one without it"
        );
        return;
    }
    let dir = TempDir::new("vm-nolandlock");
    let target = dir.path().join("written");
    // The README's first command: without Landlock no layer confines file access, so guard
    // refuses before anything runs, naming the part and the missing feature.
    let out = guard(&[
        "exec",
        "--profile",
        "shell-readonly",
        "--",
        "bash",
        "-c",
        &format!("head -n1 /etc/passwd; echo pwned > {}", target.display()),
    ]);
    assert_eq!(out.code(), 125, "{out}");
    assert!(
        out.stderr
            .contains("file rules (filesystem) cannot be enforced: Landlock is not available"),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "the command ran: {out}");
    assert!(!target.exists(), "the command wrote {}", target.display());
    // doctor says the same before anyone tries.
    let out = guard(&["doctor"]);
    assert!(
        out.stdout
            .contains("file rules: NOT enforceable: Landlock is not available"),
        "{out}"
    );
}
