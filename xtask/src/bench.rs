//! `cargo xtask bench`: guard's start-up cost next to a bare process, bubblewrap and firejail.
//!
//! All commands are timed together by one hyperfine run, so they share the same machine state;
//! each is first run once and must exit 0, so a sandbox that silently fails cannot post a fast
//! time. A second run spaces the runs apart: back-to-back runs keep kernel state warm that an
//! agent's occasional tool call does not find (the RCU grace period that moving a process into
//! a cgroup waits for), and the cold numbers are the ones users see.
//! Peak RSS is read from `wait4`'s rusage of each command's top process. The results are
//! printed and written to `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{cmd, setup};

/// Where the report goes, relative to the workspace root.
const REPORT: &str = "docs/benchmarks.md";
/// hyperfine runs per command: enough for a stable median of millisecond-scale commands while
/// the whole bench stays well under a minute.
const RUNS: u32 = 300;
/// Warm-up runs fill the page cache and the dynamic loader's caches before timing.
const WARMUP: u32 = 20;
/// Runs per command for the peak-RSS samples.
const RSS_RUNS: usize = 20;
/// The spaced run: fewer runs, each after an idle pause long enough for several RCU grace
/// periods (tens of milliseconds with HZ=250 and lazy RCU).
const SPACED_RUNS: u32 = 40;
const SPACED_WARMUP: u32 = 3;
const PAUSE: &str = "0.2";

/// One benchmarked command.
struct Case {
    /// Short row label.
    label: &'static str,
    /// What the row measures, for the report.
    note: &'static str,
    argv: Vec<String>,
    /// A required case fails the bench when it does not work; an optional one (firejail, which
    /// may refuse some hosts) is reported as attempted, with the reason, and left out of timing.
    required: bool,
}

/// hyperfine's statistics for one command, in seconds.
#[derive(Debug, Clone, PartialEq)]
struct Timing {
    median: f64,
    min: f64,
    max: f64,
    mean: f64,
    stddev: f64,
}

/// Everything the report shows about one case.
struct Row {
    label: &'static str,
    note: &'static str,
    command: String,
    outcome: Outcome,
}

enum Outcome {
    Measured {
        /// Runs back to back.
        timing: Timing,
        /// Runs `PAUSE` seconds apart.
        spaced: Timing,
        /// Peak RSS samples in KiB, sorted.
        rss_kib: Vec<u64>,
    },
    /// The command did not run successfully here; the reason is shown instead of numbers.
    Failed(String),
}

pub fn run() -> anyhow::Result<()> {
    setup::run()?;
    cmd::run(Command::new("cargo").args(["build", "--release", "--locked", "--bin", "guard"]))?;
    let guard = guard_binary()?;

    let cases = cases(&guard);
    let mut rows = Vec::new();
    let mut timed = Vec::new();
    for case in &cases {
        let command = shell_line(&case.argv);
        match check_once(&case.argv) {
            Ok(()) => {
                eprintln!("bench: ok     {command}");
                timed.push(rows.len());
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

    let timed_argvs: Vec<&[String]> = timed.iter().map(|&i| cases[i].argv.as_slice()).collect();
    let timings = hyperfine(&timed_argvs, WARMUP, RUNS, None)?;
    // -N runs the prepare command without a shell too.
    let pause = format!("sleep {PAUSE}");
    let spaced = hyperfine(&timed_argvs, SPACED_WARMUP, SPACED_RUNS, Some(&pause))?;
    for ((&i, timing), spaced) in timed.iter().zip(timings).zip(spaced) {
        let rss_kib = peak_rss_samples(&cases[i].argv, RSS_RUNS)
            .with_context(|| format!("measuring the peak RSS of `{}`", rows[i].command))?;
        rows[i].outcome = Outcome::Measured {
            timing,
            spaced,
            rss_kib,
        };
    }

    let machine = Machine::probe()?;
    let report = render_report(&machine, &rows);
    eprintln!("\n{}", render_table(&rows));
    for line in guard_bwrap_lines(&rows) {
        eprintln!("{line}");
    }
    std::fs::create_dir_all("docs").context("cannot create docs/")?;
    std::fs::write(REPORT, report).with_context(|| format!("cannot write {REPORT}"))?;
    eprintln!("bench: wrote {REPORT}");
    Ok(())
}

/// The release binary `cargo build --release` just produced.
fn guard_binary() -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    // Relative to the workspace root (the current directory), so the report names no local path.
    let guard = target.join("release/guard");
    if !guard.is_file() {
        bail!("{} does not exist after the release build", guard.display());
    }
    Ok(guard)
}

fn cases(guard: &Path) -> Vec<Case> {
    let argv = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut guard_argv = vec![guard.display().to_string()];
    guard_argv.extend(argv(&["exec", "--profile", "minimal", "--", "/bin/true"]));
    vec![
        Case {
            label: "bare",
            note: "fork+exec of `/bin/true` by hyperfine: the floor every other row pays too",
            argv: argv(&["/bin/true"]),
            required: true,
        },
        Case {
            label: "guard",
            note: "guard's full start: profile load and compile, the sandbox cgroup with its \
                   limits, the sentinel, fork, Landlock and seccomp in the child, handshake, \
                   exec, supervision until exit, cgroup removal; eBPF programs only when \
                   the profile needs them",
            argv: guard_argv,
            required: true,
        },
        Case {
            label: "bwrap",
            note: "bubblewrap with all namespaces unshared (user, ipc, pid, net, uts, cgroup) \
                   and a read-only bind of `/`; no seccomp, no cgroup",
            argv: argv(&[
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
            ]),
            required: true,
        },
        Case {
            label: "firejail",
            note: "firejail without a profile: its default namespaces and mounts, no seccomp \
                   filter (`--noprofile`)",
            argv: argv(&["firejail", "--quiet", "--noprofile", "/bin/true"]),
            required: false,
        },
    ]
}

/// Runs `argv` once; fails with its exit status and stderr unless it exits 0.
fn check_once(argv: &[String]) -> anyhow::Result<()> {
    let (program, args) = argv.split_first().context("empty command")?;
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{}; stderr: {}", output.status, one_line(&stderr));
    }
    Ok(())
}

/// Times all `argvs` in one hyperfine run, with `prepare` before each run if given, and returns
/// their statistics in the same order.
fn hyperfine(
    argvs: &[&[String]],
    warmup: u32,
    runs: u32,
    prepare: Option<&str>,
) -> anyhow::Result<Vec<Timing>> {
    let json_path = std::env::temp_dir().join(format!("guard-bench-{}.json", std::process::id()));
    let mut hyperfine = Command::new("hyperfine");
    // -N: every command is a plain exec, so no shell is spawned and no shell time is subtracted.
    hyperfine
        .arg("-N")
        .args(["--warmup", &warmup.to_string()])
        .args(["--runs", &runs.to_string()])
        .arg("--export-json")
        .arg(&json_path);
    if let Some(prepare) = prepare {
        hyperfine.args(["--prepare", prepare]);
    }
    hyperfine.args(argvs.iter().map(|argv| shell_line(argv)));
    let result = cmd::run(&mut hyperfine).and_then(|()| {
        std::fs::read_to_string(&json_path)
            .with_context(|| format!("cannot read {}", json_path.display()))
    });
    // Removed whatever happened; a failed run's partial file is of no use.
    let _ = std::fs::remove_file(&json_path);
    let timings = parse_hyperfine(&result?)?;
    if timings.len() != argvs.len() {
        bail!(
            "hyperfine reported {} results for {} commands",
            timings.len(),
            argvs.len()
        );
    }
    Ok(timings)
}

/// Reads median, min, max, mean and stddev of every result in hyperfine's `--export-json`
/// output, and checks that every timed run exited 0.
fn parse_hyperfine(json: &str) -> anyhow::Result<Vec<Timing>> {
    let doc: Value = serde_json::from_str(json).context("hyperfine's JSON does not parse")?;
    let results = doc["results"]
        .as_array()
        .context("hyperfine's JSON has no `results` array")?;
    results
        .iter()
        .map(|r| {
            let command = r["command"].as_str().unwrap_or("?");
            let field = |name: &str| {
                r[name]
                    .as_f64()
                    .with_context(|| format!("no number `{name}` for `{command}`"))
            };
            if let Some(codes) = r["exit_codes"].as_array()
                && codes.iter().any(|c| c.as_i64() != Some(0))
            {
                bail!("`{command}` exited non-zero during timing");
            }
            Ok(Timing {
                median: field("median")?,
                min: field("min")?,
                max: field("max")?,
                mean: field("mean")?,
                stddev: field("stddev")?,
            })
        })
        .collect()
}

/// Peak RSS in KiB of `runs` runs of `argv`, sorted.
///
/// `wait4` reports the larger of the process's own peak and that of the descendants it reaped,
/// so a supervisor's row covers its sandboxed child too. `getrusage(RUSAGE_CHILDREN)` would
/// not do: it is the peak over every child this process ever reaped, cargo included.
fn peak_rss_samples(argv: &[String], runs: usize) -> anyhow::Result<Vec<u64>> {
    let (program, args) = argv.split_first().context("empty command")?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut command = Command::new(program);
        command
            .args(args)
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
        if reaped != pid {
            return Err(std::io::Error::last_os_error()).context("wait4 failed");
        }
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            bail!("{program} did not exit 0 (wait status {status:#x})");
        }
        drop(child);
        // ru_maxrss is in KiB on Linux.
        samples.push(u64::try_from(usage.ru_maxrss).unwrap_or(0));
    }
    samples.sort_unstable();
    Ok(samples)
}

/// The host, as the report describes it.
struct Machine {
    cpu_model: String,
    cpus: usize,
    memory: String,
    kernel: String,
    date: String,
    commit: String,
    tools: Vec<String>,
}

impl Machine {
    fn probe() -> anyhow::Result<Self> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
        let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .context("reading the kernel release")?;
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
        })
    }
}

/// The first line of a successful command's stdout, if it printed one.
fn stdout_line(command: &mut Command) -> Option<String> {
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

/// `argv` as one line hyperfine (with `-N`) splits back into the same words.
fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        "(empty)".into()
    } else {
        joined
    }
}

fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1000.0)
}

/// The lower median, so an even number of samples still gives a measured value.
fn median_of(sorted: &[u64]) -> u64 {
    sorted
        .get(sorted.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// Which of a row's two hyperfine runs.
#[derive(Clone, Copy)]
enum Run {
    BackToBack,
    Spaced,
}

fn timing_of<'a>(rows: &'a [Row], label: &str, run: Run) -> Option<&'a Timing> {
    rows.iter().find_map(|r| match &r.outcome {
        Outcome::Measured { timing, spaced, .. } if r.label == label => Some(match run {
            Run::BackToBack => timing,
            Run::Spaced => spaced,
        }),
        _ => None,
    })
}

/// The summary table, in Markdown (readable as plain text too).
fn render_table(rows: &[Row]) -> String {
    let bare = timing_of(rows, "bare", Run::BackToBack).map(|t| t.median);
    let bare_spaced = timing_of(rows, "bare", Run::Spaced).map(|t| t.median);
    let ratio = |t: &Timing, base: Option<f64>| {
        base.map_or("?".into(), |b| format!("{:.1}×", t.median / b))
    };
    let mut out = format!(
        "| command | back to back: median | min – max | × bare | {PAUSE} s apart: median \
         | min – max | × bare | peak RSS (median, max) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for row in rows {
        let line = match &row.outcome {
            Outcome::Measured {
                timing: t,
                spaced: c,
                rss_kib,
            } => format!(
                "| {} | {} | {} – {} | {} | {} | {} – {} | {} | {} KiB, {} KiB |",
                row.label,
                ms(t.median),
                ms(t.min),
                ms(t.max),
                ratio(t, bare),
                ms(c.median),
                ms(c.min),
                ms(c.max),
                ratio(c, bare_spaced),
                median_of(rss_kib),
                rss_kib.last().copied().unwrap_or(0),
            ),
            Outcome::Failed(reason) => format!(
                "| {} | not measured: attempted, failed ({}) | | | | | | |",
                row.label,
                reason.replace('|', "\\|")
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// guard's median over bwrap's, for both runs.
fn guard_bwrap_lines(rows: &[Row]) -> Vec<String> {
    [(Run::BackToBack, "back to back"), (Run::Spaced, "spaced")]
        .into_iter()
        .filter_map(|(run, name)| {
            let guard = timing_of(rows, "guard", run)?;
            let bwrap = timing_of(rows, "bwrap", run)?;
            Some(format!(
                "guard / bwrap, {name}: {:.2}× ({} vs {})",
                guard.median / bwrap.median,
                ms(guard.median),
                ms(bwrap.median)
            ))
        })
        .collect()
}

fn render_report(machine: &Machine, rows: &[Row]) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "# Benchmarks\n\n\
         Generated by `cargo xtask bench` (`xtask/src/bench.rs`); rerun it to refresh this file.\n\n\
         ## Machine\n\n\
         - date: {}\n\
         - CPU: {} ({} logical CPUs)\n\
         - memory: {}\n\
         - kernel: {}\n\
         - guard: release build of commit {}\n\
         - tools: {}\n\n\
         ## Start-up time of `/bin/true`\n\n\
         Two hyperfine runs, `-N` (no shell), each timing all commands: back to back \
         ({WARMUP} warm-up and {RUNS} timed runs per command), and spaced ({SPACED_WARMUP} \
         warm-up and {SPACED_RUNS} timed runs, each after `sleep {PAUSE}`). Peak RSS: \
         `ru_maxrss` from `wait4` over {RSS_RUNS} separate runs; for a supervisor it is the \
         largest process of its tree.\n\n",
        machine.date,
        machine.cpu_model,
        machine.cpus,
        machine.memory,
        machine.kernel,
        machine.commit,
        machine.tools.join(", "),
    );
    out.push_str(&render_table(rows));
    out.push('\n');
    for line in guard_bwrap_lines(rows) {
        let _ = writeln!(out, "- {line}");
    }
    out.push_str("\n## What each row measures\n\n");
    for row in rows {
        let _ = writeln!(out, "- **{}** `{}`: {}.", row.label, row.command, row.note);
    }
    out.push_str(
        "\nThe spaced run is what an agent's occasional tool call costs: back-to-back runs keep \
         kernel state warm, notably the RCU grace period that a write to `cgroup.procs` waits \
         for when it takes `cgroup_threadgroup_rwsem` after an idle spell. guard pays it to \
         put the sandbox in its cgroup; bwrap and firejail create no cgroup. hyperfine times \
         each command's runs in a block, so a noisy neighbour during one block shows up in \
         that row only; compare the medians, and the min – max range for how noisy the host \
         was.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperfine_json_parsing() {
        let json = r#"{"results":[
            {"command":"/bin/true","mean":0.001,"stddev":0.0002,"median":0.0009,
             "min":0.0005,"max":0.003,"exit_codes":[0,0]},
            {"command":"x","mean":0.01,"stddev":0.002,"median":0.009,
             "min":0.005,"max":0.03,"exit_codes":[0]}]}"#;
        let timings = parse_hyperfine(json).unwrap();
        assert_eq!(timings.len(), 2);
        assert_eq!(
            timings[0],
            Timing {
                median: 0.0009,
                min: 0.0005,
                max: 0.003,
                mean: 0.001,
                stddev: 0.0002
            }
        );
    }

    #[test]
    fn hyperfine_json_rejects_failures_and_gaps() {
        let failed = r#"{"results":[{"command":"x","mean":1,"stddev":0,"median":1,
            "min":1,"max":1,"exit_codes":[0,1]}]}"#;
        assert!(parse_hyperfine(failed).is_err());
        let missing = r#"{"results":[{"command":"x","mean":1}]}"#;
        assert!(parse_hyperfine(missing).is_err());
        assert!(parse_hyperfine("{}").is_err());
    }

    #[test]
    fn shell_line_quotes_only_when_needed() {
        let argv = ["/a b/guard", "exec", "--", "it's", ""].map(String::from);
        assert_eq!(shell_line(&argv), r"'/a b/guard' exec -- 'it'\''s' ''");
    }

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

    #[test]
    fn table_shows_ratios_and_failures() {
        let timing = |median: f64| Timing {
            median,
            min: median,
            max: median,
            mean: median,
            stddev: 0.0,
        };
        let measured = |median: f64, rss_kib: Vec<u64>| Outcome::Measured {
            timing: timing(median),
            spaced: timing(median * 4.0),
            rss_kib,
        };
        let row = |label, outcome| Row {
            label,
            note: "",
            command: label.to_string(),
            outcome,
        };
        let rows = [
            row("bare", measured(0.001, vec![1000, 1200])),
            row("guard", measured(0.005, vec![4000])),
            row("bwrap", measured(0.01, vec![3000])),
            row("firejail", Outcome::Failed("exit status: 1; a|b".into())),
        ];
        let table = render_table(&rows);
        assert!(table.contains(
            "| guard | 5.00 ms | 5.00 ms – 5.00 ms | 5.0× | 20.00 ms | 20.00 ms – 20.00 ms | 5.0× \
             | 4000 KiB, 4000 KiB |"
        ));
        assert!(table.contains("| bare | 1.00 ms |"));
        assert!(table.contains("| 1000 KiB, 1200 KiB |"));
        assert!(table.contains("attempted, failed (exit status: 1; a\\|b)"));
        assert_eq!(
            guard_bwrap_lines(&rows),
            [
                "guard / bwrap, back to back: 0.50× (5.00 ms vs 10.00 ms)",
                "guard / bwrap, spaced: 0.50× (20.00 ms vs 40.00 ms)"
            ]
        );
    }
}
