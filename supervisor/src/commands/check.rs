//! `guard check PROFILE...`: validate profiles, printing every error as FILE:LINE:COL: key: message.
//!
//! Each argument is a NAME or PATH as for `guard exec`; the whole `extends` chain is checked.
//! Checking is static: variables are checked for syntax but not expanded, and `process.user` is
//! not looked up, because the host that runs the profile may differ from the one checking it.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::plan::{CompileContext, Mode, NixUserResolver, Plan, PlanError};
use crate::profile::expand::ExpandContext;
use crate::profile::{self, Lookup, ProfileError, ResolvedProfile};
use crate::sandbox::launch::error_chain;
use crate::sandbox::protected;

/// Exit status when some profile is invalid.
const INVALID: u8 = 1;

pub fn run(profiles: &[PathBuf]) -> ExitCode {
    let lookup = Lookup::from_env();
    let mut failed = false;
    for spec in profiles {
        let spec = spec.to_string_lossy();
        match profile::load(&spec, &lookup) {
            Ok(p) => match compiles_here(&p) {
                Ok(()) => println!("{}: ok ({})", p.file, p.name),
                Err(e) => {
                    failed = true;
                    eprintln!("{}: {e}", p.file);
                }
            },
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

/// Compiles the profile as `guard exec` would from this directory, so what only shows once
/// paths are expanded (an exec entry overlapping a write path, an unknown `process.user`) is
/// reported here too rather than first at exec time.
fn compiles_here(profile: &ResolvedProfile) -> Result<(), String> {
    let Ok(expand) = ExpandContext::from_process() else {
        // No current directory to expand `${CWD}` against: the static checks above are all
        // `guard check` can do here.
        return Ok(());
    };
    let ctx = CompileContext {
        expand,
        parent_env: std::env::vars_os().collect(),
        mode: Mode::Enforce,
        users: &NixUserResolver,
    };
    let plan = Plan::compile(profile, &ctx).map_err(|e: PlanError| error_chain(&e))?;
    protected::check_write_paths(plan.landlock.write_paths(), None).map_err(|e| error_chain(&e))
}
