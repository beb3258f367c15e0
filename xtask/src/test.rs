//! `cargo xtask test`: what CI runs. Setup first, then formatting, lints and the test suite
//! (unit tests and the root-only end-to-end tests in `tests/e2e/`), each step reported.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{cmd, leftovers, setup};

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Options {
    /// Extra arguments for `cargo test`, after `--` (e.g. `-- e2e` or `-- -p guard -- --nocapture`).
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

/// One step's name and how it went.
struct Outcome {
    name: &'static str,
    passed: bool,
    took: Duration,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    setup::run()?;

    let mut test = Command::new("cargo");
    // --no-fail-fast: a failing unit test must not hide the end-to-end results.
    test.args(["test", "--locked", "--no-fail-fast"])
        .args(&options.cargo_test_args);
    let steps: Vec<(&'static str, Command)> = vec![
        ("fmt", cargo(&["fmt", "--all", "--", "--check"])),
        (
            "clippy",
            cargo(&[
                "clippy",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]),
        ),
        ("test", test),
    ];

    // Every step runs even after a failure, so one run shows all problems; `cargo test` runs last
    // so its own result lines stay at the bottom of the output, right above the summary.
    let mut outcomes = Vec::new();
    let mut totals = TestTotals::default();
    for (name, mut command) in steps {
        eprintln!("\n==> {name}");
        let start = Instant::now();
        let result = if name == "test" {
            run_counting(&mut command, &mut totals)
        } else {
            cmd::run(&mut command)
        };
        if let Err(e) = &result {
            eprintln!("xtask: {name} failed: {e:#}");
        }
        outcomes.push(Outcome {
            name,
            passed: result.is_ok(),
            took: start.elapsed(),
        });
    }

    // Last: the suite must leave the host as it found it (pins, programs, cgroups).
    eprintln!("\n==> clean");
    let start = Instant::now();
    let result = leftovers::check();
    if let Err(e) = &result {
        eprintln!("xtask: clean failed: {e:#}");
    }
    outcomes.push(Outcome {
        name: "clean",
        passed: result.is_ok(),
        took: start.elapsed(),
    });

    eprintln!("\nxtask test summary:");
    for o in &outcomes {
        let verdict = if o.passed { "ok    " } else { "FAILED" };
        eprintln!("  {verdict} {:<7} {:.1}s", o.name, o.took.as_secs_f64());
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.name)
        .collect();
    // One plain total for every test binary: cargo's own last line is often a doc-test block
    // with nothing in it, which says nothing about the run.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    if !failed.is_empty() {
        bail!("failed steps: {}", failed.join(", "));
    }
    eprintln!("xtask test: all steps passed");
    Ok(())
}

/// Sums of the `test result:` lines of one `cargo test` run.
#[derive(Debug, Default, PartialEq, Eq)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    /// Adds one `test result: ok. 3 passed; 1 failed; 2 ignored; ...` line; other lines are ignored.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Runs `cargo test` with its stdout passed through line by line and counted.
fn run_counting(command: &mut Command, totals: &mut TestTotals) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let line = cmd::display(command);
    eprintln!("+ {line}");
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    if let Some(stdout) = child.stdout.take() {
        for text in std::io::BufReader::new(stdout).lines() {
            let text = text.context("reading cargo test output")?;
            println!("{text}");
            totals.add_line(&text);
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed: {status}");
    }
    Ok(())
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new("cargo");
    command.args(args);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_cargo_result_lines() {
        let mut totals = TestTotals::default();
        for line in [
            "test result: ok. 129 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.27s",
            "running 3 tests",
            "test result: FAILED. 30 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 4.27s",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
        ] {
            totals.add_line(line);
        }
        assert_eq!(
            totals,
            TestTotals {
                passed: 159,
                failed: 2,
                ignored: 2
            }
        );
    }
}
