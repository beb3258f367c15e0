//! `guard check`: broken fixture profiles are reported as FILE:LINE:COL: key: message with exit
//! status 1, every error of a file at once; the shipped profiles pass.

use std::path::PathBuf;

use crate::support::{repo_root, run_guard};

fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/fixtures/broken")
        .join(name)
        .display()
        .to_string()
}

/// Runs `guard check` on one fixture; asserts exit 1 and returns stderr's lines.
fn check_fails(name: &str) -> (String, Vec<String>) {
    let path = fixture(name);
    let out = run_guard(&["check", &path]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "guard check {name}: {stderr}");
    (path, stderr.lines().map(str::to_owned).collect())
}

/// Asserts that `lines` are exactly the `(line:col, key)` prefixes given, in order.
fn assert_prefixes(file: &str, lines: &[String], want: &[(&str, &str)]) {
    let got: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (line, (pos, key)) in lines.iter().zip(want) {
        let prefix = format!("{file}:{pos}: {key}: ");
        assert!(
            line.starts_with(&prefix),
            "expected `{prefix}...`, got `{line}`"
        );
        assert!(line.len() > prefix.len(), "no message in `{line}`");
    }
}

#[test]
fn malformed_toml_is_one_error_at_the_syntax_error() {
    let (file, lines) = check_fails("malformed.toml");
    assert_prefixes(&file, &lines, &[("2:9", "toml")]);
}

#[test]
fn unknown_keys_are_rejected_at_the_key() {
    let (file, lines) = check_fails("unknown-key.toml");
    assert_prefixes(&file, &lines, &[("5:1", "network.conect")]);
    assert!(lines[0].contains("unknown field `conect`"), "{lines:?}");
}

#[test]
fn a_bad_cidr_is_reported_at_its_list_item() {
    let (file, lines) = check_fails("bad-cidr.toml");
    assert_prefixes(&file, &lines, &[("4:34", "network.connect[1]")]);
    assert!(lines[0].contains("10.0.0.0/33"), "{lines:?}");
}

#[test]
fn port_70000_is_out_of_range() {
    let (file, lines) = check_fails("port-70000.toml");
    assert_prefixes(&file, &lines, &[("4:9", "network.bind[0]")]);
    assert!(lines[0].contains("70000"), "{lines:?}");
}

#[test]
fn twelve_parsecs_is_not_a_size() {
    let (file, lines) = check_fails("bad-size.toml");
    assert_prefixes(&file, &lines, &[("4:10", "limits.memory")]);
}

#[test]
fn every_error_of_a_file_is_reported_in_file_order() {
    let (file, lines) = check_fails("several.toml");
    assert_prefixes(
        &file,
        &lines,
        &[
            ("5:9", "filesystem.read[0]"),
            ("5:33", "filesystem.read[2]"),
            ("8:36", "network.connect[1]"),
            ("8:53", "network.connect[2]"),
            ("11:19", "syscalls.deny[1]"),
            ("12:10", "syscalls.action"),
            ("15:10", "limits.memory"),
            ("16:7", "limits.cpu"),
            ("17:13", "limits.wall_time"),
            ("18:23", "limits.connects_per_minute"),
            ("21:25", "process.env.keep[1]"),
            ("24:8", "on_violation.exec"),
        ],
    );
}

#[test]
fn an_extends_cycle_is_reported_at_the_entry_closing_it() {
    let (_, lines) = check_fails("cycle-a.toml");
    let b = fixture("cycle-b.toml");
    assert_prefixes(&b, &lines, &[("2:12", "extends[0]")]);
    assert!(lines[0].contains("extends cycle"), "{lines:?}");
}

#[test]
fn several_profiles_are_all_checked_and_any_failure_fails() {
    let good = repo_root()
        .join("profiles/minimal.toml")
        .display()
        .to_string();
    let out = run_guard(&[
        "check",
        &fixture("bad-size.toml"),
        &good,
        &fixture("bad-cidr.toml"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad-size.toml:4:10: limits.memory:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad-cidr.toml:4:34: network.connect[1]:"),
        "{stderr}"
    );
}

#[test]
fn every_shipped_profile_passes_check_by_path_and_by_name() {
    let dir = repo_root().join("profiles");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 4, "{paths:?}");
    for path in &paths {
        let p = path.display().to_string();
        let out = run_guard(&["check", &p]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "guard check {p}: {stderr}");
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name");
        let out = run_guard(&["check", name]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "guard check {name}: {stderr}");
    }
}

#[test]
fn a_missing_profile_fails() {
    let out = run_guard(&["check", "no-such-profile-anywhere"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
}
