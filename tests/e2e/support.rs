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

/// Skips a test that needs root, saying why (never silently).
macro_rules! require_root {
    () => {
        if !$crate::support::is_root() {
            eprintln!("skipping: needs root (guard exec creates cgroups and drops capabilities)");
            return;
        }
    };
}
pub(crate) use require_root;
