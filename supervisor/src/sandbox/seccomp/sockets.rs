//! The socket allowlist: a tool can create only the sockets guard's hooks police.
//!
//! Always (part of the baseline, whatever the profile):
//! - `socket(2)` families other than `AF_UNIX`, `AF_INET`, `AF_INET6` and `AF_NETLINK` are refused
//!   (packet, vsock, raw-capable families, bluetooth, ... and any value outside the family table);
//! - `AF_INET`/`AF_INET6` only with `SOCK_STREAM` or `SOCK_DGRAM` (the type is compared under the
//!   kernel's `SOCK_TYPE_MASK`, so `SOCK_NONBLOCK | SOCK_CLOEXEC` pass) and protocol 0,
//!   `IPPROTO_TCP` or `IPPROTO_UDP`: no ICMP/ICMPv6 ping sockets, raw sockets, UDP-Lite, SCTP or
//!   MPTCP, which the cgroup connect/sendmsg hooks do not see;
//! - `AF_NETLINK` only with `NETLINK_ROUTE` (protocol 0), which resolvers (`getaddrinfo` with
//!   `AI_ADDRCONFIG`) need; `sock_diag`, audit, uevent, netfilter and the rest are refused;
//! - `setsockopt` options that change where a packet goes are refused (see [`REFUSED_OPTIONS`]).
//!
//! The profile then narrows further: without network rules the plan adds the `MARKER_NO_INET`
//! rules (no `AF_INET`, `AF_INET6` or `AF_NETLINK` socket at all), without `network.unix` rules
//! `MARKER_NO_UNIX` (no `AF_UNIX` socket; `socketpair` stays allowed, it reaches nobody).
//!
//! Seccomp cannot read `sendmsg` ancillary data, so an `IPV6_RTHDR` or `IP_RETOPTS` control
//! message is not seen here; the eBPF packet backstop on the sandbox cgroup's egress is what
//! drops IPv4 options and IPv6 extension headers.
//!
//! All arguments are C `int`s: the rules compare their low 32 bits (masked equality), and
//! anything above the table's range, high bits included, is refused with a greater-than rule.

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};

use super::{SeccompError, native};

const INT_MASK: u64 = 0xffff_ffff;
/// `SOCK_TYPE_MASK` in the kernel: the low bits of the type that are not flags.
const SOCK_TYPE_MASK: u64 = 0xf;
/// The kernel's `AF_MAX` at the time of writing (46); any family at or above it is refused too.
const FAMILY_LIMIT: u64 = 46;

/// `(level, optname)` pairs of `setsockopt` that are refused, with why.
pub const REFUSED_OPTIONS: &[(libc::c_int, libc::c_int, &str)] = &[
    (
        libc::SOL_IP,
        libc::IP_OPTIONS,
        "IPv4 options (loose/strict source routes)",
    ),
    (
        libc::SOL_IP,
        libc::IP_RETOPTS,
        "IPv4 options echoed on replies",
    ),
    (
        libc::SOL_IP,
        libc::IP_TRANSPARENT,
        "send from a non-local address",
    ),
    (
        libc::SOL_IP,
        libc::IP_UNICAST_IF,
        "pins the outgoing interface",
    ),
    (
        libc::SOL_IPV6,
        2,
        "IPV6_2292PKTINFO: source address and interface",
    ),
    (libc::SOL_IPV6, 3, "IPV6_2292HOPOPTS"),
    (libc::SOL_IPV6, 4, "IPV6_2292DSTOPTS"),
    (libc::SOL_IPV6, 5, "IPV6_2292RTHDR: routing header"),
    (
        libc::SOL_IPV6,
        6,
        "IPV6_2292PKTOPTIONS: any of the above at once",
    ),
    (
        libc::SOL_IPV6,
        libc::IPV6_PKTINFO,
        "sticky source address and interface",
    ),
    (
        libc::SOL_IPV6,
        libc::IPV6_HOPOPTS,
        "hop-by-hop options header",
    ),
    (
        libc::SOL_IPV6,
        libc::IPV6_RTHDRDSTOPTS,
        "destination options before a routing header",
    ),
    (
        libc::SOL_IPV6,
        libc::IPV6_RTHDR,
        "routing header (source routing, segment routing)",
    ),
    (
        libc::SOL_IPV6,
        libc::IPV6_DSTOPTS,
        "destination options header",
    ),
    (
        libc::SOL_IPV6,
        libc::IPV6_TRANSPARENT,
        "send from a non-local address",
    ),
    (
        libc::SOL_IPV6,
        libc::IPV6_UNICAST_IF,
        "pins the outgoing interface",
    ),
    (
        libc::SOL_SOCKET,
        libc::SO_BINDTODEVICE,
        "pins the outgoing device",
    ),
    (
        libc::SOL_SOCKET,
        libc::SO_BINDTOIFINDEX,
        "pins the outgoing device",
    ),
    (
        libc::SOL_SOCKET,
        libc::SO_MARK,
        "selects a policy-routing table",
    ),
];

fn int_eq(arg: u32, value: libc::c_int) -> ScmpArgCompare {
    ScmpArgCompare::new(
        arg,
        ScmpCompareOp::MaskedEqual(INT_MASK),
        value.unsigned_abs().into(),
    )
}

/// Adds the always-on socket rules with `action`. Skipped entirely for a syscall the filter
/// already denies outright (`covered`).
pub(super) fn add_socket_allowlist_rules(
    filter: &mut ScmpFilterContext,
    action: ScmpAction,
    covered: &dyn Fn(&str) -> bool,
) -> Result<(), SeccompError> {
    let mut add = |syscall: &'static str, cmp: &[ScmpArgCompare]| -> Result<(), SeccompError> {
        filter
            .add_rule_conditional(action, native(syscall)?, cmp)
            .map_err(|source| SeccompError::AddRule { syscall, source })?;
        Ok(())
    };
    if !covered("socket") {
        let allowed = [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
        ];
        for family in 0..FAMILY_LIMIT {
            if allowed
                .iter()
                .any(|&a| u64::from(a.unsigned_abs()) == family)
            {
                continue;
            }
            let cmp = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(INT_MASK), family);
            add("socket", &[cmp])?;
        }
        add(
            "socket",
            &[ScmpArgCompare::new(
                0,
                ScmpCompareOp::GreaterEqual,
                FAMILY_LIMIT,
            )],
        )?;
        for family in [libc::AF_INET, libc::AF_INET6] {
            // Types: only SOCK_STREAM (1) and SOCK_DGRAM (2) under the type mask.
            for ty in (0..=SOCK_TYPE_MASK).filter(|&t| t != 1 && t != 2) {
                let ty = ScmpArgCompare::new(1, ScmpCompareOp::MaskedEqual(SOCK_TYPE_MASK), ty);
                add("socket", &[int_eq(0, family), ty])?;
            }
            // Protocols: 0, IPPROTO_TCP (6), IPPROTO_UDP (17). Everything above 17 (ICMPv6 58,
            // SCTP 132, UDP-Lite 136, MPTCP 262, high bits) by one rule, the rest one by one.
            let above = ScmpArgCompare::new(2, ScmpCompareOp::Greater, 17);
            add("socket", &[int_eq(0, family), above])?;
            for proto in (1..17).filter(|&p| p != 6) {
                add("socket", &[int_eq(0, family), int_eq(2, proto)])?;
            }
        }
        // Netlink: NETLINK_ROUTE (0) only.
        let not_route = ScmpArgCompare::new(2, ScmpCompareOp::NotEqual, 0);
        add("socket", &[int_eq(0, libc::AF_NETLINK), not_route])?;
    }
    if !covered("setsockopt") {
        for &(level, name, _why) in REFUSED_OPTIONS {
            add("setsockopt", &[int_eq(1, level), int_eq(2, name)])?;
        }
    }
    Ok(())
}
