//! Clean state under faults (issue 16 point 6), observed from outside: the pinned eBPF maps read
//! back, the cgroup tree, processes' liveness. Only this test's own sandboxes are counted or
//! touched: other guards (a daemon, another checkout) may run on the same host and maps.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::daemon_support::{Daemon, process_alive, sandbox_cgroups, wait_for};
use crate::support::{Run, TempDir, guard_bin, require_root, write_profile};

/// A profile that writes network and exec entries into the shared maps.
const PROFILE: &str = r#"
name = "e2e-clean"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "/lib", "/lib64", "/bin"]
execute = ["/usr/bin", "/bin", "/usr/lib", "/lib", "/lib64"]
[network]
connect = ["127.0.0.1:9"]
"#;

/// The cgroup ids with entries in the probes' maps; `None` (with a printed reason) when this
/// host has no probes.
fn map_ids() -> Option<BTreeSet<u64>> {
    let dir = guard::sandbox::cgroup::guard_cgroup2_dir().ok()?;
    match guard::ebpf::Probes::open_or_load(&dir) {
        Ok(probes) => Some(probes.sandbox_ids()),
        Err(err) => {
            eprintln!("skipping: the eBPF probes are not available here: {err}");
            None
        }
    }
}

/// `guard exec` of `sh -c 'echo started; sleep 300'` under `profile`, waited for until the
/// command runs; returns the guard process and its sandbox id (from the command's cgroup).
fn start_local(command: &mut Command) -> (Child, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "started");
    let id = sandbox_of_descendants(child.id() as i32)
        .unwrap_or_else(|| panic!("no sandbox below guard {}", child.id()));
    (child, id)
}

/// The guard sandbox id of the first descendant of `pid` that runs in one.
fn sandbox_of_descendants(pid: i32) -> Option<String> {
    let mut queue = vec![pid];
    while let Some(p) = queue.pop() {
        if let Ok(cgroups) = std::fs::read_to_string(format!("/proc/{p}/cgroup"))
            && let Some(id) = cgroups.lines().find_map(|l| {
                let path = l.splitn(3, ':').nth(2)?;
                let rest = path.strip_prefix("/guard/")?;
                Some(rest.split('/').next()?.to_owned())
            })
        {
            return Some(id);
        }
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        queue.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok()),
        );
    }
    None
}

fn cgroup_id_of(id: &str) -> u64 {
    let dir = guard::sandbox::cgroup::guard_cgroup2_dir()
        .unwrap()
        .join(id);
    std::fs::metadata(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .ino()
}

fn sleeper(profile: &str) -> Command {
    let mut command = Command::new(guard_bin());
    command.args([
        "exec",
        "--profile",
        profile,
        "--",
        "sh",
        "-c",
        "echo started; exec sleep 300",
    ]);
    command
}

#[test]
fn fifty_sigkilled_local_guards_leave_no_map_entry() {
    require_root!();
    if map_ids().is_none() {
        return;
    }
    let dir = TempDir::new("clean-kill");
    let profile = write_profile(&dir, "clean", PROFILE);
    let mut guards = Vec::new();
    for _ in 0..50 {
        let (child, id) = start_local(&mut sleeper(&profile));
        let cgroup = cgroup_id_of(&id);
        guards.push((child, id, cgroup));
    }
    let ours: BTreeSet<u64> = guards.iter().map(|(_, _, c)| *c).collect();
    let before = map_ids().unwrap();
    // The entries exist while the sandboxes run: what a killed guard would leak.
    assert!(ours.is_subset(&before), "sandboxes not in the maps");
    for (child, _, _) in &mut guards {
        child.kill().unwrap();
    }
    for (child, _, _) in &mut guards {
        let _ = child.wait();
    }
    assert!(
        wait_for(Duration::from_secs(20), || guards
            .iter()
            .all(|(_, id, _)| sandbox_cgroups(id).is_empty())),
        "the sentinels left cgroups"
    );
    assert!(
        wait_for(Duration::from_secs(20), || map_ids()
            .unwrap()
            .is_disjoint(&ours)),
        "entries left of {} killed sandboxes",
        map_ids().unwrap().intersection(&ours).count()
    );
    println!(
        "50 guards SIGKILLed: {} of their cgroup ids had map entries before, 0 after",
        ours.len()
    );
}

#[test]
fn unload_refuses_while_a_sandbox_exists_even_without_run_guard() {
    require_root!();
    if map_ids().is_none() {
        return;
    }
    let dir = TempDir::new("clean-unload");
    let profile = write_profile(&dir, "clean", PROFILE);
    let (mut child, id) = start_local(&mut sleeper(&profile));
    // /run/guard (with the users lock that normally refuses the unload) hidden behind an empty
    // tmpfs in a private mount namespace: the host's /run/guard stays as it is for other guards.
    // Done with system calls before exec (the VM has no mount(8)).
    let out: Run = {
        use std::os::unix::process::CommandExt as _;
        let root = c"/";
        let run_guard = c"/run/guard";
        let tmpfs = c"tmpfs";
        let mut command = Command::new(guard_bin());
        command.arg("unload").stdin(Stdio::null());
        // SAFETY: only system calls on strings prepared before fork run in the child.
        unsafe {
            command.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    tmpfs.as_ptr(),
                    run_guard.as_ptr(),
                    tmpfs.as_ptr(),
                    0,
                    std::ptr::null(),
                ))
            });
        }
        command.output().unwrap().into()
    };
    assert_eq!(out.code(), 1, "{out}");
    assert!(
        out.stderr.contains("sandbox cgroups exist") && out.stderr.contains(&id),
        "{out}"
    );
    // Still enforced and alive: the pins are there and the sandbox runs.
    assert!(map_ids().unwrap().contains(&cgroup_id_of(&id)));
    assert!(child.try_wait().unwrap().is_none());
    child.kill().unwrap();
    let _ = child.wait();
    assert!(wait_for(Duration::from_secs(10), || sandbox_cgroups(&id).is_empty()));
}

#[test]
fn a_daemon_in_another_pid_namespace_leaves_live_sandboxes_alone() {
    require_root!();
    let dir = TempDir::new("clean-pidns");
    let profile = write_profile(&dir, "clean", PROFILE);
    // A local guard in a PID namespace of its own: its sandbox id names its pid there (1 or 2),
    // which is some other process (or none) in the daemon's namespace.
    let mut command = Command::new("unshare");
    command
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(guard_bin())
        .args([
            "exec",
            "--profile",
            &profile,
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 300",
        ]);
    let (mut child, id) = start_local(&mut command);
    let creator: String = id
        .trim_start_matches('g')
        .split('-')
        .next()
        .unwrap()
        .to_owned();
    // What the pid-only check saw: that pid here is another program (or none), so the sandbox
    // looked orphaned.
    println!(
        "sandbox {id}: creator pid {creator} in its namespace; here /proc/{creator}/exe is {:?}",
        std::fs::read_link(format!("/proc/{creator}/exe"))
    );
    let sandbox_pids: Vec<i32> = sandbox_cgroups(&id)
        .iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    assert!(!sandbox_pids.is_empty());
    // The daemon sweeps orphans before it listens: once it serves, the sweep is done.
    let daemon = Daemon::start("", &[]);
    let log = daemon.log_text();
    assert!(
        !log.contains(&format!("removed orphaned sandbox {id}")),
        "{log}"
    );
    assert!(!sandbox_cgroups(&id).is_empty(), "{log}");
    assert!(sandbox_pids.iter().all(|p| process_alive(*p)), "{log}");
    drop(daemon);
    // SIGTERM to guard (pid 1 of the namespace, relayed to its command): it ends normally and
    // removes its cgroups. Killing `unshare` instead would take the sentinel down with the
    // namespace and leave an orphan for the next sweep.
    let unshare = child.id();
    let guard_pid: i32 =
        std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap()
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("guard below unshare");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(guard_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = child.wait();
    assert!(
        wait_for(Duration::from_secs(10), || sandbox_cgroups(&id).is_empty()),
        "left {:?}",
        sandbox_cgroups(&id)
    );
}
