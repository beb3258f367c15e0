//! Entries of sandboxes that are gone, removed from the shared maps.
//!
//! A sandbox whose supervisor died (a killed daemon's worker) is killed by its sentinel, but its
//! policy, state and rule entries stay in the pinned maps: only the supervisor knows them
//! to unregister. Every key carries the sandbox's cgroup id, and cgroup ids are never reused, so
//! entries whose cgroup no longer exists are dead weight. They are removed by the sentinel of a
//! killed `guard exec` once it has removed the sandbox's cgroup, by the daemon when it starts
//! (after killing orphaned sandboxes), and by any sandbox start that finds a map full (whose
//! sentinel was killed too), before it gives up.
//!
//! Read the ids first ([`Probes::sandbox_ids`]), then list the live cgroups, then remove the
//! difference ([`Probes::forget_sandboxes`]): a sandbox's cgroup exists before its entries are
//! written, so an id seen in the maps and missing from a later listing is really gone, while a
//! sandbox starting meanwhile is either in the listing or not among the ids read.

use std::collections::BTreeSet;

use aya::maps::MapError;

use super::{EbpfError, Probes};

/// Why dead sandboxes' entries could not be swept.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("listing the live sandbox cgroups: {0}")]
    Cgroup(String),
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
}

/// The cgroup ids of the sandboxes that exist now, as the caller finds them (the cgroup tree is
/// the sandbox layer's business; the probes only compare ids).
pub type LiveCgroups<'a> = &'a dyn Fn() -> Result<BTreeSet<u64>, String>;

impl Probes {
    /// Removes the entries of every cgroup that has entries in the maps but no longer exists;
    /// returns how many such cgroups there were. Only dead cgroups are touched, so this is safe
    /// whoever else (another daemon, another checkout's guard) uses the same probes.
    pub fn forget_dead_sandboxes(&mut self, live: LiveCgroups<'_>) -> Result<usize, SweepError> {
        // Ids first, live cgroups second (see the module documentation).
        let with_entries = self.sandbox_ids();
        let live = live().map_err(SweepError::Cgroup)?;
        let dead: BTreeSet<u64> = with_entries.difference(&live).copied().collect();
        self.forget_sandboxes(&dead)?;
        Ok(dead.len())
    }

    /// The cgroup ids that have any entry in the maps.
    pub fn sandbox_ids(&self) -> BTreeSet<u64> {
        let mut ids: BTreeSet<u64> = self.sandboxes.keys().filter_map(Result::ok).collect();
        ids.extend(self.state.keys().filter_map(Result::ok));
        ids.extend(
            self.net4
                .keys()
                .filter_map(Result::ok)
                .map(|k| u64::from_ne_bytes(k.data().cgroup_id)),
        );
        ids.extend(
            self.net6
                .keys()
                .filter_map(Result::ok)
                .map(|k| u64::from_ne_bytes(k.data().cgroup_id)),
        );
        ids.extend(
            self.scripts
                .keys()
                .filter_map(Result::ok)
                .map(|k| k.cgroup_id),
        );
        ids.extend(
            self.exec_allow
                .keys()
                .filter_map(Result::ok)
                .map(|k| k.cgroup_id),
        );
        ids.extend(
            self.learned
                .keys()
                .filter_map(Result::ok)
                .map(|k| k.cgroup_id),
        );
        ids
    }

    /// Removes every entry of the cgroups `ids`, the policy first, so the probes never see a
    /// policy whose rules are partly gone. The cgroups are gone, so nothing runs in them.
    pub fn forget_sandboxes(&mut self, ids: &BTreeSet<u64>) -> Result<(), EbpfError> {
        let mut first_error = None;
        let mut note = |cgroup_id: u64, result: Result<(), MapError>| {
            if let Err(source) = super::removed(result) {
                first_error.get_or_insert(EbpfError::RemoveEntry { cgroup_id, source });
            }
        };
        for &id in ids {
            note(id, self.sandboxes.remove(&id));
            note(id, self.state.remove(&id));
        }
        let net4: Vec<_> = self.net4.keys().filter_map(Result::ok).collect();
        for key in net4 {
            let id = u64::from_ne_bytes(key.data().cgroup_id);
            if ids.contains(&id) {
                note(id, self.net4.remove(&key));
            }
        }
        let net6: Vec<_> = self.net6.keys().filter_map(Result::ok).collect();
        for key in net6 {
            let id = u64::from_ne_bytes(key.data().cgroup_id);
            if ids.contains(&id) {
                note(id, self.net6.remove(&key));
            }
        }
        let scripts: Vec<_> = self.scripts.keys().filter_map(Result::ok).collect();
        for key in scripts {
            if ids.contains(&key.cgroup_id) {
                note(key.cgroup_id, self.scripts.remove(&key));
            }
        }
        let exec: Vec<_> = self.exec_allow.keys().filter_map(Result::ok).collect();
        for key in exec {
            if ids.contains(&key.cgroup_id) {
                note(key.cgroup_id, self.exec_allow.remove(&key));
            }
        }
        let unix: Vec<_> = self.unix_paths.keys().filter_map(Result::ok).collect();
        for key in unix {
            if ids.contains(&key.cgroup_id) {
                note(key.cgroup_id, self.unix_paths.remove(&key));
            }
        }
        let learned: Vec<_> = self.learned.keys().filter_map(Result::ok).collect();
        for key in learned {
            if ids.contains(&key.cgroup_id) {
                note(key.cgroup_id, self.learned.remove(&key));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Removes the entries of dead sandboxes from the probes of this build, if they are pinned
/// (never loads them). What the sentinel of a killed `guard exec` calls once its sandbox's
/// cgroup is gone.
pub fn forget_dead_if_pinned(
    guard_cgroup: &std::path::Path,
    live: LiveCgroups<'_>,
) -> Result<usize, SweepError> {
    let dir = super::pins::pin_dir(super::loader::OBJECT_STAMP, super::cgroup_id(guard_cgroup)?);
    match Probes::open(&dir, super::Start::Warm) {
        Ok(mut probes) => probes.forget_dead_sandboxes(live),
        Err(_) => Ok(0),
    }
}
