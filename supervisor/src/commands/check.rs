//! `guard check PROFILE...`: validate profiles, printing every error as FILE:LINE:COL: key: message.
//!
//! Each argument is a NAME or PATH as for `guard exec`; the whole `extends` chain is checked.
//! Checking is static: variables are checked for syntax but not expanded, and `process.user` is
//! not looked up, because the host that runs the profile may differ from the one checking it.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::profile::{self, Lookup, ProfileError};

/// Exit status when some profile is invalid.
const INVALID: u8 = 1;

pub fn run(profiles: &[PathBuf]) -> ExitCode {
    let lookup = Lookup::from_env();
    let mut failed = false;
    for spec in profiles {
        let spec = spec.to_string_lossy();
        match profile::load(&spec, &lookup) {
            Ok(p) => println!("{}: ok ({})", p.file, p.name),
            Err(ProfileError::Invalid(diags)) => {
                failed = true;
                eprintln!("{diags}");
            }
            Err(e) => {
                failed = true;
                eprintln!("{spec}: {e}");
            }
        }
    }
    if failed {
        ExitCode::from(INVALID)
    } else {
        ExitCode::SUCCESS
    }
}
