//! Timing commands with hyperfine (`-N`, no shell) and reading its `--export-json` output.

use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::Value;

use super::command::shell_line;
use crate::cmd;

/// Statistics of one timed command, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub stddev: f64,
}

impl Timing {
    /// Statistics of `samples` (seconds); `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let variance = sorted.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n as f64;
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            mean,
            stddev: variance.sqrt(),
        })
    }
}

#[cfg(test)]
impl Timing {
    /// A timing whose every statistic is `median`, for tests.
    pub fn flat(median: f64) -> Self {
        Self {
            median,
            min: median,
            max: median,
            mean: median,
            stddev: 0.0,
        }
    }
}

/// One hyperfine invocation: commands timed together, so they share the machine's state.
pub struct Plan<'a> {
    pub argvs: Vec<&'a [String]>,
    pub warmup: u32,
    pub runs: u32,
    /// Run before every run of every command (one entry), or of the command at the same
    /// index (one entry per command).
    pub prepare: Vec<String>,
    /// Added to hyperfine's environment, which every command inherits.
    pub env: Vec<(String, String)>,
}

/// Times all commands of `plan` and returns their statistics in the same order.
pub fn run(plan: &Plan<'_>) -> anyhow::Result<Vec<Timing>> {
    let json_path = std::env::temp_dir().join(format!("guard-bench-{}.json", std::process::id()));
    let mut hyperfine = Command::new("hyperfine");
    // -N: every command is a plain exec, so no shell is spawned and no shell time is subtracted.
    hyperfine
        .arg("-N")
        .args(["--warmup", &plan.warmup.to_string()])
        .args(["--runs", &plan.runs.to_string()])
        .arg("--export-json")
        .arg(&json_path);
    hyperfine.envs(plan.env.iter().map(|(k, v)| (k, v)));
    for prepare in &plan.prepare {
        hyperfine.args(["--prepare", prepare]);
    }
    hyperfine.args(plan.argvs.iter().map(|argv| shell_line(argv)));
    let result = cmd::run(&mut hyperfine).and_then(|()| {
        std::fs::read_to_string(&json_path)
            .with_context(|| format!("cannot read {}", json_path.display()))
    });
    // Removed whatever happened; a failed run's partial file is of no use.
    let _ = std::fs::remove_file(&json_path);
    let timings = parse(&result?)?;
    if timings.len() != plan.argvs.len() {
        bail!(
            "hyperfine reported {} results for {} commands",
            timings.len(),
            plan.argvs.len()
        );
    }
    Ok(timings)
}

/// Reads median, min, max, mean and stddev of every result in hyperfine's `--export-json`
/// output, and checks that every timed run exited 0.
pub fn parse(json: &str) -> anyhow::Result<Vec<Timing>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_parsing() {
        let json = r#"{"results":[
            {"command":"/bin/true","mean":0.001,"stddev":0.0002,"median":0.0009,
             "min":0.0005,"max":0.003,"exit_codes":[0,0]},
            {"command":"x","mean":0.01,"stddev":0.002,"median":0.009,
             "min":0.005,"max":0.03,"exit_codes":[0]}]}"#;
        let timings = parse(json).unwrap();
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
    fn json_rejects_failures_and_gaps() {
        let failed = r#"{"results":[{"command":"x","mean":1,"stddev":0,"median":1,
            "min":1,"max":1,"exit_codes":[0,1]}]}"#;
        assert!(parse(failed).is_err());
        let missing = r#"{"results":[{"command":"x","mean":1}]}"#;
        assert!(parse(missing).is_err());
        assert!(parse("{}").is_err());
    }

    #[test]
    fn statistics_of_samples() {
        let t = Timing::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((t.median, t.min, t.max, t.mean), (2.5, 1.0, 10.0, 4.0));
        assert_eq!(Timing::of(&[5.0, 1.0, 3.0]).unwrap().median, 3.0);
        assert!(Timing::of(&[]).is_none());
    }
}
