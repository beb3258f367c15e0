//! Event records the probes write to the `EVENTS` ring buffer.
//!
//! Every record is an [`Event<T>`]: an [`EventHeader`] first (so userspace can read the type
//! before it knows the payload), then a payload chosen by [`EventType`].

/// Length of the filename buffer of an exec event, including the terminating NUL.
/// Longer paths are truncated; the header's flags say so.
pub const FILENAME_LEN: usize = 256;
/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// What a record is. Numbers are grouped in reserved ranges so families can grow without
/// renumbering: 1-99 process, 100-199 network, 200-299 policy decisions, 1000+ probe diagnostics.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A process in a watched cgroup executed a new image (`sched_process_exec`).
    Exec = 1,
}

impl EventType {
    /// The type for a raw number read from a record, `None` for numbers this build does not know
    /// (a newer probe object, or a corrupted record).
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Exec),
            _ => None,
        }
    }
}

/// Header flag: the filename did not fit in [`FILENAME_LEN`] bytes and was cut.
pub const FLAG_TRUNCATED: u32 = 1 << 0;
/// Header flag: the probe killed the process (a policy decision or a fail-closed error).
pub const FLAG_KILLED: u32 = 1 << 1;

/// Common first part of every record.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventType`] number.
    pub etype: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the probe ran.
    pub ktime_ns: u64,
    /// cgroup v2 id (the inode number of the cgroup2 directory) of the task.
    pub cgroup_id: u64,
    /// Process id as userspace sees it (the kernel's tgid).
    pub pid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    /// Sandbox id from the watched cgroup's [`crate::SandboxPolicy`].
    pub sandbox_id: u64,
}

/// A record: header first, then the payload.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<T> {
    pub header: EventHeader,
    pub data: T,
}

/// Payload of [`EventType::Exec`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecData {
    /// The filename passed to execve (as the kernel resolved it for `bprm->filename`), NUL
    /// terminated; `filename_len` bytes are meaningful (without the NUL).
    pub filename: [u8; FILENAME_LEN],
    pub filename_len: u32,
    /// The pid before exec (differs from the header pid when a non-leader thread exec'd).
    pub old_pid: u32,
    /// `comm` after exec (the new image's basename, up to 15 bytes).
    pub comm: [u8; COMM_LEN],
}

pub type ExecEvent = Event<ExecData>;

impl ExecData {
    /// The filename bytes without the NUL.
    pub fn filename_bytes(&self) -> &[u8] {
        let len = (self.filename_len as usize).min(FILENAME_LEN);
        let bytes = &self.filename[..len];
        // A string read by the probe includes its NUL in the count; drop it.
        match bytes.iter().position(|&b| b == 0) {
            Some(nul) => &bytes[..nul],
            None => bytes,
        }
    }

    /// `comm` without the NUL padding.
    pub fn comm_bytes(&self) -> &[u8] {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        &self.comm[..end]
    }
}

/// Index into the `PROBE_ERRORS` counters: a step that failed inside a probe.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    /// The ring buffer was full: the event could not be recorded.
    RingBufFull = 0,
    /// Reading the tracepoint's fields or the filename failed.
    ReadTracepoint = 1,
    /// `bpf_send_signal` failed while failing closed.
    SendSignal = 2,
}

/// Number of `PROBE_ERRORS` counters.
pub const PROBE_ERROR_COUNT: u32 = 3;

// The ABI: both sides compile these same assertions, so a layout change cannot go unnoticed.
const _: () = assert!(size_of::<EventHeader>() == 40);
const _: () = assert!(size_of::<ExecData>() == FILENAME_LEN + 8 + COMM_LEN);
const _: () = assert!(size_of::<ExecEvent>() == 40 + 280);
// Ring buffer records are 8-byte aligned; larger alignment cannot be reserved.
const _: () = assert!(align_of::<ExecEvent>() <= 8);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data with no padding (checked by the size assertions above) and
    // no invalid bit patterns.
    unsafe impl aya::Pod for super::EventHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ExecData {}
}
