//! One module per `guard` subcommand; each returns the process exit code.

pub mod check;
pub mod doctor;
pub mod exec;
pub mod explain;
pub mod unload;
