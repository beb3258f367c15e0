//! One sandbox's policy as eBPF map entries: the network rules folded for LPM lookups, the exec
//! allowlist as file identities, and the policy flags.
//!
//! An LPM trie returns only the longest prefix matching an address, so an address covered by
//! both `10.0.0.0/8:80` and `10.1.0.0/16:443` must find both port sets in the `/16` entry:
//! [`net_entries`] folds the ports of every less specific rule into each more specific one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt as _;

use aya::maps::lpm_trie::Key;
use guard_common::SandboxPolicy;
use guard_common::policy::{
    EXEC_ALLOW_FILE, EXEC_ALLOW_TREE, ExecKey, MAX_PER_MINUTE, MAX_PORT_RANGES, NET_KEY_FIXED_BITS,
    NET_KIND_BIND, NET_KIND_CONNECT, Net4Key, Net6Key, POLICY_AUDIT_EXEC, POLICY_AUDIT_NET,
    POLICY_ENFORCE_EXEC, POLICY_ENFORCE_NET, POLICY_KILL_ON_EXEC, POLICY_KILL_ON_NET,
    POLICY_REPORT_EXEC, PortRange, PortRules,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::plan::{Mode, Plan, ViolationAction};
use crate::policy::network::Ports;

/// Which profile list a network rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleKind {
    /// `network.connect` (and DNS): connect and UDP send.
    Connect,
    /// `network.bind`.
    Bind,
}

/// One resolved network rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRule {
    pub kind: RuleKind,
    pub net: IpNet,
    pub ports: Ports,
}

/// Network rules that cannot be expressed in the maps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "{net}: more than {MAX_PORT_RANGES} separate port ranges apply to this address; merge \
         some of them"
    )]
    TooManyPortRanges { net: IpNet },
    #[error("limits.{key} = {value} is above the {MAX_PER_MINUTE} per minute the probes count")]
    RateTooHigh { key: &'static str, value: u32 },
    #[error(
        "network.connect and network.bind resolve to {count} address rules; at most {MAX_NET_RULES} per sandbox"
    )]
    TooManyRules { count: usize },
    #[error(
        "network.unix: `{0}` is longer than the {max} bytes a unix socket address holds",
        max = guard_common::event::UNIX_PATH_LEN - 1
    )]
    UnixPathTooLong(String),
}

/// The `UNIX_PATHS` keys for the socket paths a sandbox may reach, as the profile lists them
/// (the probes compare the caller's path with these bytes).
pub fn unix_entries(
    cgroup_id: u64,
    paths: &[std::path::PathBuf],
) -> Result<Vec<guard_common::policy::UnixKey>, RuleError> {
    use std::os::unix::ffi::OsStrExt as _;
    let mut keys = Vec::new();
    for path in paths {
        let bytes = path.as_os_str().as_bytes();
        // One byte stays for the NUL the kernel adds.
        if bytes.len() >= guard_common::event::UNIX_PATH_LEN {
            return Err(RuleError::UnixPathTooLong(path.display().to_string()));
        }
        let mut key = guard_common::policy::UnixKey {
            cgroup_id,
            path: [0; guard_common::event::UNIX_PATH_LEN],
            _reserved: [0; 4],
        };
        key.path[..bytes.len()].copy_from_slice(bytes);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Address rules (after name resolution) one sandbox may have.
pub const MAX_NET_RULES: usize = 4096;

/// LPM entries of one sandbox.
#[derive(Default)]
pub struct NetEntries {
    pub v4: Vec<(Key<Net4Key>, PortRules)>,
    pub v6: Vec<(Key<Net6Key>, PortRules)>,
}

/// The map entries for `rules` in the sandbox with cgroup id `cgroup_id`.
pub fn net_entries(cgroup_id: u64, rules: &[NetRule]) -> Result<NetEntries, RuleError> {
    // IPv4 addresses written as IPv4-mapped IPv6 are IPv4 rules: that is how the probes look
    // such destinations up.
    // Each entry carries the ports of every rule covering it, a pass over all rules per rule:
    // bounded here so a huge list is an error, not minutes of work.
    if rules.len() > MAX_NET_RULES {
        return Err(RuleError::TooManyRules { count: rules.len() });
    }
    let rules: Vec<NetRule> = rules.iter().map(unmap_v4).collect();
    let mut entries = NetEntries::default();
    let mut seen: std::collections::HashSet<(RuleKind, IpNet)> = std::collections::HashSet::new();
    for rule in &rules {
        let net = rule.net.trunc();
        if !seen.insert((rule.kind, net)) {
            continue;
        }
        // Every rule of the same kind whose network contains this one applies to its addresses.
        let ranges: Vec<Ports> = rules
            .iter()
            .filter(|other| other.kind == rule.kind && other.net.trunc().contains(&net))
            .map(|other| other.ports)
            .collect();
        let value = port_rules(&ranges).ok_or(RuleError::TooManyPortRanges { net })?;
        let kind = match rule.kind {
            RuleKind::Connect => NET_KIND_CONNECT,
            RuleKind::Bind => NET_KIND_BIND,
        }
        .to_ne_bytes();
        match net {
            IpNet::V4(v4) => entries.v4.push((
                Key::new(
                    NET_KEY_FIXED_BITS + u32::from(v4.prefix_len()),
                    Net4Key {
                        cgroup_id: cgroup_id.to_ne_bytes(),
                        kind,
                        addr: v4.addr().octets(),
                    },
                ),
                value,
            )),
            IpNet::V6(v6) => entries.v6.push((
                Key::new(
                    NET_KEY_FIXED_BITS + u32::from(v6.prefix_len()),
                    Net6Key {
                        cgroup_id: cgroup_id.to_ne_bytes(),
                        kind,
                        addr: v6.addr().octets(),
                    },
                ),
                value,
            )),
        }
    }
    Ok(entries)
}

/// `ports` merged into one map value, or `None` when more than [`MAX_PORT_RANGES`] remain.
pub fn port_rules(ports: &[Ports]) -> Option<PortRules> {
    let ranges = merge(&mut ports.to_vec());
    if ranges.len() > MAX_PORT_RANGES {
        return None;
    }
    let mut value = PortRules {
        count: ranges.len() as u32,
        ..PortRules::default()
    };
    for (slot, ports) in value.ranges.iter_mut().zip(&ranges) {
        *slot = PortRange {
            first: ports.first,
            last: ports.last,
        };
    }
    Some(value)
}

/// `::ffff:a.b.c.d/n` (n >= 96) as the IPv4 rule `a.b.c.d/(n-96)`.
fn unmap_v4(rule: &NetRule) -> NetRule {
    let mapped_prefix = Ipv6Net::new(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96);
    let net = match rule.net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 && mapped_prefix.is_ok_and(|p| p.contains(&v6)) => {
            let octets = v6.addr().octets();
            let v4 = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
            Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(rule.net, IpNet::V4)
        }
        other => other,
    };
    NetRule {
        net,
        ..rule.clone()
    }
}

/// Sorts and merges overlapping or adjacent ranges.
fn merge(ranges: &mut [Ports]) -> Vec<Ports> {
    ranges.sort();
    let mut merged: Vec<Ports> = Vec::new();
    for range in ranges.iter() {
        match merged.last_mut() {
            Some(last) if u32::from(range.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(range.last);
            }
            _ => merged.push(*range),
        }
    }
    merged
}

/// The `SANDBOXES` value for `plan`.
pub fn sandbox_policy(plan: &Plan, sandbox_id: u64) -> Result<SandboxPolicy, RuleError> {
    let mut flags = POLICY_REPORT_EXEC | POLICY_ENFORCE_EXEC | POLICY_ENFORCE_NET;
    // Each category's audit is its own bit: `on_violation.network = "audit"` alone records
    // and allows network violations while exec violations are still denied, and the other way.
    if plan.mode == Mode::Audit || plan.on_violation.network == ViolationAction::Audit {
        flags |= POLICY_AUDIT_NET;
    }
    if plan.mode == Mode::Audit || plan.on_violation.exec == ViolationAction::Audit {
        flags |= POLICY_AUDIT_EXEC;
    }
    if plan.on_violation.network == ViolationAction::Kill {
        flags |= POLICY_KILL_ON_NET;
    }
    if plan.on_violation.exec == ViolationAction::Kill {
        flags |= POLICY_KILL_ON_EXEC;
    }
    let rate = |key: &'static str, value: Option<u32>| match value {
        Some(v) if u64::from(v) > MAX_PER_MINUTE => Err(RuleError::RateTooHigh { key, value: v }),
        Some(v) => Ok(v),
        None => Ok(0),
    };
    Ok(SandboxPolicy {
        sandbox_id,
        flags,
        connects_per_minute: rate("connects_per_minute", plan.ebpf.connects_per_minute)?,
        execs_per_minute: rate("execs_per_minute", plan.ebpf.execs_per_minute)?,
        // Filled in by `RegisteredSandbox::register` once it holds a slot.
        ring_slot: 0,
        // Filled in by `sandbox::probes::attach` with the gate's ports.
        dns_port4: 0,
        dns_port6: 0,
        _reserved: 0,
    })
}

/// The `EXEC_ALLOW` entries for the exec allowlist: each existing file by identity, each
/// existing directory as a tree. Paths missing on this host are skipped, as Landlock does.
pub fn exec_entries(cgroup_id: u64, allow: &[std::path::PathBuf]) -> Vec<(ExecKey, u32)> {
    let mut entries: Vec<(ExecKey, u32)> = allow
        .iter()
        .filter_map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            let kind = if meta.is_dir() {
                EXEC_ALLOW_TREE
            } else {
                EXEC_ALLOW_FILE
            };
            Some((
                ExecKey {
                    cgroup_id,
                    dev: kernel_dev(meta.dev()),
                    ino: meta.ino(),
                },
                kind,
            ))
        })
        .collect();
    // `/bin` and `/usr/bin` are one directory on merged-/usr hosts: one entry, with both kinds
    // if a path names it as a file and another as a tree.
    entries.sort_by_key(|(key, _)| (key.dev, key.ino));
    entries.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 |= later.1;
        }
        same
    });
    entries
}

/// The kernel's internal `dev_t` (`MKDEV`: major << 20 | minor) for a userspace `st_dev`, which
/// is what the probe reads from `super_block.s_dev`.
pub fn kernel_dev(st_dev: u64) -> u64 {
    let major = libc::major(st_dev) as u64;
    let minor = libc::minor(st_dev) as u64;
    (major << 20) | minor
}

/// The name servers of a `resolv.conf` text.
pub fn resolvers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // An IPv6 resolver may carry a zone (`fe80::1%eth0`); the zone is not an address.
            let addr = words.next()?.split('%').next()?;
            addr.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: RuleKind, net: &str, first: u16, last: u16) -> NetRule {
        NetRule {
            kind,
            net: net.parse().unwrap(),
            ports: Ports { first, last },
        }
    }

    fn ports_of(rules: &PortRules) -> Vec<(u16, u16)> {
        rules.ranges[..rules.count as usize]
            .iter()
            .map(|r| (r.first, r.last))
            .collect()
    }

    #[test]
    fn more_specific_entries_carry_the_ports_of_covering_rules() {
        let entries = net_entries(
            7,
            &[
                rule(RuleKind::Connect, "10.0.0.0/8", 80, 80),
                rule(RuleKind::Connect, "10.1.0.0/16", 443, 443),
                rule(RuleKind::Bind, "0.0.0.0/0", 8000, 8000),
            ],
        )
        .unwrap();
        assert_eq!(entries.v4.len(), 3);
        let (key, wide) = &entries.v4[0];
        assert_eq!({ key.prefix_len() }, NET_KEY_FIXED_BITS + 8);
        assert_eq!(ports_of(wide), [(80, 80)]);
        let (_, narrow) = &entries.v4[1];
        assert_eq!(ports_of(narrow), [(80, 80), (443, 443)]);
        // Bind rules never lend their ports to connect entries.
        let (key, bind) = &entries.v4[2];
        assert_eq!(key.data().kind, NET_KIND_BIND.to_ne_bytes());
        assert_eq!(ports_of(bind), [(8000, 8000)]);
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let entries = net_entries(
            1,
            &[
                rule(RuleKind::Connect, "::1/128", 10, 20),
                rule(RuleKind::Connect, "::1/128", 21, 30),
                rule(RuleKind::Connect, "::1/128", 25, 40),
                rule(RuleKind::Connect, "::1/128", 50, 50),
            ],
        )
        .unwrap();
        assert_eq!(entries.v6.len(), 1);
        assert_eq!(ports_of(&entries.v6[0].1), [(10, 40), (50, 50)]);
    }

    #[test]
    fn ipv4_mapped_rules_become_ipv4_rules() {
        let entries = net_entries(
            1,
            &[rule(RuleKind::Connect, "::ffff:127.0.0.1/128", 80, 80)],
        )
        .unwrap();
        assert!(entries.v6.is_empty());
        let (key, _) = &entries.v4[0];
        assert_eq!({ key.prefix_len() }, NET_KEY_FIXED_BITS + 32);
        assert_eq!(key.data().addr, [127, 0, 0, 1]);
    }

    #[test]
    fn too_many_ranges_is_an_error_not_a_wider_rule() {
        let rules: Vec<NetRule> = (0..17)
            .map(|i| rule(RuleKind::Connect, "10.0.0.1/32", i * 10, i * 10))
            .collect();
        assert!(matches!(
            net_entries(1, &rules),
            Err(RuleError::TooManyPortRanges { .. })
        ));
    }

    #[test]
    fn keys_are_per_sandbox() {
        let a = net_entries(1, &[rule(RuleKind::Connect, "10.0.0.1/32", 1, 1)]).unwrap();
        let b = net_entries(2, &[rule(RuleKind::Connect, "10.0.0.1/32", 1, 1)]).unwrap();
        assert_ne!(a.v4[0].0.data().cgroup_id, b.v4[0].0.data().cgroup_id);
    }

    #[test]
    fn reads_nameservers() {
        let text = "# comment\nsearch example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n\
                    nameserver bogus\noptions ndots:1\n";
        assert_eq!(
            resolvers(text),
            [
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn one_directory_named_twice_is_one_entry() {
        let entries = exec_entries(9, &["/usr/bin".into(), "/usr/bin/.".into()]);
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn kernel_dev_encoding() {
        // 8:1 (sda1) is st_dev 0x801 in userspace and (8 << 20) | 1 in the kernel.
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(kernel_dev(libc::makedev(259, 300)), (259 << 20) | 300);
    }

    #[test]
    fn exec_entries_tell_files_from_trees() {
        let entries = exec_entries(
            9,
            &["/usr/bin".into(), "/bin/sh".into(), "/no/such/file".into()],
        );
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().any(|(_, kind)| *kind == EXEC_ALLOW_TREE));
        assert!(entries.iter().any(|(_, kind)| *kind == EXEC_ALLOW_FILE));
        assert!(entries.iter().all(|(k, _)| k.cgroup_id == 9));
    }
}
