//! `guard check PROFILE...`: validate profiles, printing every error as FILE:LINE:COL: key: message.

use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(_profiles: &[PathBuf]) -> ExitCode {
    eprintln!("guard check: not yet implemented");
    ExitCode::from(crate::sandbox::exit::GUARD_FAILED)
}
