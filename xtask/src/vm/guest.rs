//! What one run puts into the guest: the files beside the cached userland, and the plan its
//! init carries out — the test suite, or one command under one profile.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use guard_vm_init::plan::{PLAN_PATH, Plan, Run};

use super::binaries::Binaries;
use super::initramfs::{Content, RunFiles};
use super::userland;

/// Tests the VM leaves out, each with the reason printed and counted as a skip: what they
/// test does not depend on the kernel, and emulation makes them cost minutes.
pub const NOT_IN_VM: &[(&str, &str)] = &[(
    "enforce::ten_thousand_execs_and_connects_are_all_recorded_or_reported_lost",
    "20,000 execs and connects take about ten minutes under software emulation; guard's \
     ring-buffer accounting is the same on every kernel and the host suite tests it",
)];

/// Where the guest finds the host's `guard doctor` report, to show that the two differ.
const HOST_DOCTOR_PATH: &str = "/vm/host-doctor.txt";

/// What every run has: the init, guard, the host's small `/etc` files, and the environment
/// (`GUARD_VM=1` tells the tests they run in the VM).
pub fn base(binaries: &Binaries) -> anyhow::Result<(RunFiles, Plan)> {
    let mut files = RunFiles::default();
    files.files.push((
        PathBuf::from("/init"),
        0o755,
        Content::Host(binaries.init.clone()),
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
            Content::Bytes(make(&text).into_bytes()),
        ));
    }
    // A resolv.conf of the guest's own (the host's name servers mean nothing in a VM without
    // a network): the DNS tests bind-mount theirs over it, which needs a file to mount on.
    files.files.push((
        PathBuf::from("/etc/resolv.conf"),
        0o644,
        Content::Bytes(b"# the test VM has no network and no name server\n".to_vec()),
    ));
    let plan = Plan {
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
    Ok((files, plan))
}

/// The test suite: every test binary with `filter`, from the guard crate's directory (as
/// `cargo test` runs them), with the checkout's fixtures and shipped profiles.
pub fn suite(
    files: &mut RunFiles,
    plan: &mut Plan,
    root: &Path,
    build_dir: &Path,
    binaries: &Binaries,
    filter: &[String],
) -> anyhow::Result<()> {
    let supervisor = root.join("supervisor");
    files.dirs.push(supervisor.clone());
    // CARGO_TARGET_TMPDIR of the static build, which the tests use for files outside /tmp.
    files.dirs.push(build_dir.join("tmp"));
    files.host_tree(&root.join("tests/fixtures"))?;
    files.host_tree(&root.join("profiles"))?;
    plan.cwd = Some(path_str(&supervisor)?);
    for (label, path) in &binaries.tests {
        files.host_file(path)?;
        // --show-output: a passing test's output too, where a skipped one says why.
        let mut argv = vec![path_str(path)?, "--show-output".to_string()];
        for (name, _) in NOT_IN_VM {
            argv.extend(["--skip".to_string(), (*name).to_string()]);
        }
        argv.extend(filter.iter().cloned());
        plan.runs.push(Run {
            label: label.clone(),
            argv,
        });
    }
    files.files.push((
        PathBuf::from(HOST_DOCTOR_PATH),
        0o644,
        Content::Bytes(host_doctor(&binaries.guard)?),
    ));
    Ok(())
}

/// `guard doctor`, then `guard exec --profile <profile> -- <command>` in `workdir` (where the
/// user ran xtask), with the command's program copied in from the host's PATH.
pub fn one_command(
    files: &mut RunFiles,
    plan: &mut Plan,
    guard: &Path,
    profile: &Path,
    command: &[String],
    workdir: &Path,
) -> anyhow::Result<()> {
    let profile = workdir.join(profile);
    let profile = profile
        .canonicalize()
        .with_context(|| format!("profile {}", profile.display()))?;
    let Some(program) = command.first() else {
        bail!("--profile needs a command after `--`");
    };
    files.host_file(&profile)?;
    if let Some(resolved) = find_program(program) {
        files.host_paths.add(&resolved)?;
    }
    files.dirs.push(workdir.to_path_buf());
    plan.cwd = Some(path_str(workdir)?);
    let guard = path_str(guard)?;
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
    argv.extend(command.iter().cloned());
    plan.runs.push(Run {
        label: PROFILE_RUN.into(),
        argv,
    });
    Ok(())
}

/// The label of the `guard exec` run of [`one_command`], whose status xtask exits with.
pub const PROFILE_RUN: &str = "profile";

/// Adds the plan itself, last, once it is complete.
pub fn finish(files: &mut RunFiles, plan: &Plan) -> anyhow::Result<()> {
    files.files.push((
        PathBuf::from(PLAN_PATH),
        0o644,
        Content::Bytes(plan.render()?.into_bytes()),
    ));
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_on_the_host_path_or_as_given() {
        assert!(find_program("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(find_program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_program("no-such-program-anywhere"), None);
        assert_eq!(find_program("/no/such/file"), None);
    }

    #[test]
    fn one_command_runs_doctor_then_guard_exec_with_the_profile() {
        let dir = std::env::temp_dir().join(format!("xtask-guest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.toml"), "name = \"p\"\n").unwrap();
        let (mut files, mut plan) = (RunFiles::default(), Plan::default());
        let command = ["sh".to_string(), "-c".into(), "exit 7".into()];
        one_command(
            &mut files,
            &mut plan,
            Path::new("/g/guard"),
            Path::new("p.toml"),
            &command,
            &dir,
        )
        .unwrap();
        let profile = dir.join("p.toml").canonicalize().unwrap();
        assert_eq!(plan.runs[0].argv, ["/g/guard", "doctor"]);
        assert_eq!(plan.runs[1].label, PROFILE_RUN);
        assert_eq!(
            plan.runs[1].argv,
            [
                "/g/guard",
                "exec",
                "--profile",
                profile.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                "exit 7"
            ]
        );
        assert_eq!(plan.cwd.as_deref(), dir.to_str());
        assert!(files.files.iter().any(|(p, _, _)| *p == profile));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
