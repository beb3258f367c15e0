//! Typed profile values parsed from their TOML spelling: sizes, durations, network endpoints,
//! port ranges, syscall names, environment variable names and user names.
//!
//! Each parser returns a plain message on error; [`super::validate`] adds file, line, column
//! and key. Parsers are strict on purpose: a typo in a limit must not silently become "no limit".

use std::time::Duration;

pub use crate::policy::network::{Endpoint, Host, Ports, parse_ports};

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
        // A bare number was 512 bytes where 512MiB was meant: say which unit, always.
        "" => {
            return Err(format!(
                "`{s}` has no unit; write \"{s}MiB\" (or \"{s}B\" if you mean bytes)"
            ));
        }
        "B" => 1,
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
        crate::policy::syscall_groups::expand(&[s.to_owned()]).map_err(|e| e.to_string())?;
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
        assert_eq!(parse_size("4096B"), Ok(4096));
        let bare = parse_size("512").unwrap_err();
        assert!(
            bare.contains("no unit") && bare.contains("\"512MiB\""),
            "{bare}"
        );
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
