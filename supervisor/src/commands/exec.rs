//! `guard exec`: run a command confined by a profile.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

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

pub fn run(_args: ExecArgs) -> ExitCode {
    eprintln!("guard exec: not yet implemented");
    ExitCode::from(crate::sandbox::exit::GUARD_FAILED)
}
