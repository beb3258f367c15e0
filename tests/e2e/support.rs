//! Shared helpers for the end-to-end tests: locating the binary, temp dirs, running guard.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `guard` binary cargo built for this test run.
pub fn guard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_guard"))
}

/// Runs `guard` with `args` and returns its output, panicking with context if it cannot start.
pub fn run_guard(args: &[&str]) -> Output {
    Command::new(guard_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run guard {args:?}: {e}"))
}

/// The repository root (the parent of `supervisor/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("supervisor/ has a parent")
        .to_path_buf()
}
