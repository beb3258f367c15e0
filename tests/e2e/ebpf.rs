//! The exec probe end to end: a child moved into a cgroup of the test's own must show up as an
//! exec event with its pid and filename; an exec outside that cgroup must not.
//!
//! Needs root and a cgroup2 mount; says `skipping: ...` otherwise.

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use guard::ebpf::{POLICY_REPORT_EXEC, ProbeEvent, Probes, SandboxPolicy, cgroup_id};

/// A cgroup2 directory the test made; removed on drop (after its processes have exited).
struct TestCgroup(PathBuf);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir(&self.0) {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

/// Runs `path` with no arguments, optionally moved into the cgroup whose `cgroup.procs` is
/// `procs` before the exec; returns its pid after it exited successfully.
fn run_in(procs: Option<&Path>, path: &str) -> u32 {
    let mut cmd = Command::new(path);
    if let Some(procs) = procs {
        let procs = CString::new(procs.as_os_str().as_encoded_bytes())
            .unwrap_or_else(|e| panic!("cgroup path with NUL: {e}"));
        // SAFETY: only async-signal-safe calls (open, write, close) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0" means the writing process itself.
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    let pid = child.id();
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("cannot wait for {path}: {e}"));
    assert!(status.success(), "{path} failed: {status}");
    pid
}

/// Collects events until one matches `want` or `timeout` passes, waiting on the ring buffer fd.
fn wait_for(
    probes: &mut Probes,
    timeout: Duration,
    want: impl Fn(&ProbeEvent) -> bool,
) -> Vec<ProbeEvent> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd as _;
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        for event in probes.drain_events() {
            seen.push(event.unwrap_or_else(|e| panic!("malformed record: {e}")));
        }
        if seen.iter().any(&want) || Instant::now() >= deadline {
            return seen;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(probes.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms))
            .unwrap_or_else(|e| panic!("poll on the ring buffer: {e}"));
    }
}

#[test]
fn exec_in_a_watched_cgroup_is_reported() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: loading BPF programs needs root");
        return;
    }
    let mode = guard::host::cgroup::detect();
    let Some(cgroup2) = mode.cgroup2_root() else {
        eprintln!("skipping: no cgroup2 mount");
        return;
    };
    let cgroup = TestCgroup(cgroup2.join(format!("guard-test-{}", std::process::id())));
    std::fs::create_dir(&cgroup.0).unwrap_or_else(|e| panic!("mkdir {}: {e}", cgroup.0.display()));
    let id = cgroup_id(&cgroup.0).expect("cgroup id");

    let mut probes = Probes::load().expect("load and attach the probes");
    let policy = SandboxPolicy {
        sandbox_id: 4242,
        flags: POLICY_REPORT_EXEC,
        reserved: 0,
    };
    probes.watch_cgroup(id, policy).expect("watch the cgroup");

    // Outside the watched cgroup: must stay invisible.
    let outside = run_in(None, "/bin/true");
    // Inside.
    let inside = run_in(Some(&cgroup.0.join("cgroup.procs")), "/bin/true");

    let is_inside = |e: &ProbeEvent| e.header().pid == inside;
    let events = wait_for(&mut probes, Duration::from_secs(5), is_inside);
    let ProbeEvent::Exec(exec) = events
        .iter()
        .find(|e| is_inside(e))
        .unwrap_or_else(|| panic!("no exec event for pid {inside}; got {events:?}"));
    assert_eq!(exec.filename, PathBuf::from("/bin/true"));
    assert_eq!(exec.header.cgroup_id, id);
    assert_eq!(exec.header.sandbox_id, policy.sandbox_id);
    assert_eq!(exec.comm, "true");
    assert!(!exec.truncated && !exec.killed, "{exec:?}");
    assert!(
        !events.iter().any(|e| e.header().pid == outside),
        "exec outside the watched cgroup was reported: {events:?}"
    );
    // Every event came from our cgroup: nothing of the host leaks in.
    assert!(
        events.iter().all(|e| e.header().cgroup_id == id),
        "{events:?}"
    );
    assert_eq!(probes.error_counts().expect("counters"), Default::default());

    probes.unwatch_cgroup(id).expect("unwatch");
    // After unwatching, execs there are no longer reported.
    let after = run_in(Some(&cgroup.0.join("cgroup.procs")), "/bin/true");
    let events = wait_for(&mut probes, Duration::from_millis(300), |e| {
        e.header().pid == after
    });
    assert!(events.is_empty(), "reported after unwatch: {events:?}");
    drop(probes);
}
