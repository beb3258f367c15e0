//! Identity by cgroup ancestry: a process moved into a child cgroup of its sandbox is still the
//! sandbox for the network hooks, the exec check and the kill at the end.
//!
//! No profile may grant writes under a cgroup mount, so the child cgroup is made from OUTSIDE:
//! the test (root) finds the sandboxed shell by a marker in its argv (its host pid; `$$` inside
//! may be a namespace pid), reads its cgroup v2 path from `/proc/<pid>/cgroup`, makes a child
//! directory there and moves the shell into it. What happens next is observed from outside: a
//! listener, a marker file and `kill -0` after guard returns.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Run, TempDir, guard_bin, require_root, write_profile};

/// The cgroup2 mount: `/sys/fs/cgroup/unified` on a hybrid host, `/sys/fs/cgroup` on pure v2.
fn cgroup2_mount() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    mountinfo
        .lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            post.starts_with("cgroup2 ")
                .then(|| PathBuf::from(pre.split(' ').nth(4).expect("mount point")))
        })
        .expect("a cgroup2 mount")
}

/// Host pids of processes whose argv[0] is `argv0` and whose argv[2] (the `-c` script) starts
/// with `script_start`.
fn pids_with_marker(argv0: &str, script_start: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().map(String::as_str) == Some(argv0)
            && args.get(2).is_some_and(|a| a.starts_with(script_start))
        {
            pids.push(pid);
        }
    }
    pids
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence; the pid was found by its marker argv.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn a_child_cgroup_made_from_outside_is_still_the_sandbox() {
    require_root!();
    let allowed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = allowed.local_addr().expect("addr").port();
    let Ok(denied) = TcpListener::bind(("127.0.0.2", port)) else {
        eprintln!("skipping: port {port} busy on 127.0.0.2");
        return;
    };
    denied.set_nonblocking(true).expect("nonblocking");
    let dir = TempDir::new("ancestry");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).expect("work dir");
    let p = write_profile(
        &dir,
        "ancestry",
        &format!(
            r#"
name = "ancestry"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "{d}"]
write = ["{w}"]
execute = ["/usr/bin", "/usr/lib"]
[network]
connect = ["127.0.0.1:{port}"]
[process]
exec = ["/usr/bin/bash", "/usr/bin/sleep"]
"#,
            d = dir.path().display(),
            w = work.display()
        ),
    );
    let marker = format!("ancestry-{}-{}", std::process::id(), port);
    let go = work.join("go");
    let made = work.join("made");

    // Bare: the same connect and exec work without guard.
    let bare = Command::new("bash")
        .args([
            "-c",
            &format!(
                "echo b >/dev/tcp/127.0.0.2/{port} && /usr/bin/mkdir {m} && echo bare-ok",
                m = made.display()
            ),
        ])
        .output()
        .expect("bare bash");
    assert!(String::from_utf8_lossy(&bare.stdout).contains("bare-ok"));
    assert!(made.exists());
    std::fs::remove_dir(&made).expect("rm made");
    let _ = denied.accept().expect("bare connection arrived");

    let script = format!(
        ": {marker}; bash -c ': {marker}-frozen; sleep 1000; :' >/dev/null 2>&1 & \
         while [ ! -e {go} ]; do sleep 0.05; done; \
         bash -c ': {marker}-survivor; sleep 1000; :' >/dev/null 2>&1 & \
         echo b >/dev/tcp/127.0.0.2/{port} && echo ok-denied; \
         /usr/bin/mkdir {m}; echo done",
        go = go.display(),
        m = made.display()
    );
    let child = Command::new(guard_bin())
        .args(["exec", "--profile", &p, "--", "bash", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn guard");
    let shell = wait_for("the sandboxed shell", || {
        pids_with_marker("bash", &format!(": {marker};"))
            .into_iter()
            .next()
    });
    let cgroup = std::fs::read_to_string(format!("/proc/{shell}/cgroup")).expect("cgroup");
    let v2 = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    let sandbox_dir = cgroup2_mount().join(v2.trim_start_matches('/'));
    let child_dir = sandbox_dir.join("escape");
    std::fs::create_dir(&child_dir).expect("mkdir child cgroup");
    std::fs::write(child_dir.join("cgroup.procs"), shell.to_string()).expect("move shell");

    // On a hybrid host, a member frozen on its own in a v1 freezer child cgroup: SIGKILL stays
    // pending until that child is thawed, so guard's teardown must thaw the whole tree.
    let frozen = wait_for("the shell to freeze", || {
        pids_with_marker("bash", &format!(": {marker}-frozen;"))
            .into_iter()
            .next()
    });
    let freezer_child = cgroup
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            controllers
                .split(',')
                .any(|c| c == "freezer")
                .then_some(path)
        })
        .filter(|path| *path != "/")
        .map(|path| {
            Path::new("/sys/fs/cgroup/freezer")
                .join(path.trim_start_matches('/'))
                .join("frozen")
        });
    match &freezer_child {
        Some(dir) => {
            std::fs::create_dir(dir).expect("mkdir freezer child");
            std::fs::write(dir.join("cgroup.procs"), frozen.to_string()).expect("move");
            std::fs::write(dir.join("freezer.state"), "FROZEN").expect("freeze");
        }
        None => eprintln!("skipping the v1 freezer part: the sandbox has no v1 freezer cgroup"),
    }
    std::fs::write(&go, "").expect("go");

    let out = child.wait_with_output().expect("wait guard");
    let run = Run::from(out);
    assert!(!run.stdout.contains("ok-denied"), "{run}");
    assert!(run.stdout.contains("done"), "{run}");
    assert!(
        denied.accept().is_err(),
        "the denied listener saw a connection from the child cgroup"
    );
    assert!(
        !made.exists(),
        "an unlisted binary ran in the child cgroup: {run}"
    );
    let mut survivors: Vec<i32> = pids_with_marker("bash", &format!(": {marker}-survivor;"));
    survivors.push(frozen);
    // SIGKILL is delivered once the tree is thawed; give a dying process a moment to go. A
    // process left frozen would stay for good.
    let deadline = Instant::now() + Duration::from_secs(5);
    while survivors.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    survivors.retain(|p| alive(*p));
    if !survivors.is_empty() {
        // Free them before failing, so the test leaves nothing behind.
        if let Some(dir) = &freezer_child {
            let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
        }
        for pid in &survivors {
            // SAFETY: pids found by this test's own marker.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
    assert!(
        survivors.is_empty(),
        "survived guard's exit: {survivors:?}\n{run}"
    );
    assert!(
        !Path::new(&child_dir).exists(),
        "the child cgroup was left behind"
    );
    if let Some(dir) = &freezer_child {
        assert!(!dir.exists(), "the v1 freezer child cgroup was left behind");
    }
    assert!(
        !Path::new(&child_dir).exists()
            || std::fs::read_to_string(child_dir.join("cgroup.procs"))
                .unwrap_or_default()
                .trim()
                .is_empty(),
        "processes left in the child cgroup"
    );
    let _ = std::fs::remove_dir(&child_dir);
    let _ = std::fs::remove_dir(&sandbox_dir);
}
