//! Map keys and values: what the probes enforce for one watched cgroup.
//!
//! Everything a probe decides is keyed by the sandbox's cgroup v2 id, so sandboxes with different
//! profiles never see each other's rules, and a cgroup these probes do not know is never touched
//! by them (the network hooks, which only run below guard's cgroup, leave it to the build of the
//! probes that registered it; see `guard-ebpf/src/net.rs`).

/// Policy flag: write a record for every exec in this cgroup.
pub const POLICY_REPORT_EXEC: u32 = 1 << 0;
/// Policy flag: check every exec against `EXEC_ALLOW`; kill what is not listed.
pub const POLICY_ENFORCE_EXEC: u32 = 1 << 1;
/// Policy flag: check connect/sendmsg/bind against `NET4`/`NET6`; deny what is not listed.
pub const POLICY_ENFORCE_NET: u32 = 1 << 2;
/// Policy flag: `on_violation.network = "audit"` (or audit mode): a network decision that
/// would deny is recorded and allowed.
pub const POLICY_AUDIT_NET: u32 = 1 << 3;
/// Policy flag: `on_violation.network = "kill"`: a network violation ends the whole sandbox.
pub const POLICY_KILL_ON_NET: u32 = 1 << 4;
/// Policy flag: `on_violation.exec = "kill"`: an exec violation ends the whole sandbox, not
/// only the offending process.
pub const POLICY_KILL_ON_EXEC: u32 = 1 << 5;
/// Policy flag: `on_violation.exec = "audit"` (or audit mode): an exec that would be denied or
/// killed is recorded and allowed.
pub const POLICY_AUDIT_EXEC: u32 = 1 << 6;

/// Per-sandbox policy, keyed by the sandbox's cgroup v2 id in the `SANDBOXES` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SandboxPolicy {
    /// guard's id for the sandbox, copied into every event's header.
    pub sandbox_id: u64,
    /// `POLICY_*` bits.
    pub flags: u32,
    /// `limits.connects_per_minute`; 0 = no limit.
    pub connects_per_minute: u32,
    /// `limits.execs_per_minute`; 0 = no limit.
    pub execs_per_minute: u32,
    /// The sandbox's slot in the `EVENT_RINGS` pool of ring buffers.
    pub ring_slot: u32,
    /// UDP and TCP port of the sandbox's DNS gate on 127.0.0.1; 0 = no gate (then port 53 is
    /// an ordinary destination).
    pub dns_port4: u16,
    /// Port of the gate on ::1; 0 = no IPv6 gate (DNS to an IPv6 server is refused).
    pub dns_port6: u16,
    pub _reserved: u32,
}

/// Port of DNS: every UDP datagram and TCP connect of a sandbox with a gate to this port, at
/// any address, goes to the gate instead.
pub const DNS_PORT: u16 = 53;

/// Key of `LEARNED`: an address the DNS gate learned from a permitted answer for one sandbox.
/// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`), so one map serves both families.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LearnedKey {
    pub cgroup_id: u64,
    pub addr: [u8; 16],
}

/// Value of `LEARNED`: the ports of the rules whose names answered with the address, until
/// `expires_ns` (`bpf_ktime_get_ns`, that is CLOCK_MONOTONIC). Expired entries allow nothing;
/// the gate removes them.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LearnedValue {
    pub expires_ns: u64,
    pub ports: PortRules,
    pub _reserved: u32,
}

/// Value of `GATE_ORIGINS` (keyed by socket cookie): where a socket's DNS traffic was headed
/// before the hooks sent it to the gate, so replies and `getpeername` show that address.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GateOrigin {
    /// As the socket's family spells it (IPv4 in the first four bytes for AF_INET).
    pub addr: [u8; 16],
    /// Host byte order.
    pub port: u16,
    pub family: u16,
    pub _reserved: u32,
}

/// One token bucket. Tokens are counted in units of 1/(60e9) token so refilling needs no
/// division in the probe: one nanosecond adds `per_minute` units, one event costs
/// [`TOKEN_COST`] units, and a full bucket holds `per_minute * TOKEN_COST`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenBucket {
    pub units: u64,
    /// `bpf_ktime_get_ns()` of the last refill; 0 = never used (starts full).
    pub last_ns: u64,
}

/// The units one event takes from a [`TokenBucket`]: the nanoseconds in a minute.
pub const TOKEN_COST: u64 = 60_000_000_000;

/// The highest per-minute rate a bucket counts (profiles asking for more are refused), so
/// `units + elapsed * per_minute` stays far below `u64::MAX`.
pub const MAX_PER_MINUTE: u64 = 1_000_000;

/// Mutable per-sandbox state of the probes, keyed by cgroup id in the `SANDBOX_STATE` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SandboxState {
    pub connects: TokenBucket,
    pub execs: TokenBucket,
    /// Records that could not be written to the sandbox's ring buffer (full or missing).
    pub lost_events: u64,
}

/// Rule kind in a network key: which profile list the entry comes from.
pub const NET_KIND_CONNECT: u32 = 0;
pub const NET_KIND_BIND: u32 = 1;

/// Bits of a network key before the address: cgroup id (64) and kind (32). An LPM lookup for
/// an address uses `NET_KEY_FIXED_BITS + 32` (IPv4) or `+ 128` (IPv6) as its prefix length; a
/// rule for `a.b.c.d/n` is stored with `NET_KEY_FIXED_BITS + n`.
pub const NET_KEY_FIXED_BITS: u32 = 96;

/// The data of an `NET4` LPM trie key (after the kernel's `prefixlen`). Byte arrays, so the
/// bit order the trie matches on is exactly the byte order here.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Net4Key {
    pub cgroup_id: [u8; 8],
    pub kind: [u8; 4],
    /// The address in network byte order.
    pub addr: [u8; 4],
}

/// The data of an `NET6` LPM trie key.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Net6Key {
    pub cgroup_id: [u8; 8],
    pub kind: [u8; 4],
    pub addr: [u8; 16],
}

/// The most port ranges one network map entry holds.
pub const MAX_PORT_RANGES: usize = 16;

/// An inclusive port range.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// Value of a network map entry: the ports allowed for the addresses under its prefix.
/// Userspace folds the ports of every less specific rule into each entry, because an LPM
/// lookup returns only the longest matching prefix.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortRules {
    pub ranges: [PortRange; MAX_PORT_RANGES],
    /// How many of `ranges` are used.
    pub count: u32,
}

/// Key of `UNIX_PATHS`: a unix socket path one sandbox may connect (or send) to, exactly as
/// the profile lists it (absolute, normalized), zero-padded.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnixKey {
    pub cgroup_id: u64,
    pub path: [u8; crate::event::UNIX_PATH_LEN],
    pub _reserved: [u8; 4],
}

/// Offsets into `struct bpf_sock_addr_kern`, the context the kernel gives unix sock_addr
/// programs, which the unix hooks read with `bpf_probe_read_kernel` (the context's own fields
/// do not include the path). The loader checks them against the kernel's BTF and does not
/// attach the unix hooks where they differ.
pub const SOCK_ADDR_KERN_UADDR: usize = 8;
pub const SOCK_ADDR_KERN_UADDRLEN: usize = 32;

/// Key of `EXEC_ALLOW`: a file or directory allowed to be executed (from) in one sandbox.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExecKey {
    pub cgroup_id: u64,
    /// The kernel's `dev_t` of the file's super block (`MKDEV(major, minor)` = major << 20 |
    /// minor), not the userspace `st_dev` encoding.
    pub dev: u64,
    pub ino: u64,
}

/// `EXEC_ALLOW` value: this exact file may be executed.
pub const EXEC_ALLOW_FILE: u32 = 1;
/// `EXEC_ALLOW` value: any file beneath this directory (on the same file system) may be executed.
pub const EXEC_ALLOW_TREE: u32 = 2;

/// Longest absolute script path (with its NUL) a `SCRIPTS` entry can hold; longer listed
/// scripts are refused by the supervisor.
pub const SCRIPT_PATH_LEN: usize = 128;

/// Key of `SCRIPTS`: a listed `#!` script that may run through its (unlisted) interpreter in
/// one sandbox. The exec tracepoint sees the interpreter as the new image and the path the
/// kernel opened the script by (`bprm->filename`), so the key is both: the interpreter's
/// identity and the script's absolute path, NUL-padded.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScriptKey {
    pub cgroup_id: u64,
    /// Interpreter identity, as in [`ExecKey`].
    pub dev: u64,
    pub ino: u64,
    pub path: [u8; SCRIPT_PATH_LEN],
}

/// How many directory levels the exec probe walks up from an executed file looking for an
/// allowed directory. Deeper files are not matched by a directory rule (denied).
pub const EXEC_TREE_DEPTH: u32 = 24;

/// Offsets into kernel structures the exec probe reads, taken from the running kernel's BTF
/// when the probes are loaded (so nothing is baked in for one kernel build). All in bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelOffsets {
    pub task_mm: u32,
    pub mm_exe_file: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub file_inode: u32,
    /// `file.f_path.dentry`.
    pub file_dentry: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub sb_dev: u32,
    pub dentry_parent: u32,
    pub dentry_inode: u32,
    /// `linux_binprm.file` (for the BPF LSM exec hook).
    pub bprm_file: u32,
    /// Non-zero once userspace filled this in; the probe fails closed while it is zero.
    pub valid: u32,
    /// `linux_binprm.filename` (for the BPF LSM `#!` script check).
    pub bprm_filename: u32,
}

const _: () = assert!(size_of::<SandboxPolicy>() == 32);
const _: () = assert!(size_of::<LearnedKey>() == 24);
const _: () = assert!(size_of::<UnixKey>() == 120);
const _: () = assert!(size_of::<LearnedValue>() == 8 + size_of::<PortRules>() + 4);
const _: () = assert!(size_of::<GateOrigin>() == 24);
const _: () = assert!(size_of::<TokenBucket>() == 16);
const _: () = assert!(size_of::<SandboxState>() == 40);
const _: () = assert!(size_of::<Net4Key>() == 16);
const _: () = assert!(size_of::<Net6Key>() == 28);
const _: () = assert!(size_of::<PortRules>() == 4 * MAX_PORT_RANGES + 4);
const _: () = assert!(size_of::<ExecKey>() == 24);
const _: () = assert!(size_of::<KernelOffsets>() == 56);
const _: () = assert!(size_of::<ScriptKey>() == 24 + SCRIPT_PATH_LEN);

#[cfg(feature = "user")]
mod pod {
    // SAFETY (all): `#[repr(C)]`, no implicit padding (sizes asserted above), every bit pattern
    // valid.
    unsafe impl aya::Pod for super::SandboxPolicy {}
    unsafe impl aya::Pod for super::SandboxState {}
    unsafe impl aya::Pod for super::Net4Key {}
    unsafe impl aya::Pod for super::Net6Key {}
    unsafe impl aya::Pod for super::PortRules {}
    unsafe impl aya::Pod for super::ExecKey {}
    unsafe impl aya::Pod for super::ScriptKey {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::LearnedKey {}
    unsafe impl aya::Pod for super::UnixKey {}
    unsafe impl aya::Pod for super::LearnedValue {}
}
