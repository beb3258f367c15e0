//! `guard daemon-worker` (hidden): the daemon's per-sandbox process, running local-mode
//! `guard exec` for a caller.
//!
//! The job comes from the daemon (see [`crate::daemon::worker`]); from it this builds the same
//! [`Invocation`] local mode builds from the command line, with the caller's environment, working
//! directory and identity in place of guard's own, and the daemon's profile search path.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands::exec::{Invocation, RunAs, run_invocation};
use crate::daemon::protocol::WireMode;
use crate::daemon::worker::read_job;
use crate::plan::Mode;
use crate::profile::{ExpandContext, Lookup};
use crate::sandbox::exit::GUARD_FAILED;
use crate::sandbox::launch::{LaunchRequest, error_chain};

pub fn run() -> ExitCode {
    let job = match read_job() {
        Ok(job) => job,
        Err(err) => {
            eprintln!("guard: {}", error_chain(&err));
            return ExitCode::from(GUARD_FAILED);
        }
    };
    // The daemon made the caller's directory our cwd through its descriptor.
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(err) => {
            eprintln!("guard: cannot determine the caller's working directory: {err}");
            return ExitCode::from(GUARD_FAILED);
        }
    };
    let env: Vec<_> = job
        .env
        .iter()
        .map(|(k, v)| (k.to_os(), v.to_os()))
        .collect();
    let var = |name: &str| {
        env.iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    };
    // ${HOME} is the caller's home from the user database, not a variable the caller sets: a
    // profile granting ${HOME}/project must not be pointed elsewhere. ${TMPDIR} and ${CWD} are
    // the caller's, as in local mode; they can only name places the caller's own ids reach.
    let home = crate::daemon::auth::user_home(job.caller.uid);
    let invocation = Invocation {
        profile: job.profile.clone(),
        lookup: Lookup {
            dirs: job.profile_path.clone(),
            shipped: true,
        },
        expand: ExpandContext {
            cwd: cwd.clone(),
            home,
            tmpdir: var("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp")),
        },
        parent_env: env,
        mode: match job.mode {
            WireMode::Enforce => Mode::Enforce,
            WireMode::Audit => Mode::Audit,
        },
        request: LaunchRequest {
            command: job.command.iter().map(|a| a.to_os()).collect(),
            workdir: cwd,
            audit_log: Some(job.audit_log.clone()),
            events: job.events.then_some(crate::daemon::worker::EVENTS_FD),
            narrowed: job.narrowing.names(),
        },
        narrowing: job.narrowing,
        run_as: Some(RunAs {
            uid: job.caller.uid,
            gid: job.caller.gid,
            groups: job.caller.groups.clone(),
            privileged: job.caller.is_root(),
        }),
    };
    run_invocation(&invocation)
}
