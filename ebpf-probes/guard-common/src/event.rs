//! Event records the probes write to the `EVENTS` ring buffer.
//!
//! Every record is an [`Event<T>`]: an [`EventHeader`] first (so userspace can read the type
//! before it knows the payload), then a payload chosen by [`EventType`].

/// Length of the filename buffer of an exec event, including the terminating NUL.
/// Longer paths are truncated; the header's flags say so.
pub const FILENAME_LEN: usize = 256;
/// Bytes of the new image's argument area (NUL-separated argv) an exec event carries.
pub const ARGV_LEN: usize = 512;
/// The kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// What a record is. Numbers are grouped in reserved ranges so families can grow without
/// renumbering: 1-99 process, 100-199 network, 1000+ probe diagnostics.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// A process in a watched cgroup executed a new image (`sched_process_exec`).
    Exec = 1,
    /// `connect()` on an IPv4/IPv6 socket (TCP, or UDP setting its peer).
    Connect = 100,
    /// `bind()` of an IPv4/IPv6 socket.
    Bind = 101,
    /// `sendmsg()`/`sendto()` of an unconnected UDP socket to an explicit destination.
    Send = 102,
    /// `connect()` of a unix socket to a path (or abstract name).
    UnixConnect = 110,
    /// `sendmsg()`/`sendto()` of a unix datagram socket to a path (or abstract name).
    UnixSend = 111,
}

impl EventType {
    /// The type for a raw number read from a record, `None` for numbers this build does not know
    /// (a newer probe object, or a corrupted record).
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Exec),
            100 => Some(Self::Connect),
            101 => Some(Self::Bind),
            102 => Some(Self::Send),
            110 => Some(Self::UnixConnect),
            111 => Some(Self::UnixSend),
            _ => None,
        }
    }
}

/// What the probe did ([`EventHeader::verdict`]).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow = 0,
    /// The operation failed with EPERM.
    Deny = 1,
    /// The process was killed (exec: before its first instruction).
    Kill = 2,
    /// Audit mode: it would have been denied, and was allowed.
    Audit = 3,
}

impl Verdict {
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::Allow),
            1 => Some(Self::Deny),
            2 => Some(Self::Kill),
            3 => Some(Self::Audit),
            _ => None,
        }
    }
}

/// Which rule decided ([`EventHeader::rule`]); names are the profile keys.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    None = 0,
    NetworkConnect = 1,
    NetworkBind = 2,
    ProcessExec = 3,
    ConnectsPerMinute = 4,
    ExecsPerMinute = 5,
    /// The probe could not decide (a read or lookup failed) and failed closed.
    ProbeError = 6,
    NetworkUnix = 7,
}

impl Rule {
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::None),
            1 => Some(Self::NetworkConnect),
            2 => Some(Self::NetworkBind),
            3 => Some(Self::ProcessExec),
            4 => Some(Self::ConnectsPerMinute),
            5 => Some(Self::ExecsPerMinute),
            6 => Some(Self::ProbeError),
            7 => Some(Self::NetworkUnix),
            _ => None,
        }
    }
}

/// Header flag: the filename did not fit in [`FILENAME_LEN`] bytes and was cut.
pub const FLAG_TRUNCATED: u32 = 1 << 0;
/// Header flag: the argument area did not fit in [`ARGV_LEN`] bytes and was cut.
pub const FLAG_ARGV_TRUNCATED: u32 = 1 << 1;
/// Header flag: the profile says a violation ends the whole sandbox; the supervisor kills its
/// cgroup when it reads this record.
pub const FLAG_KILL_SANDBOX: u32 = 1 << 2;
/// Header flag: an IPv4 address reached through an IPv6 socket (`::ffff:a.b.c.d`), checked
/// against the IPv4 rules.
pub const FLAG_V4_MAPPED: u32 = 1 << 3;
/// Header flag (network events): DNS to port 53, sent to the sandbox's DNS gate instead of the
/// address in the record (which is where the tool sent it).
pub const FLAG_DNS_GATE: u32 = 1 << 4;
/// Header flag (network events): allowed by an address the DNS gate learned from a permitted
/// answer, not by a listed address.
pub const FLAG_LEARNED: u32 = 1 << 5;

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
    /// A [`Verdict`] number.
    pub verdict: u32,
    /// A [`Rule`] number.
    pub rule: u32,
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
    /// The new image's argument area: the argv strings, each NUL-terminated.
    pub argv: [u8; ARGV_LEN],
    pub filename_len: u32,
    /// Bytes of `argv` that were read.
    pub argv_len: u32,
    /// The pid before exec (differs from the header pid when a non-leader thread exec'd).
    pub old_pid: u32,
    pub reserved: u32,
    /// Identity of the executed file (`mm->exe_file`): kernel `dev_t` and inode number.
    pub dev: u64,
    pub ino: u64,
    /// `comm` after exec (the new image's basename, up to 15 bytes).
    pub comm: [u8; COMM_LEN],
}

pub type ExecEvent = Event<ExecData>;

/// Payload of [`EventType::Connect`], [`EventType::Bind`] and [`EventType::Send`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetData {
    /// IPv4 (first 4 bytes) or IPv6 address, network byte order, as the caller passed it.
    pub addr: [u8; 16],
    /// Host byte order.
    pub port: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...
    pub sock_type: u16,
    pub protocol: u16,
    pub reserved: [u32; 2],
}

pub type NetEvent = Event<NetData>;

/// The kernel's `sizeof(sun_path)`.
pub const UNIX_PATH_LEN: usize = 108;

/// Payload of [`EventType::UnixConnect`] and [`EventType::UnixSend`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixData {
    /// `sun_path` as the caller passed it, cut at its length and at the first NUL (a path) or
    /// whole (an abstract name, first byte 0); zero-padded.
    pub path: [u8; UNIX_PATH_LEN],
    /// Meaningful bytes of `path`.
    pub path_len: u32,
    /// `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_SEQPACKET`.
    pub sock_type: u32,
}

pub type UnixEvent = Event<UnixData>;

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

    /// The argv strings (without their NULs).
    pub fn argv_strings(&self) -> impl Iterator<Item = &[u8]> {
        let len = (self.argv_len as usize).min(ARGV_LEN);
        let area = &self.argv[..len];
        let area = area.strip_suffix(&[0]).unwrap_or(area);
        // An empty area has no strings (split would yield one empty one).
        area.split(|&b| b == 0)
            .take(if len == 0 { 0 } else { usize::MAX })
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
    /// Reading a kernel structure (task, mm, file, inode, dentry) failed.
    ReadKernel = 3,
    /// The kernel offsets were not set by the loader.
    NoOffsets = 4,
    /// A watched sandbox has no ring buffer registered.
    NoRing = 5,
    /// A map update failed (the DNS gate's socket origins).
    MapUpdate = 6,
}

/// Number of `PROBE_ERRORS` counters.
pub const PROBE_ERROR_COUNT: u32 = 7;

// The ABI: both sides compile these same assertions, so a layout change cannot go unnoticed.
const _: () = assert!(size_of::<EventHeader>() == 48);
const _: () = assert!(size_of::<UnixData>() == UNIX_PATH_LEN + 8);
const _: () = assert!(size_of::<ExecData>() == FILENAME_LEN + ARGV_LEN + 16 + 16 + COMM_LEN);
const _: () = assert!(size_of::<ExecEvent>() == 48 + 816);
const _: () = assert!(size_of::<NetData>() == 32);
const _: () = assert!(size_of::<NetEvent>() == 48 + 32);
// Ring buffer records are 8-byte aligned; larger alignment cannot be reserved.
const _: () = assert!(align_of::<ExecEvent>() <= 8);
const _: () = assert!(align_of::<NetEvent>() <= 8);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` data with no padding (checked by the size assertions above) and
    // no invalid bit patterns.
    unsafe impl aya::Pod for super::EventHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ExecData {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::NetData {}
    // SAFETY: header and payload are Pod and the sizes above show no padding between them.
    unsafe impl aya::Pod for super::ExecEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::NetEvent {}
    // SAFETY: as above; the sizes are asserted with the types.
    unsafe impl aya::Pod for super::UnixData {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::UnixEvent {}
}
