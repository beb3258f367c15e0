//! The `guard` command line: argument parsing and wiring only; the definition is in
//! [`guard::cli`] and the work lives in the library.

use std::process::ExitCode;

use clap::Parser as _;
use guard::cli::{AuditCommand, Cli, Command};

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
        Command::Learn(args) => guard::commands::learn::run(args),
        Command::Check { profiles } => guard::commands::check::run(&profiles),
        Command::Explain { profile } => guard::commands::explain::run(&profile),
        Command::List => guard::commands::list::run(),
        Command::Doctor => guard::commands::doctor::run(),
        Command::Unload => guard::commands::unload::run(),
        Command::Daemon { config } => guard::commands::daemon::run(&config),
        Command::Status { json } => guard::commands::status::run(json),
        Command::Stop { id } => guard::commands::stop::run(&id),
        Command::Audit(AuditCommand::Verify { file, key }) => {
            guard::commands::audit::verify(&file, key.as_ref())
        }
        Command::DaemonWorker => guard::commands::worker::run(),
        Command::GenerateDocs { man, completions } => {
            match guard::cli::generate_docs(&man, &completions) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("guard: generating the man pages and completions: {err}");
                    ExitCode::from(guard::sandbox::exit::GUARD_FAILED)
                }
            }
        }
    }
}
