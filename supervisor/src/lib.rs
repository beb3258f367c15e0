//! guard: a process-confinement supervisor for the tools AI agents run.
//!
//! A TOML [`profile`] is compiled into a [`plan`] (pure code), which the [`sandbox`] applies to a
//! child process through Landlock, seccomp, cgroups and identity changes, while the [`ebpf`]
//! probes enforce network and exec policy in the kernel. [`host`] detects what this kernel offers.
//! The [`daemon`] serves `guard exec` to callers that are not root, through the [`client`].

pub mod audit;
pub mod cli;
pub mod client;
pub mod commands;
pub mod daemon;
pub mod dns;
pub mod ebpf;
pub mod enforcement;
pub mod host;
pub mod learn;
pub mod plan;
pub mod policy;
pub mod profile;
pub mod sandbox;
