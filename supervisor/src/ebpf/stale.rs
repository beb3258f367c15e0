//! Entries of sandboxes that are gone, removed from the shared maps.
//!
//! A sandbox whose supervisor died (a killed daemon's worker) is killed by its sentinel, but its
//! policy, state and rule entries stay in the pinned maps: only the supervisor knows them
//! to unregister. Every key carries the sandbox's cgroup id, and cgroup ids are never reused, so
//! entries whose cgroup no longer exists are dead weight. The daemon removes them when it starts,
//! after killing orphaned sandboxes.
//!
//! Read the ids first ([`Probes::sandbox_ids`]), then list the live cgroups, then remove the
//! difference ([`Probes::forget_sandboxes`]): a sandbox's cgroup exists before its entries are
//! written, so an id seen in the maps and missing from a later listing is really gone, while a
//! sandbox starting meanwhile is either in the listing or not among the ids read.

use std::collections::BTreeSet;

use aya::maps::MapError;

use super::{EbpfError, Probes};

impl Probes {
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
        first_error.map_or(Ok(()), Err)
    }
}
