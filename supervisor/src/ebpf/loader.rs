//! Loading the embedded probe object once per host and sharing it through bpffs pins.
//!
//! The first `guard exec` after boot (or after `guard unload`) loads the object, attaches the
//! exec tracepoint and the network hooks, and pins maps and links under a stamped directory
//! ([`super::pins`]); every later one only opens the pinned maps and writes its sandbox's
//! entries (warm start). Loading happens under a lock so two cold starts cannot attach twice,
//! and into a temporary directory renamed into place, so a half-loaded set is never used.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use aya::maps::{HashMap, HashOfMaps, LpmTrie, Map, MapData, RingBuf};
use aya::programs::links::{CgroupAttachMode, FdLink};
use aya::programs::{CgroupSockAddr, Lsm, TracePoint};
use aya::{Ebpf, EbpfLoader};
use guard_common::policy::{ExecKey, Net4Key, Net6Key, PortRules};
use guard_common::{SandboxPolicy, SandboxState, names};

use super::events::{EventError, ProbeEvent, parse_record};
use super::pins::{self, LoadLock};
use super::{EbpfError, tracefs};
use crate::host::btf;

/// The probe object built by `build.rs` from `ebpf-probes/guard-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard-probes"));
/// Its version stamp, computed by `build.rs` so no start-up pays for hashing it.
static OBJECT_STAMP: &str = include_str!(concat!(env!("OUT_DIR"), "/guard-probes.stamp"));

/// The embedded probe object (also used by `host::bpf` to try each program type).
pub fn object_bytes() -> &'static [u8] {
    OBJECT
}

/// The cgroup `sock_addr` programs attached below guard's cgroup.
const NETWORK_PROGRAMS: [&str; 6] = [
    names::CONNECT4,
    names::CONNECT6,
    names::SENDMSG4,
    names::SENDMSG6,
    names::BIND4,
    names::BIND6,
];

/// The maps a sandbox writes its entries into.
const SHARED_MAPS: [&str; 7] = [
    names::SANDBOXES,
    names::SANDBOX_STATE,
    names::NET4,
    names::NET6,
    names::EXEC_ALLOW,
    names::EVENT_RINGS,
    names::PROBE_ERRORS,
];

/// How this process got the probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Loaded, attached and pinned them.
    Cold,
    /// Opened the pins another guard left.
    Warm,
}

/// Handles to the shared maps of the pinned probes.
pub struct Probes {
    pub start: Start,
    pub pin_dir: PathBuf,
    pub(super) sandboxes: HashMap<MapData, u64, SandboxPolicy>,
    pub(super) state: HashMap<MapData, u64, SandboxState>,
    pub(super) net4: LpmTrie<MapData, Net4Key, PortRules>,
    pub(super) net6: LpmTrie<MapData, Net6Key, PortRules>,
    pub(super) exec_allow: HashMap<MapData, ExecKey, u32>,
    pub(super) rings: HashOfMaps<MapData, u64, RingBuf<MapData>>,
}

impl Probes {
    /// Opens the probes pinned for this object and `guard_cgroup` (the cgroup2 directory every
    /// sandbox cgroup is created in), loading and pinning them first if they are not there.
    ///
    /// Needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN for bpffs/tracefs).
    ///
    /// # Minimum kernel version
    ///
    /// 5.9 (ring buffers as inner maps; BPF links for cgroups 5.7, for perf events 5.15 —
    /// older kernels fail here and the profile decides whether that is acceptable).
    pub fn open_or_load(guard_cgroup: &Path) -> Result<Self, EbpfError> {
        let guard_cgroup_id = super::cgroup_id(guard_cgroup)?;
        let dir = pins::pin_dir(OBJECT_STAMP, guard_cgroup_id);
        if let Ok(probes) = Self::open(&dir, Start::Warm) {
            return Ok(probes);
        }
        pins::ensure_bpffs()?;
        let _lock = LoadLock::acquire()?;
        // Another guard may have finished loading while this one waited for the lock.
        if let Ok(probes) = Self::open(&dir, Start::Warm) {
            return Ok(probes);
        }
        load_and_pin(&dir, guard_cgroup)?;
        Self::open(&dir, Start::Cold)
    }

    /// Opens the pinned maps in `dir`.
    fn open(dir: &Path, start: Start) -> Result<Self, EbpfError> {
        Ok(Self {
            start,
            pin_dir: dir.to_path_buf(),
            sandboxes: open_pinned(dir, names::SANDBOXES)?,
            state: open_pinned(dir, names::SANDBOX_STATE)?,
            net4: open_pinned(dir, names::NET4)?,
            net6: open_pinned(dir, names::NET6)?,
            exec_allow: open_pinned(dir, names::EXEC_ALLOW)?,
            rings: open_pinned(dir, names::EVENT_RINGS)?,
        })
    }
}

/// Opens the map pinned as `dir/name` as the typed map `T`.
fn open_pinned<T>(dir: &Path, name: &'static str) -> Result<T, EbpfError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let path = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|source| EbpfError::OpenPin {
        path: path.clone(),
        source,
    })?;
    let map = Map::from_map_data(data).map_err(|source| EbpfError::MapType { name, source })?;
    T::try_from(map).map_err(|source| EbpfError::MapType { name, source })
}

/// Loads the object, attaches every probe and pins maps and links into `dir`.
fn load_and_pin(dir: &Path, guard_cgroup: &Path) -> Result<(), EbpfError> {
    let offsets = btf::vmlinux_offsets().map_err(EbpfError::Btf)?;
    let mut ebpf = EbpfLoader::new()
        .override_global(names::KERNEL_OFFSETS, &offsets, true)
        .load(OBJECT)
        .map_err(EbpfError::LoadObject)?;

    // bpffs refuses names with a dot in them.
    let staging = PathBuf::from(format!("{}-loading-{}", dir.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = attach_and_pin(&mut ebpf, &staging, guard_cgroup).and_then(|()| {
        std::fs::rename(&staging, dir).map_err(|source| EbpfError::Pin {
            path: dir.to_path_buf(),
            source,
        })
    });
    if result.is_err() {
        // Unpinning what was pinned detaches it again once this process drops its handles.
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn attach_and_pin(ebpf: &mut Ebpf, staging: &Path, guard_cgroup: &Path) -> Result<(), EbpfError> {
    std::fs::create_dir_all(staging).map_err(|source| EbpfError::Pin {
        path: staging.to_path_buf(),
        source,
    })?;
    let pin_err = |path: PathBuf| {
        move |source: aya::pin::PinError| EbpfError::Pin {
            path,
            source: std::io::Error::other(source.to_string()),
        }
    };
    for name in SHARED_MAPS {
        let path = staging.join(name);
        ebpf.map(name)
            .ok_or(EbpfError::MissingMap(name))?
            .pin(&path)
            .map_err(pin_err(path.clone()))?;
    }

    // The exec tracepoint: global, it filters by the SANDBOXES map itself.
    tracefs::ensure_mounted()?;
    let name = names::EXEC_TRACEPOINT;
    let program: &mut TracePoint = typed_program(ebpf, name)?;
    program
        .load()
        .map_err(|source| EbpfError::LoadProgram { name, source })?;
    let link_id = program
        .attach("sched", "sched_process_exec")
        .map_err(|source| EbpfError::AttachProgram { name, source })?;
    let link = program
        .take_link(link_id)
        .map_err(|source| EbpfError::AttachProgram { name, source })?;
    pin_link(link, name, staging)?;

    // The network hooks: attached to guard's cgroup, so they run for sockets of sandboxes only.
    let cgroup = std::fs::File::open(guard_cgroup).map_err(|source| EbpfError::CgroupId {
        path: guard_cgroup.to_path_buf(),
        source,
    })?;
    for name in NETWORK_PROGRAMS {
        let program: &mut CgroupSockAddr = typed_program(ebpf, name)?;
        program
            .load()
            .map_err(|source| EbpfError::LoadProgram { name, source })?;
        // A BPF link (what aya creates on 5.7+) must be attached without flags; the kernel
        // always lets links coexist with other programs on the cgroup, so guard's hooks never
        // displace anyone else's.
        let link_id = program
            .attach(&cgroup, CgroupAttachMode::Single)
            .map_err(|source| EbpfError::AttachProgram { name, source })?;
        let link = program
            .take_link(link_id)
            .map_err(|source| EbpfError::AttachProgram { name, source })?;
        pin_link(link, name, staging)?;
    }

    // BPF LSM, where this kernel allows it: refuses a forbidden exec with EPERM before it
    // happens. Optional: the tracepoint above enforces by killing where LSM does not load.
    if let Err(err) = attach_lsm(ebpf, staging) {
        tracing_note(&format!("BPF LSM exec hook not used: {err}"));
    }
    Ok(())
}

/// The program `name` of the object, as its type `T`.
fn typed_program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, EbpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(EbpfError::MissingProgram(name))?
        .try_into()
        .map_err(|source| EbpfError::ProgramType { name, source })
}

/// Loads, attaches and pins the BPF LSM exec hook.
fn attach_lsm(ebpf: &mut Ebpf, staging: &Path) -> Result<(), EbpfError> {
    let name = names::LSM_BPRM_CHECK;
    let btf = aya::Btf::from_sys_fs().map_err(EbpfError::AyaBtf)?;
    let program: &mut Lsm = typed_program(ebpf, name)?;
    program
        .load(names::LSM_BPRM_CHECK_HOOK, &btf)
        .map_err(|source| EbpfError::LoadProgram { name, source })?;
    let link_id = program
        .attach()
        .map_err(|source| EbpfError::AttachProgram { name, source })?;
    let link = program
        .take_link(link_id)
        .map_err(|source| EbpfError::AttachProgram { name, source })?;
    pin_link(link, name, staging)
}

/// Whether the pinned probes in `dir` include the BPF LSM exec hook.
pub fn lsm_attached(dir: &Path) -> bool {
    dir.join(format!("link_{}", names::LSM_BPRM_CHECK)).exists()
}

/// A note for whoever debugs a host: guard has no logger in `guard exec` (its stderr belongs
/// to the tool's user), so this goes to stderr only when GUARD_DEBUG is set.
fn tracing_note(message: &str) {
    if std::env::var_os("GUARD_DEBUG").is_some() {
        eprintln!("guard: debug: {message}");
    }
}

/// Pins the link of program `name` as `staging/link_<name>`: the pin keeps it attached after
/// this process exits.
fn pin_link<L>(link: L, name: &'static str, staging: &Path) -> Result<(), EbpfError>
where
    FdLink: TryFrom<L>,
    <FdLink as TryFrom<L>>::Error: std::error::Error + Send + Sync + 'static,
{
    let link = FdLink::try_from(link).map_err(|source| EbpfError::LinkPin {
        name,
        source: Box::new(source),
    })?;
    let path = staging.join(format!("link_{name}"));
    link.pin(&path).map_err(|source| EbpfError::Pin {
        path,
        source: std::io::Error::other(source.to_string()),
    })?;
    Ok(())
}

/// One sandbox's ring buffer: created by its supervisor, registered in `EVENT_RINGS` under the
/// sandbox's cgroup id, read only by that supervisor.
pub struct EventRing {
    ring: RingBuf<MapData>,
}

impl EventRing {
    /// A new, empty ring of the size the probes' template expects.
    pub fn create() -> Result<Self, EbpfError> {
        let obj = aya_obj::Map::new_from_params(
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
            0,
            0,
            names::EVENT_RING_BYTES,
            0,
        );
        let data = MapData::create(obj, "guard_events", None).map_err(EbpfError::CreateRing)?;
        let ring = RingBuf::try_from(Map::RingBuf(data)).map_err(EbpfError::CreateRing)?;
        Ok(Self { ring })
    }

    pub(super) fn ring(&self) -> &RingBuf<MapData> {
        &self.ring
    }

    /// The next record, or `None` when the ring is empty right now. Never blocks.
    pub fn next_event(&mut self) -> Option<Result<ProbeEvent, EventError>> {
        let item = self.ring.next()?;
        Some(parse_record(&item))
    }

    /// The ring's fd: readable (POLLIN) when records are waiting.
    pub fn raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

impl AsFd for EventRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}
