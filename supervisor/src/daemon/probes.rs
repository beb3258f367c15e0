//! The daemon's hold on the shared eBPF probes: loaded (or opened) once at start and kept for
//! the daemon's lifetime, so a sandbox start never pays for loading them and `guard unload`
//! cannot pull them away while the daemon serves. Entries of sandboxes that died with an earlier
//! daemon are removed here too.

use crate::ebpf::pins::UsersLock;
use crate::ebpf::{EbpfError, Probes};
use crate::sandbox::cgroup::{self, CgroupError};

/// The probes, and the shared users lock that keeps them loaded.
pub struct HeldProbes {
    pub probes: Probes,
    _users: UsersLock,
}

/// Why the probes could not be held.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("finding guard's cgroup")]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
    #[error("removing the entries of dead sandboxes")]
    Sweep(#[from] crate::ebpf::stale::SweepError),
}

/// Loads or opens the probes and removes the entries of sandboxes that no longer exist; returns
/// the probes and how many dead sandboxes' entries were removed.
pub fn hold() -> Result<(HeldProbes, usize), HoldError> {
    let users = UsersLock::shared()?;
    let mut probes = Probes::open_or_load(&cgroup::guard_cgroup2_dir()?)?;
    let live = || cgroup::live_sandbox_ids().map_err(|e| e.to_string());
    let dead = probes.forget_dead_sandboxes(&live)?;
    Ok((
        HeldProbes {
            probes,
            _users: users,
        },
        dead,
    ))
}
