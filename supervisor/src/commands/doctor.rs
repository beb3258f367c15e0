//! `guard doctor`: this host's kernel features, probed, and what they mean for profiles.

use std::process::ExitCode;

pub fn run() -> ExitCode {
    eprintln!("guard doctor: not yet implemented");
    ExitCode::from(crate::sandbox::exit::GUARD_FAILED)
}
