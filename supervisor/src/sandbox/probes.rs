//! Putting one sandbox under the eBPF probes: resolve the profile's network rules to
//! addresses, turn the plan into map entries, open (or load) the shared probes and register the
//! sandbox's cgroup in them.

use std::net::{IpAddr, ToSocketAddrs as _};

use ipnet::IpNet;

use super::cgroup::CgroupManager;
use crate::ebpf::pins::UsersLock;
use crate::ebpf::rules::{self, NetRule, RuleKind};
use crate::ebpf::{EbpfError, Probes, RegisteredSandbox, SandboxEntries, Start};
use crate::plan::Plan;
use crate::policy::network::{Host, Ports};

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
    #[error("network.connect: cannot resolve {name}: {source}")]
    Unresolvable {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network.connect: {name} has no addresses")]
    NoAddresses { name: String },
    #[error("network.dns = true, but /etc/resolv.conf names no name server")]
    NoNameServer,
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

/// Registers the sandbox in `cgroup` with the policy of `plan`.
pub fn attach(plan: &Plan, cgroup: &dyn CgroupManager) -> Result<AttachedProbes, AttachError> {
    let cgroup_id = cgroup.cgroup2_id();
    let net_rules = network_rules(plan)?;
    let net = rules::net_entries(cgroup_id, &net_rules).map_err(PolicyError::from)?;
    let policy = rules::sandbox_policy(plan, cgroup_id).map_err(PolicyError::from)?;
    let exec = rules::exec_entries(cgroup_id, &plan.ebpf.exec_allow);
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
        },
        &|| super::cgroup::live_sandbox_ids().map_err(|e| e.to_string()),
    )?;
    Ok(AttachedProbes {
        sandbox,
        start,
        _users: users,
    })
}

/// `network.connect`, `network.bind` and DNS as address rules; host names resolved now.
fn network_rules(plan: &Plan) -> Result<Vec<NetRule>, PolicyError> {
    let mut out = Vec::new();
    for (kind, entries) in [
        (RuleKind::Connect, &plan.ebpf.connect),
        (RuleKind::Bind, &plan.ebpf.bind),
    ] {
        for endpoint in entries {
            for net in resolve(&endpoint.host)? {
                out.push(NetRule {
                    kind,
                    net,
                    ports: endpoint.ports,
                });
            }
        }
    }
    if plan.ebpf.dns {
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let servers = rules::resolvers(&resolv);
        if servers.is_empty() {
            return Err(PolicyError::NoNameServer);
        }
        out.extend(servers.into_iter().map(|ip| NetRule {
            kind: RuleKind::Connect,
            net: IpNet::from(ip),
            ports: Ports {
                first: 53,
                last: 53,
            },
        }));
    }
    Ok(out)
}

/// The networks a host part stands for. Names are resolved through the system resolver when
/// the sandbox starts; every address it returns is allowed.
fn resolve(host: &Host) -> Result<Vec<IpNet>, PolicyError> {
    match host {
        Host::Addr(ip) => Ok(vec![IpNet::from(*ip)]),
        Host::Net(net) => Ok(vec![*net]),
        Host::Name(name) => {
            let addrs: Vec<IpAddr> = (name.as_str(), 0)
                .to_socket_addrs()
                .map_err(|source| PolicyError::Unresolvable {
                    name: name.clone(),
                    source,
                })?
                .map(|sa| sa.ip())
                .collect();
            if addrs.is_empty() {
                return Err(PolicyError::NoAddresses { name: name.clone() });
            }
            Ok(addrs.into_iter().map(IpNet::from).collect())
        }
    }
}
