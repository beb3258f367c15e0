//! The `guard` command line: argument parsing and wiring only; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "guard",
    version,
    about = "Confine a tool process under a TOML profile"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD confined by a profile.
    Exec(guard::commands::exec::ExecArgs),
    /// Validate profiles; errors as FILE:LINE:COL: key: message.
    Check {
        #[arg(required = true)]
        profiles: Vec<PathBuf>,
    },
    /// Print the effective policy of a profile and which layer enforces each part on this host.
    Explain { profile: String },
    /// Print this host's kernel features and what they mean for profiles.
    Doctor,
    /// Remove guard's pinned eBPF probes from the kernel (refused while sandboxes run).
    Unload,
    /// Serve `guard exec` to unprivileged callers (the systemd service).
    Daemon {
        /// The daemon's configuration file.
        #[arg(long, default_value = guard::daemon::config::DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// List the daemon's live sandboxes (your own; all of them as root).
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Kill one of the daemon's sandboxes (an ID from `guard status`).
    Stop { id: String },
    /// The daemon's per-sandbox process; started by `guard daemon` only.
    #[command(name = "daemon-worker", hide = true)]
    DaemonWorker,
}

fn main() -> ExitCode {
    // Usage errors exit 125 like every other failure of guard before the command runs (contract).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(guard::sandbox::exit::GUARD_FAILED);
        }
    };
    match cli.command {
        Command::Exec(args) => guard::commands::exec::run(args),
        Command::Check { profiles } => guard::commands::check::run(&profiles),
        Command::Explain { profile } => guard::commands::explain::run(&profile),
        Command::Doctor => guard::commands::doctor::run(),
        Command::Unload => guard::commands::unload::run(),
        Command::Daemon { config } => guard::commands::daemon::run(&config),
        Command::Status { json } => guard::commands::status::run(json),
        Command::Stop { id } => guard::commands::stop::run(&id),
        Command::DaemonWorker => guard::commands::worker::run(),
    }
}
