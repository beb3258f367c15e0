//! `guard daemon`: holds the privileges confinement needs and serves `guard exec` to callers
//! that are not root, deciding from their kernel-verified identity which profiles they may use.
//!
//! - [`config`]: `/etc/guard/daemon.toml`, checked with file:line:col diagnostics;
//! - [`protocol`]: the framed, versioned messages on the socket; [`wire`] reads them safely;
//! - [`auth`]: the caller's credentials (`SO_PEERCRED`, `SO_PEERGROUPS`) and the allow rules;
//! - [`worker`]: the per-sandbox process that runs local-mode `guard exec` for the caller;
//! - [`registry`]: live sandboxes for `guard status` and `guard stop`;
//! - [`evidence`]: refusals in the central audit log, violation counts read back from it;
//! - [`orphans`]: sandboxes left without a supervisor, removed at start;
//! - [`probes`]: the shared eBPF probes, loaded once and held while the daemon runs;
//! - [`listen`]: the socket (bound, or passed by systemd) and readiness notification;
//! - [`server`]: the event loop tying them together.
//!
//! Crash safety: no sandbox outlives the daemon unsupervised. A worker dies with the daemon
//! (PDEATHSIG), its sentinel then kills the sandbox and removes its cgroups; what a service
//! manager's kill reaches before the sentinel acts is swept at the next start ([`orphans`]).

pub mod auth;
pub mod config;
pub mod evidence;
pub mod listen;
pub mod orphans;
pub mod probes;
pub mod protocol;
pub mod registry;
pub mod sandboxed;
pub mod server;
pub mod wire;
pub mod worker;

use std::os::unix::fs::DirBuilderExt as _;
use std::path::Path;

use tracing::{error, info, warn};

use crate::sandbox::launch::error_chain;

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("guard daemon must run as root (it creates cgroups and loads eBPF programs)")]
    NotRoot,
    #[error("loading the configuration")]
    Config(#[source] config::ConfigError),
    #[error("creating the audit log directory {}", path.display())]
    AuditDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("listening")]
    Listen(#[source] listen::ListenError),
    #[error("starting the runtime")]
    Runtime(#[source] std::io::Error),
    #[error("serving")]
    Serve(#[source] std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config_path: &Path) -> Result<(), DaemonError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DaemonError::NotRoot);
    }
    let config = config::load(config_path, &config::SystemNames).map_err(DaemonError::Config)?;
    init_logging();
    raise_open_files_limit();
    if let Some(dir) = config.audit_log.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(|source| DaemonError::AuditDir {
                path: dir.to_owned(),
                source,
            })?;
    }
    match orphans::sweep() {
        Ok(sweep) => {
            for id in &sweep.removed {
                warn!("removed orphaned sandbox {id} (its supervisor was gone)");
            }
            for (id, err) in &sweep.failed {
                error!("cannot remove orphaned sandbox {id}: {}", error_chain(err));
            }
        }
        Err(err) => error!("looking for orphaned sandboxes: {}", error_chain(&err)),
    }
    // Held until the daemon returns. Without probes the daemon still serves: each sandbox then
    // fails closed or runs weaker exactly as its profile's allow_weaker says, as in local mode.
    let _probes = match probes::hold() {
        Ok((held, forgotten)) => {
            if forgotten > 0 {
                warn!("removed the eBPF entries of {forgotten} sandbox(es) that no longer exist");
            }
            info!("eBPF probes ready ({})", held.probes.pin_dir.display());
            Some(held)
        }
        Err(err) => {
            warn!(
                "eBPF probes unavailable: {}; profiles that require them will be refused",
                error_chain(&err)
            );
            None
        }
    };
    let listening = listen::listen(&config).map_err(DaemonError::Listen)?;
    info!(
        "guard daemon {} listening on {} (config {}, audit log {})",
        env!("CARGO_PKG_VERSION"),
        listening.bound.as_deref().map_or_else(
            || "the socket systemd passed".to_owned(),
            |p| p.display().to_string()
        ),
        config.file.display(),
        config.audit_log.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    let local = tokio::task::LocalSet::new();
    let bound = listening.bound.clone();
    let served = local.block_on(
        &runtime,
        server::serve(config_path, config, listening.listener),
    );
    if let Some(path) = bound {
        let _ = std::fs::remove_file(path);
    }
    info!("stopped");
    served.map_err(DaemonError::Serve)
}

/// Raises the soft limit of open descriptors to the hard one (at most 65,536): the connection
/// limits of [`server`] (4,096 in all) assume it, as the unit's `LimitNOFILE` does; started by
/// hand the soft limit is often 1,024.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let wanted = hard.min(65_536);
        if soft < wanted
            && let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard)
        {
            warn!("cannot raise the open files limit from {soft} to {wanted}: {err}");
        }
    }
}

/// Logs go to stderr: the journal when systemd runs the daemon (it stamps time and unit itself,
/// so the lines carry neither), a terminal otherwise.
fn init_logging() {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    if journal {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
