//! cgroup `sock_addr` hooks: connect4/6, sendmsg4/6 (UDP without connect) and bind4/6.
//!
//! A connect or datagram to port 53 of a sandbox with a DNS gate goes to the gate
//! ([`crate::gate`]); any other destination must be listed (`NET4`/`NET6`) or learned by the
//! gate from a permitted answer and not yet expired (`LEARNED`).
//!
//! guard attaches them once, to its own cgroup (the parent of every sandbox cgroup), so they
//! run only for sockets created inside a sandbox and never for the rest of the host. A cgroup
//! these probes do not know is left alone: it belongs to another build of the probes attached
//! beside these ones (after an upgrade, each set enforces the sandboxes it registered, and the
//! kernel lets a connect through only if every attached program does). No process of guard's
//! ever runs in an unregistered cgroup: the supervisor writes the policy before the first
//! process enters and removes it only after the last one is dead.
//!
//! Returning 0 makes the syscall fail with EPERM before any packet is built; 1 lets it go on.
//! These programs cannot send signals, so `on_violation.network = "kill"` is carried out by the
//! supervisor when it reads the record (flag `FLAG_KILL_SANDBOX`); the operation itself is
//! denied here either way.
//!
//! # Minimum kernel version
//!
//! connect/bind hooks 4.17, sendmsg 4.18, `bpf_get_current_cgroup_id` 4.18 (5.7 for these
//! program types), ring buffers 5.8, ring buffers as inner maps 5.9.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::cgroup_sock_addr,
    maps::lpm_trie::Key,
    programs::SockAddrContext,
};
use guard_common::{
    EventHeader, EventType, NetData, NetEvent, Rule, SandboxPolicy, Verdict,
    event::{FLAG_DNS_GATE, FLAG_KILL_SANDBOX, FLAG_LEARNED, FLAG_V4_MAPPED, ProbeError},
    policy::{
        DNS_PORT, GateOrigin, LearnedKey, MAX_PORT_RANGES, NET_KEY_FIXED_BITS, NET_KIND_BIND,
        NET_KIND_CONNECT, Net4Key, Net6Key, POLICY_AUDIT_NET, POLICY_ENFORCE_NET,
        POLICY_KILL_ON_NET, PortRules,
    },
};

use crate::gate::{self, AF_INET, AF_INET6};
use crate::identity::current_sandbox;
use crate::maps::{
    LEARNED, NET4, NET6, SANDBOX_STATE, UDP_PEERS, UdpPeerKey, count_error, count_lost, ring_of,
};
use crate::rate;
use crate::wake;

const ALLOW: i32 = 1;
const DENY: i32 = 0;
/// Socket types that reach a DNS server: the gate answers UDP and TCP.
const SOCK_STREAM: u16 = 1;
const SOCK_DGRAM: u16 = 2;

/// Which hook ran.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Connect,
    Send,
    Bind,
}

#[cgroup_sock_addr(connect4)]
pub fn guard_connect4(ctx: SockAddrContext) -> i32 {
    decide(&ctx, Op::Connect, AF_INET)
}

#[cgroup_sock_addr(connect6)]
pub fn guard_connect6(ctx: SockAddrContext) -> i32 {
    decide(&ctx, Op::Connect, AF_INET6)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn guard_sendmsg4(ctx: SockAddrContext) -> i32 {
    decide(&ctx, Op::Send, AF_INET)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn guard_sendmsg6(ctx: SockAddrContext) -> i32 {
    decide(&ctx, Op::Send, AF_INET6)
}

#[cgroup_sock_addr(bind4)]
pub fn guard_bind4(ctx: SockAddrContext) -> i32 {
    decide(&ctx, Op::Bind, AF_INET)
}

#[cgroup_sock_addr(bind6)]
pub fn guard_bind6(ctx: SockAddrContext) -> i32 {
    decide(&ctx, Op::Bind, AF_INET6)
}

/// The destination (or bind address) of the operation, as the caller passed it.
struct Target {
    addr: [u8; 16],
    port: u16,
    family: u16,
    sock_type: u16,
    protocol: u16,
}

#[inline(always)]
fn decide(ctx: &SockAddrContext, op: Op, family: u16) -> i32 {
    let target = read_target(ctx, family);
    let Some((cgroup_id, policy)) = current_sandbox() else {
        // Not registered with this build of the probes (see the module docs), nor below a
        // registered cgroup.
        return ALLOW;
    };
    if op != Op::Bind
        && policy.dns_port4 != 0
        && target.port == DNS_PORT
        && (target.sock_type == SOCK_STREAM || target.sock_type == SOCK_DGRAM)
    {
        return dns_to_gate(ctx, cgroup_id, &policy, op, &target);
    }
    let (rule_kind, rule) = match op {
        Op::Bind => (NET_KIND_BIND, Rule::NetworkBind),
        Op::Connect | Op::Send => (NET_KIND_CONNECT, Rule::NetworkConnect),
    };

    let mut flags = 0;
    let mut violated = None;
    if policy.flags & POLICY_ENFORCE_NET != 0 {
        let (mut allowed, mapped) = allowed_by_rules(cgroup_id, rule_kind, &target);
        if mapped {
            flags |= FLAG_V4_MAPPED;
        }
        if !allowed && rule_kind == NET_KIND_CONNECT && learned(cgroup_id, &target) {
            allowed = true;
            flags |= FLAG_LEARNED;
        }
        if !allowed {
            violated = Some(rule);
        }
    }
    // A UDP datagram to a destination this sandbox has not sent to recently counts like a
    // connect: otherwise `connects_per_minute` would not limit UDP at all.
    let peer = UdpPeerKey {
        cgroup_id,
        addr: target.addr,
        port: target.port,
        family: target.family,
        _pad: 0,
    };
    // SAFETY: a plain map lookup; the value is not dereferenced.
    // Looked up only where a limit is set: an unlimited sandbox pays nothing for it.
    let new_udp_peer = op == Op::Send
        && policy.connects_per_minute != 0
        && unsafe { UDP_PEERS.get(peer) }.is_none();
    if violated.is_none() && (op == Op::Connect || new_udp_peer) && policy.connects_per_minute != 0
    {
        match SANDBOX_STATE.get_ptr_mut(cgroup_id) {
            Some(state) => {
                // SAFETY: map value pointer from a successful lookup.
                let bucket = unsafe { core::ptr::addr_of_mut!((*state).connects) };
                if !rate::take(bucket, policy.connects_per_minute) {
                    violated = Some(Rule::ConnectsPerMinute);
                }
            }
            // The state entry is written with the policy; without it the limit cannot be
            // counted, so the connect is refused.
            None => violated = Some(Rule::ProbeError),
        }
    }

    if violated.is_none() && new_udp_peer && policy.connects_per_minute != 0 {
        // Remembered only once allowed; a full map evicts the oldest peer (LRU), so a failure
        // here only means the next datagram to it takes a token again.
        let _ = UDP_PEERS.insert(peer, 1, 0);
    }
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
    let etype = match op {
        Op::Connect => EventType::Connect,
        Op::Send => EventType::Send,
        Op::Bind => EventType::Bind,
    };
    record(
        cgroup_id,
        &policy,
        etype,
        flags,
        verdict,
        violated.unwrap_or(Rule::None),
        &target,
    );
    ret
}

/// Sends a DNS connect or datagram to the sandbox's gate, and records where it was headed.
/// Never rate-limited or checked against the address rules: nothing of it leaves the host.
#[inline(always)]
fn dns_to_gate(
    ctx: &SockAddrContext,
    cgroup_id: u64,
    policy: &guard_common::SandboxPolicy,
    op: Op,
    target: &Target,
) -> i32 {
    let gate_addr = gate::gate_for(policy, target.family, &target.addr);
    let origin = GateOrigin {
        addr: target.addr,
        port: target.port,
        family: target.family,
        _reserved: 0,
    };
    let etype = if op == Op::Connect {
        EventType::Connect
    } else {
        EventType::Send
    };
    let mut flags = FLAG_DNS_GATE;
    if gate::is_v4_mapped(target.family, &target.addr) {
        flags |= FLAG_V4_MAPPED;
    }
    if gate::to_gate(ctx, gate_addr, origin) {
        record(
            cgroup_id,
            policy,
            etype,
            flags,
            Verdict::Allow,
            Rule::None,
            target,
        );
        return ALLOW;
    }
    // An IPv6 name server and no IPv6 gate (the host has no ::1): refused even in audit mode,
    // because the only alternative is letting the query out.
    record(
        cgroup_id,
        policy,
        etype,
        flags,
        Verdict::Deny,
        Rule::NetworkConnect,
        target,
    );
    DENY
}

/// Whether the gate learned `target`'s address for this sandbox from a permitted answer that
/// has not expired, on a port of the rule that named it.
#[inline(always)]
fn learned(cgroup_id: u64, target: &Target) -> bool {
    // IPv4 as IPv4-mapped: the key of both families (an IPv6 socket's `::ffff:a.b.c.d` is
    // already in that form).
    let mut addr = [0u8; 16];
    if target.family == AF_INET {
        addr[10] = 0xff;
        addr[11] = 0xff;
        addr[12..].copy_from_slice(&target.addr[..4]);
    } else {
        addr = target.addr;
    }
    let key = LearnedKey { cgroup_id, addr };
    // SAFETY: a plain lookup; the value is copied at once.
    let Some(entry) = (unsafe { LEARNED.get(key) }).copied() else {
        return false;
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    now < entry.expires_ns && port_allowed(&entry.ports, target.port)
}

#[inline(always)]
fn read_target(ctx: &SockAddrContext, family: u16) -> Target {
    let sa = ctx.sock_addr;
    // SAFETY: `sa` is the program's context; the verifier checks every field access.
    let (port, sock_type, protocol) = unsafe { ((*sa).user_port, (*sa).type_, (*sa).protocol) };
    let mut addr = [0u8; 16];
    if family == AF_INET {
        // SAFETY: as above.
        let ip4 = unsafe { (*sa).user_ip4 };
        addr[..4].copy_from_slice(&ip4.to_ne_bytes());
    } else {
        let mut i = 0;
        while i < 4 {
            // SAFETY: as above; one aligned 32-bit read per word, which the verifier accepts.
            let word = unsafe { (*sa).user_ip6[i] };
            addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            i += 1;
        }
    }
    Target {
        addr,
        // user_port holds the port in network byte order in its low 16 bits.
        port: u16::from_be(port as u16),
        family,
        sock_type: sock_type as u16,
        protocol: protocol as u16,
    }
}

/// Whether the rules of `cgroup_id` allow `target`; the second value says whether an IPv6
/// socket addressed an IPv4 host (`::ffff:a.b.c.d`), which is checked against the IPv4 rules
/// because the kernel then sends IPv4 packets without running the IPv4 hooks.
#[inline(always)]
fn allowed_by_rules(cgroup_id: u64, kind: u32, target: &Target) -> (bool, bool) {
    let a = &target.addr;
    let v4_mapped = gate::is_v4_mapped(target.family, a);
    let rules = if target.family == AF_INET || v4_mapped {
        let start = if v4_mapped { 12 } else { 0 };
        let key = Key::new(
            NET_KEY_FIXED_BITS + 32,
            Net4Key {
                cgroup_id: cgroup_id.to_ne_bytes(),
                kind: kind.to_ne_bytes(),
                addr: [a[start], a[start + 1], a[start + 2], a[start + 3]],
            },
        );
        NET4.get(&key)
    } else {
        let key = Key::new(
            NET_KEY_FIXED_BITS + 128,
            Net6Key {
                cgroup_id: cgroup_id.to_ne_bytes(),
                kind: kind.to_ne_bytes(),
                addr: *a,
            },
        );
        NET6.get(&key)
    };
    let allowed = match rules {
        Some(rules) => port_allowed(rules, target.port),
        None => false,
    };
    (allowed, v4_mapped)
}

#[inline(always)]
fn port_allowed(rules: &PortRules, port: u16) -> bool {
    let count = rules.count as usize;
    let mut i = 0;
    while i < MAX_PORT_RANGES {
        if i >= count {
            break;
        }
        let range = rules.ranges[i];
        if range.first <= port && port <= range.last {
            return true;
        }
        i += 1;
    }
    false
}

#[inline(always)]
fn record(
    cgroup_id: u64,
    policy: &SandboxPolicy,
    etype: EventType,
    flags: u32,
    verdict: Verdict,
    rule: Rule,
    target: &Target,
) {
    let Some(ring) = ring_of(policy.ring_slot) else {
        count_error(ProbeError::NoRing);
        count_lost(cgroup_id);
        return;
    };
    let Some(mut entry) = ring.reserve_untyped::<NetEvent>(0) else {
        count_error(ProbeError::RingBufFull);
        count_lost(cgroup_id);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    entry.write(NetEvent {
        header: EventHeader {
            etype: etype as u32,
            flags,
            // SAFETY: helper without arguments.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
            cgroup_id,
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            sandbox_id: policy.sandbox_id,
            verdict: verdict as u32,
            rule: rule as u32,
        },
        data: NetData {
            addr: target.addr,
            port: target.port,
            family: target.family,
            sock_type: target.sock_type,
            protocol: target.protocol,
            reserved: [0; 2],
        },
    });
    entry.submit(wake::submit_flags::<NetEvent>(
        ring,
        verdict != Verdict::Allow,
    ));
}
