//! `guard explain PROFILE`: the effective policy in words, and which layer enforces each part here.

use std::process::ExitCode;

pub fn run(_profile: &str) -> ExitCode {
    eprintln!("guard explain: not yet implemented");
    ExitCode::from(crate::sandbox::exit::GUARD_FAILED)
}
