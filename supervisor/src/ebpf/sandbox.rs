//! One sandbox in the shared probes: its entries written before the command starts, its ring
//! buffer read while it runs, everything removed when it ends.
//!
//! Order matters for failing closed. Rules and state go in first and the policy entry last, so
//! the probes never see a policy without its rules; no process runs in the cgroup before the
//! policy is in. On the way out the policy goes first, once the cgroup's processes are gone.
//! The ring buffer is a slot of the probes' pool ([`super::ring_pool`]), claimed for as long as
//! the sandbox is registered.

use aya::maps::MapError;
use guard_common::SandboxState;
use guard_common::policy::ExecKey;
use guard_common::{SandboxPolicy, policy::Net4Key, policy::Net6Key};

use super::EbpfError;
use super::loader::{EventRing, Probes};
use super::ring_pool::{self, RingSlot};
use super::rules::NetEntries;
use guard_common::names;

/// Everything a sandbox writes into the shared maps.
pub struct SandboxEntries {
    pub policy: SandboxPolicy,
    pub net: NetEntries,
    pub exec: Vec<(ExecKey, u32)>,
    /// `SCRIPTS` keys ([`super::scripts`]).
    pub scripts: Vec<guard_common::policy::ScriptKey>,
    /// `UNIX_PATHS` keys ([`super::rules::unix_entries`]).
    pub unix: Vec<guard_common::policy::UnixKey>,
}

/// A sandbox registered in the probes. Call [`RegisteredSandbox::unregister`] when it ended;
/// dropping it without doing so leaves the entries (keyed by a cgroup id that is never reused
/// while guard's cgroup exists) for `guard unload` to clear.
pub struct RegisteredSandbox {
    probes: Probes,
    cgroup_id: u64,
    ring: EventRing,
    /// Held until the value is dropped, after the entries are removed.
    _slot: RingSlot,
    net4: Vec<aya::maps::lpm_trie::Key<Net4Key>>,
    net6: Vec<aya::maps::lpm_trie::Key<Net6Key>>,
    exec: Vec<ExecKey>,
    scripts: Vec<guard_common::policy::ScriptKey>,
    unix: Vec<guard_common::policy::UnixKey>,
}

impl RegisteredSandbox {
    /// Writes `entries` for the cgroup with id `cgroup_id`.
    pub fn register(
        mut probes: Probes,
        cgroup_id: u64,
        entries: SandboxEntries,
        live: super::stale::LiveCgroups<'_>,
    ) -> Result<Self, EbpfError> {
        let (slot, ring) = ring_pool::claim(&mut probes, cgroup_id)?;
        let policy = SandboxPolicy {
            ring_slot: slot.index,
            ..entries.policy
        };
        // A map found full may hold entries of sandboxes whose supervisor and sentinel were
        // both killed: those are removed and the write tried once more before giving up.
        let mut written = write_entries(&mut probes, cgroup_id, &entries, &policy);
        if matches!(written, Err(EbpfError::MapFull { .. }))
            && probes
                .forget_dead_sandboxes(live)
                .is_ok_and(|dead| dead > 0)
        {
            written = write_entries(&mut probes, cgroup_id, &entries, &policy);
        }
        written?;
        Ok(Self {
            cgroup_id,
            ring,
            _slot: slot,
            net4: entries.net.v4.iter().map(|(k, _)| *k).collect(),
            net6: entries.net.v6.iter().map(|(k, _)| *k).collect(),
            exec: entries.exec.iter().map(|(k, _)| *k).collect(),
            scripts: entries.scripts,
            unix: entries.unix,
            probes,
        })
    }

    /// The probes this sandbox is registered in.
    pub fn probes(&self) -> &Probes {
        &self.probes
    }

    /// The sandbox's ring buffer.
    pub fn ring(&mut self) -> &mut EventRing {
        &mut self.ring
    }

    /// The ring buffer's fd, readable when records wait.
    pub fn ring_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.ring)
    }

    /// Records the probes could not deliver to this sandbox's ring buffer so far.
    pub fn lost_events(&self) -> u64 {
        self.probes
            .state
            .get(&self.cgroup_id, 0)
            .map(|state| state.lost_events)
            .unwrap_or(0)
    }

    /// Removes every entry of the sandbox. Call once its processes are gone.
    pub fn unregister(mut self) -> Result<(), EbpfError> {
        self.remove_entries()
    }

    fn remove_entries(&mut self) -> Result<(), EbpfError> {
        let cgroup_id = self.cgroup_id;
        let mut first_error = None;
        let mut note = |result: Result<(), MapError>| {
            if let Err(source) = super::removed(result) {
                first_error.get_or_insert(EbpfError::RemoveEntry { cgroup_id, source });
            }
        };
        note(self.probes.sandboxes.remove(&cgroup_id));
        note(self.probes.state.remove(&cgroup_id));
        for key in &self.net4 {
            note(self.probes.net4.remove(key));
        }
        for key in &self.net6 {
            note(self.probes.net6.remove(key));
        }
        for key in &self.exec {
            note(self.probes.exec_allow.remove(key));
        }
        for key in &self.scripts {
            note(self.probes.scripts.remove(key));
        }
        for key in &self.unix {
            note(self.probes.unix_paths.remove(key));
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Writes every entry of `entries` for `cgroup_id`, the policy last. On failure whatever was
/// written is removed again (a half-registered sandbox would leak its rules) and a full map is
/// named.
fn write_entries(
    probes: &mut Probes,
    cgroup_id: u64,
    entries: &SandboxEntries,
    policy: &SandboxPolicy,
) -> Result<(), EbpfError> {
    let result = (|| {
        let write = |map: &'static str| {
            move |source: MapError| {
                if map_full(&source) {
                    EbpfError::MapFull { map, cgroup_id }
                } else {
                    EbpfError::WriteEntry { cgroup_id, source }
                }
            }
        };
        for (key, value) in &entries.net.v4 {
            probes
                .net4
                .insert(key, value, 0)
                .map_err(write(names::NET4))?;
        }
        for (key, value) in &entries.net.v6 {
            probes
                .net6
                .insert(key, value, 0)
                .map_err(write(names::NET6))?;
        }
        for (key, value) in &entries.exec {
            probes
                .exec_allow
                .insert(key, value, 0)
                .map_err(write(names::EXEC_ALLOW))?;
        }
        for key in &entries.scripts {
            probes
                .scripts
                .insert(key, 1, 0)
                .map_err(write(names::SCRIPTS))?;
        }
        for key in &entries.unix {
            probes
                .unix_paths
                .insert(key, 1, 0)
                .map_err(write(names::UNIX_PATHS))?;
        }
        probes
            .state
            .insert(cgroup_id, SandboxState::default(), 0)
            .map_err(write(names::SANDBOX_STATE))?;
        probes
            .sandboxes
            .insert(cgroup_id, policy, 0)
            .map_err(write(names::SANDBOXES))
    })();
    if result.is_err() {
        let _ = probes.forget_sandboxes(&std::collections::BTreeSet::from([cgroup_id]));
    }
    result
}

/// Whether a map update failed because the map holds `max_entries` already: E2BIG from hash
/// maps, ENOSPC from LPM tries.
fn map_full(err: &MapError) -> bool {
    matches!(err, MapError::SyscallError(e)
        if matches!(e.io_error.raw_os_error(), Some(libc::E2BIG | libc::ENOSPC)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(errno: i32) -> MapError {
        MapError::SyscallError(aya::sys::SyscallError {
            call: "bpf_map_update_elem",
            io_error: std::io::Error::from_raw_os_error(errno),
        })
    }

    #[test]
    fn a_full_map_is_told_apart_from_other_write_failures() {
        assert!(map_full(&failed(libc::E2BIG)));
        assert!(map_full(&failed(libc::ENOSPC)));
        assert!(!map_full(&failed(libc::EPERM)));
        let message = EbpfError::MapFull {
            map: names::EXEC_ALLOW,
            cgroup_id: 7,
        }
        .to_string();
        assert!(message.contains("map EXEC_ALLOW is full"), "{message}");
        assert!(message.contains("guard stop"), "{message}");
    }
}
