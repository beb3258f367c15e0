//! Network rule vocabulary: endpoints (`host:ports`) and port ranges as profiles spell them,
//! shared by the profile parser, the plan and the eBPF map writer so a rule stays typed from the
//! TOML file to the kernel map.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// An inclusive port range (`443` or `8000-8080`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ports {
    pub first: u16,
    pub last: u16,
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The address part of a `network.connect`/`network.bind` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: its addresses are learned from answers through the DNS gate (or taken from
    /// the host's /etc/hosts, which no query reaches).
    Name(String),
    /// `*.suffix`: every name below `suffix` (one label or more), not `suffix` itself. Holds
    /// the suffix without `*.`.
    Pattern(String),
    /// One IPv4 or IPv6 address.
    Addr(IpAddr),
    /// A CIDR block (host bits are zero).
    Net(IpNet),
}

/// One network rule: an address (name, IP or CIDR) and a port range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub ports: Ports,
}

impl fmt::Display for Endpoint {
    /// The canonical spelling, which [`Endpoint::from_str`] parses back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(n) => write!(f, "{n}:{}", self.ports),
            Host::Pattern(suffix) => write!(f, "*.{suffix}:{}", self.ports),
            Host::Addr(IpAddr::V4(a)) => write!(f, "{a}:{}", self.ports),
            Host::Addr(IpAddr::V6(a)) => write!(f, "[{a}]:{}", self.ports),
            Host::Net(IpNet::V4(n)) => write!(f, "{n}:{}", self.ports),
            Host::Net(IpNet::V6(n)) => {
                write!(f, "[{}]/{}:{}", n.addr(), n.prefix_len(), self.ports)
            }
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;

    /// Parses `host:port`, `ip:port`, `cidr:port`, `[v6]:port`, `[v6]/len:port`; the port may be
    /// a range `lo-hi`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, ports) = if let Some(rest) = s.strip_prefix('[') {
            let (addr, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{s}`: missing `]` after the IPv6 address"))?;
            let (prefix, ports) = match after.strip_prefix('/') {
                Some(p) => p
                    .split_once(':')
                    .map(|(len, ports)| (Some(len), ports))
                    .ok_or_else(|| format!("`{s}`: expected `[v6]/len:port`"))?,
                None => (
                    None,
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| format!("`{s}`: expected `:port` after `]`"))?,
                ),
            };
            let ip: std::net::Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("`{addr}` is not an IPv6 address"))?;
            let host = match prefix {
                Some(len) => Host::Net(parse_net(&format!("{ip}/{len}"))?),
                None => Host::Addr(IpAddr::V6(ip)),
            };
            (host, ports)
        } else {
            let (host, ports) = s
                .rsplit_once(':')
                .ok_or_else(|| format!("`{s}`: expected HOST:PORT"))?;
            if host.contains(':') {
                return Err(format!(
                    "`{s}`: IPv6 addresses go in brackets: `[addr]:port` or `[addr]/len:port`"
                ));
            }
            (parse_host(host)?, ports)
        };
        Ok(Endpoint {
            host,
            ports: parse_ports(ports)?,
        })
    }
}

/// Parses an IPv4 host part: CIDR, address, DNS name or `*.suffix` pattern.
fn parse_host(host: &str) -> Result<Host, String> {
    if let Some(suffix) = host.strip_prefix("*.") {
        validate_dns_name(suffix)?;
        // `*.com` would let a tool resolve (and so reach and exfiltrate to) most of the
        // internet: a pattern must name at least a registered domain.
        if !suffix.contains('.') {
            return Err(format!(
                "`{host}` is too broad: a pattern needs at least two labels after `*.` \
                 (`*.example.com`)"
            ));
        }
        return Ok(Host::Pattern(suffix.to_ascii_lowercase()));
    }
    if host.contains('*') {
        return Err(format!(
            "`{host}`: `*` may only stand first, as a whole label (`*.example.com`)"
        ));
    }
    if host.contains('/') {
        return Ok(Host::Net(parse_net(host)?));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Host::Addr(ip));
    }
    // A name made only of digits and dots is a mistyped IPv4 address, not a host name.
    if !host.is_empty() && host.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("`{host}` is not a valid IPv4 address"));
    }
    validate_dns_name(host)?;
    Ok(Host::Name(host.to_ascii_lowercase()))
}

/// Parses a CIDR block and insists the host bits are zero, because `10.1.2.3/8` is almost
/// always a typo for a narrower rule.
fn parse_net(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s
        .parse()
        .map_err(|_| format!("`{s}` is not a valid CIDR block"))?;
    if net.trunc() != net {
        return Err(format!(
            "`{s}` has host bits set; the block is `{}`",
            net.trunc()
        ));
    }
    Ok(net)
}

fn validate_dns_name(name: &str) -> Result<(), String> {
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(ok_label) {
        return Err(format!("`{name}` is not a valid host name"));
    }
    Ok(())
}

/// Parses `443` or `lo-hi` (inclusive, lo <= hi, both within 0-65535).
pub fn parse_ports(s: &str) -> Result<Ports, String> {
    let port = |p: &str| -> Result<u16, String> {
        let n: u32 = p
            .parse()
            .map_err(|_| format!("`{p}` is not a port number"))?;
        u16::try_from(n).map_err(|_| format!("port {n} is out of range 0-65535"))
    };
    let (first, last) = match s.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if first > last {
        return Err(format!("port range {first}-{last} is empty (lo > hi)"));
    }
    Ok(Ports { first, last })
}
