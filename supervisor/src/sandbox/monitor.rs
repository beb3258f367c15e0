//! The supervise loop's view of a running sandbox: its cgroup (CPU time, kill) and, once the
//! probes are attached, their event ring buffer.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use super::cgroup::CgroupManager;
use super::launch::error_chain;
use super::supervise::Watcher;

/// Watches one sandbox for [`super::supervise::supervise`].
pub struct Monitor<'a> {
    cgroup: &'a dyn CgroupManager,
    /// `cpu.stat` of the sandbox's cgroup2 directory. cgroup2 keeps this core file in every
    /// directory, controllers or not, so it counts the whole sandbox on hybrid hosts too.
    cpu_stat: PathBuf,
}

impl<'a> Monitor<'a> {
    pub fn new(cgroup: &'a dyn CgroupManager) -> Self {
        Monitor {
            cgroup,
            cpu_stat: cgroup.cgroup2_path().join("cpu.stat"),
        }
    }
}

impl Watcher for Monitor<'_> {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        Vec::new()
    }

    fn drain(&mut self) {}

    fn cpu_used(&mut self) -> Option<Duration> {
        // Only asked when cpu_time is limited. Usage that cannot be read cannot be checked, so it
        // counts as used up: the sandbox ends rather than run past its limit unmeasured.
        let usage = std::fs::read_to_string(&self.cpu_stat)
            .ok()
            .and_then(|text| cpu_usage(&text));
        if usage.is_none() {
            eprintln!(
                "guard: error: cannot read CPU usage from {}; ending the sandbox (limits.cpu_time)",
                self.cpu_stat.display()
            );
        }
        Some(usage.unwrap_or(Duration::MAX))
    }

    fn kill_sandbox(&mut self) {
        if let Err(err) = self.cgroup.kill_all() {
            eprintln!("guard: error: killing the sandbox: {}", error_chain(&err));
        }
    }
}

/// `usage_usec` of a cgroup2 `cpu.stat`: user plus system time of every process, living or dead.
fn cpu_usage(cpu_stat: &str) -> Option<Duration> {
    cpu_stat.lines().find_map(|line| {
        let micros = line.strip_prefix("usage_usec ")?.trim().parse().ok()?;
        Some(Duration::from_micros(micros))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_from_cpu_stat() {
        let text = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n";
        assert_eq!(cpu_usage(text), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn missing_or_garbled_usage_is_unknown() {
        assert_eq!(cpu_usage("user_usec 5\n"), None);
        assert_eq!(cpu_usage("usage_usec many\n"), None);
    }
}
