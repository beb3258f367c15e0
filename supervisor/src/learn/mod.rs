//! `guard learn`: from one observed run to a profile.
//!
//! The command runs once in audit mode under a learning profile (the base fragment, or the
//! profile given with `--from`): guard's layers then record, instead of refusing, every file
//! the command reads, writes or executes beyond that profile (seccomp parks the file syscalls
//! and guard reads their paths), every exec (eBPF exec tracepoint), every connect, bind and send
//! (eBPF cgroup hooks) and every syscall the baseline would refuse. This module turns those audit
//! records into a profile:
//!
//! - [`observe`]: the audit records of the run, as what was read, written, executed and reached;
//! - [`paths`]: the smallest set of rules that covers them (trees collapsed to directories only
//!   where the command read a tree, writes granted where they happened, `${CWD}`, `${HOME}`,
//!   `${TMPDIR}` substituted), and what cannot be granted;
//! - [`interpreter`]: the ELF interpreter or `#!` interpreter an executed file needs too;
//! - [`render`]: the commented TOML text.
//!
//! A learned profile never grants more than the run showed: no access kind that was not seen,
//! no directory above a tree the command read, nothing under `${HOME}` wider than the files it
//! touched, and nothing the base profile denies (those are listed as comments).

pub mod interpreter;
pub mod observe;
pub mod paths;
pub mod render;

pub use observe::Observed;
pub use paths::{Places, Rules};
pub use render::{Learned, render};
