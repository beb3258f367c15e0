//! `cargo xtask test`: what CI runs. Setup first, then formatting, lints, the test suite (unit
//! tests and the root-only end-to-end tests in `tests/e2e/`) and the same suite again in a VM
//! with another kernel (`cargo xtask vm-test`), each step reported.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::totals::{TestTotals, skipped_tests};
use crate::vm::DebianKernel;
use crate::{cmd, leftovers, setup, vm};

/// The kernels the VM step boots, each running the whole suite: Debian 12's security kernel
/// (BPF LSM, Landlock ABI 6), its own stock kernel (Landlock ABI 2, also Amazon Linux 2023's
/// line) and Debian 11's (no Landlock: guard must refuse, and says so). The host's own kernel
/// runs the suite natively in the `test` step.
const VM_KERNELS: [DebianKernel; 3] =
    [DebianKernel::V6_12, DebianKernel::V6_1, DebianKernel::V5_10];

/// Options of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Options {
    /// Leave out the VM steps (`cargo xtask vm-test`), e.g. for a quick local run; CI runs them.
    #[arg(long)]
    no_vm: bool,
    /// Extra arguments for `cargo test`, after `--` (e.g. `-- e2e` or `-- -p guard -- --nocapture`).
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

/// One step's name and how it went.
struct Outcome {
    name: String,
    passed: bool,
    took: Duration,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    setup::run()?;

    let mut test = Command::new("cargo");
    // --no-fail-fast: a failing unit test must not hide the end-to-end results.
    test.args(["test", "--locked", "--no-fail-fast"])
        .args(&options.cargo_test_args);
    // --show-output: the output of passing tests too, where a skipped test says why; that is
    // how skips are counted (libtest counts them as passed).
    if !options.cargo_test_args.iter().any(|a| a == "--") {
        test.arg("--");
    }
    test.arg("--show-output");
    // What another guard on this host already has, so the clean step judges only the suite.
    let before = leftovers::Snapshot::take();
    let mut steps: Vec<(String, Step)> = vec![
        (
            "fmt".into(),
            Step::Plain(cargo(&["fmt", "--all", "--", "--check"])),
        ),
        (
            "clippy".into(),
            Step::Plain(cargo(&[
                "clippy",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ])),
        ),
        // The probes are linted too, built for their own target with the toolchain that builds
        // them (Debian's rustc 1.96, whose `core` is built from source: build-std).
        ("clippy-ebpf".into(), Step::Plain(ebpf_clippy())),
        ("test".into(), Step::Counted(test)),
    ];
    if options.no_vm {
        eprintln!("xtask: --no-vm: the VM suites (cargo xtask vm-test) do not run");
    } else {
        for kernel in VM_KERNELS {
            steps.push((format!("vm {}", kernel.name()), Step::Vm(kernel)));
        }
    }

    // Every step runs even after a failure, so one run shows all problems; the test steps run
    // last so their own result lines stay at the bottom of the output, right above the summary.
    let mut outcomes = Vec::new();
    // The counts of each kernel the suite ran on, in the order they ran.
    let mut per_kernel: Vec<(String, TestTotals)> = Vec::new();
    for (name, step) in steps {
        eprintln!("\n==> {name}");
        let start = Instant::now();
        let mut totals = TestTotals::default();
        let (result, kernel) = match step {
            Step::Plain(mut command) => (cmd::run(&mut command), None),
            Step::Counted(mut command) => {
                // The suite runs beside another guard's sandbox, as it must on a shared host.
                let _neighbour = leftovers::Neighbour::start();
                let result = run_counting(&mut command, &mut totals);
                (result, Some(format!("{} (host)", host_kernel())))
            }
            Step::Vm(kernel) => (run_vm(kernel, &mut totals), Some(kernel.name().to_string())),
        };
        if let Some(kernel) = kernel {
            per_kernel.push((kernel, totals));
        }
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
    let result = leftovers::check(&before);
    if let Err(e) = &result {
        eprintln!("xtask: clean failed: {e:#}");
    }
    outcomes.push(Outcome {
        name: "clean".into(),
        passed: result.is_ok(),
        took: start.elapsed(),
    });

    eprintln!("\nxtask test summary:");
    for o in &outcomes {
        let verdict = if o.passed { "ok    " } else { "FAILED" };
        eprintln!("  {verdict} {:<16} {:.1}s", o.name, o.took.as_secs_f64());
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.name.as_str())
        .collect();
    // Per kernel, so a kernel where the suite mostly skips stands out; the reasons of each skip
    // are listed above, under its step.
    let mut totals = TestTotals::default();
    for (kernel, counts) in &per_kernel {
        println!(
            "tests on {kernel}: {} passed, {} failed, {} skipped",
            counts.passed, counts.failed, counts.skipped
        );
        totals.add(counts);
    }
    // One plain total for every test binary: cargo's own last line is often a doc-test block
    // with nothing in it, which says nothing about the run.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.skipped
    );
    if !failed.is_empty() {
        bail!("failed steps: {}", failed.join(", "));
    }
    eprintln!("xtask test: all steps passed");
    Ok(())
}

/// One step of the run.
enum Step {
    /// A command that passes or fails.
    Plain(Command),
    /// `cargo test`, whose result lines are counted.
    Counted(Command),
    /// The suite in the VM on this kernel, counted from the guest's console.
    Vm(DebianKernel),
}

/// The host kernel's release, as `uname -r` prints it.
fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|_| "this kernel".into())
}

/// `cargo xtask vm-test --kernel KERNEL`; its counts are added whether it passed or not.
fn run_vm(kernel: DebianKernel, totals: &mut TestTotals) -> anyhow::Result<()> {
    let here = std::env::current_dir()?;
    let options = vm::Options {
        kernel: vm::KernelSpec::Debian(kernel),
        ..vm::Options::default()
    };
    match vm::run(&options, &here) {
        Ok(outcome) => {
            totals.add(&outcome.totals);
            Ok(())
        }
        Err(e) => {
            if let Some(failed) = e.downcast_ref::<vm::VmFailed>() {
                totals.add(&failed.totals);
            }
            Err(e)
        }
    }
}

/// Runs `cargo test` with its stdout passed through line by line and counted; tests that said
/// `skipping: <why>` are listed with their reason and counted as skipped.
fn run_counting(command: &mut Command, totals: &mut TestTotals) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let line = cmd::display(command);
    eprintln!("+ {line}");
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let mut lines = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for text in std::io::BufReader::new(stdout).lines() {
            let text = text.context("reading cargo test output")?;
            println!("{text}");
            totals.add_line(&text);
            lines.push(text);
        }
    }
    let skipped = skipped_tests(lines.iter().map(String::as_str));
    for (name, reason) in &skipped {
        eprintln!("test: skipped {name}: {reason}");
    }
    totals.passed = totals.passed.saturating_sub(skipped.len() as u64);
    totals.skipped += skipped.len() as u64;
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed: {status}");
    }
    Ok(())
}

/// `cargo clippy` of the eBPF crate for bpfel-unknown-none, warnings denied.
fn ebpf_clippy() -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", "deb-1.96", "cargo", "clippy"])
        .args(["--manifest-path", "ebpf-probes/guard-ebpf/Cargo.toml"])
        .args([
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--release",
        ])
        .args(["--", "-D", "warnings"])
        // -Z build-std on a stable compiler, as supervisor/build.rs does for the real build.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", "target/ebpf-clippy");
    command
}

fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new("cargo");
    command.args(args);
    command
}
