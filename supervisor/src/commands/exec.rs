//! `guard exec`: run a command confined by a profile.
//!
//! Wiring only: load and compile the profile, detect the host, hand over to
//! [`crate::sandbox::launch::launch`], and turn every failure into the contract's exit status
//! with one clear line on stderr. A caller that is not root is served by the daemon instead
//! ([`crate::client`]); the daemon's worker comes back here through [`run_invocation`] with the
//! caller's environment, directory and identity, so both paths behave the same.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::plan::{CompileContext, NixUserResolver, PlanError};
use crate::plan::{Mode, Plan, UserIds};
use crate::profile::narrow::Narrowing;
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
    /// Run through the guard daemon even as root (non-root callers always do).
    #[arg(long)]
    pub daemon: bool,
    /// Stream the start record (with the sandbox id), every record that is not an allow, and
    /// the exit record to this open descriptor (above 2) as JSON lines, as they happen.
    #[arg(long, value_name = "FD")]
    pub events: Option<i32>,
    /// For this call only, take all network access away from the profile.
    #[arg(long)]
    pub no_network: bool,
    /// For this call only, make the profile's write paths read-only (device files excepted).
    #[arg(long)]
    pub read_only: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

impl ExecArgs {
    /// The narrowing flags of this call.
    pub fn narrowing(&self) -> Narrowing {
        Narrowing {
            no_network: self.no_network,
            read_only: self.read_only,
        }
    }
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Enforce,
    Audit,
}

/// The identity a sandbox started by the daemon runs as: its caller's, as the kernel reported
/// it on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// uid 0 with root's capabilities (daemon/auth.rs); uid 0 without them is an ordinary caller.
    pub privileged: bool,
}

/// One `guard exec`, wherever its inputs come from: the command line and guard's own process
/// (local mode), or the caller's request handed to a daemon worker.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Profile NAME or PATH.
    pub profile: String,
    pub lookup: Lookup,
    pub expand: ExpandContext,
    /// The environment `process.env.keep` picks from.
    pub parent_env: Vec<(OsString, OsString)>,
    pub mode: Mode,
    /// Rights this call takes away from the profile.
    pub narrowing: Narrowing,
    pub request: LaunchRequest,
    /// `None`: as guard itself (with `process.user` when the profile sets it).
    pub run_as: Option<RunAs>,
}

/// Why `guard exec` could not start the command.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot determine the current directory")]
    CurrentDir(#[source] std::io::Error),
    #[error("working directory {0}: not a directory")]
    Workdir(PathBuf),
    #[error("--events {0}: use an open descriptor above 2 (0, 1 and 2 are the command's)")]
    EventsFd(i32),
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
    #[error(
        "profile {spec} sets process.user (uid {profile_uid}); the daemon runs sandboxes as their \
         caller (uid {caller_uid}) and does not switch to another user"
    )]
    ForeignUser {
        spec: String,
        profile_uid: u32,
        caller_uid: u32,
    },
}

pub fn run(args: ExecArgs) -> ExitCode {
    // Confinement needs root (cgroups, capabilities, eBPF); everyone else asks the daemon,
    // which holds those rights and decides from the caller's kernel-verified identity.
    if args.daemon || !nix::unistd::geteuid().is_root() {
        return crate::client::exec(&args);
    }
    match invocation(&args) {
        Ok(invocation) => run_invocation(&invocation),
        Err(err) => report(err),
    }
}

/// Runs one invocation to the end and returns the contract's exit status.
pub fn run_invocation(invocation: &Invocation) -> ExitCode {
    ExitCode::from(invocation_status(invocation))
}

/// Runs one invocation to the end and returns the contract's exit status as a number (for
/// callers that go on after it, like `guard learn`).
pub fn invocation_status(invocation: &Invocation) -> u8 {
    match prepare(invocation) {
        Ok(plan) => match launch(
            &plan,
            &invocation.request,
            crate::host::landlock::abi_version(),
        ) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("guard: {}", error_chain(&err));
                err.exit_code()
            }
        },
        Err(err) => {
            report(err);
            GUARD_FAILED
        }
    }
}

fn report(err: ExecError) -> ExitCode {
    match err {
        ExecError::Profile {
            source: ProfileError::Invalid(diagnostics),
            ..
        } => {
            // Diagnostics already read FILE:LINE:COL: key: message, one per line.
            eprintln!("{diagnostics}");
            eprintln!("guard: invalid profile; nothing was run");
        }
        err => eprintln!("guard: {}", error_chain(&err)),
    }
    ExitCode::from(GUARD_FAILED)
}

/// A local invocation: the command line, guard's own environment and working directory.
fn invocation(args: &ExecArgs) -> Result<Invocation, ExecError> {
    let mut expand = ExpandContext::from_process().map_err(ExecError::CurrentDir)?;
    if let Some(dir) = &args.workdir {
        let dir = expand.cwd.join(dir);
        if !dir.is_dir() {
            return Err(ExecError::Workdir(dir));
        }
        expand.cwd = dir;
    }
    if let Some(fd) = args.events
        && fd <= 2
    {
        return Err(ExecError::EventsFd(fd));
    }
    let narrowing = args.narrowing();
    Ok(Invocation {
        profile: args.profile.clone(),
        lookup: Lookup::from_env(),
        request: LaunchRequest {
            command: args.command.clone(),
            workdir: expand.cwd.clone(),
            audit_log: args.audit_log.clone(),
            events: args.events,
            narrowed: narrowing.names(),
        },
        narrowing,
        expand,
        parent_env: std::env::vars_os().collect(),
        mode: match args.mode {
            ModeArg::Enforce => Mode::Enforce,
            ModeArg::Audit => Mode::Audit,
        },
        run_as: None,
    })
}

/// Loads the profile and compiles it for this invocation.
fn prepare(invocation: &Invocation) -> Result<Plan, ExecError> {
    let spec = &invocation.profile;
    let mut resolved =
        profile::load(spec, &invocation.lookup).map_err(|source| ExecError::Profile {
            spec: spec.clone(),
            source,
        })?;
    invocation.narrowing.apply(&mut resolved.profile);
    let ctx = CompileContext {
        expand: invocation.expand.clone(),
        parent_env: invocation.parent_env.clone(),
        mode: invocation.mode,
        users: &NixUserResolver,
    };
    let mut plan = Plan::compile(&resolved, &ctx).map_err(|source| ExecError::Compile {
        spec: spec.clone(),
        source,
    })?;
    if let Some(run_as) = &invocation.run_as {
        run_as_caller(&mut plan, run_as, spec)?;
    }
    Ok(plan)
}

/// Makes the sandbox run as the daemon's caller. A root caller keeps local root behaviour
/// (`process.user` or root). For anyone else the caller's ids always apply, and a profile that
/// asks for a different user is refused rather than ignored: running as the caller could give
/// the tool rights the profile's author meant to withhold (the caller's files), and switching to
/// the profile's user would give the caller another user's rights.
fn run_as_caller(plan: &mut Plan, run_as: &RunAs, spec: &str) -> Result<(), ExecError> {
    if run_as.uid == 0 && run_as.privileged {
        return Ok(());
    }
    if let Some(user) = plan.identity.user
        && user.uid != run_as.uid
    {
        return Err(ExecError::ForeignUser {
            spec: spec.to_owned(),
            profile_uid: user.uid,
            caller_uid: run_as.uid,
        });
    }
    plan.identity.user = Some(UserIds {
        uid: run_as.uid,
        gid: run_as.gid,
    });
    plan.identity.groups = run_as.groups.clone();
    Ok(())
}
