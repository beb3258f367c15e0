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

/// Everything a sandbox writes into the shared maps.
pub struct SandboxEntries {
    pub policy: SandboxPolicy,
    pub net: NetEntries,
    pub exec: Vec<(ExecKey, u32)>,
    /// `SCRIPTS` keys ([`super::scripts`]).
    pub scripts: Vec<guard_common::policy::ScriptKey>,
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
}

impl RegisteredSandbox {
    /// Writes `entries` for the cgroup with id `cgroup_id`.
    pub fn register(
        mut probes: Probes,
        cgroup_id: u64,
        entries: SandboxEntries,
    ) -> Result<Self, EbpfError> {
        let (slot, ring) = ring_pool::claim(&mut probes, cgroup_id)?;
        let policy = SandboxPolicy {
            ring_slot: slot.index,
            ..entries.policy
        };
        let mut registered = Self {
            cgroup_id,
            ring,
            _slot: slot,
            net4: entries.net.v4.iter().map(|(k, _)| *k).collect(),
            net6: entries.net.v6.iter().map(|(k, _)| *k).collect(),
            exec: entries.exec.iter().map(|(k, _)| *k).collect(),
            scripts: entries.scripts.clone(),
            probes: {
                let write = |source| EbpfError::WriteEntry { cgroup_id, source };
                for (key, value) in &entries.net.v4 {
                    probes.net4.insert(key, value, 0).map_err(write)?;
                }
                for (key, value) in &entries.net.v6 {
                    probes.net6.insert(key, value, 0).map_err(write)?;
                }
                for (key, value) in &entries.exec {
                    probes.exec_allow.insert(key, value, 0).map_err(write)?;
                }
                for key in &entries.scripts {
                    probes.scripts.insert(key, 1, 0).map_err(write)?;
                }
                probes
                    .state
                    .insert(cgroup_id, SandboxState::default(), 0)
                    .map_err(write)?;
                probes
            },
        };
        let write = |source| EbpfError::WriteEntry { cgroup_id, source };
        let result = registered
            .probes
            .sandboxes
            .insert(cgroup_id, policy, 0)
            .map_err(write);
        match result {
            Ok(()) => Ok(registered),
            Err(err) => {
                let _ = registered.remove_entries();
                Err(err)
            }
        }
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
        first_error.map_or(Ok(()), Err)
    }
}
