//! From the serde model of one file to a typed [`Profile`], reporting every bad value with its
//! position and key rather than stopping at the first.

use std::collections::BTreeMap;
use toml::Spanned;

use super::expand::Template;
use super::model::{RawLimits, RawProfile, Str, StrList};
use super::parse::{Diagnostic, Reporter};
use super::typed::{Filesystem, Limits, Network, OnViolation, Process, Profile, Syscalls};
use super::values::{self, Endpoint};
use crate::policy::SeccompAction;
use crate::policy::{ViolationAction, Weakening};

/// One file, validated: its own settings and its `extends` entries (with spans, so a missing
/// fragment or a cycle is reported at the entry that names it).
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub profile: Profile,
    pub extends: Vec<Spanned<String>>,
}

/// Parses and validates the text of one profile file named `file` in diagnostics.
pub fn parse_file(file: &str, text: &str) -> Result<ParsedFile, Vec<Diagnostic>> {
    let mut r = Reporter::new(file, text);
    let raw: RawProfile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            r.toml_error(&e);
            return Err(r.found);
        }
    };
    let parsed = validate(&mut r, raw);
    // Report in file order, whatever order the sections were validated in.
    r.found.sort_by_key(|d| (d.line, d.col));
    if r.found.is_empty() {
        Ok(parsed)
    } else {
        Err(r.found)
    }
}

fn validate(r: &mut Reporter<'_>, raw: RawProfile) -> ParsedFile {
    let name = raw.name.map(|n| {
        let ok = !n.get_ref().is_empty()
            && n.get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !ok {
            r.error(
                n.span(),
                "name",
                "a name is letters, digits, `-`, `_` and `.`",
            );
        }
        n.into_inner()
    });
    let profile = Profile {
        name,
        description: raw.description.map(Spanned::into_inner),
        allow_weaker: list(r, "allow_weaker", raw.allow_weaker, |s| {
            Weakening::parse(s).ok_or_else(|| {
                let known: Vec<_> = Weakening::ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown weakening `{s}` (known: {})", known.join(", "))
            })
        }),
        filesystem: Filesystem {
            read: list(
                r,
                "filesystem.read",
                raw.filesystem.read,
                Template::parse_path,
            ),
            write: list(
                r,
                "filesystem.write",
                raw.filesystem.write,
                Template::parse_path,
            ),
            execute: list(
                r,
                "filesystem.execute",
                raw.filesystem.execute,
                Template::parse_path,
            ),
        },
        network: Network {
            connect: list(
                r,
                "network.connect",
                raw.network.connect,
                str::parse::<Endpoint>,
            ),
            bind: list(r, "network.bind", raw.network.bind, |s| {
                let e: Endpoint = s.parse()?;
                if matches!(e.host, values::Host::Name(_) | values::Host::Pattern(_)) {
                    return Err(format!(
                        "`{s}`: bind takes an IP address or CIDR, not a host name or pattern"
                    ));
                }
                Ok(e)
            }),
            unix: list(r, "network.unix", raw.network.unix, Template::parse_path),
            dns: raw.network.dns.map(Spanned::into_inner),
        },
        process: process(r, raw.process),
        syscalls: Syscalls {
            deny: list(r, "syscalls.deny", raw.syscalls.deny, |s| {
                values::check_syscall(s).map(|()| s.to_owned())
            }),
            action: one(r, "syscalls.action", raw.syscalls.action, |s| match s {
                "errno" => Ok(SeccompAction::Errno),
                "kill" => Ok(SeccompAction::Kill),
                "log" => Ok(SeccompAction::Log),
                _ => Err(format!("`{s}` is not one of errno, kill, log")),
            }),
        },
        limits: limits(r, raw.limits),
        on_violation: OnViolation {
            action: one(r, "on_violation.action", raw.on_violation.action, violation),
            network: one(
                r,
                "on_violation.network",
                raw.on_violation.network,
                violation,
            ),
            exec: one(r, "on_violation.exec", raw.on_violation.exec, violation),
        },
    };
    // `extends` keeps its spans so that a missing fragment or a cycle is reported at the entry.
    let mut extends = Vec::new();
    let entries = raw.extends.map(Spanned::into_inner).unwrap_or_default();
    for (i, e) in entries.into_iter().enumerate() {
        if e.get_ref().is_empty() {
            r.error(e.span(), format!("extends[{i}]"), "an empty fragment name");
        } else {
            extends.push(e);
        }
    }
    ParsedFile { profile, extends }
}

fn violation(s: &str) -> Result<ViolationAction, String> {
    match s {
        "deny" => Ok(ViolationAction::Deny),
        "kill" => Ok(ViolationAction::Kill),
        "audit" => Ok(ViolationAction::Audit),
        _ => Err(format!("`{s}` is not one of deny, kill, audit")),
    }
}

/// Validates each item of a list, reporting bad items as `key[i]`.
fn list<T>(
    r: &mut Reporter<'_>,
    key: &str,
    items: StrList,
    check: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    let mut out = Vec::new();
    for (i, item) in items
        .map(Spanned::into_inner)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match check(item.get_ref()) {
            Ok(v) => out.push(v),
            Err(m) => r.error(item.span(), format!("{key}[{i}]"), m),
        }
    }
    out
}

fn one<T>(
    r: &mut Reporter<'_>,
    key: &str,
    item: Option<Str>,
    check: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    let item = item?;
    check(item.get_ref())
        .map_err(|m| r.error(item.span(), key, m))
        .ok()
}

fn process(r: &mut Reporter<'_>, raw: super::model::RawProcess) -> Process {
    let env = raw.env.unwrap_or_default();
    let mut env_set = BTreeMap::new();
    for (k, v) in env.set.unwrap_or_default() {
        let key = format!("process.env.set.{}", k.get_ref());
        if let Err(m) = values::check_env_name(k.get_ref()) {
            r.error(k.span(), key.clone(), m);
        }
        match Template::parse(v.get_ref()) {
            Ok(t) => {
                env_set.insert(k.into_inner(), t);
            }
            Err(m) => r.error(v.span(), key, m),
        }
    }
    Process {
        exec: raw
            .exec
            .map(|e| list(r, "process.exec", Some(e), Template::parse_path)),
        exec_writable: raw.exec_writable.map(Spanned::into_inner),
        user: one(r, "process.user", raw.user, |s| {
            values::check_user(s).map(|()| s.to_owned())
        }),
        env_keep: list(r, "process.env.keep", env.keep, |s| {
            values::check_env_name(s).map(|()| s.to_owned())
        }),
        env_set,
    }
}

type Value = Option<Spanned<toml::Value>>;

/// Types one limit; `check` gets the TOML value and says what is wrong with it.
fn limit<T>(
    r: &mut Reporter<'_>,
    key: &str,
    v: Value,
    check: impl Fn(&toml::Value) -> Result<T, String>,
) -> Option<T> {
    let v = v?;
    check(v.get_ref())
        .map_err(|m| r.error(v.span(), key, m))
        .ok()
}

fn positive_int(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(n) if *n > 0 => Ok(n.unsigned_abs()),
        toml::Value::Integer(n) => Err(format!("{n}: must be a positive integer")),
        other => Err(format!(
            "expected a positive integer, found {}",
            other.type_str()
        )),
    }
}

fn size(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::String(s) => values::parse_size(s),
        toml::Value::Integer(n) => Err(format!(
            "a size needs a unit: write \"{n}MiB\" (or \"{n}B\" if you mean bytes)"
        )),
        other => Err(format!(
            "expected a size like \"512MiB\", found {}",
            other.type_str()
        )),
    }
}

fn duration(v: &toml::Value) -> Result<std::time::Duration, String> {
    match v {
        toml::Value::String(s) => values::parse_duration(s),
        toml::Value::Integer(_) => positive_int(v).map(std::time::Duration::from_secs),
        other => Err(format!(
            "expected a duration like \"5m\", found {}",
            other.type_str()
        )),
    }
}

fn cpus(v: &toml::Value) -> Result<f64, String> {
    #[expect(clippy::cast_precision_loss, reason = "CPU counts are tiny integers")]
    let n = match v {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(i) => *i as f64,
        other => {
            return Err(format!(
                "expected a number of CPUs, found {}",
                other.type_str()
            ));
        }
    };
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("{n}: the CPU limit must be greater than 0"));
    }
    Ok(n)
}

fn rate(v: &toml::Value) -> Result<u32, String> {
    let n = positive_int(v)?;
    u32::try_from(n).map_err(|_| format!("{n}: too large for a per-minute rate"))
}

fn limits(r: &mut Reporter<'_>, raw: RawLimits) -> Limits {
    Limits {
        memory: limit(r, "limits.memory", raw.memory, size),
        pids: limit(r, "limits.pids", raw.pids, positive_int),
        cpu: limit(r, "limits.cpu", raw.cpu, cpus),
        wall_time: limit(r, "limits.wall_time", raw.wall_time, duration),
        cpu_time: limit(r, "limits.cpu_time", raw.cpu_time, duration),
        open_files: limit(r, "limits.open_files", raw.open_files, positive_int),
        connects_per_minute: limit(
            r,
            "limits.connects_per_minute",
            raw.connects_per_minute,
            rate,
        ),
        execs_per_minute: limit(r, "limits.execs_per_minute", raw.execs_per_minute, rate),
    }
}
