//! Where a warm `guard exec` spends its time: the system calls that take longest, from
//! `strace -f -y -T` of a few runs, and the length of one RCU grace period on this host,
//! which several of them wait for.
//!
//! strace slows every system call down, so its totals overstate guard's own time; the calls
//! that block (waiting for a grace period) are slowed by it least, and they are what this
//! section is for. Calls that only wait for another process of the run (pipe reads, poll,
//! wait4) are left out: their time is the other process's, counted where it is spent.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::hyperfine::Timing;
use super::workload::Tally;

/// Traced runs of the warm start.
pub const RUNS: usize = 8;
/// Traced runs of the cold start (each after `guard unload`).
pub const COLD_RUNS: usize = 3;
/// Grace periods waited for in the RCU measurement.
const GRACE_PERIODS: u64 = 20;

/// How many of the most expensive calls the report lists.
const TOP: usize = 10;

/// One kind of system call and what it cost per run.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// The call and what it worked on, e.g. `bpf BPF_MAP_UPDATE_ELEM` or
    /// `write cgroup memory/cgroup.procs`.
    pub key: String,
    /// Median over the runs of the time spent in these calls per run, in seconds.
    pub median: f64,
    /// Median number of calls per run.
    pub calls: u64,
}

pub struct Profile {
    pub runs: usize,
    /// Calls by cost, largest first.
    pub top: Vec<Cost>,
    /// Median total time per run in all calls counted (not only the top ones), in seconds.
    pub syscall_total: f64,
    /// One `synchronize_rcu()`, measured bare: the mean of [`GRACE_PERIODS`].
    pub grace_period: Option<f64>,
    /// The same for the cold start, or why it was not traced.
    pub cold: Result<Vec<Cost>, String>,
}

/// Traces [`RUNS`] warm and [`COLD_RUNS`] cold starts of `guard_argv` and measures a grace
/// period with the workload binary.
pub fn measure(guard: &Path, guard_argv: &[String], workload: &Path) -> anyhow::Result<Profile> {
    eprintln!("bench: tracing {RUNS} warm and {COLD_RUNS} cold starts with strace");
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(per_run(&parse(&trace(guard_argv)?)));
    }
    let cold = trace_cold(guard, guard_argv)
        .map(|runs| summarize(&runs, None).top)
        .map_err(|e| format!("{e:#}"));
    let grace_period = grace_period(workload)
        .map_err(|e| eprintln!("bench: grace period not measured: {e:#}"))
        .ok();
    let mut profile = summarize(&runs, grace_period);
    profile.cold = cold;
    Ok(profile)
}

fn trace_cold(
    guard: &Path,
    guard_argv: &[String],
) -> anyhow::Result<Vec<BTreeMap<String, (f64, u64)>>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut runs = Vec::new();
    for _ in 0..COLD_RUNS {
        super::startup::unload(guard, deadline)?;
        runs.push(per_run(&parse(&trace(guard_argv)?)));
    }
    Ok(runs)
}

/// `strace -f -y -T` of one run of `argv`: its output.
fn trace(argv: &[String]) -> anyhow::Result<String> {
    let file = std::env::temp_dir().join(format!("guard-bench-strace-{}.txt", std::process::id()));
    let status = Command::new("strace")
        .args(["-f", "-y", "-T", "-qq", "-o"])
        .arg(&file)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running strace")?;
    let text = std::fs::read_to_string(&file).context("reading the strace output");
    let _ = std::fs::remove_file(&file);
    if !status.success() {
        bail!("strace of `guard exec` failed: {status}");
    }
    text
}

/// The mean time of one RCU grace period, waited for by the workload binary.
fn grace_period(workload: &Path) -> anyhow::Result<f64> {
    let output = Command::new(workload)
        .args(["bench-workload", "rcu", &GRACE_PERIODS.to_string()])
        .stdin(Stdio::null())
        .output()
        .context("running the grace-period workload")?;
    if !output.status.success() {
        bail!(
            "grace-period workload failed: {}",
            super::command::one_line(&String::from_utf8_lossy(&output.stderr))
        );
    }
    let tally = Tally::parse(&String::from_utf8_lossy(&output.stdout))?;
    Ok(tally.ns as f64 / 1e9 / tally.ops.max(1) as f64)
}

/// One finished system call.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    key: String,
    seconds: f64,
}

/// The calls of `strace -f -y -T` output, with `<unfinished ...>` / `<... resumed>` pairs
/// joined. Waiting calls are dropped.
fn parse(text: &str) -> Vec<Call> {
    let mut pending: BTreeMap<&str, String> = BTreeMap::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let full = if let Some(start) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, start.to_string());
            continue;
        } else if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((_, tail)) = resumed.split_once(" resumed>") else {
                continue;
            };
            match pending.remove(pid) {
                Some(start) => format!("{start}{tail}"),
                None => continue,
            }
        } else {
            rest.to_string()
        };
        let Some(seconds) = duration(&full) else {
            continue;
        };
        if let Some(key) = key(&full) {
            calls.push(Call { key, seconds });
        }
    }
    calls
}

/// The `<0.000123>` at the end of a finished call.
fn duration(call: &str) -> Option<f64> {
    let open = call.rfind('<')?;
    call[open + 1..].strip_suffix('>')?.parse().ok()
}

/// What a call was for, or `None` for calls that only wait for another process.
fn key(call: &str) -> Option<String> {
    let (name, args) = call.split_once('(')?;
    if matches!(
        name,
        "wait4"
            | "waitid"
            | "poll"
            | "ppoll"
            | "epoll_wait"
            | "epoll_pwait"
            | "futex"
            | "nanosleep"
            | "clock_nanosleep"
            | "select"
            | "pselect6"
            | "rt_sigtimedwait"
    ) {
        return None;
    }
    let object = if name == "bpf" {
        args.split(',').next().map(str::to_string)
    } else if let Some(fd_path) = fd_path(args) {
        Some(describe(fd_path))
    } else {
        first_string(args).map(describe)
    };
    if name == "read" && object.as_deref() == Some("pipe") {
        return None;
    }
    Some(match object {
        Some(object) => format!("{name} {object}"),
        None => name.to_string(),
    })
}

/// The path strace's `-y` shows for the first argument, `3</some/path>`.
fn fd_path(args: &str) -> Option<&str> {
    let first = args.split(", ").next()?;
    let open = first.find('<')?;
    if !first[..open].chars().all(|c| c.is_ascii_digit()) || open == 0 {
        return None;
    }
    first[open + 1..].strip_suffix('>')
}

/// The first string argument, `"..."`.
fn first_string(args: &str) -> Option<&str> {
    let start = args.find('"')? + 1;
    let len = args[start..].find('"')?;
    Some(&args[start..start + len])
}

/// A path with the parts that change from run to run (sandbox ids) left out.
fn describe(path: &str) -> String {
    if path.starts_with("pipe:") {
        return "pipe".into();
    }
    if let Some(rest) = path.strip_prefix("/sys/fs/cgroup/") {
        let hierarchy = rest.split('/').next().unwrap_or(rest);
        let last = rest.rsplit('/').next().unwrap_or(rest);
        // Control files have a dot (`cgroup.procs`, `memory.max`); directories are sandbox ids.
        let what = if last.contains('.') { last } else { "<dir>" };
        return format!("cgroup {hierarchy}/{what}");
    }
    if path.starts_with("/sys/fs/bpf/") {
        return "bpffs".into();
    }
    path.to_string()
}

/// Total time and count per key in one run.
fn per_run(calls: &[Call]) -> BTreeMap<String, (f64, u64)> {
    let mut out: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for call in calls {
        let entry = out.entry(call.key.clone()).or_default();
        entry.0 += call.seconds;
        entry.1 += 1;
    }
    out
}

fn summarize(runs: &[BTreeMap<String, (f64, u64)>], grace_period: Option<f64>) -> Profile {
    let keys: std::collections::BTreeSet<&String> = runs.iter().flat_map(|r| r.keys()).collect();
    let mut top: Vec<Cost> = keys
        .into_iter()
        .map(|key| {
            let times: Vec<f64> = runs
                .iter()
                .map(|r| r.get(key).map_or(0.0, |c| c.0))
                .collect();
            let mut counts: Vec<u64> = runs.iter().map(|r| r.get(key).map_or(0, |c| c.1)).collect();
            counts.sort_unstable();
            Cost {
                key: key.clone(),
                median: Timing::of(&times).map_or(0.0, |t| t.median),
                calls: super::rss::median_of(&counts),
            }
        })
        .collect();
    top.sort_by(|a, b| b.median.total_cmp(&a.median));
    top.truncate(TOP);
    let totals: Vec<f64> = runs.iter().map(|r| r.values().map(|c| c.0).sum()).collect();
    Profile {
        runs: runs.len(),
        top,
        syscall_total: Timing::of(&totals).map_or(0.0, |t| t.median),
        grace_period,
        cold: Ok(Vec::new()),
    }
}

/// Why a call is expensive, for the calls a warm start is known to wait in.
pub fn explain(key: &str) -> &'static str {
    if key == "bpf BPF_MAP_UPDATE_ELEM" || key == "bpf BPF_MAP_DELETE_ELEM" {
        "the sandbox's policy, rate state and rules written into and removed from the probes' \
         maps (microseconds each); only the first use of a ring-pool slot stores a ring in \
         `EVENT_RINGS`, an array of maps, and waits for an RCU grace period \
         (`maybe_wait_bpf_programs`)"
    } else if key.ends_with("/cgroup.procs") && key.starts_with("write") {
        "moving the child into the sandbox cgroups: the first write takes \
         `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace period unless \
         one passed recently"
    } else if key.starts_with("execve") {
        "exec of guard itself and of the command (dynamic loading included)"
    } else if key.starts_with("clone") {
        "fork of the sentinel and of the command"
    } else if key.starts_with("landlock_add_rule") {
        "one Landlock rule per profile path (path lookup)"
    } else if key.starts_with("mkdir cgroup") || key.starts_with("rmdir cgroup") {
        "creating and removing the sandbox cgroups (one per v1 hierarchy plus cgroup2)"
    } else if key == "bpf BPF_MAP_CREATE" {
        "a 1 MiB ring buffer for a ring-pool slot used for the first time (cold: and the \
         probes' maps)"
    } else if key == "bpf BPF_PROG_LOAD" {
        "the verifier checking each probe program (cold start only)"
    } else if key.contains("/sys/kernel/btf/vmlinux") {
        "reading the kernel's BTF (megabytes) page by page, where it cannot be mapped (before \
         6.16): the first load after boot, for the exec probe's struct offsets, and where BPF LSM \
         loads, for its hook (strace inflates their count's share; cold start only)"
    } else if key == "prctl" {
        "the child dropping the capability bounding set one capability per call, and \
         no_new_privs"
    } else if key == "seccomp" {
        "libseccomp probing the kernel's seccomp API at every start, then loading the filter"
    } else if key.ends_with("/freezer.state") {
        "freezing and thawing the (already empty) v1 cgroup at the end: each toggles the \
         freezer's static key, which patches kernel text with IPIs to every CPU"
    } else if key == "bpf BPF_LINK_CREATE" || key == "perf_event_open" {
        "attaching the probes (cold start only)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"100 execve("target/release/guard", ["guard"], 0x7ff /* 39 vars */) = 0 <0.000247>
100 bpf(BPF_MAP_UPDATE_ELEM, {map_fd=11</anon_inode:bpf-map>, key=0x1, value=0x2, flags=BPF_ANY}, 152) = 0 <0.008811>
100 write(3</sys/fs/cgroup/memory/guard/g1-2/cgroup.procs>, "22392", 5 <unfinished ...>
101 read(16<pipe:[664162]>, "G", 1) = 1 <0.013240>
100 <... write resumed>) = 5 <0.010870>
100 mkdir("/sys/fs/cgroup/pids/guard/g1-2", 0777) = 0 <0.000026>
100 wait4(101, [{WIFEXITED(s) && WEXITSTATUS(s) == 0}], 0, NULL) = 101 <0.000291>
100 bpf(BPF_MAP_UPDATE_ELEM, {map_fd=5</anon_inode:bpf-map>, key=0x1, value=0x2, flags=BPF_ANY}, 152) = 0 <0.000014>
100 +++ exited with 0 +++
"#;

    #[test]
    fn strace_lines_become_keyed_calls() {
        let calls = parse(TRACE);
        let keys: Vec<&str> = calls.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "execve target/release/guard",
                "bpf BPF_MAP_UPDATE_ELEM",
                "write cgroup memory/cgroup.procs",
                "mkdir cgroup pids/<dir>",
                "bpf BPF_MAP_UPDATE_ELEM",
            ]
        );
        assert_eq!(calls[2].seconds, 0.010870);
    }

    #[test]
    fn runs_are_summarized_by_median() {
        let run = per_run(&parse(TRACE));
        assert_eq!(run["bpf BPF_MAP_UPDATE_ELEM"].1, 2);
        let empty = BTreeMap::new();
        let profile = summarize(&[run.clone(), run, empty], Some(0.004));
        assert_eq!(profile.runs, 3);
        assert_eq!(profile.top[0].key, "write cgroup memory/cgroup.procs");
        assert_eq!(profile.top[0].median, 0.010870);
        assert_eq!(profile.top[1].key, "bpf BPF_MAP_UPDATE_ELEM");
        assert_eq!(profile.top[1].calls, 2);
        assert!(explain(&profile.top[1].key).contains("grace period"));
    }
}
