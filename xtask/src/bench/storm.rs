//! The exec storm: fork+exec of `/bin/true` in a tight loop under `guard exec --audit-log`,
//! then the execs the loop counted against the `exec` records in the log, plus the losses
//! guard itself reported (`audit.lost_events`).
//!
//! The storm runs once as fast as it goes; when that is above the target rate it runs again
//! paced to the target, since a loss at the machine's maximum does not answer whether the
//! target rate is kept up with.

use anyhow::Context as _;
use serde_json::Value;

use super::micro::Runner;
use super::workload::Tally;

/// How long each storm lasts.
pub const SECONDS: f64 = 10.0;
/// The rate at which no audit record may be lost (issue #7).
pub const TARGET_RATE: f64 = 5000.0;
/// The program the storm runs.
pub const PROGRAM: &str = "/bin/true";

/// One storm and what its audit log holds.
pub struct Storm {
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

/// Runs the storm at full speed, then paced to [`TARGET_RATE`] when full speed exceeded it.
pub fn measure(runner: &Runner<'_>) -> anyhow::Result<Vec<Storm>> {
    let mut storms = vec![one(runner, None)?];
    if storms[0].rate() > TARGET_RATE {
        storms.push(one(runner, Some(TARGET_RATE))?);
    }
    Ok(storms)
}

fn one(runner: &Runner<'_>, paced: Option<f64>) -> anyhow::Result<Storm> {
    let log = std::env::temp_dir().join(format!("guard-bench-storm-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut args = vec![
        "storm".to_string(),
        "--threads".to_string(),
        threads().to_string(),
        PROGRAM.to_string(),
        SECONDS.to_string(),
    ];
    if let Some(rate) = paced {
        args.extend(["--rate".to_string(), rate.to_string()]);
    }
    eprintln!(
        "bench: exec storm, {SECONDS} s, {}",
        paced.map_or("as fast as it goes".to_string(), |r| format!("{r}/s"))
    );
    let run = runner.guarded_once(&args, &log).context("exec storm")?;
    let text = std::fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()));
    let _ = std::fs::remove_file(&log);
    let canonical = std::fs::canonicalize(PROGRAM)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| PROGRAM.to_string());
    Ok(Storm {
        paced,
        tally: run.tally,
        audit: count(&text?, PROGRAM, &canonical),
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
    fn rate_and_missing() {
        let storm = Storm {
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
