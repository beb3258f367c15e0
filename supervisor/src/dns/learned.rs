//! Addresses learned from permitted answers: allowed for one sandbox, on the ports of the rules
//! that named them, until the answer's TTL runs out.
//!
//! The kernel side is one `LEARNED` entry per address (ports and expiry); the connect hooks
//! compare the expiry with `bpf_ktime_get_ns`, so an address stops being reachable at its
//! expiry even if nothing here runs. This table knows which name brought each address (for
//! the records of connects to it) and keeps each name's grant apart, so one name's ports do
//! not outlive its own answer by more than a sweep interval.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aya::maps::{HashMap as BpfHashMap, MapData, MapError};
use guard_common::policy::{LearnedKey, LearnedValue};

use crate::ebpf::rules::port_rules;
use crate::policy::network::Ports;

/// Shortest time an answer is trusted: a TTL of 0 or 1 s would otherwise expire before the
/// tool's connect that follows the lookup.
pub const TTL_FLOOR: Duration = Duration::from_secs(2);
/// Longest time an answer is trusted, whatever its TTL: an address a name moved away from is
/// unreachable at most this long after the last answer that gave it.
pub const TTL_CAP: Duration = Duration::from_secs(3600);
/// Most addresses one sandbox may have learned at once; answers beyond it are still given,
/// but their addresses are not allowed (connects to them are denied and recorded).
pub const MAX_PER_SANDBOX: usize = 4096;

/// How long an answer with `ttl` seconds is trusted.
pub fn trusted_for(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl)).clamp(TTL_FLOOR, TTL_CAP)
}

/// Which name each learned address came from, shared with the monitor that writes the records
/// of connects to them.
pub type LearnedNames = Arc<Mutex<HashMap<IpAddr, String>>>;

/// One name's grant of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    name: String,
    ports: Vec<Ports>,
    expires_ns: u64,
}

/// Why an address could not be learned.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("the sandbox has learned {MAX_PER_SANDBOX} addresses already")]
    Full,
    #[error("writing the learned address: {0}")]
    Map(#[from] MapError),
    #[error("too many port ranges for one learned address")]
    TooManyPorts,
    #[error(
        "a link-local address (cloud metadata services live there) is never learned from an \
         answer; list it in network.connect if the tool must reach it"
    )]
    LinkLocal,
}

/// Whether `addr` is link-local (169.254.0.0/16, fe80::/10, and their IPv4-mapped forms): where
/// cloud instances serve their metadata and credentials. A permitted name whose answer points
/// there (DNS rebinding by whoever controls the name) must not open it.
pub fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// The learned addresses of one sandbox.
pub struct Learned {
    map: Option<BpfHashMap<MapData, LearnedKey, LearnedValue>>,
    cgroup_id: u64,
    grants: HashMap<IpAddr, Vec<Grant>>,
    names: LearnedNames,
}

impl Learned {
    /// A table writing into `map` (None: only kept here, for tests and audit mode).
    pub fn new(
        map: Option<BpfHashMap<MapData, LearnedKey, LearnedValue>>,
        cgroup_id: u64,
        names: LearnedNames,
    ) -> Self {
        Self {
            map,
            cgroup_id,
            grants: HashMap::new(),
            names,
        }
    }

    /// The table of which name brought each address.
    pub fn names(&self) -> LearnedNames {
        self.names.clone()
    }

    /// Allows `addr` on `ports` for `ttl` seconds (clamped) from `now_ns`, because `name`
    /// resolved to it.
    pub fn learn(
        &mut self,
        addr: IpAddr,
        name: &str,
        ports: &[Ports],
        ttl: u32,
        now_ns: u64,
    ) -> Result<(), LearnError> {
        if is_link_local(addr) {
            return Err(LearnError::LinkLocal);
        }
        if !self.grants.contains_key(&addr) && self.grants.len() >= MAX_PER_SANDBOX {
            return Err(LearnError::Full);
        }
        let expires_ns = now_ns.saturating_add(trusted_for(ttl).as_nanos() as u64);
        let grants = self.grants.entry(addr).or_default();
        match grants.iter_mut().find(|g| g.name == name) {
            Some(g) => {
                g.expires_ns = g.expires_ns.max(expires_ns);
                g.ports = ports.to_vec();
            }
            None => grants.push(Grant {
                name: name.to_owned(),
                ports: ports.to_vec(),
                expires_ns,
            }),
        }
        if let Ok(mut names) = self.names.lock() {
            names.entry(addr).or_insert_with(|| name.to_owned());
        }
        self.write(addr)
    }

    /// Drops the grants that expired by `now_ns` and rewrites what changed.
    pub fn sweep(&mut self, now_ns: u64) {
        let changed: Vec<IpAddr> = self
            .grants
            .iter_mut()
            .filter_map(|(addr, grants)| {
                let before = grants.len();
                grants.retain(|g| g.expires_ns > now_ns);
                (grants.len() != before).then_some(*addr)
            })
            .collect();
        for addr in changed {
            // A failed rewrite leaves the old entry, whose own expiry still ends it.
            let _ = self.write(addr);
        }
    }

    /// Removes every entry of the sandbox (at its end).
    pub fn clear(&mut self) {
        let addrs: Vec<IpAddr> = self.grants.keys().copied().collect();
        for addr in addrs {
            self.grants.remove(&addr);
            let _ = self.write(addr);
        }
    }

    /// The addresses allowed now, with the name that brought them.
    #[cfg(test)]
    fn live(&self, now_ns: u64) -> Vec<(IpAddr, String)> {
        let mut out: Vec<(IpAddr, String)> = self
            .grants
            .iter()
            .flat_map(|(addr, grants)| {
                grants
                    .iter()
                    .filter(move |g| g.expires_ns > now_ns)
                    .map(move |g| (*addr, g.name.clone()))
            })
            .collect();
        out.sort();
        out
    }

    /// Writes the kernel entry of `addr`: the union of its live grants' ports until the last
    /// of them expires, or no entry.
    fn write(&mut self, addr: IpAddr) -> Result<(), LearnError> {
        let key = LearnedKey {
            cgroup_id: self.cgroup_id,
            addr: match addr {
                IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                IpAddr::V6(v6) => v6.octets(),
            },
        };
        if self.grants.get(&addr).is_some_and(Vec::is_empty) {
            self.grants.remove(&addr);
        }
        let grants = self.grants.get(&addr);
        let Some(map) = self.map.as_mut() else {
            return Ok(());
        };
        match grants {
            None => match map.remove(&key) {
                Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) =>
                {
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
            Some(grants) => {
                let ports: Vec<Ports> = grants.iter().flat_map(|g| g.ports.clone()).collect();
                let value = LearnedValue {
                    expires_ns: grants.iter().map(|g| g.expires_ns).max().unwrap_or(0),
                    ports: port_rules(&ports).ok_or(LearnError::TooManyPorts)?,
                    _reserved: 0,
                };
                map.insert(key, value, 0)?;
                Ok(())
            }
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| (t.tv_sec() as u64) * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P443: Ports = Ports {
        first: 443,
        last: 443,
    };

    fn table() -> Learned {
        Learned::new(None, 7, LearnedNames::default())
    }

    #[test]
    fn the_ttl_is_held_between_a_floor_and_a_cap() {
        assert_eq!(trusted_for(0), TTL_FLOOR);
        assert_eq!(trusted_for(30), Duration::from_secs(30));
        assert_eq!(trusted_for(u32::MAX), TTL_CAP);
    }

    #[test]
    fn an_address_expires_with_its_answer() {
        let mut t = table();
        let addr: IpAddr = "10.0.0.1".parse().unwrap();
        t.learn(addr, "api.test", &[P443], 5, 0).unwrap();
        assert_eq!(t.live(4_999_999_999), [(addr, "api.test".to_owned())]);
        assert!(t.live(5_000_000_000).is_empty());
        t.sweep(5_000_000_000);
        assert!(t.grants.is_empty());
    }

    #[test]
    fn a_new_answer_does_not_end_the_old_address_early() {
        let mut t = table();
        let old: IpAddr = "10.0.0.1".parse().unwrap();
        let new: IpAddr = "10.0.0.2".parse().unwrap();
        t.learn(old, "api.test", &[P443], 3, 0).unwrap();
        t.learn(new, "api.test", &[P443], 3, 1_000_000_000).unwrap();
        assert_eq!(t.live(2_000_000_000).len(), 2);
        assert_eq!(t.live(3_500_000_000), [(new, "api.test".to_owned())]);
    }

    #[test]
    fn link_local_answers_are_never_learned() {
        let mut t = table();
        for addr in ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254"] {
            let addr: IpAddr = addr.parse().unwrap();
            assert!(matches!(
                t.learn(addr, "api.test", &[P443], 60, 0),
                Err(LearnError::LinkLocal)
            ));
        }
        assert!(t.live(0).is_empty());
        assert!(
            t.learn("10.0.0.1".parse().unwrap(), "api.test", &[P443], 60, 0)
                .is_ok()
        );
    }

    #[test]
    fn the_learned_names_name_the_first_name_that_brought_an_address() {
        let names = LearnedNames::default();
        let mut t = Learned::new(None, 7, names.clone());
        let addr: IpAddr = "10.0.0.1".parse().unwrap();
        t.learn(addr, "a.test", &[P443], 5, 0).unwrap();
        t.learn(addr, "b.test", &[P443], 5, 0).unwrap();
        assert_eq!(names.lock().unwrap()[&addr], "a.test");
    }
}
