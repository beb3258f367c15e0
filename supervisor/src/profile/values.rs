//! Typed profile values parsed from their TOML spelling: sizes, durations, network endpoints,
//! port ranges, syscall names, environment variable names and user names.
//!
//! Each parser returns a plain message on error; [`super::validate`] adds file, line, column
//! and key. Parsers are strict on purpose: a typo in a limit must not silently become "no limit".

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

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
    /// A DNS name, resolved when the sandbox starts.
    Name(String),
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

/// Parses an IPv4 host part: CIDR, address or DNS name.
fn parse_host(host: &str) -> Result<Host, String> {
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

/// Parses a size: a non-negative integer of bytes, or a number with a unit: `B`, `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB`, `T`/`TiB` (powers of 1024, as cgroup files read them) or `KB`, `MB`,
/// `GB`, `TB` (powers of 1000). `512MiB`, `1.5 GiB` and `100000` are sizes; `12 parsecs` is not.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim_start();
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "`{s}` is not a size (use e.g. \"512MiB\", \"2GiB\", \"100MB\" or bytes)"
            ));
        }
    };
    let bad = || format!("`{s}` is not a size: `{num}` is not a number");
    let bytes = if let Some((int, frac)) = num.split_once('.') {
        if int.is_empty() || frac.is_empty() || frac.contains('.') {
            return Err(bad());
        }
        let v: f64 = num.parse().map_err(|_| bad())?;
        let total = v * mult as f64;
        if !total.is_finite() || total >= u64::MAX as f64 {
            return Err(format!("`{s}` is too large"));
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked finite, non-negative and below u64::MAX; fractions of a byte round down"
        )]
        let b = total as u64;
        b
    } else {
        let v: u64 = num.parse().map_err(|_| bad())?;
        v.checked_mul(mult)
            .ok_or_else(|| format!("`{s}` is too large"))?
    };
    if bytes == 0 {
        return Err(format!("`{s}`: a size limit must be greater than zero"));
    }
    Ok(bytes)
}

/// Parses a duration like `5m`, `90s`, `1h 30m` (humantime syntax); zero is refused because a
/// zero time limit would kill every command at once.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); use e.g. \"30s\", \"5m\", \"1h\""))?;
    if d.is_zero() {
        return Err(format!("`{s}`: a time limit must be greater than zero"));
    }
    Ok(d)
}

/// Checks a syscall name (`io_uring_setup`) or group (`@mount`) for syntax; whether the name
/// exists is decided by the seccomp layer for the host's architecture.
pub fn check_syscall(s: &str) -> Result<(), String> {
    let (body, ok): (&str, fn(char) -> bool) = match s.strip_prefix('@') {
        Some(g) => (g, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
        }),
        None => (s, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
        }),
    };
    let starts_ok = body.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts_ok || !body.chars().all(ok) {
        return Err(format!(
            "`{s}` is not a syscall name (like `ptrace`) or group (like `@mount`)"
        ));
    }
    if s.starts_with('@') {
        crate::plan::seccomp_groups::expand(&[s.to_owned()]).map_err(|e| e.to_string())?;
    } else if libseccomp::ScmpSyscall::from_name(s).is_err() {
        // Caught here rather than at `guard exec`, so `guard check` names the line.
        return Err(format!("unknown syscall `{s}`"));
    }
    Ok(())
}

/// Checks an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn check_env_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{s}` is not an environment variable name"));
    }
    Ok(())
}

/// Checks `process.user`: a user name as useradd accepts it, or a numeric uid.
pub fn check_user(s: &str) -> Result<(), String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return s
            .parse::<u32>()
            .map(|_| ())
            .map_err(|_| format!("uid `{s}` is out of range"));
    }
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = s.len() <= 32
        && s.trim_end_matches('$')
            .chars()
            .skip(1)
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !first_ok || !rest_ok {
        return Err(format!("`{s}` is not a user name or uid"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn endpoints_of_every_shape_parse_and_print_back() {
        for s in [
            "api.github.com:443",
            "140.82.112.0/20:443",
            "[2606:50c0::]/32:443",
            "127.0.0.1:8080",
            "[::1]:8000-8080",
            "127.0.0.1:0-65535",
        ] {
            assert_eq!(ep(s).to_string(), s);
        }
        assert_eq!(ep("[::1]:22").host, Host::Addr("::1".parse().unwrap()));
        assert_eq!(ep("10.0.0.0/8:1-2").ports, Ports { first: 1, last: 2 });
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_reason() {
        for (s, want) in [
            ("1.2.3.4:70000", "port 70000 is out of range"),
            ("1.2.3.4:90-80", "lo > hi"),
            ("10.0.0.0/33:80", "not a valid CIDR"),
            ("10.1.2.3/8:80", "host bits set"),
            ("::1:80", "in brackets"),
            ("[::1:80", "missing `]`"),
            ("300.1.1.1:80", "not a valid IPv4"),
            ("exa_mple.com:80", "not a valid host name"),
            ("example.com", "expected HOST:PORT"),
            ("example.com:http", "not a port number"),
            ("[2606:50c0::]/129:443", "not a valid CIDR"),
        ] {
            let err = s.parse::<Endpoint>().expect_err(s);
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn sizes_are_strict() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_size("100MB"), Ok(100_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["12 parsecs", "MiB", "1.2.3M", "0", "-5M", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_use_humantime_and_refuse_zero() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn names_are_checked_for_syntax() {
        assert!(check_syscall("io_uring_setup").is_ok());
        assert!(check_syscall("@raw-io").is_ok());
        assert!(check_syscall("@").is_err());
        assert!(check_syscall("Ptrace").is_err());
        assert!(check_syscall("mount;").is_err());
        assert!(check_syscall("ptracee").is_err());
        assert!(check_syscall("@no-such-group").is_err());
        assert!(check_env_name("LANG").is_ok());
        assert!(check_env_name("_X1").is_ok());
        assert!(check_env_name("1X").is_err());
        assert!(check_env_name("A-B").is_err());
        assert!(check_user("nobody").is_ok());
        assert!(check_user("1000").is_ok());
        assert!(check_user("Root").is_err());
        assert!(check_user("99999999999").is_err());
    }
}
