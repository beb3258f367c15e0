//! Running a command inside a sandbox: cgroup, fork, confinement of the child, supervision.
//!
//! [`launch::launch`] is the one linear function that applies the steps in order; the other
//! modules each do one of them.

pub mod cgroup;
mod child;
pub mod exit;
mod file_observer;
mod fold;
pub mod handshake;
pub mod landlock;
mod landlock_denials;
pub mod launch;
pub mod liveness;
mod monitor;
pub mod mounts;
mod probe_events;
mod probes;
pub mod program;
pub mod protected;
pub mod rule_paths;
pub mod seccomp;
mod sentinel;
mod signal_scope;
pub mod supervise;
mod syscall_denials;
mod teardown;
