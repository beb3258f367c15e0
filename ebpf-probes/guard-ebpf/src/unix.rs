//! Unix socket hooks: a sandbox connects (or sends datagrams) only to the socket paths its
//! profile lists in `network.unix`.
//!
//! The kernel runs these before it looks the path up, with the address already copied into
//! kernel memory (so another thread of the tool cannot change it between check and use). The
//! path is compared as a string with the listed ones (absolute, as written in the profile): a
//! relative path or another spelling is refused, and the supervisor refuses to list a socket a
//! tool could replace (one beneath a write path). Abstract names (first byte 0) are left to
//! Landlock's scoping, which keeps them inside the sandbox.
//!
//! The context's fields do not include a unix path, so the probe reads `uaddr` and `uaddrlen`
//! of the kernel's `struct bpf_sock_addr_kern` (at offsets the loader checked against the
//! kernel's BTF) with `bpf_probe_read_kernel`.
//!
//! The programs carry aya's `cgroup/connect4` section (aya has no section for unix hooks); the
//! loader loads them itself with the unix attach types.
//!
//! # Minimum kernel version
//!
//! 6.7 (cgroup unix socket hooks).

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use guard_common::{
    EventHeader, EventType, Rule, SandboxPolicy, UnixData, UnixEvent, Verdict,
    event::{FLAG_KILL_SANDBOX, ProbeError, UNIX_PATH_LEN},
    policy::{
        POLICY_AUDIT_NET, POLICY_KILL_ON_NET, SOCK_ADDR_KERN_UADDR, SOCK_ADDR_KERN_UADDRLEN,
        UnixKey,
    },
};

use crate::identity::current_sandbox;
use crate::maps::{UNIX_PATHS, UNIX_SCRATCH, count_error, count_lost, ring_of};
use crate::wake;

const ALLOW: i32 = 1;
const DENY: i32 = 0;
/// `offsetof(struct sockaddr_un, sun_path)`.
const SUN_PATH: usize = 2;

#[cgroup_sock_addr(connect4)]
pub fn guard_connect_unix(ctx: SockAddrContext) -> i32 {
    decide(&ctx, EventType::UnixConnect)
}

#[cgroup_sock_addr(connect4)]
pub fn guard_sendmsg_unix(ctx: SockAddrContext) -> i32 {
    decide(&ctx, EventType::UnixSend)
}

#[inline(always)]
fn decide(ctx: &SockAddrContext, etype: EventType) -> i32 {
    // Read first, straight from the context: the verifier accepts context reads only at a
    // constant offset in the load itself, which a later read after inlining may not keep.
    // SAFETY: the context; the verifier checks the field read.
    let sock_type = unsafe { core::ptr::read_volatile(&raw const (*ctx.sock_addr).type_) };
    let Some((cgroup_id, policy)) = current_sandbox() else {
        return ALLOW;
    };
    // The key lives in a per-CPU scratch slot: 120 bytes are a large part of the 512-byte
    // stack, and the record needs the path too.
    let Some(key) = UNIX_SCRATCH.get_ptr_mut(0) else {
        count_error(ProbeError::ReadKernel);
        return DENY;
    };
    // SAFETY: a per-CPU map value pointer, valid while the program runs.
    let key = unsafe { &mut *key };
    key.cgroup_id = cgroup_id;
    key.path = [0; UNIX_PATH_LEN];
    let Some(len) = read_path(ctx, &mut key.path) else {
        count_error(ProbeError::ReadKernel);
        return finish(
            sock_type,
            cgroup_id,
            &policy,
            etype,
            key,
            0,
            Some(Rule::ProbeError),
        );
    };
    if len > 0 && key.path[0] == 0 {
        // Abstract: Landlock's scoping decides (the profile is refused where it cannot).
        return finish(sock_type, cgroup_id, &policy, etype, key, len, None);
    }
    // SAFETY: a plain lookup; the value is not dereferenced.
    #[allow(
        clippy::needless_borrows_for_generic_args,
        reason = "by value would copy the 120-byte key onto the 512-byte stack"
    )]
    let listed = unsafe { UNIX_PATHS.get(&*key) }.is_some();
    let violated = if listed {
        None
    } else {
        Some(Rule::NetworkUnix)
    };
    finish(sock_type, cgroup_id, &policy, etype, key, len, violated)
}

/// Copies `sun_path` into `path` (zero-padded) and returns its meaningful length: up to the
/// address length, and for a path up to its first NUL, as the kernel reads it.
#[inline(always)]
fn read_path(ctx: &SockAddrContext, path: &mut [u8; UNIX_PATH_LEN]) -> Option<u32> {
    let kern = ctx.sock_addr as *const u8;
    // SAFETY: reads of kernel memory through the helper, which fails cleanly on a bad address.
    let (uaddr, uaddrlen) = unsafe {
        let uaddr: *const u8 = bpf_probe_read_kernel(kern.add(SOCK_ADDR_KERN_UADDR).cast()).ok()?;
        let len: u32 = bpf_probe_read_kernel(kern.add(SOCK_ADDR_KERN_UADDRLEN).cast()).ok()?;
        (uaddr, len)
    };
    // The kernel copied the whole address into a sockaddr_storage (128 bytes), so reading all
    // of sun_path stays inside it; bytes past the address length are stale and are cleared.
    // SAFETY: as above.
    let raw: [u8; UNIX_PATH_LEN] =
        unsafe { bpf_probe_read_kernel(uaddr.add(SUN_PATH).cast()) }.ok()?;
    let len = (uaddrlen as usize)
        .saturating_sub(SUN_PATH)
        .min(UNIX_PATH_LEN);
    let abstract_name = len > 0 && raw[0] == 0;
    let mut end = len;
    let mut i = 0;
    while i < UNIX_PATH_LEN {
        if i >= end {
            break;
        }
        if !abstract_name && raw[i] == 0 {
            end = i;
            break;
        }
        path[i] = raw[i];
        i += 1;
    }
    Some(end as u32)
}

#[inline(always)]
fn finish(
    sock_type: u32,
    cgroup_id: u64,
    policy: &SandboxPolicy,
    etype: EventType,
    key: &UnixKey,
    len: u32,
    violated: Option<Rule>,
) -> i32 {
    let mut flags = 0;
    let (verdict, ret) = match violated {
        None => (Verdict::Allow, ALLOW),
        Some(_) if policy.flags & POLICY_AUDIT_NET != 0 => (Verdict::Audit, ALLOW),
        Some(_) => {
            if policy.flags & POLICY_KILL_ON_NET != 0 {
                flags |= FLAG_KILL_SANDBOX;
            }
            (Verdict::Deny, DENY)
        }
    };
    let Some(ring) = ring_of(policy.ring_slot) else {
        count_error(ProbeError::NoRing);
        count_lost(cgroup_id);
        return ret;
    };
    let Some(mut entry) = ring.reserve_untyped::<UnixEvent>(0) else {
        count_error(ProbeError::RingBufFull);
        count_lost(cgroup_id);
        return ret;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the reserved entry is at least size_of::<UnixEvent>() bytes; written in place,
    // field by field, so the 160-byte record never sits on the stack.
    unsafe {
        let e = entry.as_mut_ptr();
        (*e).header = EventHeader {
            etype: etype as u32,
            flags,
            ktime_ns: bpf_ktime_get_ns(),
            cgroup_id,
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            sandbox_id: policy.sandbox_id,
            verdict: verdict as u32,
            rule: violated.unwrap_or(Rule::None) as u32,
        };
        (*e).data = UnixData {
            path: key.path,
            path_len: len,
            sock_type,
        };
    }
    entry.submit(wake::submit_flags::<UnixEvent>(
        ring,
        verdict != Verdict::Allow,
    ));
    ret
}
