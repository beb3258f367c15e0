//! Micro-benchmarks: the same workload bare and under `guard exec`, runs interleaved so both
//! see the same machine state.
//!
//! Each run reports the time of its own loop (guard's start-up excluded) and the bench adds the
//! wall time of the whole process (start-up included). Bare and guarded runs alternate, the
//! order flipping every round, so a noisy neighbour or a frequency change hits both about
//! equally; on a shared 2-CPU host that matters more than the number of runs.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

use super::hyperfine::Timing;
use super::workload::Tally;

/// One micro-benchmark.
pub struct Case {
    pub label: &'static str,
    /// What one operation is, for the report.
    pub what: &'static str,
    /// Arguments after `bench-workload`.
    pub args: Vec<String>,
    /// The operations the workload must report, all successful.
    pub count: u64,
    /// Timed rounds (one bare and one guarded run each).
    pub rounds: u32,
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
    /// Whole-process wall times in seconds.
    pub bare_wall: Timing,
    pub guarded_wall: Timing,
}

impl Result {
    /// Guarded over bare loop time: the per-operation cost ratio.
    pub fn loop_ratio(&self) -> f64 {
        self.guarded_loop.median / self.bare_loop.median
    }

    /// Guarded over bare wall time, guard's start-up included.
    pub fn wall_ratio(&self) -> f64 {
        self.guarded_wall.median / self.bare_wall.median
    }

    /// What guard adds to one operation, in nanoseconds (median loop times).
    pub fn overhead_ns(&self) -> f64 {
        (self.guarded_loop.median - self.bare_loop.median) * 1e9 / self.count as f64
    }

    /// The bare cost of one operation, in nanoseconds.
    pub fn bare_ns(&self) -> f64 {
        self.bare_loop.median * 1e9 / self.count as f64
    }
}

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
}

impl Runner<'_> {
    fn bare(&self, args: &[String]) -> Command {
        let mut command = Command::new(self.workload);
        command.arg("bench-workload").args(args);
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
        command
    }

    /// Runs `case` bare and guarded, interleaved, after one untimed round.
    pub fn measure(&self, case: &Case) -> anyhow::Result<Result> {
        eprintln!("bench: {} ({} rounds)", case.label, case.rounds);
        let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for round in 0..=case.rounds {
            let guarded_first = round % 2 == 1;
            for guarded in [guarded_first, !guarded_first] {
                let mut command = if guarded {
                    self.guarded(&case.args, None)
                } else {
                    self.bare(&case.args)
                };
                let (tally, wall) = run_workload(&mut command)
                    .with_context(|| format!("{} ({})", case.label, which(guarded)))?;
                check(&tally, case.count)
                    .with_context(|| format!("{} ({})", case.label, which(guarded)))?;
                if round == 0 {
                    continue;
                }
                let base = if guarded { 2 } else { 0 };
                samples[base].push(tally.ns as f64 / 1e9);
                samples[base + 1].push(wall);
            }
        }
        let [bare_loop, bare_wall, guarded_loop, guarded_wall] =
            samples.map(|s| Timing::of(&s).context("no samples"));
        Ok(Result {
            label: case.label,
            what: case.what,
            count: case.count,
            rounds: case.rounds,
            bare_loop: bare_loop?,
            guarded_loop: guarded_loop?,
            bare_wall: bare_wall?,
            guarded_wall: guarded_wall?,
        })
    }

    /// Runs the workload `args` once under guard with an audit log.
    pub fn guarded_once(&self, args: &[String], audit_log: &Path) -> anyhow::Result<Tally> {
        run_workload(&mut self.guarded(args, Some(audit_log))).map(|(tally, _)| tally)
    }
}

fn which(guarded: bool) -> &'static str {
    if guarded { "guarded" } else { "bare" }
}

/// Runs a workload to its end: its tally and the wall time in seconds.
fn run_workload(command: &mut Command) -> anyhow::Result<(Tally, f64)> {
    let start = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let wall = start.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "exited with {}; stderr: {}",
            output.status,
            super::command::one_line(&String::from_utf8_lossy(&output.stderr))
        );
    }
    Ok((
        Tally::parse(&String::from_utf8_lossy(&output.stdout))?,
        wall,
    ))
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

    fn timing(median: f64) -> Timing {
        Timing {
            median,
            min: median,
            max: median,
            mean: median,
            stddev: 0.0,
        }
    }

    #[test]
    fn ratios_and_overhead() {
        let result = Result {
            label: "x",
            what: "",
            count: 1000,
            rounds: 1,
            bare_loop: timing(0.001),
            guarded_loop: timing(0.0012),
            bare_wall: timing(0.002),
            guarded_wall: timing(0.006),
        };
        assert!((result.loop_ratio() - 1.2).abs() < 1e-9);
        assert!((result.wall_ratio() - 3.0).abs() < 1e-9);
        assert!((result.overhead_ns() - 200.0).abs() < 1e-6);
        assert!((result.bare_ns() - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn failures_are_not_timed() {
        let ok = Tally {
            ops: 5,
            ns: 1,
            failed: 0,
            killed: 0,
        };
        assert!(check(&ok, 5).is_ok());
        assert!(check(&ok, 6).is_err());
        assert!(check(&Tally { failed: 1, ..ok }, 5).is_err());
        assert!(check(&Tally { killed: 1, ..ok }, 5).is_err());
    }
}
