//! `guard daemon` for the start-up row "through the daemon": detected in the built binary,
//! started with a configuration of the bench's own (socket and audit log in a temporary
//! directory), and stopped at the end.
//!
//! A build without the daemon gives [`Availability::Missing`], which the report prints as
//! "not available in this build" rather than leaving the row out.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::command::argv;

/// Whether the built guard can serve `guard exec` through a daemon.
pub enum Availability {
    Present,
    /// Why not, for the report.
    Missing(String),
}

/// Detects `guard daemon` and the client's `guard exec --daemon`.
pub fn availability(guard: &Path) -> Availability {
    let help = |args: &[&str]| {
        Command::new(guard)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    if help(&["daemon", "--help"]).is_none() {
        return Availability::Missing("`guard daemon` is not a subcommand of this build".into());
    }
    match help(&["exec", "--help"]) {
        Some(text) if text.contains("--daemon") => Availability::Present,
        _ => Availability::Missing("`guard exec` of this build has no `--daemon`".into()),
    }
}

/// A running `guard daemon`, killed and reaped on drop.
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    dir: PathBuf,
}

impl Daemon {
    /// Starts `guard daemon --config CONFIG` with a socket in a fresh directory and waits until
    /// the socket accepts connections.
    pub fn start(guard: &Path) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("guard-bench-daemon-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let socket = dir.join("guard.sock");
        let config = dir.join("daemon.toml");
        std::fs::write(&config, config_text(&socket, &dir.join("audit.jsonl")))
            .with_context(|| format!("writing {}", config.display()))?;
        // Its log goes to a file: one line per sandbox would bury the bench's own output.
        let log = std::fs::File::create(dir.join("daemon.log"))
            .with_context(|| format!("creating the daemon log in {}", dir.display()))?;
        let child = Command::new(guard)
            .arg("daemon")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} daemon", guard.display()))?;
        let mut daemon = Self { child, socket, dir };
        daemon.wait_ready()?;
        Ok(daemon)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().context("waiting for the daemon")? {
                let log = std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
                bail!(
                    "guard daemon exited before it listened: {status}; its log: {}",
                    super::command::one_line(&log)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "guard daemon did not listen on {} within 10 s",
                    self.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The client command the start-up row times; `GUARD_SOCKET` must name [`Self::socket`].
    pub fn client_argv(guard: &Path) -> Vec<String> {
        let mut client = vec![guard.display().to_string()];
        client.extend(argv(&[
            "exec",
            "--daemon",
            "--profile",
            "minimal",
            "--",
            "/bin/true",
        ]));
        client
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM first: the daemon removes its socket and ends its workers on it.
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The daemon's configuration: root may run `minimal` through `socket`.
fn config_text(socket: &Path, audit_log: &Path) -> String {
    format!(
        "socket = {socket:?}\n\
         socket_mode = \"0600\"\n\
         audit_log = {audit_log:?}\n\
         profile_path = []\n\n\
         [[allow]]\n\
         users = [\"0\"]\n\
         profiles = [\"minimal\"]\n",
        socket = socket.display().to_string(),
        audit_log = audit_log.display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_socket_log_and_grant() {
        let text = config_text(Path::new("/tmp/d/guard.sock"), Path::new("/tmp/d/a.jsonl"));
        assert!(text.contains("socket = \"/tmp/d/guard.sock\"\n"));
        assert!(text.contains("audit_log = \"/tmp/d/a.jsonl\"\n"));
        assert!(text.contains("users = [\"0\"]\nprofiles = [\"minimal\"]\n"));
    }
}
