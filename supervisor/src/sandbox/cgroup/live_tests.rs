//! Root-only tests against the real cgroup filesystem of this host, through [`super::create`] so
//! they exercise whichever backend the host needs (hybrid on the development host, v2 in the VM).

use std::io::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::{Pid, geteuid};

use super::{CgroupError, CgroupManager};
use crate::plan::CgroupLimits;

/// A sandbox cgroup that is killed and removed even when an assertion fails, so a failing test
/// leaves nothing on the host.
#[derive(Debug)]
struct Sandbox(Box<dyn CgroupManager>);

impl std::ops::Deref for Sandbox {
    type Target = dyn CgroupManager;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill_all();
        let _ = self.0.remove();
    }
}

fn create(id: &str, limits: &CgroupLimits) -> Result<Sandbox, CgroupError> {
    super::create(id, limits).map(Sandbox)
}

fn is_root() -> bool {
    if geteuid().is_root() {
        return true;
    }
    eprintln!("skipping: not root");
    false
}

/// A shell that waits for one line on stdin before running `script`, so it can be put in the
/// cgroup before it forks anything.
fn gated_shell(script: &str) -> Child {
    Command::new("sh")
        .args(["-c", &format!("read _go; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh")
}

fn release(child: &mut Child) {
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(b"go\n")
        .expect("release the gated shell");
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().expect("pid"))
        .collect()
}

/// Every directory named `id` under a `guard/` directory of any cgroup hierarchy on this host.
fn sandbox_dirs(id: &str) -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mounts = super::Mounts::parse(&mountinfo);
    mounts
        .cgroup2
        .iter()
        .chain(mounts.v1.values())
        .map(|m| m.join(super::GUARD_DIR).join(id))
        .filter(|d| d.exists())
        .collect()
}

/// Forks sleepers forever, retrying refused forks.
const FORK_LOOP: &str = "exec python3 -c '
import os, time
while True:
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
    except OSError:
        time.sleep(0.001)
'";

fn unique_id(name: &str) -> String {
    format!("test-{name}-{}", std::process::id())
}

#[test]
fn sandbox_lifecycle_with_a_forking_tree() {
    if !is_root() {
        return;
    }
    let id = unique_id("lifecycle");
    let limits = CgroupLimits {
        memory_bytes: Some(128 << 20),
        pids: Some(16),
        cpu: Some(0.5),
    };
    let cg = create(&id, &limits).expect("create sandbox cgroup");
    assert!(cg.cgroup2_path().ends_with(format!("guard/{id}")));
    assert_ne!(cg.cgroup2_id(), 0);
    assert!(!sandbox_dirs(&id).is_empty());

    // A process that keeps forking sleepers, and retries when pids.max refuses (a shell would
    // give up at the first refused fork): kill_all must win that race.
    let mut child = gated_shell(FORK_LOOP);
    cg.add_task(Pid::from_raw(
        i32::try_from(child.id()).expect("pid fits i32"),
    ))
    .expect("add_task");
    let own =
        std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).expect("/proc/pid/cgroup");
    assert!(own.contains(&format!("/guard/{id}")), "{own}");
    release(&mut child);
    wait_for(
        "a fork refused at pids.max",
        Duration::from_secs(10),
        || cg.events().expect("events").pids_max > 0,
    );
    assert!(
        procs(cg.cgroup2_path()).len() > 4,
        "the tree is in the cgroup2 directory too"
    );

    cg.kill_all().expect("kill_all");
    let status = child.wait().expect("wait for the fork loop");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(procs(cg.cgroup2_path()).is_empty());

    cg.remove().expect("remove");
    assert_eq!(
        sandbox_dirs(&id),
        Vec::<PathBuf>::new(),
        "nothing of the sandbox remains"
    );
    cg.remove().expect("remove is idempotent");
}

#[test]
fn memory_limit_ooms_and_is_reported() {
    if !is_root() {
        return;
    }
    let id = unique_id("oom");
    let limits = CgroupLimits {
        memory_bytes: Some(32 << 20),
        pids: None,
        cpu: None,
    };
    let cg = create(&id, &limits).expect("create sandbox cgroup");
    // Writes 256 MiB (a bytes repetition touches every page), eight times the limit.
    let mut child = gated_shell("python3 -c \"b = b'x' * (256 << 20)\"; sleep 30");
    cg.add_task(Pid::from_raw(
        i32::try_from(child.id()).expect("pid fits i32"),
    ))
    .expect("add_task");
    release(&mut child);
    wait_for("an OOM kill", Duration::from_secs(20), || {
        cg.events().expect("events").oom_kills > 0
    });
    let peak = cg.memory_peak().expect("memory_peak");
    if let Some(peak) = peak {
        assert!(
            peak <= 33 << 20,
            "peak {peak} within the limit (+ a page of slack)"
        );
        assert!(peak > 1 << 20, "peak {peak} counts the allocation");
    }
    assert_eq!(cg.events().expect("events").pids_max, 0);

    cg.kill_all().expect("kill_all");
    child.wait().expect("wait for the shell");
    cg.remove().expect("remove");
    assert!(sandbox_dirs(&id).is_empty());
}

#[test]
fn second_sandbox_with_the_same_id_is_refused() {
    if !is_root() {
        return;
    }
    let id = unique_id("dup");
    let cg = create(&id, &CgroupLimits::default()).expect("create");
    let err = create(&id, &CgroupLimits::default()).expect_err("same id twice");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(
        !sandbox_dirs(&id).is_empty(),
        "the failed create did not remove the first sandbox"
    );
    cg.remove().expect("remove");
    assert!(sandbox_dirs(&id).is_empty());
}

/// The freeze-kill-thaw loop alone, as on a hybrid host without `cgroup.kill` (before 5.14):
/// v1 pids and freezer directories made by hand, a fork loop in them.
#[test]
fn v1_freeze_kill_loop_empties_a_forking_tree() {
    if !is_root() {
        return;
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mounts = super::Mounts::parse(&mountinfo);
    let (Some(pids_mount), Some(freezer_mount)) = (mounts.v1.get("pids"), mounts.v1.get("freezer"))
    else {
        eprintln!("skipping: v1 pids and freezer hierarchies not available");
        return;
    };
    let id = unique_id("freezeloop");
    let dirs: Vec<PathBuf> = [pids_mount, freezer_mount]
        .iter()
        .map(|m| m.join(super::GUARD_DIR).join(&id))
        .collect();
    for dir in &dirs {
        super::files::ensure_dir(dir.parent().expect("guard dir")).expect("guard dir");
        super::files::create_new_dir(dir).expect("sandbox dir");
    }
    super::files::write(&dirs[0], "pids.max", "16").expect("pids.max");
    let mut child = gated_shell(FORK_LOOP);
    for dir in &dirs {
        super::files::write(dir, "cgroup.procs", &child.id().to_string()).expect("add pid");
    }
    release(&mut child);
    wait_for(
        "the fork loop to fill pids.max",
        Duration::from_secs(10),
        || procs(&dirs[0]).len() >= 15,
    );

    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let killed = super::files::kill_until_empty(&dir_refs, &super::v1::V1Freezer(&dirs[1]));
    let status = child.wait().expect("wait for the fork loop");
    for dir in &dirs {
        super::files::remove_dir(dir).expect("rmdir");
    }
    killed.expect("kill_until_empty");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(dirs.iter().all(|d| !d.exists()));
}
