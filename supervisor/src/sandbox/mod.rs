//! Running a command inside a sandbox: cgroup, fork, confinement of the child, supervision.

pub mod cgroup;
pub mod exit;
pub mod seccomp;
