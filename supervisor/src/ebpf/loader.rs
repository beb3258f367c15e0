//! Loading the embedded probe object once per host and sharing it through bpffs pins.
//!
//! The first `guard exec` after boot (or after `guard unload`) loads the object, attaches the
//! exec tracepoint and the network hooks, and pins maps and links under a stamped directory
//! ([`super::pins`]); every later one only opens the pinned maps and writes its sandbox's
//! entries (warm start). Loading happens under a lock so two cold starts cannot attach twice,
//! and into a temporary directory renamed into place, so a half-loaded set is never used.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use aya::maps::{ArrayOfMaps, HashMap, LpmTrie, Map, MapData, RingBuf};
use aya::programs::links::{CgroupAttachMode, FdLink};
use aya::programs::{CgroupSockAddr, Lsm, TracePoint};
use aya::{Ebpf, EbpfLoader};
use guard_common::policy::{
    ExecKey, LearnedKey, LearnedValue, Net4Key, Net6Key, PortRules, ScriptKey, UnixKey,
};
use guard_common::{SandboxPolicy, SandboxState, names};

use super::events::{EventError, ProbeEvent, parse_record};
use super::pins::{self, LoadLock};
use super::{EbpfError, tracefs};
use crate::host::bpf as host_bpf;
use crate::host::btf::{self, VmlinuxBtf};
use crate::host::offsets_cache::OffsetsCache;

/// The probe object built by `build.rs` from `ebpf-probes/guard-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard-probes"));
/// Its version stamp, computed by `build.rs` so no start-up pays for hashing it.
pub(super) static OBJECT_STAMP: &str =
    include_str!(concat!(env!("OUT_DIR"), "/guard-probes.stamp"));

/// The embedded probe object (also used by `host::bpf` to try each program type).
pub fn object_bytes() -> &'static [u8] {
    OBJECT
}

/// The cgroup `sock_addr` programs attached below guard's cgroup.
const NETWORK_PROGRAMS: [&str; 10] = [
    names::CONNECT4,
    names::CONNECT6,
    names::SENDMSG4,
    names::SENDMSG6,
    names::BIND4,
    names::BIND6,
    names::RECVMSG4,
    names::RECVMSG6,
    names::GETPEERNAME4,
    names::GETPEERNAME6,
];

/// The maps a sandbox writes its entries into.
const SHARED_MAPS: [&str; 11] = [
    names::SANDBOXES,
    names::LEARNED,
    names::UNIX_PATHS,
    // Not shared state: the unix hooks' scratch slot, pinned so the hooks loaded by hand
    // (`unix_hooks`) find it like every other map they use.
    names::UNIX_SCRATCH,
    names::SANDBOX_STATE,
    names::NET4,
    names::NET6,
    names::EXEC_ALLOW,
    names::SCRIPTS,
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
    pub(super) scripts: HashMap<MapData, ScriptKey, u32>,
    pub(super) learned: HashMap<MapData, LearnedKey, LearnedValue>,
    pub(super) unix_paths: HashMap<MapData, UnixKey, u32>,
    /// The ring pool ([`super::ring_pool`]).
    pub(super) rings: ArrayOfMaps<MapData, RingBuf<MapData>>,
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
    pub(crate) fn open(dir: &Path, start: Start) -> Result<Self, EbpfError> {
        Ok(Self {
            start,
            pin_dir: dir.to_path_buf(),
            sandboxes: open_pinned(dir, names::SANDBOXES)?,
            state: open_pinned(dir, names::SANDBOX_STATE)?,
            net4: open_pinned(dir, names::NET4)?,
            net6: open_pinned(dir, names::NET6)?,
            exec_allow: open_pinned(dir, names::EXEC_ALLOW)?,
            scripts: open_pinned(dir, names::SCRIPTS)?,
            learned: open_pinned(dir, names::LEARNED)?,
            unix_paths: open_pinned(dir, names::UNIX_PATHS)?,
            rings: open_pinned(dir, names::EVENT_RINGS)?,
        })
    }
}

/// The `LEARNED` map of the probes pinned in `dir`, for a sandbox's DNS gate.
pub fn open_learned(dir: &Path) -> Result<HashMap<MapData, LearnedKey, LearnedValue>, EbpfError> {
    open_pinned(dir, names::LEARNED)
}

/// Opens the map pinned as `dir/name` as the typed map `T`.
pub(super) fn open_pinned<T>(dir: &Path, name: &'static str) -> Result<T, EbpfError>
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
    // The kernel's BTF, mapped at most once per load and only if something needs it.
    let mut vmlinux = None;
    // Cached per kernel build, so only the first load after boot parses BTF for them.
    let mut compute = || btf::vmlinux_offsets(&mut vmlinux);
    let offsets = match OffsetsCache::for_running_kernel() {
        Some(cache) => cache.get_or_compute(compute),
        None => compute(),
    }
    .map_err(EbpfError::Btf)?;
    // No kernel BTF for the loader: it would use it only for CO-RE relocations, and the probes
    // have none (they read kernel structs at the offsets above; a unit test keeps it so).
    let mut ebpf = loader_without_btf()
        .btf(None)
        .override_global(names::KERNEL_OFFSETS, &offsets, true)
        .load(OBJECT)
        .map_err(EbpfError::LoadObject)?;

    // bpffs refuses names with a dot in them.
    let staging = PathBuf::from(format!("{}-loading-{}", dir.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = attach_and_pin(&mut ebpf, &staging, guard_cgroup, &mut vmlinux).and_then(|()| {
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

/// An `EbpfLoader` that has not read the kernel's BTF.
///
/// aya 0.14's `EbpfLoader::new()` reads and parses `/sys/kernel/btf/vmlinux` whatever the
/// loader is later told (aya issue #1172; later aya releases parse it only when an object needs
/// it, but they need a newer compiler than this project's). For guard that parse was most of a
/// cold start's user-space work and of its peak memory above a warm start's (about 10 ms of CPU,
/// 1,350 page-sized reads and 11 MiB of heap on 6.18). So the loader is made on a short-lived thread that has its own root directory
/// (`unshare(CLONE_FS)`, then `chroot` to guard's run directory, where no `sys/kernel/btf`
/// exists): the read fails at `open` and the loader starts without BTF. The process's root
/// and working directory are untouched; the thread is gone before anything else happens.
/// Where that thread cannot be set up, the loader is made the ordinary way: slower, same result.
/// That is the case for the daemon under `packaging/systemd/guard.service`, whose capability
/// bounding set has no CAP_SYS_CHROOT; it loads the probes once per boot, so it keeps that set.
fn loader_without_btf() -> EbpfLoader<'static> {
    let isolated = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Option<EbpfLoader<'static>> {
                use nix::sched::{CloneFlags, unshare};
                unshare(CloneFlags::CLONE_FS).ok()?;
                nix::unistd::chroot(pins::RUN_DIR).ok()?;
                nix::unistd::chdir("/").ok()?;
                Some(EbpfLoader::new())
            })
            .join()
            .ok()
            .flatten()
    });
    isolated.unwrap_or_else(|| {
        tracing_note("the probe loader parses the kernel's BTF: no thread of its own root");
        EbpfLoader::new()
    })
}

fn attach_and_pin(
    ebpf: &mut Ebpf,
    staging: &Path,
    guard_cgroup: &Path,
    vmlinux: &mut Option<VmlinuxBtf>,
) -> Result<(), EbpfError> {
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

    // The pool's first ring, stored while the verifier checks the programs below: storing a
    // ring in the map of maps waits for an RCU grace period (~10 ms), which then overlaps the
    // loading instead of adding to the first sandbox's start. Not needed for correctness (a
    // sandbox fills an empty slot itself), so a failure here is only noted.
    std::thread::scope(|scope| {
        let prefill = scope.spawn(|| super::ring_pool::prefill_first_slot(staging));
        let attached = attach_programs(ebpf, staging, guard_cgroup, vmlinux);
        match prefill.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing_note(&format!("ring pool not prefilled: {err}")),
            Err(_) => tracing_note("ring pool not prefilled: the thread panicked"),
        }
        attached
    })
}

/// Loads and attaches every program of the object and pins their links into `staging`.
fn attach_programs(
    ebpf: &mut Ebpf,
    staging: &Path,
    guard_cgroup: &Path,
    vmlinux: &mut Option<VmlinuxBtf>,
) -> Result<(), EbpfError> {
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

    // The unix socket hooks, where this kernel has them (6.7+): without them a profile with
    // unix socket paths is refused (or runs with the gap its allow_weaker accepts).
    if let Err(why) = super::unix_hooks::attach(OBJECT, staging, &cgroup, vmlinux) {
        tracing_note(&format!("unix socket hooks not used: {why}"));
    }

    // BPF LSM, where this kernel allows it: refuses a forbidden exec with EPERM before it
    // happens. Optional: the tracepoint above enforces by killing where LSM does not load.
    // Where `bpf` is not an active LSM it cannot work, so nothing is tried.
    if host_bpf::lsm_listed() == Some(false) {
        tracing_note("BPF LSM exec hook not used: bpf is not an active LSM");
        return Ok(());
    }
    if let Err(err) = attach_lsm(ebpf, staging, vmlinux) {
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
fn attach_lsm(
    ebpf: &mut Ebpf,
    staging: &Path,
    vmlinux: &mut Option<VmlinuxBtf>,
) -> Result<(), EbpfError> {
    let name = names::LSM_BPRM_CHECK;
    let blob = btf::vmlinux(vmlinux).map_err(EbpfError::Btf)?;
    // Whether this kernel loads LSM programs at all, asked with a two-instruction program
    // attached to the same hook, before aya parses the whole BTF (~10 MiB of heap) for it.
    let hook = format!("bpf_lsm_{}", names::LSM_BPRM_CHECK_HOOK);
    let hook_id = btf::Btf::parse(blob.as_slice())
        .map_err(EbpfError::Btf)?
        .func_id(&hook)
        .ok_or(EbpfError::Btf(btf::BtfError::NoFunc(hook)))?;
    host_bpf::lsm_program_loads(hook_id).map_err(|source| EbpfError::LsmRefused { source })?;
    let btf =
        aya::Btf::parse(blob.as_slice(), aya::Endianness::default()).map_err(EbpfError::AyaBtf)?;
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

/// One sandbox's ring buffer: a slot of the `EVENT_RINGS` pool ([`super::ring_pool`]), read
/// only by the supervisor that claimed the slot.
pub struct EventRing {
    ring: RingBuf<MapData>,
    /// The cgroup whose records this reader keeps.
    owner_cgroup: u64,
    /// Records of other cgroups skipped so far (a previous owner's stragglers).
    foreign: u64,
}

impl EventRing {
    /// A new, empty ring of the size the probes' template expects, read for `owner_cgroup`.
    pub fn create(owner_cgroup: u64) -> Result<Self, EbpfError> {
        let obj = aya_obj::Map::new_from_params(
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
            0,
            0,
            names::EVENT_RING_BYTES,
            0,
        );
        let data = MapData::create(obj, "guard_events", None).map_err(EbpfError::CreateRing)?;
        let ring = RingBuf::try_from(Map::RingBuf(data)).map_err(EbpfError::CreateRing)?;
        Ok(Self::from_pool(ring, owner_cgroup))
    }

    /// A ring taken from the pool, read for `owner_cgroup`.
    pub(super) fn from_pool(ring: RingBuf<MapData>, owner_cgroup: u64) -> Self {
        Self {
            ring,
            owner_cgroup,
            foreign: 0,
        }
    }

    /// Throws away every record waiting in the ring: they belong to an earlier owner of the
    /// slot, whose supervisor is gone.
    pub(super) fn discard_pending(&mut self) {
        while self.ring.next().is_some() {}
    }

    /// Records of other cgroups that were skipped.
    pub fn foreign_records(&self) -> u64 {
        self.foreign
    }

    pub(super) fn ring(&self) -> &RingBuf<MapData> {
        &self.ring
    }

    /// The next record of the owner's cgroup, or `None` when the ring is empty right now.
    /// Never blocks. Records of another cgroup (processes of a slot's previous owner that ran
    /// on until its sentinel killed them) are skipped and counted: they are not this sandbox's
    /// evidence.
    pub fn next_event(&mut self) -> Option<Result<ProbeEvent, EventError>> {
        loop {
            let item = self.ring.next()?;
            let event = parse_record(&item);
            match &event {
                Ok(event) if event.header().cgroup_id != self.owner_cgroup => self.foreign += 1,
                _ => return Some(event),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The contents of the ELF section `wanted` of a little-endian ELF64 object.
    fn elf_section<'a>(elf: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
        let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
        let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
        let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
        let (shoff, shentsize, shnum, shstrndx) =
            (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
        let header = |i: usize| shoff + i * shentsize;
        let names = u64_at(header(shstrndx) + 0x18);
        (0..shnum).find_map(|i| {
            let name = &elf[names + u32_at(header(i))..];
            let name = &name[..name.iter().position(|&b| b == 0)?];
            (name == wanted.as_bytes()).then(|| {
                let (offset, size) = (u64_at(header(i) + 0x18), u64_at(header(i) + 0x20));
                &elf[offset..offset + size]
            })
        })
    }

    /// The loader is given no kernel BTF, which is only right while the probes have no CO-RE
    /// relocations: with some, aya would leave them unrelocated instead of failing.
    #[test]
    fn the_probes_have_no_core_relocations() {
        let ext = elf_section(OBJECT, ".BTF.ext").expect("the object has .BTF.ext");
        // struct btf_ext_header: magic, version, flags, hdr_len, func/line info offsets and
        // lengths, then (when hdr_len reaches it) core_relo_off, core_relo_len.
        let hdr_len = u32::from_le_bytes(ext[4..8].try_into().unwrap());
        if hdr_len >= 32 {
            let core_relo_len = u32::from_le_bytes(ext[28..32].try_into().unwrap());
            assert_eq!(
                core_relo_len, 0,
                "the probes now have CO-RE relocations: give EbpfLoader the kernel's BTF"
            );
        }
    }
}
