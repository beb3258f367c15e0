//! One module per `guard` subcommand; each returns the process exit code.

pub mod audit;
pub mod check;
pub mod daemon;
pub mod doctor;
pub mod exec;
pub mod explain;
pub mod learn;
pub mod list;
pub mod status;
pub mod stop;
pub mod unload;
pub mod worker;
