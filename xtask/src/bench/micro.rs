//! Micro-benchmarks: the same workload bare and under `guard exec`, runs interleaved so both
//! see the same machine state.
//!
//! Each run reports the time of its own loop (guard's start-up excluded) and the bench adds the
//! wall time of the whole process (start-up included). Bare and guarded runs alternate, the
//! order flipping every round, so a noisy neighbour or a frequency change hits both about
//! equally; on a shared 2-CPU host that matters more than the number of runs.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

use super::hyperfine::Timing;
use super::rss::Usage;
use super::startup::paired_median;
use super::workload::Tally;

/// One micro-benchmark.
pub struct Case {
    pub label: &'static str,
    /// What one operation is, for the report.
    pub what: &'static str,
    /// Arguments after `bench-workload`, but for the count, which follows them.
    pub args: Vec<String>,
    /// The operations the workload must report, all successful.
    pub count: u64,
    /// Timed rounds (one bare and one guarded run each).
    pub rounds: u32,
    /// Bare variants run in the same rounds for comparison: a label and the arguments added
    /// before the count.
    pub references: Vec<(&'static str, Vec<String>)>,
}

/// The measurements of one case.
pub struct Result {
    pub label: &'static str,
    pub what: &'static str,
    pub count: u64,
    pub rounds: u32,
    /// Loop times in seconds.
    pub bare_loop: Timing,
    pub guarded_loop: Timing,
    /// guard's own CPU time per operation in ns (its processes' CPU minus the workload's,
    /// minus the same for an empty workload, which is guard's start and end): median.
    pub guard_cpu_ns: f64,
    /// guard's voluntary context switches per operation, counted the same way: each one a
    /// wake-up of the supervisor.
    pub guard_wakeups: f64,
    /// Guarded over bare, loop and wall time: the median of the ratios of each round's pair,
    /// which cancels drift of the host between rounds better than a ratio of medians.
    pub paired_loop_ratio: f64,
    pub paired_wall_ratio: f64,
    /// The reference variants: label, loop times, and the median paired ratio to bare.
    pub references: Vec<(&'static str, Timing, f64)>,
}

impl Result {
    /// Guarded over bare loop time: the per-operation cost ratio.
    pub fn loop_ratio(&self) -> f64 {
        self.paired_loop_ratio
    }

    /// Guarded over bare wall time, guard's start-up included.
    pub fn wall_ratio(&self) -> f64 {
        self.paired_wall_ratio
    }

    /// What guard adds to one operation, in nanoseconds: the bare cost times the ratio's
    /// excess, so it agrees with the ratio in sign.
    pub fn overhead_ns(&self) -> f64 {
        self.bare_ns() * (self.loop_ratio() - 1.0)
    }

    /// The bare cost of one operation, in nanoseconds.
    pub fn bare_ns(&self) -> f64 {
        self.bare_loop.median * 1e9 / self.count as f64
    }
}

/// The TCP listener's backlog: more than the connects of one run can pile up.
const BACKLOG: libc::c_int = 4096;

/// Sockets the workloads talk to, owned by the bench for as long as it runs.
pub struct Listeners {
    pub tcp_port: u16,
    pub udp_port: u16,
    /// Bound but never read: once its buffer is full the kernel drops further datagrams, the
    /// same cheap path for bare and guarded senders, and no reader thread competes for a CPU.
    _udp: UdpSocket,
}

impl Listeners {
    pub fn start() -> anyhow::Result<Self> {
        let tcp = TcpListener::bind("127.0.0.1:0").context("binding the TCP listener")?;
        let tcp_port = tcp.local_addr().context("TCP listener address")?.port();
        // std listens with a backlog of 128; when the accepting thread falls behind (it shares
        // two CPUs with the workload and guard), further SYNs are dropped and each costs a
        // 1 s retransmit, which would swamp the connect time. Listening again raises the
        // backlog (capped by net.core.somaxconn).
        // SAFETY: listen on a socket this function owns.
        if unsafe { libc::listen(tcp.as_raw_fd(), BACKLOG) } != 0 {
            return Err(std::io::Error::last_os_error()).context("raising the listen backlog");
        }
        // Accepts and drops every connection. The thread lives until xtask exits: it holds
        // nothing but the listening socket.
        std::thread::spawn(move || {
            for stream in tcp.incoming() {
                drop(stream);
            }
        });
        let udp = UdpSocket::bind("127.0.0.1:0").context("binding the UDP socket")?;
        let udp_port = udp.local_addr().context("UDP socket address")?.port();
        Ok(Self {
            tcp_port,
            udp_port,
            _udp: udp,
        })
    }
}

/// How to run a workload bare and guarded.
pub struct Runner<'a> {
    pub guard: &'a Path,
    pub profile: &'a Path,
    pub workload: &'a Path,
    /// Runs bare and guarded workloads alike in the DNS lab (the lookup benchmark).
    pub lab: Option<&'a super::dns_lab::DnsLab>,
}

impl Runner<'_> {
    fn bare(&self, args: &[String]) -> Command {
        let mut command = Command::new(self.workload);
        command.arg("bench-workload").args(args);
        if let Some(lab) = self.lab {
            lab.enter(&mut command);
        }
        command
    }

    fn guarded(&self, args: &[String], audit_log: Option<&Path>) -> Command {
        let mut command = Command::new(self.guard);
        command.arg("exec").arg("--profile").arg(self.profile);
        if let Some(log) = audit_log {
            command.arg("--audit-log").arg(log);
        }
        command
            .arg("--")
            .arg(self.workload)
            .arg("bench-workload")
            .args(args);
        if let Some(lab) = self.lab {
            lab.enter(&mut command);
        }
        command
    }

    /// Runs `case` bare and guarded, interleaved, after one untimed round; each round also
    /// runs the workload guarded with a count of 0, so guard's fixed CPU is known.
    pub fn measure(&self, case: &Case) -> anyhow::Result<Result> {
        eprintln!("bench: {} ({} rounds)", case.label, case.rounds);
        let with_count = |extra: &[String], count: u64| {
            let mut args = case.args.clone();
            args.extend_from_slice(extra);
            args.push(count.to_string());
            args
        };
        let (args, empty) = (with_count(&[], case.count), with_count(&[], 0));
        let mut samples: [Vec<f64>; 6] = Default::default();
        let mut references: Vec<Vec<f64>> = vec![Vec::new(); case.references.len()];
        for round in 0..=case.rounds {
            for ((label, extra), times) in case.references.iter().zip(&mut references) {
                let run = run_workload(&mut self.bare(&with_count(extra, case.count)))
                    .with_context(|| format!("{} ({label})", case.label))?;
                check(&run.tally, case.count)?;
                if round > 0 {
                    times.push(run.tally.ns as f64 / 1e9);
                }
            }
            let guarded_first = round % 2 == 1;
            let mut guard_share = Usage::default();
            for guarded in [guarded_first, !guarded_first] {
                let mut command = if guarded {
                    self.guarded(&args, None)
                } else {
                    self.bare(&args)
                };
                let context = || format!("{} ({})", case.label, which(guarded));
                let run = run_workload(&mut command).with_context(context)?;
                check(&run.tally, case.count).with_context(context)?;
                if guarded {
                    guard_share = run.guard_share();
                }
                if round == 0 {
                    continue;
                }
                let base = if guarded { 2 } else { 0 };
                samples[base].push(run.tally.ns as f64 / 1e9);
                samples[base + 1].push(run.wall);
            }
            let fixed = run_workload(&mut self.guarded(&empty, None))
                .with_context(|| format!("{} (guarded, empty)", case.label))?
                .guard_share();
            if round > 0 {
                let per_op =
                    |total: u64, fixed: u64| total.saturating_sub(fixed) as f64 / case.count as f64;
                samples[4].push(per_op(guard_share.cpu_ns, fixed.cpu_ns));
                samples[5].push(per_op(guard_share.vcsw, fixed.vcsw));
            }
        }
        let paired_loop_ratio = paired_median(&samples[2], &samples[0]);
        let paired_wall_ratio = paired_median(&samples[3], &samples[1]);
        let references = case
            .references
            .iter()
            .zip(references)
            .map(|((label, _), times)| {
                let ratio = paired_median(&times, &samples[0]);
                Ok((*label, Timing::of(&times).context("no samples")?, ratio))
            })
            .collect::<anyhow::Result<_>>()?;
        // Wall times (indices 1 and 3) only count as ratios.
        let [bare_loop, _, guarded_loop, _, cpu, wakeups] =
            samples.map(|s| Timing::of(&s).context("no samples"));
        Ok(Result {
            label: case.label,
            what: case.what,
            count: case.count,
            rounds: case.rounds,
            bare_loop: bare_loop?,
            guarded_loop: guarded_loop?,
            guard_cpu_ns: cpu?.median,
            guard_wakeups: wakeups?.median,
            paired_loop_ratio,
            paired_wall_ratio,
            references,
        })
    }

    /// Runs the workload `args` once under guard with an audit log.
    pub fn guarded_once(&self, args: &[String], audit_log: &Path) -> anyhow::Result<Run> {
        run_workload(&mut self.guarded(args, Some(audit_log)))
    }
}

fn which(guarded: bool) -> &'static str {
    if guarded { "guarded" } else { "bare" }
}

/// One finished workload process.
pub struct Run {
    pub tally: Tally,
    /// Wall time in seconds.
    pub wall: f64,
    /// The process tree's usage from `wait4`: for a guarded run, guard, its sentinel and the
    /// workload.
    pub usage: Usage,
}

impl Run {
    /// The part of the tree's usage that is not the workload's: guard's, for a guarded run.
    pub fn guard_share(&self) -> Usage {
        Usage {
            cpu_ns: self.usage.cpu_ns.saturating_sub(self.tally.cpu_ns),
            vcsw: self.usage.vcsw.saturating_sub(self.tally.vcsw),
            sys_ns: 0,
        }
    }
}

/// Runs a workload to its end.
fn run_workload(command: &mut Command) -> anyhow::Result<Run> {
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // Reaped here for its rusage, which `Child::wait` does not give; the workload prints one
    // line and guard a few, far less than a pipe holds, so nothing blocks on a full pipe.
    // SAFETY: both pointers are to live locals of the types wait4 expects.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if reaped != pid {
        return Err(std::io::Error::last_os_error()).context("wait4 failed");
    }
    let read = |pipe: Option<&mut dyn Read>| {
        let mut text = String::new();
        if let Some(pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    };
    let stdout = read(child.stdout.as_mut().map(|p| p as &mut dyn Read));
    let stderr = read(child.stderr.as_mut().map(|p| p as &mut dyn Read));
    drop(child);
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!(
            "exited with wait status {status:#x}; stderr: {}",
            super::command::one_line(&stderr)
        );
    }
    Ok(Run {
        tally: Tally::parse(&stdout)?,
        wall,
        usage: Usage::from_rusage(&usage),
    })
}

/// Every operation must have succeeded: a denied connect is fast and would flatter guard.
fn check(tally: &Tally, count: u64) -> anyhow::Result<()> {
    if tally.ops != count || tally.failed != 0 || tally.killed != 0 {
        bail!(
            "expected {count} successful operations, got {} ({} failed, {} killed)",
            tally.ops,
            tally.failed,
            tally.killed
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_overhead() {
        let result = Result {
            label: "x",
            what: "",
            count: 1000,
            rounds: 1,
            bare_loop: Timing::flat(0.001),
            guarded_loop: Timing::flat(0.0012),
            guard_cpu_ns: 0.0,
            guard_wakeups: 0.0,
            paired_loop_ratio: 1.2,
            paired_wall_ratio: 3.0,
            references: Vec::new(),
        };
        assert!((result.loop_ratio() - 1.2).abs() < 1e-9);
        assert!((result.wall_ratio() - 3.0).abs() < 1e-9);
        assert!((result.overhead_ns() - 200.0).abs() < 1e-6);
        assert!((result.bare_ns() - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn pairs_are_compared_round_by_round() {
        // The host slowed down in the last round; each pair still says 1.1×.
        let bare = [1.0, 1.0, 3.0];
        let guarded = [1.1, 1.1, 3.3];
        assert!((paired_median(&guarded, &bare) - 1.1).abs() < 1e-9);
        assert!(paired_median(&[], &[]).is_nan());
    }

    #[test]
    fn failures_are_not_timed() {
        let ok = Tally {
            ops: 5,
            ns: 1,
            failed: 0,
            killed: 0,
            ..Tally::default()
        };
        assert!(check(&ok, 5).is_ok());
        assert!(check(&ok, 6).is_err());
        assert!(check(&Tally { failed: 1, ..ok }, 5).is_err());
        assert!(check(&Tally { killed: 1, ..ok }, 5).is_err());
    }
}
