//! Helpers for the daemon tests: throw-away users and groups, a copy of guard every test user
//! may execute, a daemon on a private socket, and running `guard` as a given user.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{Run, TempDir, guard_bin};

/// useradd/groupadd lock /etc/passwd and /etc/group; tests creating users in parallel take turns.
static ACCOUNTS: Mutex<()> = Mutex::new(());

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // User names are limited to 32 characters.
    format!("{prefix}{}x{n}", std::process::id())
}

fn account_tool(args: &[&str]) {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A group removed on drop.
pub struct TestGroup {
    pub name: String,
}

impl TestGroup {
    pub fn new() -> Self {
        let name = unique("guardtg");
        account_tool(&["groupadd", &name]);
        TestGroup { name }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// A user (with a group of its own name) removed on drop, even when the test panics.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
}

impl TestUser {
    pub fn new(groups: &[&TestGroup]) -> Self {
        let name = unique("guardtest");
        let extra: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        let mut args = vec![
            "useradd",
            "--no-create-home",
            "--user-group",
            "--shell",
            "/bin/sh",
        ];
        let joined = extra.join(",");
        if !extra.is_empty() {
            args.extend(["--groups", &joined]);
        }
        args.push(&name);
        account_tool(&args);
        let uid = nix::unistd::User::from_name(&name)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} was not created"))
            .uid
            .as_raw();
        TestUser { name, uid }
    }

    /// `guard ARGS` as this user (real and effective ids, its groups), in `cwd`, through the
    /// daemon at `socket`.
    pub fn guard(&self, socket: &Path, cwd: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid",
                &self.name,
                "--regid",
                &self.name,
                "--init-groups",
            ])
            .arg(shared_guard())
            .args(args)
            .env("GUARD_SOCKET", socket)
            .current_dir(cwd)
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, socket: &Path, cwd: &Path, args: &[&str]) -> Run {
        self.run_env(socket, cwd, args, &[])
    }

    /// As [`TestUser::run`] with extra variables in the caller's environment.
    pub fn run_env(&self, socket: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.guard(socket, cwd, args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
            .into()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        // --force: a test that failed may have left a process of the user behind.
        let _ = Command::new("userdel")
            .args(["--force", &self.name])
            .output();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// The guard binary as every test user can run it: cargo's own when every directory above it is
/// searchable by others, else a copy in a world-readable directory (the checkout may sit under a
/// home directory test users cannot enter; CI clones into /root). Copies left by earlier test
/// runs (whose process is gone) are removed first.
pub fn shared_guard() -> PathBuf {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let built = guard_bin();
        let reachable =
            built.ancestors().skip(1).all(|dir| {
                std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0)
            }) && std::fs::metadata(&built).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
        if reachable {
            return built;
        }
        let tmp = std::env::temp_dir();
        for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("guard-e2e-bin-")
                && pid.parse::<i32>().is_ok_and(|pid| !process_alive(pid))
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = tmp.join(format!("guard-e2e-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("guard");
        std::fs::copy(guard_bin(), &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    })
    .clone()
}

/// A subdirectory of `dir` every test user may write to.
pub fn world_dir(dir: &TempDir, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.mkdir(name);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    path
}

/// A `guard daemon` on a private socket with its own config, profiles and audit log.
pub struct Daemon {
    pub dir: TempDir,
    pub socket: PathBuf,
    pub audit_log: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

/// On a kernel without `SO_PEERPIDFD`: an `[[allow]]` entry granting root every profile (the
/// daemon cannot recognise root there); elsewhere nothing.
pub fn root_allow_without_peer_pidfd() -> &'static str {
    if crate::support::kernel_has_peer_pidfd() {
        ""
    } else {
        "\n[[allow]]\nusers = [\"root\"]\nprofiles = [\"*\"]\n"
    }
}

impl Daemon {
    /// Writes `profiles` (name, TOML) to its profile directory and `allow` (the `[[allow]]`
    /// entries) into its config, then starts it and waits until it serves.
    ///
    /// On a kernel without `SO_PEERPIDFD` the daemon cannot recognise root (uid 0 with its
    /// capabilities) and serves uid 0 only through `[[allow]]`; there an entry granting root
    /// every profile is added, as an administrator of such a host would configure it, so the
    /// tests' root client is served. Tests of root's own privileges `require_peer_pidfd!()`.
    pub fn start(allow: &str, profiles: &[(&str, &str)]) -> Self {
        let root_entry = root_allow_without_peer_pidfd();
        let dir = TempDir::new("daemon");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let profile_dir = dir.mkdir("profiles");
        for (name, text) in profiles {
            std::fs::write(profile_dir.join(format!("{name}.toml")), text).unwrap();
        }
        let socket = dir.path().join("guard.sock");
        let audit_log = dir.path().join("log").join("audit.jsonl");
        let config = dir.path().join("daemon.toml");
        std::fs::write(
            &config,
            format!(
                "socket = \"{}\"\nsocket_mode = \"0666\"\naudit_log = \"{}\"\nprofile_path = [\"{}\"]\n{allow}{root_entry}",
                socket.display(),
                audit_log.display(),
                profile_dir.display()
            ),
        )
        .unwrap();
        let log = dir.path().join("daemon.log");
        let mut daemon = Daemon {
            dir,
            socket,
            audit_log,
            config,
            child: None,
            log,
        };
        daemon.spawn();
        daemon
    }

    /// Starts (or restarts) the daemon process and waits for its socket.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(shared_guard())
            .args(["daemon", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {status}:\n{}", self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "daemon not serving after 20 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Whether the daemon process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `guard ARGS` as root through this daemon.
    pub fn root(&self, args: &[&str]) -> Run {
        Command::new(shared_guard())
            .args(args)
            .env("GUARD_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    }

    /// `guard status --json` as root.
    pub fn status(&self) -> Vec<serde_json::Value> {
        let out = self.root(&["status", "--json"]);
        assert_eq!(out.code(), 0, "{out}");
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Audit records of the central log.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Appends raw bytes to a new connection and returns what the daemon answered, if anything.
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        use std::io::Read as _;
        let mut stream = std::os::unix::net::UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let _ = stream.write_all(bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(15) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The sandbox cgroup directories (any hierarchy) whose names start with `prefix`.
pub fn sandbox_cgroups(prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(mounts) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    let mut roots: Vec<PathBuf> = mounts.flatten().map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        if let Ok(entries) = std::fs::read_dir(root.join("guard")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(prefix) && entry.path().is_dir()
                {
                    found.push(entry.path());
                }
            }
        }
    }
    found
}

/// Whether process `pid` exists (zombies count as gone).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Polls `done` for up to `timeout`.
pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}
