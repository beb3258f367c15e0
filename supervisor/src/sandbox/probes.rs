//! Putting one sandbox under the eBPF probes: resolve the profile's network rules to
//! addresses, turn the plan into map entries, open (or load) the shared probes and register the
//! sandbox's cgroup in them.

use std::net::{IpAddr, ToSocketAddrs as _};
use std::str::FromStr as _;

use ipnet::IpNet;

use super::cgroup::CgroupManager;
use crate::ebpf::pins::UsersLock;
use crate::ebpf::rules::{self, NetRule, RuleKind};
use crate::ebpf::{EbpfError, Probes, RegisteredSandbox, SandboxEntries, Start};
use crate::plan::Plan;
use crate::profile::values::{Endpoint, Host, Ports};

/// The probes enforcing one sandbox.
pub struct AttachedProbes {
    pub sandbox: RegisteredSandbox,
    pub start: Start,
    /// Held for the sandbox's lifetime (and its sentinel's): `guard unload` waits for it.
    _users: UsersLock,
}

/// Why the sandbox could not be put under the probes.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The profile's rules cannot be enforced as written: always fatal.
    #[error("{0}")]
    Policy(String),
    /// The probes could not be loaded or written on this host: fatal unless the profile accepts
    /// running without them.
    #[error(transparent)]
    Unavailable(#[from] EbpfError),
}

/// Registers the sandbox in `cgroup` with the policy of `plan`.
pub fn attach(plan: &Plan, cgroup: &dyn CgroupManager) -> Result<AttachedProbes, AttachError> {
    let cgroup_id = cgroup.cgroup2_id();
    let net_rules = network_rules(plan)?;
    let net = rules::net_entries(cgroup_id, &net_rules)
        .map_err(|err| AttachError::Policy(err.to_string()))?;
    let policy = rules::sandbox_policy(plan, cgroup_id)
        .map_err(|err| AttachError::Policy(err.to_string()))?;
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
        .ok_or_else(|| AttachError::Policy("the sandbox cgroup has no parent".to_owned()))?;
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
    )?;
    Ok(AttachedProbes {
        sandbox,
        start,
        _users: users,
    })
}

/// `network.connect`, `network.bind` and DNS as address rules; host names resolved now.
fn network_rules(plan: &Plan) -> Result<Vec<NetRule>, AttachError> {
    let mut out = Vec::new();
    for (kind, entries) in [
        (RuleKind::Connect, &plan.ebpf.connect),
        (RuleKind::Bind, &plan.ebpf.bind),
    ] {
        for entry in entries {
            let endpoint = Endpoint::from_str(entry).map_err(AttachError::Policy)?;
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
            return Err(AttachError::Policy(
                "network.dns = true, but /etc/resolv.conf names no name server".to_owned(),
            ));
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
fn resolve(host: &Host) -> Result<Vec<IpNet>, AttachError> {
    match host {
        Host::Addr(ip) => Ok(vec![IpNet::from(*ip)]),
        Host::Net(net) => Ok(vec![*net]),
        Host::Name(name) => {
            let addrs: Vec<IpAddr> = (name.as_str(), 0)
                .to_socket_addrs()
                .map_err(|err| {
                    AttachError::Policy(format!("network.connect: cannot resolve {name}: {err}"))
                })?
                .map(|sa| sa.ip())
                .collect();
            if addrs.is_empty() {
                return Err(AttachError::Policy(format!(
                    "network.connect: {name} has no addresses"
                )));
            }
            Ok(addrs.into_iter().map(IpNet::from).collect())
        }
    }
}
