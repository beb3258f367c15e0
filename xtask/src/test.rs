//! `cargo xtask test`: what CI runs. Setup first, then formatting, lints and the test suite
//! (unit tests and the root-only end-to-end tests in `tests/e2e/`), each step reported.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::{cmd, setup};

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
    for (name, mut command) in steps {
        eprintln!("\n==> {name}");
        let start = Instant::now();
        let result = cmd::run(&mut command);
        if let Err(e) = &result {
            eprintln!("xtask: {name} failed: {e:#}");
        }
        outcomes.push(Outcome {
            name,
            passed: result.is_ok(),
            took: start.elapsed(),
        });
    }

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
    if !failed.is_empty() {
        bail!("failed steps: {}", failed.join(", "));
    }
    eprintln!("xtask test: all steps passed");
    Ok(())
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new("cargo");
    command.args(args);
    command
}
