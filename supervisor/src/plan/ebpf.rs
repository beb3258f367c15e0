//! The eBPF part of a plan: map entries for the network and exec probes of one sandbox.

use crate::policy::network::Endpoint;

/// Policy the eBPF probes enforce for one sandbox cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EbpfPolicy {
    /// `process.exec` (defaults to `filesystem.execute`): absolute paths that may be executed.
    pub exec_allow: Vec<std::path::PathBuf>,
    /// `network.connect` entries (host names resolved at start).
    pub connect: Vec<Endpoint>,
    /// `network.bind` entries.
    pub bind: Vec<Endpoint>,
    /// `network.unix` socket paths.
    pub unix: Vec<std::path::PathBuf>,
    /// `network.dns`.
    pub dns: bool,
    pub connects_per_minute: Option<u32>,
    pub execs_per_minute: Option<u32>,
}
