//! `guard exec`: run a command confined by a profile.
//!
//! Wiring only: load and compile the profile, detect the host, hand over to
//! [`crate::sandbox::launch::launch`], and turn every failure into the contract's exit status
//! with one clear line on stderr.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::plan::{CompileContext, NixUserResolver, PlanError};
use crate::plan::{Mode, Plan};
use crate::profile::{self, ExpandContext, Lookup, ProfileError};
use crate::sandbox::exit::GUARD_FAILED;
use crate::sandbox::launch::{LaunchRequest, error_chain, launch};

/// Arguments of `guard exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Profile name (looked up in $GUARD_PROFILE_PATH, /etc/guard/profiles, built-ins) or a TOML path.
    #[arg(long)]
    pub profile: String,
    /// enforce (default) or audit: in audit mode guard's own checks record instead of deny.
    #[arg(long, value_enum, default_value = "enforce")]
    pub mode: ModeArg,
    /// Write the JSON-lines audit log here.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// Working directory of the command (and ${CWD} of the profile).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Enforce,
    Audit,
}

/// Why `guard exec` could not start the command.
#[derive(Debug, thiserror::Error)]
enum ExecError {
    #[error("cannot determine the current directory")]
    CurrentDir(#[source] std::io::Error),
    #[error("working directory {0}: not a directory")]
    Workdir(PathBuf),
    #[error("loading profile {spec}")]
    Profile {
        spec: String,
        #[source]
        source: ProfileError,
    },
    #[error("compiling profile {spec}")]
    Compile {
        spec: String,
        #[source]
        source: PlanError,
    },
}

pub fn run(args: ExecArgs) -> ExitCode {
    match prepare(&args) {
        Ok((plan, request)) => {
            match launch(&plan, &request, crate::host::landlock::abi_version()) {
                Ok(code) => ExitCode::from(code),
                Err(err) => {
                    eprintln!("guard: {}", error_chain(&err));
                    ExitCode::from(err.exit_code())
                }
            }
        }
        Err(ExecError::Profile {
            source: ProfileError::Invalid(diagnostics),
            ..
        }) => {
            // Diagnostics already read FILE:LINE:COL: key: message, one per line.
            eprintln!("{diagnostics}");
            eprintln!("guard: invalid profile; nothing was run");
            ExitCode::from(GUARD_FAILED)
        }
        Err(err) => {
            eprintln!("guard: {}", error_chain(&err));
            ExitCode::from(GUARD_FAILED)
        }
    }
}

/// Loads the profile and compiles it for this invocation.
fn prepare(args: &ExecArgs) -> Result<(Plan, LaunchRequest), ExecError> {
    let mut expand = ExpandContext::from_process().map_err(ExecError::CurrentDir)?;
    if let Some(dir) = &args.workdir {
        let dir = expand.cwd.join(dir);
        if !dir.is_dir() {
            return Err(ExecError::Workdir(dir));
        }
        expand.cwd = dir;
    }
    let workdir = expand.cwd.clone();
    let resolved =
        profile::load(&args.profile, &Lookup::from_env()).map_err(|source| ExecError::Profile {
            spec: args.profile.clone(),
            source,
        })?;
    let ctx = CompileContext {
        expand,
        parent_env: std::env::vars_os().collect(),
        mode: match args.mode {
            ModeArg::Enforce => Mode::Enforce,
            ModeArg::Audit => Mode::Audit,
        },
        users: &NixUserResolver,
    };
    let plan = Plan::compile(&resolved, &ctx).map_err(|source| ExecError::Compile {
        spec: args.profile.clone(),
        source,
    })?;
    Ok((
        plan,
        LaunchRequest {
            command: args.command.clone(),
            workdir,
            audit_log: args.audit_log.clone(),
        },
    ))
}
