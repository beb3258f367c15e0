//! The DNS gate's kernel half: every UDP datagram and TCP connect of a sandbox to port 53, at
//! any address, is re-addressed to the sandbox's own resolver (a socket of its supervisor on
//! loopback), and the replies are shown coming from the address the tool asked.
//!
//! Re-addressing happens in the connect and sendmsg hooks ([`crate::net`] calls
//! [`to_gate`]) before the kernel routes anything, so a query never leaves the host whatever
//! server the tool names. The original destination is remembered per socket (its cookie) in
//! `GATE_ORIGINS`; the recvmsg hooks (UDP replies) and getpeername hooks (connected sockets)
//! put it back, because resolvers check that an answer comes from the server they asked.
//!
//! # Minimum kernel version
//!
//! recvmsg hooks 5.2, getpeername hooks 5.8, `bpf_get_socket_cookie` for these programs 5.x.

use aya_ebpf::{
    helpers::bpf_get_socket_cookie, macros::cgroup_sock_addr, programs::SockAddrContext,
};
use guard_common::{SandboxPolicy, policy::GateOrigin};

use crate::identity::current_sandbox;
use crate::maps::{GATE_ORIGINS, count_error};
use guard_common::event::ProbeError;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
/// 127.0.0.1 as the four bytes of `user_ip4` (network order).
const LOOPBACK4: [u8; 4] = [127, 0, 0, 1];
/// Hooks on the receiving side must return 1.
const PASS: i32 = 1;

/// Where the gate listens for one destination family, or why there is no gate for it.
pub enum GateAddr {
    /// 127.0.0.1 (or `::ffff:127.0.0.1` for an IPv4-mapped destination) on this port.
    V4(u16),
    /// ::1 on this port.
    V6(u16),
    /// An IPv6 destination and no IPv6 gate: the query is refused.
    None,
}

/// The gate address for a query to `addr` of `family`.
#[inline(always)]
pub fn gate_for(policy: &SandboxPolicy, family: u16, addr: &[u8; 16]) -> GateAddr {
    if family == AF_INET || is_v4_mapped(family, addr) {
        GateAddr::V4(policy.dns_port4)
    } else if policy.dns_port6 != 0 {
        GateAddr::V6(policy.dns_port6)
    } else {
        GateAddr::None
    }
}

/// Whether an IPv6 socket addressed an IPv4 host (`::ffff:a.b.c.d`).
#[inline(always)]
pub fn is_v4_mapped(family: u16, a: &[u8; 16]) -> bool {
    family == AF_INET6 && a[..10] == [0u8; 10] && a[10] == 0xff && a[11] == 0xff
}

/// Re-addresses the operation in `ctx` to the gate and remembers where it was headed. Returns
/// false when the socket could not be re-addressed (no gate for the family).
#[inline(always)]
pub fn to_gate(ctx: &SockAddrContext, gate: GateAddr, origin: GateOrigin) -> bool {
    if matches!(gate, GateAddr::None) {
        return false;
    }
    let sa = ctx.sock_addr;
    // SAFETY: the program's context; the cookie helper only reads the socket.
    let cookie = unsafe { bpf_get_socket_cookie(sa as *mut _) };
    if GATE_ORIGINS.insert(cookie, origin, 0).is_err() {
        // Replies will show the gate's address and resolvers will drop them: the lookup
        // fails, which is closed, and the counter says why.
        count_error(ProbeError::MapUpdate);
    }
    // SAFETY: the verifier checks each store; these fields are writable in connect and
    // sendmsg hooks.
    unsafe {
        match gate {
            GateAddr::V4(port) if origin.family == AF_INET => {
                (*sa).user_ip4 = u32::from_ne_bytes(LOOPBACK4);
                (*sa).user_port = u32::from(port.to_be());
            }
            GateAddr::V4(port) => {
                (*sa).user_ip6[0] = 0;
                (*sa).user_ip6[1] = 0;
                (*sa).user_ip6[2] = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
                (*sa).user_ip6[3] = u32::from_ne_bytes(LOOPBACK4);
                (*sa).user_port = u32::from(port.to_be());
            }
            GateAddr::V6(port) => {
                (*sa).user_ip6[0] = 0;
                (*sa).user_ip6[1] = 0;
                (*sa).user_ip6[2] = 0;
                (*sa).user_ip6[3] = u32::from_ne_bytes([0, 0, 0, 1]);
                (*sa).user_port = u32::from(port.to_be());
            }
            GateAddr::None => {}
        }
    }
    true
}

#[cgroup_sock_addr(recvmsg4)]
pub fn guard_recvmsg4(ctx: SockAddrContext) -> i32 {
    show_origin(&ctx, AF_INET);
    PASS
}

#[cgroup_sock_addr(recvmsg6)]
pub fn guard_recvmsg6(ctx: SockAddrContext) -> i32 {
    show_origin(&ctx, AF_INET6);
    PASS
}

#[cgroup_sock_addr(getpeername4)]
pub fn guard_getpeername4(ctx: SockAddrContext) -> i32 {
    show_origin(&ctx, AF_INET);
    PASS
}

#[cgroup_sock_addr(getpeername6)]
pub fn guard_getpeername6(ctx: SockAddrContext) -> i32 {
    show_origin(&ctx, AF_INET6);
    PASS
}

/// If the peer in `ctx` is this sandbox's gate and the socket was re-addressed to it, puts the
/// original destination in its place.
#[inline(always)]
fn show_origin(ctx: &SockAddrContext, family: u16) {
    let Some((_, policy)) = current_sandbox() else {
        return;
    };
    if policy.dns_port4 == 0 {
        return;
    }
    let sa = ctx.sock_addr;
    // SAFETY: the program's context; the verifier checks each access.
    let cookie = unsafe { bpf_get_socket_cookie(sa as *mut _) };
    // SAFETY: a plain lookup; the value is copied at once.
    let Some(origin) = (unsafe { GATE_ORIGINS.get(cookie) }).copied() else {
        return;
    };
    if origin.family != family {
        return;
    }
    // SAFETY: as above; reads and writes of user_ip4/user_ip6/user_port are allowed in
    // recvmsg and getpeername hooks.
    unsafe {
        let port = u16::from_be((*sa).user_port as u16);
        let o = &origin.addr;
        if family == AF_INET {
            if (*sa).user_ip4 != u32::from_ne_bytes(LOOPBACK4) || port != policy.dns_port4 {
                return;
            }
            (*sa).user_ip4 = u32::from_ne_bytes([o[0], o[1], o[2], o[3]]);
        } else {
            let w3 = (*sa).user_ip6[3];
            let w2 = (*sa).user_ip6[2];
            let from_gate4 = w2 == u32::from_ne_bytes([0, 0, 0xff, 0xff])
                && w3 == u32::from_ne_bytes(LOOPBACK4)
                && port == policy.dns_port4;
            let from_gate6 =
                w2 == 0 && w3 == u32::from_ne_bytes([0, 0, 0, 1]) && port == policy.dns_port6;
            if (*sa).user_ip6[0] != 0 || (*sa).user_ip6[1] != 0 || !(from_gate4 || from_gate6) {
                return;
            }
            (*sa).user_ip6[0] = u32::from_ne_bytes([o[0], o[1], o[2], o[3]]);
            (*sa).user_ip6[1] = u32::from_ne_bytes([o[4], o[5], o[6], o[7]]);
            (*sa).user_ip6[2] = u32::from_ne_bytes([o[8], o[9], o[10], o[11]]);
            (*sa).user_ip6[3] = u32::from_ne_bytes([o[12], o[13], o[14], o[15]]);
        }
        (*sa).user_port = u32::from(origin.port.to_be());
    }
}
