//! The host the numbers were taken on, as the report describes it.

use std::process::{Command, Stdio};

use anyhow::Context as _;

pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub memory: String,
    pub kernel: String,
    pub date: String,
    pub commit: String,
    pub tools: Vec<String>,
    /// The load average when the bench started: other work on the host shows in every number.
    pub load: String,
}

impl Machine {
    pub fn probe() -> anyhow::Result<Self> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
        let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .context("reading the kernel release")?;
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        let memory = mem_total_kib(&meminfo)
            .map(|kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".into());
        let tools = [
            ["hyperfine", "--version"],
            ["bwrap", "--version"],
            ["firejail", "--version"],
        ]
        .iter()
        .map(|[tool, flag]| {
            stdout_line(Command::new(tool).arg(flag)).unwrap_or_else(|| format!("{tool}: ?"))
        })
        .collect();
        let mut commit = stdout_line(Command::new("git").args(["rev-parse", "--short", "HEAD"]))
            .unwrap_or_else(|| "unknown".into());
        // The shipped profiles and the probes are built into the binary too.
        let sources = ["supervisor", "profiles", "ebpf-probes"];
        let dirty = stdout_line(
            Command::new("git")
                .args(["status", "--porcelain"])
                .args(sources),
        );
        if dirty.is_some() {
            commit.push_str(" plus uncommitted changes");
        }
        Ok(Self {
            cpu_model: cpu_model(&cpuinfo).unwrap_or("unknown").to_string(),
            cpus: cpu_count(&cpuinfo),
            memory,
            kernel: kernel.trim().to_string(),
            date: stdout_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
                .unwrap_or_else(|| "unknown".into()),
            commit,
            tools,
            load,
        })
    }
}

/// The first line of a successful command's stdout, if it printed one.
pub fn stdout_line(command: &mut Command) -> Option<String> {
    let output = command.stderr(Stdio::null()).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_string())
}

fn cpu_model(cpuinfo: &str) -> Option<&str> {
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim())
}

fn cpu_count(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count()
}

fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsing() {
        let cpuinfo =
            "processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n";
        assert_eq!(cpu_model(cpuinfo), Some("AMD EPYC"));
        assert_eq!(cpu_count(cpuinfo), 2);
        assert_eq!(
            mem_total_kib("MemTotal:       24684092 kB\nMemFree: 1 kB\n"),
            Some(24684092)
        );
    }
}
