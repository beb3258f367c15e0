//! guard's eBPF probes from userspace: loading them once per host and sharing them through
//! bpffs ([`loader`], [`pins`]), turning a plan into map entries ([`rules`]), registering one
//! sandbox ([`sandbox`]), reading its records ([`events`]) and removing everything
//! ([`unload`]). [`tracefs`] makes the tracepoint ids readable.

pub mod events;
pub mod loader;
pub mod pins;
pub mod ring_pool;
pub mod rules;
pub mod sandbox;
pub mod scripts;
pub mod stale;
pub mod stamp;
pub mod sys;
pub mod tracefs;
pub mod unix_hooks;
pub mod unload;

use std::path::{Path, PathBuf};

pub use events::{EventError, ExecRecord, NetOp, NetRecord, ProbeEvent, UnixRecord};
pub use guard_common::SandboxPolicy;
pub use guard_common::policy::POLICY_REPORT_EXEC;
pub use loader::{EventRing, Probes, Start, object_bytes};
pub use sandbox::{RegisteredSandbox, SandboxEntries};

/// Everything that can fail while loading the probes or talking to their maps, named after the
/// step that failed.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("cannot load the eBPF object (maps and BTF)")]
    LoadObject(#[source] aya::EbpfError),
    #[error("the eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("map {name} has an unexpected type")]
    MapType {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("the eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("program {name} has an unexpected type")]
    ProgramType {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("the kernel refused to load program {name}")]
    LoadProgram {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("cannot attach program {name}")]
    AttachProgram {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("tracefs is not mounted and mounting it at {path} failed")]
    MountTracefs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("this kernel refuses BPF LSM programs")]
    LsmRefused {
        #[source]
        source: std::io::Error,
    },
    #[error("aya cannot read the kernel's BTF (needed to load BPF LSM programs)")]
    AyaBtf(#[source] aya::BtfError),
    #[error("cannot read the kernel's BTF for the exec probe's struct offsets")]
    Btf(#[source] crate::host::btf::BtfError),
    #[error("cannot pin {path} in bpffs")]
    Pin {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open pinned map {path}")]
    OpenPin {
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot turn the link of {name} into a pinnable link")]
    LinkPin {
        name: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot take the probe load lock {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the sandbox's event ring buffer")]
    CreateRing(#[source] aya::maps::MapError),
    #[error("cannot store the new ring buffer in slot {slot} of the probes' ring pool")]
    StoreRing {
        slot: u32,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot open the ring buffer in slot {slot} of the probes' ring pool")]
    OpenRing {
        slot: u32,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("all {0} ring buffer slots are in use: too many sandboxes at once")]
    NoFreeRingSlot(u32),
    #[error("cannot write the policy of cgroup {cgroup_id} into the probes' maps")]
    WriteEntry {
        cgroup_id: u64,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(
        "the eBPF map {map} is full (writing the policy of cgroup {cgroup_id}; entries of \
         sandboxes that no longer exist were removed first): too many sandboxes or rules at \
         once. Stop sandboxes (`guard status`, `guard stop`), or give this profile fewer \
         network/exec rules; once none runs, `guard unload` lets the next start load empty maps"
    )]
    MapFull { map: &'static str, cgroup_id: u64 },
    #[error("cannot remove the policy of cgroup {cgroup_id} from the probes' maps")]
    RemoveEntry {
        cgroup_id: u64,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot stat cgroup directory {path}")]
    CgroupId {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The cgroup v2 id of the cgroup at `dir` (a directory of the cgroup2 mount): the id
/// `bpf_get_current_cgroup_id()` returns for its tasks is the directory's inode number.
///
/// # Minimum kernel version
///
/// cgroup ids equal to inode numbers since 4.18 (kernfs ids), which is also the minimum for
/// `bpf_get_current_cgroup_id`.
pub fn cgroup_id(dir: &Path) -> Result<u64, EbpfError> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(dir)
        .map(|m| m.ino())
        .map_err(|source| EbpfError::CgroupId {
            path: dir.to_path_buf(),
            source,
        })
}

/// Whether `err` says the key (or a map-of-maps slot) holds nothing. aya reports a missing key
/// as `KeyNotFound` for some map types and as an ENOENT syscall error for others (LPM tries,
/// maps of maps), so both are checked here, once, for every caller.
pub(crate) fn not_found(err: &aya::maps::MapError) -> bool {
    match err {
        aya::maps::MapError::KeyNotFound => true,
        aya::maps::MapError::SyscallError(err) => err.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// A map removal whose entry was already gone counts as done.
pub(crate) fn removed(result: Result<(), aya::maps::MapError>) -> Result<(), aya::maps::MapError> {
    match result {
        Err(err) if not_found(&err) => Ok(()),
        other => other,
    }
}
