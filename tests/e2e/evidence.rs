//! The audit log as evidence: opened safely, never glued onto a torn line, written before the
//! command runs, one chain per file across sandboxes, sealed with the host key, and
//! `guard audit verify` failing on every kind of tampering, with the public key alone.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::support::{TempDir, guard, require_root, write_profile};

fn profile(dir: &TempDir) -> String {
    write_profile(
        dir,
        "evidence",
        r#"
name = "evidence"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc"]
execute = ["/usr/bin/bash", "/usr/bin/true", "/usr/bin/touch"]
"#,
    )
}

fn run_logged(profile: &str, log: &Path, args: &[&str]) -> crate::support::Run {
    let log = log.to_string_lossy();
    let mut all = vec!["exec", "--profile", profile, "--audit-log", &log, "--"];
    all.extend_from_slice(args);
    guard(&all)
}

fn verify(log: &Path, key: Option<&Path>) -> crate::support::Run {
    let log = log.to_string_lossy().into_owned();
    match key {
        Some(key) => guard(&["audit", "verify", &log, "--key", &key.to_string_lossy()]),
        None => guard(&["audit", "verify", &log]),
    }
}

/// Three runs in one log (the middle one denied something), as lines.
fn three_runs(dir: &TempDir) -> (PathBuf, Vec<String>) {
    let p = profile(dir);
    let log = dir.path().join("logs").join("audit.jsonl");
    std::fs::create_dir_all(log.parent().unwrap_or(dir.path())).expect("mkdir");
    for script in ["true", "/usr/bin/cat /etc/shadow; true", "true"] {
        let run = run_logged(&p, &log, &["/usr/bin/bash", "-c", script]);
        assert_eq!(run.code(), 0, "{run}");
    }
    let text = std::fs::read_to_string(&log).expect("log");
    (log, text.lines().map(|l| format!("{l}\n")).collect())
}

/// The line indexes where each sandbox's records start.
fn run_starts(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"event\":\"start\""))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn every_tampering_fails_verification_and_a_copy_verifies_elsewhere_with_the_public_key() {
    require_root!();
    let dir = TempDir::new("evidence-verify");
    let (log, lines) = three_runs(&dir);
    let ok = verify(&log, None);
    assert_eq!(ok.code(), 0, "{ok}");
    assert!(ok.stdout.contains("intact"), "{ok}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("\"event\":\"seal\""))
            .count(),
        3,
        "every run ends with a seal"
    );

    // Another machine: a copy of the log and the public key in a directory of their own.
    let elsewhere = TempDir::new("evidence-elsewhere");
    let copy = elsewhere.path().join("audit.jsonl");
    let public = elsewhere.path().join("host.pub");
    std::fs::copy(&log, &copy).expect("copy");
    std::fs::copy("/var/lib/guard/audit-key.pub", &public).expect("public key");
    let run = verify(&copy, Some(&public));
    assert_eq!(run.code(), 0, "{run}");

    let starts = run_starts(&lines);
    let exit_at = lines
        .iter()
        .position(|l| l.contains("\"event\":\"exit\""))
        .expect("an exit record");
    let tamper = |name: &str, changed: Vec<String>, want: &str| {
        let path = elsewhere.path().join(format!("{name}.jsonl"));
        std::fs::write(&path, changed.concat()).expect("write");
        let run = verify(&path, Some(&public));
        assert_eq!(run.code(), 1, "{name}: {run}");
        assert!(run.stderr.contains(want), "{name}: wanted `{want}`: {run}");
    };
    // A changed byte.
    let mut changed = lines.clone();
    changed[1] = changed[1].replacen("\"pid\":", "\"pid\":1", 1);
    tamper("byte", changed, "line 3: prev does not match line 2");
    // A deleted, an inserted and a reordered line.
    let mut deleted = lines.clone();
    deleted.remove(2);
    tamper("deleted", deleted, "line 3: prev does not match line 2");
    let mut inserted = lines.clone();
    inserted.insert(2, lines[1].clone());
    tamper("inserted", inserted, "line 3: prev does not match line 2");
    let mut reordered = lines.clone();
    reordered.swap(1, 2);
    tamper("reordered", reordered, "line 2: prev does not match line 1");
    // The last line (the final seal) deleted.
    let mut cut = lines.clone();
    cut.pop();
    tamper("last", cut, "does not end with a seal");
    // A whole sandbox (the middle run, with its denial) deleted.
    let mut without = lines.clone();
    without.drain(starts[1]..starts[2]);
    tamper(
        "sandbox",
        without,
        &format!("line {}: prev does not match", starts[1] + 1),
    );
    // A forged exit status, re-chained to the end so every prev matches: only the seal's
    // signature, which needs the private key, gives it away.
    let mut forged = lines.clone();
    forged[exit_at] = forged[exit_at].replacen("\"status\":0", "\"status\":1", 1);
    assert_ne!(
        forged[exit_at], lines[exit_at],
        "the exit record has status 0"
    );
    rechain(&mut forged);
    tamper("forged", forged, "the seal's signature does not verify");
}

/// Recomputes every `prev` so the chain links again, as a forger without the key would.
fn rechain(lines: &mut [String]) {
    use sha2::{Digest as _, Sha256};
    let mut prev = "0".repeat(64);
    for line in lines.iter_mut() {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("json");
        let old = v["prev"].as_str().unwrap_or_default().to_owned();
        *line = line.replacen(
            &format!("\"prev\":\"{old}\""),
            &format!("\"prev\":\"{prev}\""),
            1,
        );
        v["prev"] = prev.clone().into();
        let text = line.trim_end_matches('\n');
        prev = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    }
}

#[test]
fn the_log_is_a_regular_file_opened_without_following_symlinks() {
    require_root!();
    let dir = TempDir::new("evidence-open");
    let p = profile(&dir);
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "untouched\n").expect("victim");
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    let fifo = dir.path().join("fifo.jsonl");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    // A second name for the victim, as a tool could make in its write paths.
    let hard = dir.path().join("hard.jsonl");
    std::fs::hard_link(&victim, &hard).expect("hard link");
    for (log, want) in [
        (link.clone(), "is a symlink or lies beneath one"),
        (hard.clone(), "has 2 names (hard links)"),
        (fifo.clone(), "not a regular file (a FIFO)"),
        // Refused before it is opened: base grants writes on /dev/null, and a log the tool can
        // write is refused too.
        (PathBuf::from("/dev/null"), "/dev/null"),
    ] {
        let run = run_logged(&p, &log, &["/usr/bin/true"]);
        assert_eq!(run.code(), 125, "{}: {run}", log.display());
        assert!(run.stderr.contains(want), "{}: {run}", log.display());
    }
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "untouched\n"
    );
    // A new log is created 0600.
    let fresh = dir.path().join("fresh.jsonl");
    let run = run_logged(&p, &fresh, &["/usr/bin/true"]);
    assert_eq!(run.code(), 0, "{run}");
    let mode = std::fs::metadata(&fresh).expect("log").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_torn_last_line_is_cut_before_appending() {
    require_root!();
    let dir = TempDir::new("evidence-torn");
    let p = profile(&dir);
    let log = dir.path().join("logs").join("audit.jsonl");
    std::fs::create_dir_all(log.parent().unwrap_or(dir.path())).expect("mkdir");
    let run = run_logged(&p, &log, &["/usr/bin/true"]);
    assert_eq!(run.code(), 0, "{run}");
    // A write cut short by a full disk: half a line, no newline.
    let mut text = std::fs::read_to_string(&log).expect("log");
    text.push_str("{\"ts\":\"2026-12-05T00:00:00Z\",\"seq\":0,\"sand");
    std::fs::write(&log, &text).expect("torn");
    let run = run_logged(&p, &log, &["/usr/bin/true"]);
    assert_eq!(run.code(), 0, "{run}");
    let after = std::fs::read_to_string(&log).expect("log");
    assert!(
        !after.contains("\"sand{"),
        "a record was glued onto the torn line"
    );
    assert!(after.contains("\"log_repaired_bytes\":"), "{after}");
    let ok = verify(&log, None);
    assert_eq!(ok.code(), 0, "{ok}");
}

#[test]
fn a_log_on_a_full_disk_means_the_command_never_runs() {
    require_root!();
    let dir = TempDir::new("evidence-full");
    let p = profile(&dir);
    let mnt = dir.mkdir("small");
    // mount(2) directly: the VM's userland has no mount(8).
    nix::mount::mount(
        Some("guard-e2e-full"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64k"),
    )
    .expect("mounting a small tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount(&self.0);
        }
    }
    let _unmount = Unmount(mnt.clone());
    // Fill the disk to the last byte, leaving the log (empty) in place.
    let log = mnt.join("audit.jsonl");
    std::fs::write(&log, "").expect("log");
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![b'x'; 64 * 1024]);
    let marker = dir.path().join("ran");
    let run = run_logged(&p, &log, &["/usr/bin/touch", &marker.to_string_lossy()]);
    assert_eq!(run.code(), 125, "{run}");
    assert!(!marker.exists(), "the command ran without its start record");
}

#[test]
fn the_sandbox_cannot_read_the_signing_key() {
    require_root!();
    let dir = TempDir::new("evidence-key");
    // Make sure the key exists (a run with a log creates it).
    let (_log, _) = three_runs(&dir);
    let key = std::fs::read_to_string("/var/lib/guard/audit-key").expect("the host key");
    assert_eq!(key.trim().len(), 64);
    // A profile that grants everything under /var, in enforce and in audit mode (no Landlock).
    let p = write_profile(
        &dir,
        "wide",
        r#"
name = "wide"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc", "/var"]
execute = ["/usr/bin/bash"]
"#,
    );
    for mode in ["enforce", "audit"] {
        let run = guard(&[
            "exec",
            "--profile",
            &p,
            "--mode",
            mode,
            "--",
            "/usr/bin/bash",
            "-c",
            "read -r k < /var/lib/guard/audit-key && echo \"$k\"; true",
        ]);
        assert_eq!(run.code(), 0, "{mode}: {run}");
        assert!(!run.stdout.contains(key.trim()), "{mode}: the key leaked");
    }
}

#[test]
fn a_million_refused_sends_give_a_bounded_log_with_the_exact_count() {
    require_root!();
    let dir = TempDir::new("evidence-flood");
    let p = write_profile(
        &dir,
        "flood",
        r#"
name = "flood"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc"]
execute = ["/usr/bin/python3"]
[network]
connect = ["127.0.0.1:9"]
"#,
    );
    let logs = TempDir::new("evidence-flood-log");
    let log = logs.path().join("audit.jsonl");
    // 127.0.0.2 is not in the profile: every send is refused by the eBPF hook. The tool counts
    // its own attempts.
    let script = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nn = 0\nfor _ in range(1_000_000):\n    n += 1\n    try:\n        s.sendto(b'x', ('127.0.0.2', 9))\n    except OSError:\n        pass\nprint(n)\n";
    let run = run_logged(&p, &log, &["/usr/bin/python3", "-c", script]);
    assert_eq!(run.code(), 0, "{run}");
    let attempts: u64 = run.stdout.trim().parse().expect("the tool's count");
    assert_eq!(attempts, 1_000_000);
    let size = std::fs::metadata(&log).expect("log").len();
    eprintln!("log: {size} bytes for {attempts} refused sends");
    assert!(size < 1024 * 1024, "the log is not bounded: {size} bytes");
    let text = std::fs::read_to_string(&log).expect("log");
    let mut counted = 0u64;
    let mut lost = 0u64;
    for line in text.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("json");
        if r["event"] == "violation" && r["detail"]["dst"] == "127.0.0.2:9" {
            counted += r["detail"]["repeated"].as_u64().unwrap_or(1);
        }
        if r["rule"] == "audit.lost_events" {
            lost += r["detail"]["lost"].as_u64().unwrap_or(0);
        }
    }
    assert_eq!(
        counted + lost,
        attempts,
        "records ({counted}) plus reported losses ({lost}) must equal the attempts"
    );
    let ok = verify(&log, None);
    assert_eq!(ok.code(), 0, "{ok}");
}

#[test]
fn a_write_path_given_as_a_symlink_is_judged_by_its_target() {
    require_root!();
    let dir = TempDir::new("evidence-symlinked-write");
    let work = dir.mkdir("work");
    let link = dir.path().join("wlink");
    std::os::unix::fs::symlink(&work, &link).expect("symlink");
    let cgroups = dir.path().join("cglink");
    std::os::unix::fs::symlink("/sys/fs/cgroup", &cgroups).expect("symlink");
    let log = work.join("audit.jsonl");
    for (write, what) in [
        (link.clone(), "the audit log of this run"),
        (cgroups.clone(), "/sys"),
    ] {
        let p = write_profile(
            &dir,
            "symlinked",
            &format!(
                "name = \"symlinked\"\nextends = [\"base\"]\n[filesystem]\nread = [\"/usr\"]\nwrite = [\"{}\"]\nexecute = [\"/usr/bin/true\"]\n",
                write.display()
            ),
        );
        let run = run_logged(&p, &log, &["/usr/bin/true"]);
        assert_eq!(run.code(), 125, "{}: {run}", write.display());
        assert!(run.stderr.contains(what), "{}: {run}", write.display());
    }
    // Nothing ran, so the log the sandbox would have reached was never written.
    assert!(!log.exists());
}
