//! Shared helpers for the end-to-end tests: locating the binary, temp dirs, running guard.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `guard` binary cargo built for this test run.
pub fn guard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_guard"))
}

/// Runs `guard` with `args` and returns its output, panicking with context if it cannot start.
pub fn run_guard(args: &[&str]) -> Output {
    Command::new(guard_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run guard {args:?}: {e}"))
}

/// The repository root (the parent of `supervisor/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("supervisor/ has a parent")
        .to_path_buf()
}

/// What a finished `guard` run showed: exit code and text streams, printable for assertions.
pub struct Run {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code; a guard killed by a signal is reported as 128+N like a shell would.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code(),
            self.stdout,
            self.stderr
        )
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs guard with `args`, stdin closed.
pub fn guard(args: &[&str]) -> Run {
    guard_with_env(args, &[])
}

/// Runs guard with `args` and extra environment variables in guard's own environment.
pub fn guard_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    Command::new(guard_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run guard {args:?}: {e}"))
        .into()
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("guard-e2e-{label}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Creates and returns a subdirectory.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `<dir>/<name>.toml` and returns its path as a string.
pub fn write_profile(dir: &TempDir, name: &str, toml: &str) -> String {
    let path = dir.path().join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

/// chmod 755.
pub fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// Runs `command` (a `guard exec` whose command prints `ready`) with a fresh terminal as its
/// stdin, stdout, stderr and controlling terminal, as in an interactive shell; types Ctrl-C once
/// `ready` shows, and returns its status and everything the terminal showed.
pub fn ctrl_c_on_a_terminal(mut command: Command) -> (std::process::ExitStatus, String) {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave_fd = pty.slave.as_raw_fd();
    command
        .stdin(pty.slave.try_clone().unwrap())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(pty.slave.try_clone().unwrap());
    // SAFETY: setsid and ioctl are async-signal-safe; the terminal becomes the controlling
    // terminal of the started process.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    // Only the child may hold the terminal's slave side, or the master never sees it close.
    drop(command);
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("ready") {
        let n = master.read(&mut buf).unwrap();
        assert!(n > 0, "terminal closed before ready: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    master.write_all(&[0x03]).unwrap(); // Ctrl-C, as the terminal driver sees it
    let status = child.wait().unwrap();
    loop {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    (status, seen)
}

/// The script of the Ctrl-C tests: counts SIGINTs for a second and says whether stdin is a tty.
pub const COUNT_INTS: &str =
    "n=0; trap 'n=$((n+1))' INT; echo ready; sleep 1; echo ints=$n; [ -t 0 ] && echo is-a-tty";

/// True when the tests run as root (guard exec needs root for cgroups and capabilities).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The Landlock ABI this kernel offers (0 when Landlock is off).
pub fn landlock_abi() -> u32 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a NULL attr and size 0 reads no memory.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    u32::try_from(abi).unwrap_or(0)
}

/// Why a test cannot run `guard exec` here at all: it is not root.
pub const NOT_ROOT: &str = "needs root (guard exec creates cgroups and drops capabilities)";

/// Why `guard exec` of the test profiles cannot run here, if it cannot: not root, or no
/// Landlock at all (Linux < 5.13, or Landlock not enabled), where no other layer confines file
/// access and guard refuses every profile with 125 (`vm::a_kernel_without_landlock_is_refused`).
/// Every other gap of an older kernel is covered by another layer, so the tests run there too.
pub fn exec_skip_reason() -> Option<String> {
    if !is_root() {
        return Some(NOT_ROOT.into());
    }
    if landlock_abi() == 0 {
        return Some(
            "no Landlock on this kernel: guard refuses every profile with 125 (no other layer \
             confines file access)"
                .into(),
        );
    }
    None
}

/// Skips a test that runs `guard exec` where it cannot run, saying why (never silently): not
/// root, or a kernel without Landlock.
macro_rules! require_root {
    () => {
        if let Some(reason) = $crate::support::exec_skip_reason() {
            eprintln!("skipping: {reason}");
            return;
        }
    };
}
pub(crate) use require_root;

/// Whether this kernel has `SO_PEERPIDFD` (Linux 6.5), which the daemon needs to tell root
/// (uid 0 with root's capabilities) from a capless uid 0. Without it the daemon serves uid 0
/// only through an `[[allow]]` entry, like any user.
pub fn kernel_has_peer_pidfd() -> bool {
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `fd`, a c_int.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&a),
            libc::SOL_SOCKET,
            77, // SO_PEERPIDFD
            (&raw mut fd).cast(),
            &mut len,
        )
    };
    if rc == 0 && fd >= 0 {
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        unsafe { libc::close(fd) };
        return true;
    }
    false
}

/// Why a daemon test about root's capabilities cannot run here: without `SO_PEERPIDFD` the
/// daemon cannot read a caller's capabilities without a pid-reuse race, so it never treats
/// uid 0 as root (it refuses instead; `[[allow]]` entries still serve uid 0 as a user).
pub const NO_PEER_PIDFD: &str = "no SO_PEERPIDFD (Linux 6.5): the daemon cannot pin a caller to \
     read its capabilities, so it never treats uid 0 as root here (it refuses; uid 0 needs an \
     [[allow]] entry)";

/// Skips a daemon test that needs root callers to be recognised as root, saying why.
macro_rules! require_peer_pidfd {
    () => {
        if !$crate::support::kernel_has_peer_pidfd() {
            eprintln!("skipping: {}", $crate::support::NO_PEER_PIDFD);
            return;
        }
    };
}
pub(crate) use require_peer_pidfd;

/// True inside the VM that `cargo xtask vm-test` boots: its init sets `GUARD_VM=1`.
pub fn in_vm() -> bool {
    std::env::var_os("GUARD_VM").is_some_and(|v| v == "1")
}

/// Skips a test that only means something in the VM (it compares the VM with the host that
/// booted it), saying why.
macro_rules! require_vm {
    () => {
        if !$crate::support::in_vm() {
            eprintln!(
                "skipping: runs only in the VM of `cargo xtask vm-test` (GUARD_VM=1), which \
                 compares its kernel with this host's"
            );
            return;
        }
    };
}
pub(crate) use require_vm;

/// `guard doctor`'s report on this kernel, asked once per test run.
pub fn doctor_report() -> &'static str {
    static REPORT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    REPORT.get_or_init(|| {
        let out = guard(&["doctor"]);
        assert_eq!(out.code(), 0, "guard doctor failed: {out}");
        out.stdout
    })
}

/// Whether this kernel loads and attaches BPF LSM programs (`bpf lsm: loadable`).
pub fn bpf_lsm_available() -> bool {
    doctor_report().lines().any(|l| l == "bpf lsm: loadable")
}

/// The cgroup v2 controllers of a pure cgroup v2 host (no v1 hierarchy holds a controller);
/// `None` on hybrid and v1 hosts.
pub fn pure_cgroup2_controllers() -> Option<Vec<String>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut cgroup2_root = None;
    for line in mountinfo.lines() {
        let (before, after) = line.split_once(" - ")?;
        let mount_point = before.split(' ').nth(4)?;
        let fs_type = after.split(' ').next()?;
        if fs_type == "cgroup" {
            return None;
        }
        if fs_type == "cgroup2" && cgroup2_root.is_none() {
            cgroup2_root = Some(PathBuf::from(mount_point));
        }
    }
    let controllers = std::fs::read_to_string(cgroup2_root?.join("cgroup.controllers")).ok()?;
    Some(controllers.split_whitespace().map(String::from).collect())
}

/// Skips a test that needs BPF LSM programs where the kernel refuses them (the 6.18 development
/// host), saying why. In the VM, whose kernel boots with `lsm=...,bpf`, a refusal fails the test
/// instead: covering BPF LSM is what the VM is for.
#[allow(
    unused_macros,
    reason = "the BPF LSM enforcement tests of issue 4 use it"
)]
macro_rules! require_bpf_lsm {
    () => {
        if !$crate::support::bpf_lsm_available() {
            assert!(
                !$crate::support::in_vm(),
                "the VM's kernel must load BPF LSM programs:\n{}",
                $crate::support::doctor_report()
            );
            eprintln!(
                "skipping: BPF LSM programs not available on this kernel (covered by `cargo xtask vm-test`)"
            );
            return;
        }
    };
}
pub(crate) use require_bpf_lsm;

/// Skips a test of guard's cgroup v2 backend where the controllers sit on v1 hierarchies (the
/// hybrid development host), saying why; in the VM a missing controller fails the test.
macro_rules! require_pure_cgroup2 {
    () => {{
        let controllers = $crate::support::pure_cgroup2_controllers().unwrap_or_default();
        let missing: Vec<&str> = ["memory", "pids", "cpu"]
            .into_iter()
            .filter(|c| !controllers.iter().any(|have| have == c))
            .collect();
        if !missing.is_empty() {
            assert!(
                !$crate::support::in_vm(),
                "the VM must offer pure cgroup v2 with {missing:?}; it has {controllers:?}"
            );
            eprintln!(
                "skipping: no pure cgroup v2 with the {missing:?} controllers here (covered by `cargo xtask vm-test`)"
            );
            return;
        }
    }};
}
pub(crate) use require_pure_cgroup2;
