//! The few raw `bpf(2)` calls guard makes itself, where aya has no API for them: loading a
//! program for an attach type aya does not know (the cgroup unix hooks, the BPF LSM feature
//! probe), creating a link and pinning it.

use std::os::fd::{FromRawFd, OwnedFd};

use aya_obj::generated::bpf_cmd;

/// The `BPF_PROG_LOAD` part of `union bpf_attr` up to `attach_btf_id`; the kernel reads fields
/// past a shorter size as zero.
#[repr(C)]
#[derive(Default)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    pub attach_btf_id: u32,
}
const _: () = assert!(size_of::<ProgLoadAttr>() == 112);

/// `r0 = IMM; exit`, as `struct bpf_insn`s: the smallest program, for feature probes.
pub fn return_imm(imm: u8) -> [u64; 2] {
    [
        u64::from_le_bytes([0xb7, 0, 0, 0, imm, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ]
}

/// `bpf(cmd, attr, size_of::<A>())`; a returned descriptor is owned by the caller.
///
/// # Safety
///
/// `attr` must be the `union bpf_attr` layout `cmd` expects, and every buffer it points to
/// must be valid (and writable where the kernel writes) for the call.
pub unsafe fn bpf<A>(cmd: bpf_cmd, attr: &A) -> std::io::Result<i64> {
    // SAFETY: the caller's promise above; the kernel reads `size_of::<A>()` bytes of `attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *const A,
            size_of::<A>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A descriptor `bpf(2)` just returned, owned from here on.
pub fn owned(fd: i64) -> OwnedFd {
    // SAFETY: a new descriptor the kernel returned to this process, owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Loads a program described by `attr` and closes it at once: whether the kernel accepts it.
pub fn prog_loads(attr: &ProgLoadAttr) -> std::io::Result<()> {
    // SAFETY: a BPF_PROG_LOAD attr whose instruction and license pointers the caller keeps
    // alive for the call; no log buffer is given, so the kernel writes nothing here.
    unsafe { bpf(bpf_cmd::BPF_PROG_LOAD, attr) }.map(|fd| drop(owned(fd)))
}
