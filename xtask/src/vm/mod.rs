//! `cargo xtask vm-test`: guard's tests on another kernel, in a qemu VM.
//!
//! The development hosts run a 6.18 kernel where BPF LSM and fentry programs are refused and
//! cgroup controllers sit on v1 hierarchies. The VM boots a Debian cloud kernel with BPF LSM
//! enabled and pure cgroup v2, from an initramfs holding the host's own userland and statically
//! linked guard binaries, runs the same tests there (plus those that only the VM can show, which
//! check `GUARD_VM=1`), and reports through the console and qemu's exit status.
//!
//! - [`kernel`]: the guest kernel, fetched with apt and cached;
//! - [`binaries`]: guard, its tests and the guest init, built statically;
//! - [`userland`] and [`elf`]: which host files the guest gets;
//! - [`cpio`] and [`initramfs`]: the archive the kernel unpacks;
//! - [`qemu`]: booting and following the console.

mod binaries;
mod cpio;
mod elf;
mod initramfs;
mod kernel;
mod qemu;
mod userland;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use guard_vm_init::plan::{PLAN_PATH, Plan, Run};
use guard_vm_init::report::Report;

use crate::totals::{TestTotals, skipped_tests, test_durations};
pub use kernel::KernelSpec;
pub use userland::all_packages as image_packages;

/// Guest memory: the initramfs (about 150 MB) is held twice while the kernel unpacks it, and the
/// memory-limit tests need room above their 64 MiB limit.
const MEMORY_MIB: u32 = 1024;
/// Tests the VM leaves out, each with the reason printed and counted as a skip: what they
/// test does not depend on the kernel, and emulation makes them cost minutes.
const NOT_IN_VM: &[(&str, &str)] = &[(
    "enforce::ten_thousand_execs_and_connects_are_all_recorded_or_reported_lost",
    "20,000 execs and connects take about ten minutes under software emulation; guard's \
     ring-buffer accounting is the same on every kernel and the host suite tests it",
)];

/// How many of the slowest tests the summary names.
const SLOWEST_SHOWN: usize = 5;
/// Where the guest finds the host's `guard doctor` report, to show that the two differ.
const HOST_DOCTOR_PATH: &str = "/vm/host-doctor.txt";

/// Options of `cargo xtask vm-test`.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// The guest kernel: debian-6.12 (BPF LSM, Landlock ABI 6), debian-6.1 (Landlock ABI 2) or
    /// the path of a bzImage.
    #[arg(long, default_value = "debian-6.12", value_name = "KERNEL")]
    pub kernel: KernelSpec,
    /// Instead of the test suite, run one command (after `--`) under this profile in the VM.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Stop the VM after this many seconds and fail.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub timeout: u64,
    /// After `--`: a test name filter for the suite, or with `--profile` the command to run.
    #[arg(last = true, value_name = "FILTER|CMD")]
    pub rest: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kernel: KernelSpec::Debian(kernel::DebianKernel::V6_12),
            profile: None,
            timeout: 900,
            rest: Vec::new(),
        }
    }
}

/// How a VM run went.
#[derive(Debug)]
pub struct Outcome {
    /// Test counts of the suite (empty for `--profile`).
    pub totals: TestTotals,
    /// With `--profile`: the exit status of `guard exec` in the guest.
    pub command_status: Option<i32>,
}

/// Boots the VM for `options`; `invocation_dir` is where the user ran xtask (relative paths of
/// `--profile` and the guest's working directory for it). Fails when the suite failed, the
/// guest crashed or the run timed out.
pub fn run(options: &Options, invocation_dir: &Path) -> anyhow::Result<Outcome> {
    let root = std::env::current_dir()?;
    let vm_dir = root.join("target/vm");
    std::fs::create_dir_all(&vm_dir)
        .with_context(|| format!("cannot create {}", vm_dir.display()))?;

    let kernel = kernel::prepare(&options.kernel, &vm_dir.join("kernels"))?;
    let build_dir = vm_dir.join("build");
    let binaries = binaries::build(&build_dir)?;
    let userland = initramfs::userland_archive(&vm_dir)?;

    let mut files = initramfs::RunFiles::default();
    files.files.push((
        PathBuf::from("/init"),
        0o755,
        initramfs::Content::Host(binaries.init.clone()),
    ));
    files.host_file(&binaries.guard)?;
    for path in userland::RUN_PATHS {
        if std::fs::symlink_metadata(path).is_ok() {
            files.host_paths.add(Path::new(path))?;
        }
    }
    for (path, source, make) in [
        (
            "/etc/shadow",
            "/etc/passwd",
            userland::locked_shadow as fn(&str) -> String,
        ),
        ("/etc/gshadow", "/etc/group", userland::locked_gshadow),
    ] {
        let text =
            std::fs::read_to_string(source).with_context(|| format!("cannot read {source}"))?;
        files.files.push((
            PathBuf::from(path),
            0o640,
            initramfs::Content::Bytes(make(&text).into_bytes()),
        ));
    }
    let mut plan = Plan {
        env: vec![
            ("GUARD_VM".into(), "1".into()),
            ("GUARD_VM_HOST_DOCTOR".into(), HOST_DOCTOR_PATH.into()),
            ("HOME".into(), "/root".into()),
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("RUST_BACKTRACE".into(), "1".into()),
        ],
        cwd: None,
        runs: Vec::new(),
    };
    let guard = path_str(&binaries.guard)?;
    match &options.profile {
        None => {
            // The tests run from the guard crate's directory, as `cargo test` runs them, and
            // read the fixtures and shipped profiles from the checkout.
            let supervisor = root.join("supervisor");
            files.dirs.push(supervisor.clone());
            files.dirs.push(build_dir.join("tmp"));
            files.host_tree(&root.join("tests/fixtures"))?;
            files.host_tree(&root.join("profiles"))?;
            plan.cwd = Some(path_str(&supervisor)?);
            for (label, path) in &binaries.tests {
                files.host_file(path)?;
                let mut argv = vec![path_str(path)?, "--show-output".to_string()];
                for (name, _) in NOT_IN_VM {
                    argv.extend(["--skip".to_string(), (*name).to_string()]);
                }
                argv.extend(options.rest.iter().cloned());
                plan.runs.push(Run {
                    label: label.clone(),
                    argv,
                });
            }
            let host_doctor = host_doctor(&binaries.guard)?;
            files.files.push((
                PathBuf::from(HOST_DOCTOR_PATH),
                0o644,
                initramfs::Content::Bytes(host_doctor),
            ));
        }
        Some(profile) => {
            let profile = invocation_dir.join(profile);
            let profile = profile
                .canonicalize()
                .with_context(|| format!("profile {}", profile.display()))?;
            let Some(program) = options.rest.first() else {
                bail!("--profile needs a command after `--`");
            };
            files.host_file(&profile)?;
            if let Some(resolved) = find_program(program) {
                files.host_paths.add(&resolved)?;
            }
            files.dirs.push(invocation_dir.to_path_buf());
            plan.cwd = Some(path_str(invocation_dir)?);
            plan.runs.push(Run {
                label: "doctor".into(),
                argv: vec![guard.clone(), "doctor".into()],
            });
            let mut argv = vec![
                guard,
                "exec".into(),
                "--profile".into(),
                path_str(&profile)?,
                "--".into(),
            ];
            argv.extend(options.rest.iter().cloned());
            plan.runs.push(Run {
                label: "profile".into(),
                argv,
            });
        }
    }
    let plan_text = plan.render()?;
    files.files.push((
        PathBuf::from(PLAN_PATH),
        0o644,
        initramfs::Content::Bytes(plan_text.into_bytes()),
    ));
    let initrd = vm_dir.join("initramfs.cpio");
    initramfs::write(&initrd, &userland, &files)?;

    let boot = qemu::boot(
        &kernel,
        &initrd,
        MEMORY_MIB,
        Duration::from_secs(options.timeout),
    )?;
    judge(options, &boot)
}

/// Turns the boot into an outcome: counts, skips with their reasons, and the verdict.
fn judge(options: &Options, boot: &qemu::Boot) -> anyhow::Result<Outcome> {
    let mut totals = TestTotals::default();
    for line in &boot.console {
        totals.add_line(line);
    }
    // Tests that ran and said `skipping: <why>`: libtest counted them as passed.
    let said_skipping = skipped_tests(boot.console.iter().map(String::as_str));
    totals.passed = totals.passed.saturating_sub(said_skipping.len() as u64);
    // Tests left out by name, where the filter (if any) would have run them.
    let filters: Vec<&String> = options
        .rest
        .iter()
        .filter(|a| !a.starts_with('-'))
        .collect();
    let left_out: Vec<(String, String)> = NOT_IN_VM
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .map(|(name, reason)| ((*name).to_string(), (*reason).to_string()))
        .collect();
    for (name, reason) in said_skipping.iter().chain(&left_out) {
        eprintln!("vm: skipped {name}: {reason}");
    }
    totals.skipped += (said_skipping.len() + left_out.len()) as u64;
    for report in &boot.reports {
        if let Report::Error(message) = report {
            eprintln!("vm: the guest failed: {message}");
        }
    }
    // The slowest tests, since emulation multiplies every cost and a new slow test is the
    // usual reason the VM step grows.
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
    let verdict = boot.verdict();
    let command_status = boot.reports.iter().find_map(|r| match r {
        Report::Status { label, status } if label == "profile" => Some(*status),
        _ => None,
    });
    if options.profile.is_some() {
        return match (verdict, command_status) {
            (qemu::Verdict::Crashed, _) => bail!("the guest crashed (qemu exited 0)"),
            (qemu::Verdict::TimedOut, _) => bail!("the VM timed out"),
            (_, None) => bail!("the guest did not report the command's status"),
            (_, Some(status)) => Ok(Outcome {
                totals,
                command_status: Some(status),
            }),
        };
    }
    eprintln!(
        "vm: tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.skipped
    );
    let problem = match verdict {
        qemu::Verdict::Passed => None,
        qemu::Verdict::Failed => Some("tests failed in the VM"),
        qemu::Verdict::Crashed => Some("the guest crashed (qemu exited 0: panic or reboot)"),
        qemu::Verdict::TimedOut => Some("the VM timed out"),
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
            // A crash or timeout before any test result still counts as a failure.
            if totals.failed == 0 {
                totals.failed = 1;
            }
            Err(VmFailed { totals }).context(problem)
        }
    }
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

/// The host's `guard doctor` report, from the same static binary the guest runs.
fn host_doctor(guard: &Path) -> anyhow::Result<Vec<u8>> {
    let output = std::process::Command::new(guard)
        .arg("doctor")
        .output()
        .with_context(|| format!("cannot run {} doctor", guard.display()))?;
    if !output.status.success() {
        bail!(
            "guard doctor failed on the host: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// `program` as the host's PATH resolves it (what the user meant by `-- curl ...`).
fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program)).filter(|p| p.exists());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn path_str(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(String::from)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
