//! `guard stop ID`: asks the daemon to kill one sandbox (the caller's own; any for root).

use std::process::ExitCode;

use crate::sandbox::exit::GUARD_FAILED;
use crate::sandbox::launch::error_chain;

pub fn run(id: &str) -> ExitCode {
    match crate::client::stop(id) {
        Ok(Ok(())) => {
            println!("stopped {id}");
            ExitCode::SUCCESS
        }
        Ok(Err(message)) => {
            eprintln!("guard: {message}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("guard: {}", error_chain(&err));
            ExitCode::from(GUARD_FAILED)
        }
    }
}
