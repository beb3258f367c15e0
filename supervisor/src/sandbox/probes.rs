//! Putting one sandbox under the eBPF probes: turn the profile's network rules into address
//! rules (names are left to the DNS gate, except those the host's /etc/hosts answers), turn the
//! plan into map entries, open (or load) the shared probes and register the sandbox's cgroup in
//! them.

use ipnet::IpNet;

use super::cgroup::CgroupManager;
use crate::ebpf::pins::UsersLock;
use crate::ebpf::rules::{self, NetRule, RuleKind};
use crate::ebpf::{EbpfError, Probes, RegisteredSandbox, SandboxEntries, Start};
use crate::plan::Plan;
use crate::policy::network::Host;

/// The probes enforcing one sandbox.
pub struct AttachedProbes {
    pub sandbox: RegisteredSandbox,
    pub start: Start,
    /// Held for the sandbox's lifetime (and its sentinel's): `guard unload` waits for it.
    _users: UsersLock,
}

/// A profile rule that cannot be turned into map entries on this host: always fatal.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Rule(#[from] rules::RuleError),
    #[error("network.bind: `{0}` is a name; bind rules take addresses")]
    NamedBind(String),
    #[error("the sandbox cgroup has no parent")]
    NoParentCgroup,
}

/// Why the sandbox could not be put under the probes.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The profile's rules cannot be enforced as written: always fatal.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The probes could not be loaded or written on this host: fatal unless the profile accepts
    /// running without them.
    #[error(transparent)]
    Unavailable(#[from] EbpfError),
}

/// Registers the sandbox in `cgroup` with the policy of `plan`; `dns_ports` are the ports of
/// its DNS gate on 127.0.0.1 and ::1 (0, 0 without a gate).
pub fn attach(
    plan: &Plan,
    cgroup: &dyn CgroupManager,
    dns_ports: (u16, u16),
) -> Result<AttachedProbes, AttachError> {
    let cgroup_id = cgroup.cgroup2_id();
    // Read only for a profile that names hosts: every sandbox start pays for this.
    let names = plan
        .ebpf
        .connect
        .iter()
        .any(|e| matches!(e.host, Host::Name(_)));
    let hosts = if names {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        String::new()
    };
    let net_rules = network_rules(plan, &hosts)?;
    let net = rules::net_entries(cgroup_id, &net_rules).map_err(PolicyError::from)?;
    let policy = guard_common::SandboxPolicy {
        dns_port4: dns_ports.0,
        dns_port6: dns_ports.1,
        ..rules::sandbox_policy(plan, cgroup_id).map_err(PolicyError::from)?
    };
    let exec = rules::exec_entries(cgroup_id, &plan.ebpf.exec_allow);
    let unix = rules::unix_entries(cgroup_id, &plan.ebpf.unix).map_err(PolicyError::from)?;
    let path_var = plan
        .identity
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str());
    let scripts = crate::ebpf::scripts::script_keys(
        cgroup_id,
        &crate::ebpf::scripts::scripts(&plan.ebpf.exec_allow, path_var),
    );

    let users = UsersLock::shared()?;
    let guard_cgroup = cgroup
        .cgroup2_path()
        .parent()
        .ok_or(PolicyError::NoParentCgroup)?;
    let probes = Probes::open_or_load(guard_cgroup)?;
    let start = probes.start;
    let sandbox = RegisteredSandbox::register(
        probes,
        cgroup_id,
        SandboxEntries {
            policy,
            net,
            exec,
            scripts,
            unix,
        },
        &|| super::cgroup::live_sandbox_ids().map_err(|e| e.to_string()),
    )?;
    Ok(AttachedProbes {
        sandbox,
        start,
        _users: users,
    })
}

/// `network.connect` and `network.bind` as address rules. Names and patterns are the DNS
/// gate's ([`crate::dns`]); only a listed name the host's `/etc/hosts` maps is allowed at the
/// file's addresses now, because its lookups never reach the gate.
fn network_rules(plan: &Plan, hosts: &str) -> Result<Vec<NetRule>, PolicyError> {
    let mut out = Vec::new();
    for (kind, entries) in [
        (RuleKind::Connect, &plan.ebpf.connect),
        (RuleKind::Bind, &plan.ebpf.bind),
    ] {
        for endpoint in entries {
            let nets: Vec<IpNet> = match &endpoint.host {
                Host::Addr(ip) => vec![IpNet::from(*ip)],
                Host::Net(net) => vec![*net],
                Host::Name(_) | Host::Pattern(_) if kind == RuleKind::Bind => {
                    return Err(PolicyError::NamedBind(endpoint.to_string()));
                }
                Host::Name(name) => crate::dns::hosts::addresses(hosts, name)
                    .into_iter()
                    .map(IpNet::from)
                    .collect(),
                Host::Pattern(_) => Vec::new(),
            };
            out.extend(nets.into_iter().map(|net| NetRule {
                kind,
                net,
                ports: endpoint.ports,
            }));
        }
    }
    Ok(out)
}
