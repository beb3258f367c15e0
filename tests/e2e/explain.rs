//! `guard explain`: the effective policy of a shipped profile, in words, with the enforcing
//! layer of each part on this host.

use crate::support::{repo_root, run_guard};

#[test]
fn explains_the_build_profile_after_extends() {
    let out = run_guard(&["explain", "build"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for part in [
        "layers merged: <builtin>/base.toml -> ",
        "files",
        "/etc/ld.so.cache", // from base
        "network",
        "exec allowlist",
        "syscalls",
        "ptrace", // base deny set
        "limits",
        "memory: 4294967296 bytes",
        "on_violation",
        "audit mode",
    ] {
        assert!(stdout.contains(part), "missing `{part}` in:\n{stdout}");
    }
    // ${CWD} is expanded to guard's working directory.
    let cwd = std::env::current_dir().expect("cwd");
    assert!(stdout.contains(&cwd.display().to_string()), "{stdout}");
    let files = stdout
        .split("\nfiles\n")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap_or_else(|| panic!("no files section in:\n{stdout}"));
    // The list is sorted, and where the checkout lives decides where ${CWD} lands in it.
    let write_line = files
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("write:"))
        .unwrap_or_else(|| panic!("no write line in:\n{files}"));
    let mut writable: Vec<&str> = write_line.split(',').map(str::trim).collect();
    writable.sort_unstable();
    let cwd = cwd.display().to_string();
    let mut expected = vec!["/dev/null", "/tmp", cwd.as_str()];
    expected.sort_unstable();
    let target = format!("{cwd}/target");
    writable.retain(|p| *p != target);
    assert_eq!(writable, expected, "{files}");
    assert!(!files.contains("${"), "{files}");
}

#[test]
fn explain_of_a_broken_profile_reports_its_errors() {
    let path = repo_root().join("tests/fixtures/broken/bad-size.toml");
    let p = path.display().to_string();
    let out = run_guard(&["explain", &p]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{p}:4:10: limits.memory: ")),
        "{stderr}"
    );
}

#[test]
fn every_shipped_profile_runs_with_full_protection_on_this_kernel() {
    // On every kernel the suite runs on (the host's, the VMs' 6.12, 6.1 and 5.10): with Landlock
    // each shipped profile runs and every part has its layers; without it, all are refused.
    let abi = crate::support::landlock_abi();
    for name in [
        "minimal",
        "shell-readonly",
        "workspace-shell",
        "python",
        "build",
        "git",
        "node",
        "curl",
    ] {
        let out = run_guard(&["explain", name]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{name}: {stdout}");
        if abi == 0 {
            assert!(
                stdout.contains("verdict: guard exec REFUSES this profile here (exit 125)")
                    && stdout.contains("Landlock is not available"),
                "{name}: {stdout}"
            );
            continue;
        }
        assert!(
            stdout.contains("verdict: guard exec runs this profile here"),
            "{name} on Landlock ABI {abi}: {stdout}"
        );
        for gap in [
            "MISSING here",
            "enforced only by nothing",
            "accepted by allow_weaker",
        ] {
            assert!(
                !stdout.contains(gap),
                "{name} on Landlock ABI {abi} has `{gap}`: {stdout}"
            );
        }
        assert!(
            stdout.contains(
                "signals and abstract unix sockets to outside the sandbox: enforced here by"
            ),
            "{name}: {stdout}"
        );
    }
}
