//! The exec storm: fork+exec of a program in a tight loop under `guard exec --audit-log`,
//! then the execs the loop counted against the `exec` records in the log, plus the losses
//! guard itself reported (`audit.lost_events`).
//!
//! The program is the bench's own 129-byte static executable ([`exit0`]) rather than
//! `/bin/true`, whose dynamic loading keeps the loops below the target rate on a small host;
//! `/bin/true` only when that executable cannot run here, and the report says why.
//!
//! The storm runs once as fast as it goes; when that is above the target rate it runs again
//! paced to the target, since a loss at the machine's maximum does not answer whether the
//! target rate is kept up with.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::Value;

use super::exit0;
use super::micro::Runner;
use super::workload::Tally;

/// How long each storm lasts.
pub const SECONDS: f64 = 10.0;
/// The rate at which no audit record may be lost (issue #7).
pub const TARGET_RATE: f64 = 5000.0;
/// The program the storm runs when [`exit0`] cannot.
pub const FALLBACK: &str = "/bin/true";

/// The program the storm execs, and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// The bench's static executable, written into the bench's temporary directory.
    Exit0(PathBuf),
    /// [`FALLBACK`], because the static executable could not be written or did not run.
    Fallback { why: String },
}

impl Program {
    /// Writes [`exit0`] into `dir` and checks it runs; [`FALLBACK`] if it does not, said on
    /// stderr as well as in the report.
    pub fn prepare(dir: &Path) -> Self {
        match exit0::prepare(dir) {
            Ok(path) => Self::Exit0(path),
            Err(why) => {
                eprintln!(
                    "bench: the storm's static executable is not usable ({why}); the storm runs \
                     {FALLBACK}"
                );
                Self::Fallback { why }
            }
        }
    }

    /// The path the loops exec.
    pub fn path(&self) -> &Path {
        match self {
            Self::Exit0(path) => path,
            Self::Fallback { .. } => Path::new(FALLBACK),
        }
    }

    /// The file the profile must let the sandbox execute beyond its system directories.
    pub fn extra_exec(&self) -> Option<&Path> {
        match self {
            Self::Exit0(path) => Some(path),
            Self::Fallback { .. } => None,
        }
    }

    /// What ran and why, for the report: one or two sentences.
    pub fn describe(&self) -> String {
        match self {
            Self::Exit0(_) => format!(
                "The program is a {}-byte static x86_64 executable the bench writes into its \
                 temporary directory (`xtask/src/bench/exit0.rs`) that only calls \
                 `exit_group(0)`, not `/bin/true`: that one is dynamically linked, and the loader's \
                 work on each exec kept a 2-CPU host below {:.0} execs/s, the rate the audit \
                 target is stated at. With no loader and no libraries, an exec costs what the \
                 kernel's `execve` and guard's exec probe cost.",
                exit0::SIZE,
                TARGET_RATE,
            ),
            Self::Fallback { why } => format!(
                "The program is `{FALLBACK}`: the bench's static executable \
                 (`xtask/src/bench/exit0.rs`) was not used because {why}, so the loader's work \
                 on each exec is part of the storm."
            ),
        }
    }

    /// The program's path as the report shows it: the temporary directory's name changes
    /// with each run and says nothing, so it is left out.
    pub fn shown(&self) -> String {
        match self {
            Self::Exit0(_) => format!("<bench temp dir>/{}", exit0::NAME),
            Self::Fallback { .. } => FALLBACK.to_string(),
        }
    }

    /// A few words naming the program, for findings and targets.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Exit0(_) => "the bench's static executable",
            Self::Fallback { .. } => "`/bin/true`",
        }
    }
}

/// One storm and what its audit log holds.
pub struct Storm {
    /// What the loops exec'd.
    pub program: Program,
    /// The pace asked for; `None` for as fast as it goes.
    pub paced: Option<f64>,
    pub tally: Tally,
    pub audit: AuditCount,
    /// CPU time of guard's own processes over the whole run (start-up included), in ns.
    pub guard_cpu_ns: u64,
}

impl Storm {
    /// Execs per second the loop achieved.
    pub fn rate(&self) -> f64 {
        let execs = self.tally.ops + self.tally.killed + self.tally.failed;
        execs as f64 / (self.tally.ns as f64 / 1e9)
    }

    /// guard's CPU time per exec record, in ns: what turning one probe record into an audit
    /// line costs the supervisor.
    pub fn guard_cpu_per_record(&self) -> f64 {
        self.guard_cpu_ns as f64 / self.audit.execs.max(1) as f64
    }

    /// Execs the loop did that have no record: the loop's count minus the records, never
    /// negative (the log may hold the workload's own exec too).
    pub fn missing(&self) -> u64 {
        let execs = self.tally.ops + self.tally.killed;
        execs.saturating_sub(self.audit.execs)
    }
}

/// What an audit log says about a storm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditCount {
    /// `exec` records of the storm's program.
    pub execs: u64,
    /// The sum of `detail.lost` over `audit.lost_events` records.
    pub lost: u64,
    /// Records of any kind.
    pub records: u64,
}

/// Counts the records of `log` (JSON lines) for execs of `program` (or `canonical`, the path
/// the kernel may report instead when `program` goes through a symlink).
pub fn count(log: &str, program: &str, canonical: &str) -> AuditCount {
    let mut out = AuditCount::default();
    for line in log.lines() {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        out.records += 1;
        let path = record["detail"]["path"].as_str();
        if record["event"] == "exec" && (path == Some(program) || path == Some(canonical)) {
            out.execs += 1;
        }
        if record["rule"] == "audit.lost_events" {
            out.lost += record["detail"]["lost"].as_u64().unwrap_or(0);
        }
    }
    out
}

/// One spawning loop per CPU: the highest rate the host sustains, with guard's supervisor
/// competing for the same CPUs.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the storm of `program` at full speed, then paced to [`TARGET_RATE`] when full speed
/// exceeded it.
pub fn measure(runner: &Runner<'_>, program: &Program) -> anyhow::Result<Vec<Storm>> {
    let mut storms = vec![one(runner, program, None)?];
    if storms[0].rate() > TARGET_RATE {
        storms.push(one(runner, program, Some(TARGET_RATE))?);
    }
    Ok(storms)
}

fn one(runner: &Runner<'_>, program: &Program, paced: Option<f64>) -> anyhow::Result<Storm> {
    let path = program.path().display().to_string();
    let log = std::env::temp_dir().join(format!("guard-bench-storm-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut args = vec![
        "storm".to_string(),
        "--threads".to_string(),
        threads().to_string(),
        path.clone(),
        SECONDS.to_string(),
    ];
    if let Some(rate) = paced {
        args.extend(["--rate".to_string(), rate.to_string()]);
    }
    eprintln!(
        "bench: exec storm of {path}, {SECONDS} s, {}",
        paced.map_or("as fast as it goes".to_string(), |r| format!("{r}/s"))
    );
    let run = runner.guarded_once(&args, &log).context("exec storm")?;
    let text = std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()));
    let _ = std::fs::remove_file(&log);
    let canonical = std::fs::canonicalize(&path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.clone());
    Ok(Storm {
        program: program.clone(),
        paced,
        tally: run.tally,
        audit: count(&text?, &path, &canonical),
        guard_cpu_ns: run.guard_share().cpu_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_exec_records_and_losses() {
        let log = r#"{"event":"start","detail":{"probes":"pinned"}}
{"event":"exec","rule":"process.exec","detail":{"path":"/x/workload"}}
{"event":"exec","rule":"process.exec","detail":{"path":"/bin/true"}}
{"event":"exec","rule":"process.exec","detail":{"path":"/usr/bin/true"}}
{"event":"violation","detail":{"path":"/bin/true"}}
{"event":"limit","rule":"audit.lost_events","detail":{"lost":7}}
not json
{"event":"exit","detail":{}}
"#;
        assert_eq!(
            count(log, "/bin/true", "/usr/bin/true"),
            AuditCount {
                execs: 2,
                lost: 7,
                records: 7
            }
        );
    }

    #[test]
    fn an_unusable_static_executable_falls_back_to_bin_true_and_says_why() {
        let program = Program::prepare(Path::new("/nonexistent/guard-bench"));
        assert_eq!(program.path(), Path::new(FALLBACK));
        assert_eq!(program.extra_exec(), None);
        assert_eq!(program.shown(), FALLBACK);
        assert!(program.describe().starts_with("The program is `/bin/true`"));
        assert!(program.describe().contains("/nonexistent/guard-bench"));

        let tiny = Program::Exit0("/tmp/guard-bench-1/exit0".into());
        assert_eq!(
            tiny.extra_exec(),
            Some(Path::new("/tmp/guard-bench-1/exit0"))
        );
        assert_eq!(tiny.shown(), "<bench temp dir>/exit0");
        assert!(
            tiny.describe()
                .contains("129-byte static x86_64 executable")
        );
    }

    #[test]
    fn rate_and_missing() {
        let storm = Storm {
            program: Program::Exit0("/t/exit0".into()),
            paced: None,
            tally: Tally {
                ops: 9_990,
                ns: 2_000_000_000,
                failed: 0,
                killed: 10,
                ..Tally::default()
            },
            audit: AuditCount {
                execs: 9_000,
                lost: 1_000,
                records: 9_003,
            },
            guard_cpu_ns: 90_000_000,
        };
        assert_eq!(storm.rate(), 5_000.0);
        assert_eq!(storm.missing(), 1_000);
        assert_eq!(storm.guard_cpu_per_record(), 10_000.0);
    }
}
