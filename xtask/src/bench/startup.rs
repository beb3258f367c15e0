//! Start-up of `/bin/true`: bare, under guard with the probes pinned (warm), through the
//! daemon, under bubblewrap and firejail, timed together by hyperfine; and guard's cold start
//! (probes not loaded) against bare and bubblewrap, each run after `guard unload`.
//!
//! Every command is first run once and must exit 0, so a sandbox that silently fails cannot
//! post a fast time. A second hyperfine run spaces the runs apart: back-to-back runs keep kernel
//! state warm that an agent's occasional tool call does not find (RCU grace periods end
//! sooner on a busy CPU), and the spaced numbers are closer to what users see.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::command::{argv, check_once, shell_line};
use super::daemon::{self, Availability, Daemon};
use super::hyperfine::{self, Timing};
use super::rss;

/// hyperfine runs per command: enough for a stable median of millisecond-scale commands on a
/// noisy host while the whole bench stays within its budget.
pub const RUNS: u32 = 200;
/// Warm-up runs fill the page cache and the dynamic loader's caches before timing.
pub const WARMUP: u32 = 10;
/// The spaced run: fewer runs, each after an idle pause long enough for several RCU grace
/// periods (tens of milliseconds with HZ=250 and lazy RCU).
pub const SPACED_RUNS: u32 = 25;
pub const SPACED_WARMUP: u32 = 3;
pub const PAUSE: &str = "0.2";
/// Runs per command for the peak-RSS samples.
pub const RSS_RUNS: usize = 10;
/// Rounds of the interleaved pass (every command once per round).
pub const INTERLEAVED_ROUNDS: usize = 30;
/// Rounds of the cold-start comparison (bare, guard cold, bwrap, each after `guard unload`).
pub const COLD_ROUNDS: usize = 10;
/// How long the cold phase waits in total for other guard processes to let go of the probes.
const UNLOAD_PATIENCE: Duration = Duration::from_secs(30);

/// One command of the start-up table.
pub struct Row {
    pub label: &'static str,
    pub note: &'static str,
    pub command: String,
    pub outcome: Outcome,
}

pub enum Outcome {
    Measured {
        /// Runs back to back.
        timing: Timing,
        /// Runs `PAUSE` seconds apart.
        spaced: Timing,
        /// Peak RSS samples in KiB, sorted.
        rss_kib: Vec<u64>,
        /// Over bare `/bin/true`: the median of the ratios of [`INTERLEAVED_ROUNDS`] rounds
        /// that each run every command once, so a noisy spell hits all rows alike.
        paired_ratio: f64,
    },
    /// The command did not run successfully here; the reason is shown instead of numbers.
    Failed(String),
    /// This build or host does not have it (the daemon); the reason is shown.
    Unavailable(String),
}

/// Cold start: every sample taken right after `guard unload`, rounds interleaved.
pub struct Cold {
    pub rounds: usize,
    pub bare: Timing,
    pub guard: Timing,
    pub bwrap: Timing,
    /// Peak RSS of the cold guard runs in KiB, sorted.
    pub guard_rss_kib: Vec<u64>,
    /// Cold guard runs thrown away because another guard had loaded the probes first.
    pub discarded: u32,
    /// Median CPU time of the cold guard runs (guard's tree), and its system part, seconds.
    pub guard_cpu: f64,
    pub guard_sys: f64,
}

pub struct Startup {
    pub rows: Vec<Row>,
    pub cold: Result<Cold, String>,
    /// The daemon's own peak RSS (`VmHWM`) in KiB after serving the timed runs.
    pub daemon_hwm_kib: Option<u64>,
}

impl Startup {
    /// The back-to-back timing of the row `label`.
    pub fn timing(&self, label: &str) -> Option<&Timing> {
        self.outcome(label).and_then(|o| match o {
            Outcome::Measured { timing, .. } => Some(timing),
            _ => None,
        })
    }

    pub fn spaced(&self, label: &str) -> Option<&Timing> {
        self.outcome(label).and_then(|o| match o {
            Outcome::Measured { spaced, .. } => Some(spaced),
            _ => None,
        })
    }

    /// The interleaved ratio to bare of the row `label`.
    pub fn paired_ratio(&self, label: &str) -> Option<f64> {
        self.outcome(label).and_then(|o| match o {
            Outcome::Measured { paired_ratio, .. } => Some(*paired_ratio),
            _ => None,
        })
    }

    pub fn rss(&self, label: &str) -> Option<&[u64]> {
        self.outcome(label).and_then(|o| match o {
            Outcome::Measured { rss_kib, .. } => Some(rss_kib.as_slice()),
            _ => None,
        })
    }

    pub fn outcome(&self, label: &str) -> Option<&Outcome> {
        self.rows
            .iter()
            .find(|r| r.label == label)
            .map(|r| &r.outcome)
    }
}

/// The labels of the rows, also used by the summary.
pub const BARE: &str = "bare";
pub const WARM: &str = "guard warm";
pub const DAEMON: &str = "guard via daemon";
pub const BWRAP: &str = "bwrap";
pub const FIREJAIL: &str = "firejail";

/// A command of the start-up table before it is measured.
struct Case {
    label: &'static str,
    note: &'static str,
    argv: Vec<String>,
    /// A required case fails the bench when it does not work; an optional one (firejail, which
    /// may refuse some hosts) is reported as attempted, with the reason, and left out of timing.
    required: bool,
}

pub fn bwrap_argv() -> Vec<String> {
    argv(&[
        "bwrap",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-all",
        "/bin/true",
    ])
}

fn guard_argv(guard: &Path, extra: &[&str]) -> Vec<String> {
    let mut out = vec![guard.display().to_string(), "exec".into()];
    out.extend(argv(extra));
    out.extend(argv(&["--profile", "minimal", "--", "/bin/true"]));
    out
}

/// `guard exec --profile minimal -- /bin/true`.
pub fn warm_argv(guard: &Path) -> Vec<String> {
    guard_argv(guard, &[])
}

fn cases(guard: &Path) -> Vec<Case> {
    vec![
        Case {
            label: BARE,
            note: "fork+exec of `/bin/true` by hyperfine: the floor every other row pays too",
            argv: argv(&["/bin/true"]),
            required: true,
        },
        Case {
            label: WARM,
            note: "guard's full start with the probes already pinned: profile load and \
                   compile, the sandbox cgroup with its limits, the sandbox's entries and ring \
                   buffer in the probes' maps, the sentinel, fork, Landlock and seccomp in the \
                   child, handshake, exec, supervision until exit, map entries and cgroup \
                   removed",
            argv: guard_argv(guard, &[]),
            required: true,
        },
        Case {
            label: BWRAP,
            note: "bubblewrap with all namespaces unshared (user, ipc, pid, net, uts, cgroup) \
                   and a read-only bind of `/`; no seccomp, no cgroup",
            argv: bwrap_argv(),
            required: true,
        },
        Case {
            label: FIREJAIL,
            note: "firejail without a profile: its default namespaces and mounts, no seccomp \
                   filter (`--noprofile`)",
            argv: argv(&["firejail", "--quiet", "--noprofile", "/bin/true"]),
            required: false,
        },
    ]
}

const DAEMON_NOTE: &str = "`guard exec --daemon`: the client passes its descriptors, directory \
                           and environment to a running `guard daemon` (started by the bench \
                           with its own socket), whose worker starts the sandbox";

pub fn measure(guard: &Path) -> anyhow::Result<Startup> {
    // Cold first: `guard unload` is refused while the daemon holds the probes.
    eprintln!("bench: cold start ({COLD_ROUNDS} rounds, each run after `guard unload`)");
    let cold = measure_cold(guard).map_err(|e| format!("{e:#}"));
    if let Err(why) = &cold {
        eprintln!("bench: cold start not measured: {why}");
    }

    let cases = cases(guard);
    let mut rows = Vec::new();
    let mut timed: Vec<(usize, Vec<String>)> = Vec::new();
    for case in cases {
        let command = shell_line(&case.argv);
        match check_once(&case.argv, &[]) {
            Ok(()) => {
                eprintln!("bench: ok     {command}");
                timed.push((rows.len(), case.argv));
                rows.push(Row {
                    label: case.label,
                    note: case.note,
                    command,
                    // Replaced by the measurement below.
                    outcome: Outcome::Failed(String::new()),
                });
            }
            Err(e) if !case.required => {
                eprintln!("bench: FAILED {command}: {e:#} (optional; reported, not timed)");
                rows.push(Row {
                    label: case.label,
                    note: case.note,
                    command,
                    outcome: Outcome::Failed(format!("{e:#}")),
                });
            }
            Err(e) => return Err(e.context(format!("`{command}` does not work on this host"))),
        }
    }

    // The daemon row, when this build has one: timed in the same hyperfine runs as the rest.
    let client = Daemon::client_argv(guard);
    let daemon = match daemon::availability(guard) {
        Availability::Present => {
            let started = Daemon::start(guard).context("starting guard daemon")?;
            let env = daemon_env(&started.socket);
            let env_refs: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            check_once(&client, &env_refs).context("`guard exec --daemon` does not work")?;
            timed.push((rows.len(), client.clone()));
            rows.push(Row {
                label: DAEMON,
                note: DAEMON_NOTE,
                command: format!("GUARD_SOCKET=… {}", shell_line(&client)),
                outcome: Outcome::Failed(String::new()),
            });
            Some((started, env))
        }
        Availability::Missing(why) => {
            eprintln!("bench: daemon: not available in this build ({why})");
            rows.push(Row {
                label: DAEMON,
                note: DAEMON_NOTE,
                command: shell_line(&client),
                outcome: Outcome::Unavailable(format!("not available in this build: {why}")),
            });
            None
        }
    };
    let env = daemon
        .as_ref()
        .map(|(_, env)| env.clone())
        .unwrap_or_default();

    let argvs: Vec<&[String]> = timed.iter().map(|(_, a)| a.as_slice()).collect();
    let timings = hyperfine::run(&hyperfine::Plan {
        argvs: argvs.clone(),
        warmup: WARMUP,
        runs: RUNS,
        prepare: Vec::new(),
        env: env.clone(),
    })?;
    // -N runs the prepare command without a shell too.
    let spaced = hyperfine::run(&hyperfine::Plan {
        argvs,
        warmup: SPACED_WARMUP,
        runs: SPACED_RUNS,
        prepare: vec![format!("sleep {PAUSE}")],
        env: env.clone(),
    })?;
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // hyperfine times each command's runs in one block, so a noisy spell during the bare block
    // moves every ratio; this pass runs them round-robin and compares within each round.
    eprintln!("bench: start-up, interleaved ({INTERLEAVED_ROUNDS} rounds)");
    let argvs: Vec<&[String]> = timed.iter().map(|(_, a)| a.as_slice()).collect();
    let paired = interleaved_ratios(&argvs, &env_refs)?;
    for ((((i, argv), timing), spaced), paired_ratio) in
        timed.iter().zip(timings).zip(spaced).zip(paired)
    {
        let rss_kib = rss::peak_samples(argv, &env_refs, RSS_RUNS)
            .with_context(|| format!("measuring the peak RSS of `{}`", rows[*i].command))?;
        rows[*i].outcome = Outcome::Measured {
            timing,
            spaced,
            rss_kib,
            paired_ratio,
        };
    }
    let daemon_hwm_kib = match &daemon {
        Some((started, _)) => Some(rss::high_water_mark(started.pid())?),
        None => None,
    };
    drop(daemon);
    Ok(Startup {
        rows,
        cold,
        daemon_hwm_kib,
    })
}

/// Each command's median ratio to the first (bare), over rounds that run every command once.
fn interleaved_ratios(argvs: &[&[String]], env: &[(&str, &str)]) -> anyhow::Result<Vec<f64>> {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); argvs.len()];
    for _ in 0..INTERLEAVED_ROUNDS {
        for (argv, samples) in argvs.iter().zip(&mut times) {
            samples.push(time_once(argv, env)?);
        }
    }
    let bare = times.first().cloned().unwrap_or_default();
    Ok(times.iter().map(|t| paired_median(t, &bare)).collect())
}

/// Wall time of one run of `argv` in seconds; fails unless it exits 0. Started the way
/// hyperfine starts commands (std's posix_spawn, a vfork), not the fork `rss::measure` needs,
/// whose copy of xtask's page tables would add to every row and flatten the ratios.
fn time_once(argv: &[String], env: &[(&str, &str)]) -> anyhow::Result<f64> {
    let (program, args) = argv.split_first().context("empty command")?;
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{program} did not exit 0: {status}");
    }
    Ok(seconds)
}

/// The median of `a[i] / b[i]`.
pub fn paired_median(a: &[f64], b: &[f64]) -> f64 {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
    Timing::of(&ratios).map_or(f64::NAN, |t| t.median)
}

fn daemon_env(socket: &Path) -> Vec<(String, String)> {
    vec![("GUARD_SOCKET".into(), socket.display().to_string())]
}

/// Bare, cold guard and bwrap, round after round, each run right after `guard unload`.
///
/// Not hyperfine with `--prepare 'guard unload'`: on a shared host other guard processes may
/// hold the probes (unload then refuses, which would abort hyperfine) or load them between
/// the unload and the timed run (a warm start counted as cold). Here each cold run writes an
/// audit log whose start record says whether it loaded the probes, and a run that did not is
/// discarded.
fn measure_cold(guard: &Path) -> anyhow::Result<Cold> {
    let log = std::env::temp_dir().join(format!("guard-bench-cold-{}.jsonl", std::process::id()));
    let log_arg = log.display().to_string();
    let cold_argv = guard_argv(guard, &["--audit-log", &log_arg]);
    let bare_argv = argv(&["/bin/true"]);
    let bwrap_argv = bwrap_argv();
    let deadline = Instant::now() + UNLOAD_PATIENCE;
    let (mut bare, mut cold, mut bwrap, mut rss_kib) = (vec![], vec![], vec![], vec![]);
    let (mut cpu, mut sys) = (vec![], vec![]);
    let mut discarded = 0;
    let mut attempts = 0;
    while cold.len() < COLD_ROUNDS {
        attempts += 1;
        if attempts > COLD_ROUNDS * 3 {
            bail!("{discarded} of {attempts} cold runs found the probes loaded by someone else");
        }
        unload(guard, deadline)?;
        bare.push(rss::measure(&bare_argv, &[])?.seconds);
        unload(guard, deadline)?;
        let _ = std::fs::remove_file(&log);
        let run = rss::measure(&cold_argv, &[]).context("cold guard exec")?;
        if loaded_probes(&log)? {
            cold.push(run.seconds);
            rss_kib.push(run.peak_kib);
            cpu.push(run.usage.cpu_ns as f64 / 1e9);
            sys.push(run.usage.sys_ns as f64 / 1e9);
        } else {
            discarded += 1;
        }
        unload(guard, deadline)?;
        bwrap.push(rss::measure(&bwrap_argv, &[])?.seconds);
    }
    let _ = std::fs::remove_file(&log);
    rss_kib.sort_unstable();
    let stats = |s: &[f64]| Timing::of(s).context("no samples");
    Ok(Cold {
        rounds: cold.len(),
        bare: stats(&bare)?,
        guard: stats(&cold)?,
        bwrap: stats(&bwrap)?,
        guard_rss_kib: rss_kib,
        discarded,
        guard_cpu: stats(&cpu)?.median,
        guard_sys: stats(&sys)?.median,
    })
}

/// `guard unload`, retried while other guard processes use the probes.
pub fn unload(guard: &Path, deadline: Instant) -> anyhow::Result<()> {
    loop {
        let status = Command::new(guard)
            .arg("unload")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running guard unload")?;
        if status.success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "`guard unload` kept failing ({status}): other guard processes held the probes \
                 for more than {} s in total",
                UNLOAD_PATIENCE.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the start record of the audit log at `path` says this run loaded the probes.
fn loaded_probes(path: &PathBuf) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(start_probes(&text) == Some("loaded"))
}

/// `detail.probes` of the first `start` record: "loaded", "pinned" or "none".
fn start_probes(log: &str) -> Option<&str> {
    log.lines().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        if value["event"] != "start" {
            return None;
        }
        let probes = value["detail"]["probes"].as_str()?;
        // Borrow from `log`, not from the parsed value.
        ["loaded", "pinned", "none"]
            .into_iter()
            .find(|p| *p == probes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_record_says_how_probes_came() {
        let log = "{\"event\":\"start\",\"detail\":{\"probes\":\"loaded\"}}\n\
                   {\"event\":\"exit\",\"detail\":{}}\n";
        assert_eq!(start_probes(log), Some("loaded"));
        assert_eq!(
            start_probes("{\"event\":\"start\",\"detail\":{\"probes\":\"pinned\"}}"),
            Some("pinned")
        );
        assert_eq!(start_probes("{\"event\":\"exit\"}\nnot json"), None);
    }
}
