//! Loading the embedded probe object and attaching the exec probe.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use aya::Ebpf;
use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::TracePoint;
use guard_common::event::PROBE_ERROR_COUNT;
use guard_common::{SandboxPolicy, names};

use super::events::{EventError, ProbeEvent, parse_record};
use super::{EbpfError, tracefs};

/// The probe object built by `build.rs` from `ebpf-probes/guard-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/guard-probes"));

/// The embedded probe object (also used by `host::bpf` to try each program type).
pub fn object_bytes() -> &'static [u8] {
    OBJECT
}

/// The loaded, attached probes and their maps.
///
/// Dropping it detaches the programs and closes the maps.
pub struct Probes {
    // Owns the programs and their links; kept alive for as long as the probes should run.
    _ebpf: Ebpf,
    events: RingBuf<MapData>,
    sandboxes: HashMap<MapData, u64, SandboxPolicy>,
    errors: PerCpuArray<MapData, u64>,
}

/// Failure counters of the probes' steps (summed over CPUs), see
/// `guard_common::event::ProbeError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeErrorCounts {
    pub ring_buf_full: u64,
    pub read_tracepoint: u64,
    pub send_signal: u64,
}

impl Probes {
    /// Loads the probe object and attaches the `sched/sched_process_exec` probe. No cgroup is
    /// watched until [`Probes::watch_cgroup`].
    ///
    /// Needs root (CAP_BPF and CAP_PERFMON); mounts tracefs when it is missing.
    ///
    /// # Minimum kernel version
    ///
    /// The minimum kernel version required to use this feature is 5.8 (ring buffer).
    pub fn load() -> Result<Self, EbpfError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(EbpfError::LoadObject)?;

        let name = names::EXEC_TRACEPOINT;
        let program: &mut TracePoint = ebpf
            .program_mut(name)
            .ok_or(EbpfError::MissingProgram(name))?
            .try_into()
            .map_err(|source| EbpfError::ProgramType { name, source })?;
        program
            .load()
            .map_err(|source| EbpfError::LoadProgram { name, source })?;
        tracefs::ensure_mounted()?;
        program
            .attach("sched", "sched_process_exec")
            .map_err(|source| EbpfError::AttachProgram { name, source })?;

        let events = RingBuf::try_from(take_map(&mut ebpf, names::EVENTS)?).map_err(|source| {
            EbpfError::MapType {
                name: names::EVENTS,
                source,
            }
        })?;
        let sandboxes =
            HashMap::try_from(take_map(&mut ebpf, names::SANDBOXES)?).map_err(|source| {
                EbpfError::MapType {
                    name: names::SANDBOXES,
                    source,
                }
            })?;
        let errors =
            PerCpuArray::try_from(take_map(&mut ebpf, names::PROBE_ERRORS)?).map_err(|source| {
                EbpfError::MapType {
                    name: names::PROBE_ERRORS,
                    source,
                }
            })?;
        Ok(Self {
            _ebpf: ebpf,
            events,
            sandboxes,
            errors,
        })
    }

    /// Starts watching the cgroup with v2 id `cgroup_id` (see [`super::cgroup_id`]).
    pub fn watch_cgroup(&mut self, cgroup_id: u64, policy: SandboxPolicy) -> Result<(), EbpfError> {
        self.sandboxes
            .insert(cgroup_id, policy, 0)
            .map_err(|source| EbpfError::WatchCgroup { cgroup_id, source })
    }

    /// Stops watching `cgroup_id`. Not an error when it was not watched.
    pub fn unwatch_cgroup(&mut self, cgroup_id: u64) -> Result<(), EbpfError> {
        match self.sandboxes.remove(&cgroup_id) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(EbpfError::UnwatchCgroup { cgroup_id, source }),
        }
    }

    /// The next record in the ring buffer, or `None` when it is empty right now. Never blocks:
    /// wait for [`Probes::events_fd`] to be readable (poll/epoll) between drains.
    pub fn next_event(&mut self) -> Option<Result<ProbeEvent, EventError>> {
        let item = self.events.next()?;
        Some(parse_record(&item))
    }

    /// Every record available now, without blocking.
    pub fn drain_events(&mut self) -> Vec<Result<ProbeEvent, EventError>> {
        std::iter::from_fn(|| self.next_event()).collect()
    }

    /// The ring buffer's fd: readable (POLLIN) when records are waiting.
    pub fn events_fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }

    /// The failure counters of the probes, summed over CPUs.
    pub fn error_counts(&self) -> Result<ProbeErrorCounts, EbpfError> {
        let mut sums = [0u64; PROBE_ERROR_COUNT as usize];
        for (index, sum) in (0u32..).zip(sums.iter_mut()) {
            let per_cpu = self
                .errors
                .get(&index, 0)
                .map_err(EbpfError::ReadErrorCounters)?;
            *sum = per_cpu.iter().sum();
        }
        let [ring_buf_full, read_tracepoint, send_signal] = sums;
        Ok(ProbeErrorCounts {
            ring_buf_full,
            read_tracepoint,
            send_signal,
        })
    }
}

impl AsFd for Probes {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.events.as_fd()
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, EbpfError> {
    ebpf.take_map(name).ok_or(EbpfError::MissingMap(name))
}
