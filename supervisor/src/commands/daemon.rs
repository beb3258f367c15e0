//! `guard daemon [--config PATH]`: wiring for [`crate::daemon::run`].

use std::path::Path;
use std::process::ExitCode;

use crate::daemon::DaemonError;
use crate::daemon::config::ConfigError;
use crate::sandbox::exit::GUARD_FAILED;
use crate::sandbox::launch::error_chain;

pub fn run(config: &Path) -> ExitCode {
    match crate::daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(DaemonError::Config(ConfigError::Invalid(diagnostics))) => {
            // FILE:LINE:COL: key: message, one per line, like `guard check`.
            eprintln!("{diagnostics}");
            eprintln!("guard: invalid daemon configuration; not started");
            ExitCode::from(GUARD_FAILED)
        }
        Err(err) => {
            eprintln!("guard: {}", error_chain(&err));
            ExitCode::from(GUARD_FAILED)
        }
    }
}
