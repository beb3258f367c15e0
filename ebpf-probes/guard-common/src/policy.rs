//! Values of the `SANDBOXES` map: what the probes do for one watched cgroup.

/// Policy flag: report every exec in this cgroup to the ring buffer.
pub const POLICY_REPORT_EXEC: u32 = 1 << 0;

/// Per-sandbox policy, keyed by the sandbox's cgroup v2 id in the `SANDBOXES` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SandboxPolicy {
    /// guard's id for the sandbox, copied into every event's header.
    pub sandbox_id: u64,
    /// `POLICY_*` bits.
    pub flags: u32,
    /// Explicit padding so the layout has no hidden bytes.
    pub reserved: u32,
}

const _: () = assert!(size_of::<SandboxPolicy>() == 16);

// SAFETY: `#[repr(C)]`, no implicit padding (asserted above), every bit pattern valid.
#[cfg(feature = "user")]
unsafe impl aya::Pod for SandboxPolicy {}
