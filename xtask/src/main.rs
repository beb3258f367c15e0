//! Project tasks, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! `main.rs` only parses arguments; each task lives in its own module:
//! - `setup`: install and verify what building and testing guard needs on a Debian 12 host;
//! - `test`: the full check CI runs (setup, fmt, clippy, tests);
//! - `bench`: guard's costs (start-up, per operation, audit under load) against the same work
//!   unconfined, bubblewrap and firejail;
//! - `install`: the binary, the systemd units, the default daemon config and the profiles;
//! - `vm-test`: the tests again in a qemu VM with another kernel (BPF LSM, pure cgroup v2).

mod bench;
mod cmd;
mod install;
mod leftovers;
mod setup;
mod test;
mod totals;
mod vm;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "guard project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what is missing (Debian packages, bpf-linker, the deb-1.96 toolchain); idempotent.
    Setup,
    /// Run setup, then `cargo fmt --check`, `cargo clippy -D warnings`, `cargo test` and the VM suite.
    Test(test::Options),
    /// Time guard's start-up against bare /bin/true, bwrap and firejail; writes docs/benchmarks.md.
    Bench,
    /// Install the guard binary, systemd units, default daemon config and profiles.
    Install(install::Options),
    /// Boot a VM (qemu, Debian kernel with BPF LSM and pure cgroup v2) and run the tests there,
    /// or with `--profile FILE -- CMD` one command under one profile.
    VmTest(vm::Options),
    /// One benchmark workload (run by `bench`, bare and under guard).
    #[command(name = "bench-workload", hide = true)]
    BenchWorkload(bench::workload::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The error chain alone says what failed; anyhow's backtrace (RUST_BACKTRACE is often set
    // in CI) would only push it out of view.
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    // A workload runs where it was started (inside a sandbox, with no workspace to go to).
    if let Command::BenchWorkload(args) = &command {
        bench::workload::run(args)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Paths the user typed are relative to where they were; remembered before leaving it.
    let invocation_dir = std::env::current_dir().context("cannot read the current directory")?;
    // Every task runs from the workspace root so relative paths and cargo invocations agree
    // whatever directory `cargo xtask` was started from.
    let root = workspace_root()?;
    std::env::set_current_dir(&root)
        .with_context(|| format!("cannot change directory to {}", root.display()))?;
    match command {
        Command::Setup => setup::run()?,
        Command::Test(options) => test::run(&options)?,
        Command::Bench => bench::run()?,
        Command::Install(options) => install::run(&options)?,
        Command::BenchWorkload(args) => bench::workload::run(&args)?,
        Command::VmTest(options) => {
            setup::run()?;
            let outcome = vm::run(&options, &invocation_dir)?;
            // With --profile, xtask exits as `guard exec` did in the guest, so scripts can
            // use it like guard itself.
            if let Some(status) = outcome.command_status {
                return Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .context("xtask's manifest directory has no parent")
}
