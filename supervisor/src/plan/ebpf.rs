//! The eBPF part of a plan: map entries for the network and exec probes of one sandbox.

use crate::policy::network::Endpoint;

/// Policy the eBPF probes enforce for one sandbox cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EbpfPolicy {
    /// `process.exec` (defaults to `filesystem.execute`): absolute paths that may be executed.
    pub exec_allow: Vec<std::path::PathBuf>,
    /// `network.connect` entries (host names and patterns through the DNS gate).
    pub connect: Vec<Endpoint>,
    /// `network.bind` entries.
    pub bind: Vec<Endpoint>,
    /// `network.unix` socket paths.
    pub unix: Vec<std::path::PathBuf>,
    /// `network.dns`.
    pub dns: bool,
    /// Whether the sandbox gets a DNS gate: whenever it may connect anywhere (or `dns`), so
    /// port 53 never carries anything but questions the gate judges.
    pub dns_gate: bool,
    pub connects_per_minute: Option<u32>,
    pub execs_per_minute: Option<u32>,
}
