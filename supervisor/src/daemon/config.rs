//! `/etc/guard/daemon.toml`: where the daemon listens, where it writes evidence, where it finds
//! profiles, and which users and groups may use which profiles.
//!
//! ```toml
//! socket = "/run/guard/guard.sock"        # unused when systemd passes the socket
//! socket_mode = "0660"
//! socket_group = "guard-users"            # optional
//! audit_log = "/var/log/guard/audit.jsonl"
//! profile_path = ["/etc/guard/profiles"]  # searched for profile NAMEs, then the shipped ones
//!
//! [[allow]]
//! users = ["alice", "1001"]
//! groups = ["agents"]
//! profiles = ["shell-readonly", "python"]  # or ["*"]: every profile on the search path
//! audit_mode = false                       # may these callers ask for --mode audit?
//! ```
//!
//! Problems are reported like profile problems, `FILE:LINE:COL: key: message`, all at once.
//! User and group names are resolved to ids when the file is loaded (and on every reload), so
//! a typo is an error at start rather than a silent refusal later.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::profile::lookup::is_path;
use crate::profile::parse::Reporter;
use crate::profile::{Diagnostics, Lookup};

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/guard/daemon.toml";
/// The default socket.
pub const DEFAULT_SOCKET: &str = "/run/guard/guard.sock";
/// The default central audit log.
pub const DEFAULT_AUDIT_LOG: &str = "/var/log/guard/audit.jsonl";

/// The daemon's configuration, checked and with names resolved to ids.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// The file it was read from.
    pub file: PathBuf,
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub socket_group: Option<u32>,
    pub audit_log: PathBuf,
    /// Directories searched for profile names before the shipped profiles.
    pub profile_path: Vec<PathBuf>,
    pub allow: Vec<AllowRule>,
}

/// One `[[allow]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
    pub profiles: Profiles,
    pub audit_mode: bool,
}

/// The profiles an entry grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profiles {
    /// `["*"]`: any profile name the daemon's search path resolves.
    Any,
    Names(Vec<String>),
}

impl Profiles {
    pub fn grants(&self, name: &str) -> bool {
        match self {
            Profiles::Any => true,
            Profiles::Names(names) => names.iter().any(|n| n == name),
        }
    }
}

impl DaemonConfig {
    /// The profile lookup of sandboxes the daemon starts: its own search path, never the
    /// caller's `$GUARD_PROFILE_PATH`.
    pub fn lookup(&self) -> Lookup {
        Lookup {
            dirs: self.profile_path.clone(),
            shipped: true,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Resolves user and group names; the system database in the daemon, a fixed table in tests.
pub trait Names {
    fn uid(&self, name: &str) -> Option<u32>;
    fn gid(&self, name: &str) -> Option<u32>;
}

/// The system user and group database (NSS).
pub struct SystemNames;

impl Names for SystemNames {
    fn uid(&self, name: &str) -> Option<u32> {
        nix::unistd::User::from_name(name)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    }
    fn gid(&self, name: &str) -> Option<u32> {
        nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    socket: Option<Spanned<String>>,
    socket_mode: Option<Spanned<String>>,
    socket_group: Option<Spanned<String>>,
    audit_log: Option<Spanned<String>>,
    profile_path: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    allow: Vec<Spanned<RawAllow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    users: Vec<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
    #[serde(default)]
    profiles: Vec<Spanned<String>>,
    #[serde(default)]
    audit_mode: bool,
}

/// Reads and checks the configuration file at `path`.
pub fn load(path: &Path, names: &dyn Names) -> Result<DaemonConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text, names)
}

/// Checks configuration `text` read from `path`.
pub fn parse(path: &Path, text: &str, names: &dyn Names) -> Result<DaemonConfig, ConfigError> {
    let display = path.display().to_string();
    let mut report = Reporter::new(&display, text);
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            report.toml_error(&err);
            return Err(ConfigError::Invalid(Diagnostics(report.found)));
        }
    };
    let absolute = |report: &mut Reporter<'_>, key: &str, value: &Spanned<String>| {
        let p = PathBuf::from(value.get_ref());
        if !p.is_absolute() {
            report.error(value.span(), key, "must be an absolute path");
        }
        p
    };
    let socket = raw.socket.as_ref().map_or_else(
        || PathBuf::from(DEFAULT_SOCKET),
        |s| absolute(&mut report, "socket", s),
    );
    let audit_log = raw.audit_log.as_ref().map_or_else(
        || PathBuf::from(DEFAULT_AUDIT_LOG),
        |s| absolute(&mut report, "audit_log", s),
    );
    let profile_path = match &raw.profile_path {
        None => vec![PathBuf::from(crate::profile::lookup::SYSTEM_DIR)],
        Some(dirs) => dirs
            .iter()
            .enumerate()
            .map(|(i, d)| absolute(&mut report, &format!("profile_path[{i}]"), d))
            .collect(),
    };
    let socket_mode = match &raw.socket_mode {
        None => 0o660,
        Some(mode) => match u32::from_str_radix(mode.get_ref(), 8) {
            Ok(m) if m <= 0o777 => m,
            _ => {
                report.error(
                    mode.span(),
                    "socket_mode",
                    "must be an octal permission like \"0660\"",
                );
                0
            }
        },
    };
    let socket_group = raw.socket_group.as_ref().and_then(|g| {
        let gid = lookup_id(g.get_ref(), |n| names.gid(n));
        if gid.is_none() {
            report.error(
                g.span(),
                "socket_group",
                format!("no group `{}` on this host", g.get_ref()),
            );
        }
        gid
    });
    let mut allow = Vec::new();
    for (i, entry) in raw.allow.iter().enumerate() {
        if let Some(rule) = check_allow(&mut report, i, entry, names) {
            allow.push(rule);
        }
    }
    if !report.found.is_empty() {
        return Err(ConfigError::Invalid(Diagnostics(report.found)));
    }
    Ok(DaemonConfig {
        file: path.to_owned(),
        socket,
        socket_mode,
        socket_group,
        audit_log,
        profile_path,
        allow,
    })
}

/// A numeric id as itself, else a name through `by_name`.
fn lookup_id(value: &str, by_name: impl Fn(&str) -> Option<u32>) -> Option<u32> {
    value.parse::<u32>().ok().or_else(|| by_name(value))
}

fn check_allow(
    report: &mut Reporter<'_>,
    i: usize,
    entry: &Spanned<RawAllow>,
    names: &dyn Names,
) -> Option<AllowRule> {
    let found_before = report.found.len();
    let key = format!("allow[{i}]");
    let raw = entry.get_ref();
    if raw.users.is_empty() && raw.groups.is_empty() {
        report.error(
            entry.span(),
            &key,
            "names no `users` or `groups`: it would grant nothing",
        );
    }
    if raw.profiles.is_empty() {
        report.error(
            entry.span(),
            &key,
            "`profiles` is missing or empty: it would grant nothing",
        );
    }
    let mut uids = Vec::new();
    for (j, user) in raw.users.iter().enumerate() {
        match lookup_id(user.get_ref(), |n| names.uid(n)) {
            Some(uid) => uids.push(uid),
            None => report.error(
                user.span(),
                format!("{key}.users[{j}]"),
                format!("no user `{}` on this host", user.get_ref()),
            ),
        }
    }
    let mut gids = Vec::new();
    for (j, group) in raw.groups.iter().enumerate() {
        match lookup_id(group.get_ref(), |n| names.gid(n)) {
            Some(gid) => gids.push(gid),
            None => report.error(
                group.span(),
                format!("{key}.groups[{j}]"),
                format!("no group `{}` on this host", group.get_ref()),
            ),
        }
    }
    let mut profiles = Vec::new();
    let mut any = false;
    for (j, profile) in raw.profiles.iter().enumerate() {
        let name = profile.get_ref();
        if name == "*" {
            any = true;
        } else if is_path(name) || !valid_profile_name(name) {
            // Paths are refused: a path names a file, and the caller must not pick the policy
            // file, only a profile the administrator installed on the daemon's search path.
            report.error(
                profile.span(),
                format!("{key}.profiles[{j}]"),
                format!("`{name}` is not a profile name (letters, digits, `-`, `_`, `.`, or `*`)"),
            );
        } else {
            profiles.push(name.clone());
        }
    }
    (report.found.len() == found_before).then_some(AllowRule {
        uids,
        gids,
        profiles: if any {
            Profiles::Any
        } else {
            Profiles::Names(profiles)
        },
        audit_mode: raw.audit_mode,
    })
}

/// The characters the profile lookup accepts in a NAME.
pub fn valid_profile_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Table;
    impl Names for Table {
        fn uid(&self, name: &str) -> Option<u32> {
            (name == "alice").then_some(1001)
        }
        fn gid(&self, name: &str) -> Option<u32> {
            (name == "agents").then_some(2000)
        }
    }

    fn parse_text(text: &str) -> Result<DaemonConfig, ConfigError> {
        parse(Path::new("/etc/guard/daemon.toml"), text, &Table)
    }

    fn errors(text: &str) -> String {
        match parse_text(text) {
            Err(ConfigError::Invalid(d)) => d.to_string(),
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_a_full_file() {
        let c = parse_text("").unwrap();
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.socket_mode, 0o660);
        assert_eq!(c.audit_log, PathBuf::from(DEFAULT_AUDIT_LOG));
        assert_eq!(c.profile_path, vec![PathBuf::from("/etc/guard/profiles")]);
        assert!(c.allow.is_empty());

        let c = parse_text(
            r#"
socket = "/tmp/g.sock"
socket_mode = "0600"
socket_group = "agents"
profile_path = ["/srv/profiles"]
[[allow]]
users = ["alice", "1234"]
profiles = ["shell-readonly"]
[[allow]]
groups = ["agents"]
profiles = ["*"]
audit_mode = true
"#,
        )
        .unwrap();
        assert_eq!(c.socket_mode, 0o600);
        assert_eq!(c.socket_group, Some(2000));
        assert_eq!(c.allow[0].uids, vec![1001, 1234]);
        assert!(c.allow[0].profiles.grants("shell-readonly"));
        assert!(!c.allow[0].profiles.grants("python"));
        assert!(!c.allow[0].audit_mode);
        assert_eq!(c.allow[1].gids, vec![2000]);
        assert_eq!(c.allow[1].profiles, Profiles::Any);
        assert!(c.allow[1].audit_mode);
    }

    #[test]
    fn problems_name_file_line_column_and_key() {
        let text = "[[allow]]\nusers = [\"mallory\"]\nprofiles = [\"../etc/x.toml\"]\n";
        let e = errors(text);
        assert!(
            e.contains("/etc/guard/daemon.toml:2:10: allow[0].users[0]: no user `mallory`"),
            "{e}"
        );
        assert!(
            e.contains("/etc/guard/daemon.toml:3:13: allow[0].profiles[0]: `../etc/x.toml` is not a profile name"),
            "{e}"
        );

        let e = errors("sockett = \"/x\"\n");
        assert!(
            e.starts_with("/etc/guard/daemon.toml:1:1: sockett: unknown field"),
            "{e}"
        );

        let e = errors("socket_mode = \"999\"\nsocket = \"relative\"\n");
        assert!(e.contains("1:15: socket_mode: must be an octal"), "{e}");
        assert!(e.contains("2:10: socket: must be an absolute path"), "{e}");

        let e = errors("[[allow]]\nprofiles = [\"x\"]\n");
        assert!(e.contains("allow[0]: names no `users` or `groups`"), "{e}");
        let e = errors("[[allow]]\nusers = [\"alice\"]\n");
        assert!(
            e.contains("allow[0]: `profiles` is missing or empty"),
            "{e}"
        );
    }
}
