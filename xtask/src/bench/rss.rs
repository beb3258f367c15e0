//! Peak resident memory: of a command's process tree through `wait4`, of a running process
//! through `/proc/PID/status`.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

/// Peak RSS in KiB of `runs` runs of `argv` (with `env` added), sorted.
pub fn peak_samples(
    argv: &[String],
    env: &[(&str, &str)],
    runs: usize,
) -> anyhow::Result<Vec<u64>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        samples.push(measure(argv, env)?.peak_kib);
    }
    samples.sort_unstable();
    Ok(samples)
}

/// One run of a command: wall time, peak RSS and CPU.
pub struct Measured {
    pub seconds: f64,
    pub peak_kib: u64,
    pub usage: Usage,
}

/// CPU time and voluntary context switches (each one a wait: for I/O, a pipe, a lock, a
/// grace period) from an rusage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// User plus system time in nanoseconds.
    pub cpu_ns: u64,
    pub vcsw: u64,
    /// System time alone, in nanoseconds.
    pub sys_ns: u64,
}

impl Usage {
    pub fn from_rusage(usage: &libc::rusage) -> Self {
        let ns = |t: libc::timeval| {
            u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_usec).unwrap_or(0) * 1000
        };
        Self {
            cpu_ns: ns(usage.ru_utime) + ns(usage.ru_stime),
            vcsw: u64::try_from(usage.ru_nvcsw).unwrap_or(0),
            sys_ns: ns(usage.ru_stime),
        }
    }

    /// This process's usage plus that of the children it waited for.
    pub fn own() -> Self {
        let get = |who| {
            // SAFETY: a zeroed rusage is a valid value; getrusage fills it.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: a valid `who` and a pointer to a live rusage.
            unsafe { libc::getrusage(who, &mut usage) };
            Self::from_rusage(&usage)
        };
        let (me, children) = (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN));
        Self {
            cpu_ns: me.cpu_ns + children.cpu_ns,
            vcsw: me.vcsw + children.vcsw,
            sys_ns: me.sys_ns + children.sys_ns,
        }
    }
}

/// Runs `argv` once (output discarded) and fails unless it exits 0.
///
/// `wait4` reports the larger of the process's own peak and that of the descendants it reaped,
/// so a supervisor's figure covers its sandboxed child too. `getrusage(RUSAGE_CHILDREN)` would
/// not do: it is the peak over every child this process ever reaped, cargo included.
pub fn measure(argv: &[String], env: &[(&str, &str)]) -> anyhow::Result<Measured> {
    let (program, args) = argv.split_first().context("empty command")?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // The kernel folds the pre-exec address space's peak into ru_maxrss at exec. Without a
    // pre_exec hook std uses vfork, whose pre-exec address space is all of xtask (about
    // 2.6 MiB, more than bwrap's or /bin/true's own peak); a hook forces fork, which brings
    // along only the anonymous pages it copies.
    // SAFETY: the hook does nothing, so it is async-signal-safe.
    unsafe {
        command.pre_exec(|| Ok(()));
    }
    let start = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // The child is reaped here rather than by `Child::wait`, which has no rusage; `child` is
    // then dropped without waiting, which std allows.
    // SAFETY: both pointers are to live locals of the types wait4 expects.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    if reaped != pid {
        return Err(std::io::Error::last_os_error()).context("wait4 failed");
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{program} did not exit 0 (wait status {status:#x})");
    }
    drop(child);
    Ok(Measured {
        seconds,
        // ru_maxrss is in KiB on Linux.
        peak_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        usage: Usage::from_rusage(&usage),
    })
}

/// The peak RSS (`VmHWM`) in KiB of the live process `pid`.
pub fn high_water_mark(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    vm_hwm_kib(&status).with_context(|| format!("no VmHWM line in {path}"))
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The lower median, so an even number of samples still gives a measured value.
pub fn median_of(sorted: &[u64]) -> u64 {
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parsing() {
        let status = "Name:\tguard\nVmPeak:\t   20000 kB\nVmHWM:\t    6144 kB\nVmRSS:\t 5000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(6144));
        assert_eq!(vm_hwm_kib("Name: x\n"), None);
    }

    #[test]
    fn usage_from_rusage() {
        // SAFETY: a zeroed rusage is a valid value.
        let mut raw: libc::rusage = unsafe { std::mem::zeroed() };
        raw.ru_utime.tv_sec = 1;
        raw.ru_utime.tv_usec = 5;
        raw.ru_stime.tv_usec = 10;
        raw.ru_nvcsw = 3;
        assert_eq!(
            Usage::from_rusage(&raw),
            Usage {
                cpu_ns: 1_000_015_000,
                vcsw: 3,
                sys_ns: 10_000
            }
        );
    }

    #[test]
    fn lower_median() {
        assert_eq!(median_of(&[1, 2, 3, 4]), 2);
        assert_eq!(median_of(&[1, 2, 3]), 2);
        assert_eq!(median_of(&[]), 0);
    }
}
