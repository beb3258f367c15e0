//! The pool of event ring buffers: each running sandbox holds one slot of `EVENT_RINGS`.
//!
//! Why a pool: `EVENT_RINGS` is a map of maps, and the kernel waits for an RCU grace period
//! (about 10 ms on the hosts measured) after every update or deletion in one. Creating a ring
//! per sandbox and putting it in and out of the map cost two grace periods per `guard exec`.
//! With the pool, a slot's ring is created and stored by the first sandbox that uses the slot
//! and stays there; every later sandbox in that slot only claims it, drains what a previous
//! owner may have left, and writes the slot number into its policy.
//!
//! A slot is claimed with an exclusive `flock` on `/run/guard/rings/<pin dir>/<slot>`: the
//! kernel releases it when the owner exits, however it exits. Because a dead owner's processes
//! may still run for a moment (until its sentinel kills them) and still name the slot in their
//! policy, readers keep only records of their own cgroup ([`super::EventRing::next_event`]).
//!
//! The rings cost kernel memory ([`names::EVENT_RING_BYTES`] each) for as many slots as ever
//! ran at once, until `guard unload`.

use std::fs::File;
use std::path::{Path, PathBuf};

use aya::maps::{ArrayOfMaps, MapData, RingBuf};
use guard_common::names;

use super::EbpfError;
use super::loader::{EventRing, Probes, open_pinned};
use super::pins;

/// Where the slot lock files of all probe builds live.
pub const SLOT_LOCK_ROOT: &str = "/run/guard/rings";

/// A claimed slot: the ring in it belongs to this process until the value is dropped.
pub struct RingSlot {
    pub index: u32,
    _lock: File,
}

/// Claims the first free slot of `probes`' pool and returns it with its ring, empty of
/// earlier owners' records. Only the first use of a slot writes the map of maps.
pub fn claim(probes: &mut Probes, owner_cgroup: u64) -> Result<(RingSlot, EventRing), EbpfError> {
    let dir = slot_lock_dir(&probes.pin_dir);
    for index in 0..names::EVENT_RING_SLOTS {
        let Some(lock) = pins::try_lock(&dir.join(index.to_string()))? else {
            continue;
        };
        let slot = RingSlot { index, _lock: lock };
        let ring = match probes.rings.get(&index, 0) {
            Ok(ring) => {
                let mut ring = EventRing::from_pool(ring, owner_cgroup);
                ring.discard_pending();
                ring
            }
            // An empty slot: this is its first use.
            Err(err) if super::not_found(&err) => {
                let ring = EventRing::create(owner_cgroup)?;
                probes
                    .rings
                    .set(index, ring.ring(), 0)
                    .map_err(|source| EbpfError::StoreRing {
                        slot: index,
                        source,
                    })?;
                ring
            }
            Err(source) => {
                return Err(EbpfError::OpenRing {
                    slot: index,
                    source,
                });
            }
        };
        return Ok((slot, ring));
    }
    Err(EbpfError::NoFreeRingSlot(names::EVENT_RING_SLOTS))
}

/// Stores a new ring in slot 0 of the `EVENT_RINGS` pinned in `pin_dir`, for probes being
/// loaded and not yet visible to any sandbox (so no slot lock is needed).
pub fn prefill_first_slot(pin_dir: &Path) -> Result<(), EbpfError> {
    let mut rings: ArrayOfMaps<MapData, RingBuf<MapData>> =
        open_pinned(pin_dir, names::EVENT_RINGS)?;
    let ring = EventRing::create(0)?;
    rings
        .set(0, ring.ring(), 0)
        .map_err(|source| EbpfError::StoreRing { slot: 0, source })
}

/// The directory of slot locks for the probes pinned in `pin_dir`: each pinned set of probes has
/// its own `EVENT_RINGS`, so its own slots.
pub fn slot_lock_dir(pin_dir: &Path) -> PathBuf {
    let name = pin_dir.file_name().unwrap_or(pin_dir.as_os_str());
    Path::new(SLOT_LOCK_ROOT).join(name)
}
