//! What a boot amounts to: test counts (skips counted as skips, with their reasons), the
//! slowest tests, the boot-to-result time, and the verdict.

use anyhow::{Context as _, bail};
use guard_vm_init::report::Report;

use super::guest::{NOT_IN_VM, PROFILE_RUN};
use super::qemu::{Boot, Verdict};
use crate::totals::{TestTotals, skipped_tests, test_durations};

/// How many of the slowest tests the summary names.
const SLOWEST_SHOWN: usize = 5;

/// How a VM run went.
#[derive(Debug)]
pub struct Outcome {
    /// Test counts of the suite (empty for `--profile`).
    pub totals: TestTotals,
    /// With `--profile`: the exit status of `guard exec` in the guest.
    pub command_status: Option<i32>,
}

/// The suite failed; carries the counts so `cargo xtask test` can still add them up.
#[derive(Debug)]
pub struct VmFailed {
    pub totals: TestTotals,
}

impl std::fmt::Display for VmFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.totals.passed, self.totals.failed, self.totals.skipped
        )
    }
}

impl std::error::Error for VmFailed {}

/// The outcome of a suite boot run with `filter`; an error when anything failed.
pub fn suite(boot: &Boot, filter: &[String]) -> anyhow::Result<Outcome> {
    let totals = counts(boot, filter);
    report_times(boot);
    eprintln!(
        "vm: tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.skipped
    );
    let problem = match boot.verdict() {
        Verdict::Passed => None,
        Verdict::Failed => Some("tests failed in the VM"),
        Verdict::Crashed => Some("the guest crashed (qemu exited 0: panic or reboot)"),
        Verdict::TimedOut => Some("the VM timed out"),
    };
    match problem {
        None if totals.failed == 0 => Ok(Outcome {
            totals,
            command_status: None,
        }),
        None => bail!(
            "the guest reported success but {} tests failed",
            totals.failed
        ),
        Some(problem) => {
            let mut totals = totals;
            // A crash or timeout before any test result still counts as a failure.
            if totals.failed == 0 {
                totals.failed = 1;
            }
            Err(VmFailed { totals }).context(problem)
        }
    }
}

/// The outcome of a `--profile` boot: the status of `guard exec` in the guest.
pub fn one_command(boot: &Boot) -> anyhow::Result<Outcome> {
    report_times(boot);
    let status = boot.reports.iter().find_map(|r| match r {
        Report::Status { label, status } if label == PROFILE_RUN => Some(*status),
        _ => None,
    });
    match (boot.verdict(), status) {
        (Verdict::Crashed, _) => bail!("the guest crashed (qemu exited 0)"),
        (Verdict::TimedOut, _) => bail!("the VM timed out"),
        (_, None) => bail!("the guest did not report the command's status"),
        (_, Some(status)) => Ok(Outcome {
            totals: TestTotals::default(),
            command_status: Some(status),
        }),
    }
}

/// The libtest counts of the console, with skips moved out of `passed` and the tests the VM
/// leaves out added, each skip printed with its reason.
fn counts(boot: &Boot, filter: &[String]) -> TestTotals {
    let mut totals = TestTotals::default();
    for line in &boot.console {
        totals.add_line(line);
    }
    // Tests that ran and said `skipping: <why>`: libtest counted them as passed.
    let said_skipping = skipped_tests(boot.console.iter().map(String::as_str));
    totals.passed = totals.passed.saturating_sub(said_skipping.len() as u64);
    // Tests left out by name, where the filter (if any) would have run them.
    let names: Vec<&String> = filter.iter().filter(|a| !a.starts_with('-')).collect();
    let left_out: Vec<(String, String)> = NOT_IN_VM
        .iter()
        .filter(|(name, _)| names.is_empty() || names.iter().any(|f| name.contains(f.as_str())))
        .map(|(name, reason)| ((*name).to_string(), (*reason).to_string()))
        .collect();
    for (name, reason) in said_skipping.iter().chain(&left_out) {
        eprintln!("vm: skipped {name}: {reason}");
    }
    totals.skipped += (said_skipping.len() + left_out.len()) as u64;
    totals
}

/// The guest's errors, the slowest tests (emulation multiplies every cost, and a new slow test
/// is the usual reason the VM step grows) and the boot-to-result time.
fn report_times(boot: &Boot) {
    for report in &boot.reports {
        if let Report::Error(message) = report {
            eprintln!("vm: the guest failed: {message}");
        }
    }
    let mut durations = test_durations(
        boot.arrived
            .iter()
            .copied()
            .zip(boot.console.iter().map(String::as_str)),
    );
    durations.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
    for (name, took) in durations.iter().take(SLOWEST_SHOWN) {
        eprintln!("vm: slow: {:6.1}s {name}", took.as_secs_f64());
    }
    if let Some(took) = boot.to_result {
        eprintln!(
            "vm: boot to result in {:.1}s (qemu start to the guest's last report)",
            took.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn boot(status: Option<i32>, lines: &[&str]) -> Boot {
        Boot {
            qemu_status: status,
            timed_out: false,
            reports: lines.iter().filter_map(|l| Report::parse(l)).collect(),
            console: lines.iter().map(|l| l.to_string()).collect(),
            arrived: lines.iter().map(|_| Duration::ZERO).collect(),
            to_result: None,
        }
    }

    #[test]
    fn a_passing_suite_counts_skips_and_left_out_tests() {
        let b = boot(
            Some(1),
            &[
                "running 2 tests",
                "test vm::a ... ok",
                "test exec::b ... ok",
                "successes:",
                "---- vm::a stdout ----",
                "skipping: runs only in the VM",
                "test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out",
                "guard-vm: status e2e 0",
                "guard-vm: done 0 failed",
            ],
        );
        let outcome = suite(&b, &[]).unwrap();
        assert_eq!(
            outcome.totals,
            TestTotals {
                passed: 1,
                failed: 0,
                skipped: 1 + NOT_IN_VM.len() as u64
            }
        );
        // A filter that cannot match the left-out tests does not count them.
        let outcome = suite(&b, &["vm::a".into()]).unwrap();
        assert_eq!(outcome.totals.skipped, 1);
    }

    #[test]
    fn a_crash_is_a_failure_even_without_failed_tests() {
        let err = suite(&boot(Some(0), &["running 1 test"]), &[]).unwrap_err();
        let failed = err.downcast_ref::<VmFailed>().unwrap();
        assert_eq!(failed.totals.failed, 1);
        assert!(format!("{err:#}").contains("crashed"), "{err:#}");
    }

    #[test]
    fn the_command_status_comes_from_the_profile_run() {
        let b = boot(
            Some(3),
            &[
                "guard-vm: status doctor 0",
                "guard-vm: status profile 7",
                "guard-vm: done 1 failed",
            ],
        );
        assert_eq!(one_command(&b).unwrap().command_status, Some(7));
        assert!(one_command(&boot(Some(0), &["guard-vm: status profile 0"])).is_err());
    }
}
