//! Who is calling, as the kernel says, and whether the configuration lets them use a profile.
//!
//! The caller's uid, gid and pid come from `SO_PEERCRED` and its supplementary groups from
//! `SO_PEERGROUPS` (Linux 4.13): both are the credentials the kernel recorded when the client
//! called `connect`, so a client cannot claim anything and there is no race with a pid that
//! exits and is reused (reading `/proc/<pid>/status` would have both problems). The sandbox then
//! runs with exactly these ids, so a caller never gets more rights than it already had.
//!
//! Root is allowed every profile: it could run `guard exec` locally anyway. But uid 0 alone is
//! not root: a tool running as uid 0 with its capabilities dropped (a container's root, a
//! service hardened with `CapabilityBoundingSet=`, a process under `setpriv --bounding-set=-all`)
//! could not load probes or create cgroups itself, and must not get them from the daemon. So a
//! caller is privileged only when it is uid 0, in the daemon's user namespace, and its effective
//! set holds every capability in [`ROOT_CAPABILITIES`]; read from `/proc/<pid>/status` with the
//! process pinned by `SO_PEERPIDFD`, so a pid reused by another process is never read instead
//! (no pidfd, an older kernel: not privileged). Everyone else, uid 0 included, needs an
//! `[[allow]]` entry naming their uid, their primary gid or one of their groups, and the
//! profile by name.

use std::os::fd::{AsRawFd, BorrowedFd};

use serde::{Deserialize, Serialize};

use super::config::DaemonConfig;
use super::protocol::WireMode;

/// The kernel-verified identity of a connected client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (may include `gid`).
    pub groups: Vec<u32>,
    /// uid 0 with the capabilities that make root ([`ROOT_CAPABILITIES`]), in the daemon's
    /// user namespace.
    #[serde(default)]
    pub privileged: bool,
}

/// The capabilities that make uid 0 root for the daemon: what a local `guard exec` needs to do
/// itself what the daemon would do for it (cgroups and bpffs, probes and their hooks, switching
/// ids, reading any file).
pub const ROOT_CAPABILITIES: [(u32, &str); 6] = [
    (21, "CAP_SYS_ADMIN"),
    (12, "CAP_NET_ADMIN"),
    (1, "CAP_DAC_OVERRIDE"),
    (7, "CAP_SETUID"),
    (6, "CAP_SETGID"),
    (5, "CAP_KILL"),
];

impl Caller {
    /// Root as far as the daemon is concerned: uid 0 *and* its capabilities.
    pub fn is_root(&self) -> bool {
        self.uid == 0 && self.privileged
    }

    /// `alice (uid 1001)`, or `uid 1001` without a user database entry; uid 0 without root's
    /// capabilities says so.
    pub fn describe(&self) -> String {
        let who = self.who();
        if self.uid == 0 && !self.privileged {
            format!("{who} without root's capabilities")
        } else {
            who
        }
    }

    fn who(&self) -> String {
        match user_name(self.uid) {
            Some(name) => format!("user {name} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// The name of `uid` in the user database.
pub fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The home directory of `uid` in the user database.
pub fn user_home(uid: u32) -> Option<std::path::PathBuf> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.dir)
}

/// Reading the peer's credentials failed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("reading SO_PEERCRED")]
    PeerCred(#[source] std::io::Error),
    #[error("reading SO_PEERGROUPS")]
    PeerGroups(#[source] std::io::Error),
}

/// The credentials of the process at the other end of `socket`.
///
/// # Minimum kernel version
///
/// `SO_PEERGROUPS` needs kernel 4.13.
pub fn peer(socket: BorrowedFd<'_>) -> Result<Caller, CredentialsError> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a properly sized ucred.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(CredentialsError::PeerCred(std::io::Error::last_os_error()));
    }
    Ok(Caller {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
        groups: peer_groups(socket)?,
        privileged: cred.uid == 0 && has_root_capabilities(socket, cred.pid),
    })
}

/// Whether the peer (pid `pid`, pinned by its pidfd) holds every [`ROOT_CAPABILITIES`] in its
/// effective set and lives in the daemon's user namespace. Anything unreadable: no.
fn has_root_capabilities(socket: BorrowedFd<'_>, pid: i32) -> bool {
    let Some(pidfd) = super::sandboxed::peer_pidfd(socket) else {
        return false;
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
    let same_userns = match (
        std::fs::read_link(format!("/proc/{pid}/ns/user")),
        std::fs::read_link("/proc/self/ns/user"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        _ => false,
    };
    // Read while pinned: if the process is still running now, what was read was its own.
    if !super::sandboxed::still_running(&pidfd) {
        return false;
    }
    same_userns && status.is_ok_and(|s| effective_caps(&s).is_some_and(holds_root_capabilities))
}

/// `CapEff` of a `/proc/<pid>/status` text.
fn effective_caps(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn holds_root_capabilities(effective: u64) -> bool {
    ROOT_CAPABILITIES
        .iter()
        .all(|(bit, _)| effective & (1u64 << bit) != 0)
}

/// `SO_PEERGROUPS`: the kernel answers ERANGE with the needed size when the buffer is short.
fn peer_groups(socket: BorrowedFd<'_>) -> Result<Vec<u32>, CredentialsError> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into the vector's buffer.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && count > groups.len() {
            groups.resize(count, 0);
            continue;
        }
        return Err(CredentialsError::PeerGroups(err));
    }
}

/// Why a caller may not run what it asked for. The message is shown to the caller and written
/// to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{caller} may not use the guard daemon: no [[allow]] entry of {config} names the user or one of its groups"
    )]
    NotAllowed { caller: String, config: String },
    #[error("{caller} may not use profile `{profile}` (allowed: {allowed})")]
    Profile {
        caller: String,
        profile: String,
        allowed: String,
    },
    #[error("the daemon runs profiles by NAME only; `{0}` is a path")]
    ProfilePath(String),
    #[error("{caller} may not use --mode audit (set audit_mode = true in its [[allow]] entry)")]
    AuditMode { caller: String },
}

/// Whether `caller` may use the daemon at all (root, or named by an `[[allow]]` entry): checked
/// from the kernel's credentials alone, before a byte of the request is read, so strangers
/// cannot make the daemon buffer anything.
pub fn may_connect(config: &DaemonConfig, caller: &Caller) -> Result<(), Refusal> {
    if caller.is_root() || config.allow.iter().any(|rule| names(rule, caller)) {
        return Ok(());
    }
    Err(Refusal::NotAllowed {
        caller: caller.describe(),
        config: config.file.display().to_string(),
    })
}

fn names(rule: &super::config::AllowRule, caller: &Caller) -> bool {
    rule.uids.contains(&caller.uid)
        || rule.gids.contains(&caller.gid)
        || rule.gids.iter().any(|g| caller.groups.contains(g))
}

/// Whether `caller` may run `profile` in `mode` under `config`.
pub fn authorize(
    config: &DaemonConfig,
    caller: &Caller,
    profile: &str,
    mode: WireMode,
) -> Result<(), Refusal> {
    if !super::config::valid_profile_name(profile) {
        return Err(Refusal::ProfilePath(profile.to_owned()));
    }
    if caller.is_root() {
        return Ok(());
    }
    let matching: Vec<_> = config
        .allow
        .iter()
        .filter(|rule| names(rule, caller))
        .collect();
    if matching.is_empty() {
        return Err(Refusal::NotAllowed {
            caller: caller.describe(),
            config: config.file.display().to_string(),
        });
    }
    let granting: Vec<_> = matching
        .iter()
        .filter(|rule| rule.profiles.grants(profile))
        .collect();
    if granting.is_empty() {
        let mut allowed: Vec<String> = matching
            .iter()
            .flat_map(|rule| match &rule.profiles {
                super::config::Profiles::Any => vec!["*".to_owned()],
                super::config::Profiles::Names(names) => names.clone(),
            })
            .collect();
        allowed.sort();
        allowed.dedup();
        return Err(Refusal::Profile {
            caller: caller.describe(),
            profile: profile.to_owned(),
            allowed: allowed.join(", "),
        });
    }
    // Audit mode applies no Landlock at all: it is a weaker sandbox, granted explicitly.
    if mode == WireMode::Audit && !granting.iter().any(|rule| rule.audit_mode) {
        return Err(Refusal::AuditMode {
            caller: caller.describe(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::config::{AllowRule, Profiles};
    use std::path::PathBuf;

    fn config() -> DaemonConfig {
        DaemonConfig {
            file: PathBuf::from("/etc/guard/daemon.toml"),
            socket: PathBuf::from("/run/guard/guard.sock"),
            socket_mode: 0o660,
            socket_group: None,
            audit_log: PathBuf::from("/var/log/guard/audit.jsonl"),
            profile_path: Vec::new(),
            allow: vec![
                AllowRule {
                    uids: vec![1001],
                    gids: vec![],
                    profiles: Profiles::Names(vec!["shell-readonly".into()]),
                    audit_mode: false,
                },
                AllowRule {
                    uids: vec![],
                    gids: vec![2000],
                    profiles: Profiles::Names(vec!["python".into()]),
                    audit_mode: true,
                },
            ],
        }
    }

    fn caller(uid: u32, gid: u32, groups: &[u32]) -> Caller {
        Caller {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
            privileged: uid == 0,
        }
    }

    #[test]
    fn users_and_groups_get_their_profiles_only() {
        let c = config();
        let alice = caller(1001, 1001, &[1001]);
        assert_eq!(
            authorize(&c, &alice, "shell-readonly", WireMode::Enforce),
            Ok(())
        );
        assert!(matches!(
            authorize(&c, &alice, "python", WireMode::Enforce),
            Err(Refusal::Profile { allowed, .. }) if allowed == "shell-readonly"
        ));
        // Supplementary group and primary group both count.
        let bob = caller(1002, 1002, &[1002, 2000]);
        assert_eq!(authorize(&c, &bob, "python", WireMode::Audit), Ok(()));
        let carol = caller(1003, 2000, &[]);
        assert_eq!(authorize(&c, &carol, "python", WireMode::Enforce), Ok(()));
        let mallory = caller(1666, 1666, &[1666]);
        assert!(matches!(
            authorize(&c, &mallory, "python", WireMode::Enforce),
            Err(Refusal::NotAllowed { .. })
        ));
    }

    #[test]
    fn audit_mode_paths_and_root() {
        let c = config();
        let alice = caller(1001, 1001, &[]);
        assert!(matches!(
            authorize(&c, &alice, "shell-readonly", WireMode::Audit),
            Err(Refusal::AuditMode { .. })
        ));
        assert!(matches!(
            authorize(&c, &alice, "/home/alice/evil.toml", WireMode::Enforce),
            Err(Refusal::ProfilePath(_))
        ));
        let root = caller(0, 0, &[]);
        assert_eq!(authorize(&c, &root, "anything", WireMode::Audit), Ok(()));
        assert!(authorize(&c, &root, "../x", WireMode::Enforce).is_err());
        // uid 0 without root's capabilities is an ordinary user with no [[allow]] entry.
        let capless = Caller {
            privileged: false,
            ..caller(0, 0, &[])
        };
        assert!(!capless.is_root());
        assert!(matches!(
            authorize(&c, &capless, "anything", WireMode::Enforce),
            Err(Refusal::NotAllowed { .. })
        ));
        assert!(capless.describe().ends_with("without root's capabilities"));
    }

    #[test]
    fn root_capabilities_are_read_from_cap_eff() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";
        assert!(effective_caps(status).is_some_and(holds_root_capabilities));
        let dropped = "CapEff:\t0000000000000000\n";
        assert!(!effective_caps(dropped).is_some_and(holds_root_capabilities));
        // Everything but CAP_SYS_ADMIN.
        let no_admin = format!("CapEff:\t{:016x}\n", 0x1ff_ffff_ffffu64 & !(1 << 21));
        assert!(!effective_caps(&no_admin).is_some_and(holds_root_capabilities));
        assert_eq!(effective_caps("CapPrm:\t1\n"), None);
    }
}
