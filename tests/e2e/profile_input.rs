//! Profile input that must be refused clearly and quickly, and lookup rules users rely on.

use std::time::Instant;

use crate::support::{TempDir, guard, write_profile};

#[test]
fn a_size_without_a_unit_is_an_error_with_a_hint() {
    let dir = TempDir::new("input-size");
    let p = write_profile(&dir, "size", "name = \"size\"\n[limits]\nmemory = 512\n");
    for args in [
        vec!["check", p.as_str()],
        vec!["exec", "--profile", p.as_str(), "--", "true"],
    ] {
        let run = guard(&args);
        assert_eq!(
            run.code(),
            if args[0] == "check" { 1 } else { 125 },
            "{run}"
        );
        assert!(
            run.stderr.contains(&format!("{p}:3:10: limits.memory:")),
            "{run}"
        );
        assert!(run.stderr.contains("\"512MiB\""), "{run}");
    }
    let quoted = write_profile(&dir, "quoted", "name = \"q\"\n[limits]\nmemory = \"512\"\n");
    let run = guard(&["check", &quoted]);
    assert_eq!(run.code(), 1, "{run}");
    assert!(run.stderr.contains("has no unit"), "{run}");
}

#[test]
fn extends_looks_next_to_the_extending_file_first() {
    let dir = TempDir::new("input-extends");
    // A sibling named like a shipped profile: the sibling is meant, not the shipped one.
    write_profile(
        &dir,
        "build",
        "name = \"build\"\n[filesystem]\nread = [\"/sibling-marker\"]\n",
    );
    let top = write_profile(&dir, "top", "name = \"top\"\nextends = [\"build\"]\n");
    let run = guard(&["explain", &top]);
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.stdout.contains("/sibling-marker"), "{run}");
    assert!(
        run.stdout.contains(&format!(
            "layers merged: {}/build.toml -> {top}",
            dir.path().display()
        )),
        "{run}"
    );
}

#[test]
fn fifos_devices_directories_and_huge_files_are_refused_without_hanging() {
    let dir = TempDir::new("input-files");
    let fifo = dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let big = dir.path().join("big.toml");
    std::fs::write(&big, "# padding\n".repeat(200_000)).expect("write");
    let fifo_s = fifo.to_string_lossy().into_owned();
    let big_s = big.to_string_lossy().into_owned();
    let dir_s = dir.path().join("sub.toml");
    std::fs::create_dir_all(&dir_s).expect("mkdir");
    let dir_s = dir_s.to_string_lossy().into_owned();
    for (path, want) in [
        (fifo_s.as_str(), "not a regular file (a FIFO)"),
        ("/dev/zero", "not a regular file (a device)"),
        (dir_s.as_str(), "not a regular file (a directory)"),
        (big_s.as_str(), "a profile may have at most 1048576 bytes"),
    ] {
        let started = Instant::now();
        let run = guard(&["exec", "--profile", path, "--", "true"]);
        assert_eq!(run.code(), 125, "{path}: {run}");
        assert!(run.stderr.contains(want), "{path}: {run}");
        assert!(run.stderr.contains(path), "{path}: {run}");
        // Not a timing assertion on guard's speed: a hang would never return at all; this
        // only prints how long the refusal took.
        eprintln!("{path}: refused in {:?}", started.elapsed());
    }
}

#[test]
fn a_list_of_400000_paths_is_refused_by_size_before_any_parsing() {
    let dir = TempDir::new("input-long");
    let mut text = String::from("name = \"long\"\n[filesystem]\nread = [\n");
    for i in 0..400_000 {
        text.push_str(&format!("  \"/nonexistent/{i}\",\n"));
    }
    text.push_str("]\n");
    // ~10 MiB: refused by the size cap before parsing; lists that fit merge in linear time
    // (unit test `union_keeps_order_drops_duplicates_and_is_linear`).
    let p = write_profile(&dir, "long", &text);
    let run = guard(&["check", &p]);
    assert_ne!(run.code(), 0, "{run}");
    assert!(run.stderr.contains("at most 1048576 bytes"), "{run}");
}
