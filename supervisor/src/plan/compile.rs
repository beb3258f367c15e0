//! [`Plan::compile`]: from a resolved profile to what each enforcement layer must do.
//!
//! Pure: the working directory, home, parent environment, mode and user database come in through
//! [`CompileContext`], so every rule here is unit-tested without root or a real environment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::baseline;
use super::cgroup::CgroupLimits;
use super::ebpf::EbpfPolicy;
use super::exec_writable;
use super::landlock::{FsGrant, LandlockPlan, PathRule, PortRange};
use super::seccomp::{SeccompAction, SeccompPlan};
use super::seccomp_groups::{BASELINE_MARKERS, MARKER_NO_INET, MARKER_NO_UNIX};
use super::{IdentityPlan, Mode, Plan, TimeLimits, UserIds, ViolationAction, ViolationPolicy};
use crate::policy::network::Endpoint;
use crate::profile::ResolvedProfile;
use crate::profile::expand::{ExpandContext, ExpandError, Template};
use crate::profile::lookup::DYNAMIC_LOADERS;

/// Port of DNS over TCP, opened for Landlock when the sandbox has a DNS gate: the probes send
/// every TCP connect to port 53 to the gate, whatever address it names (Landlock sees the
/// connect before they re-address it).
const DNS_PORT: u16 = 53;

/// Maps `process.user` to ids.
pub trait UserResolver {
    /// `Ok(None)` when there is no such user.
    fn resolve(&self, user: &str) -> Result<Option<UserIds>, nix::Error>;
}

/// Resolves users through the system user database (NSS), numeric uids as themselves with the
/// user's primary group when the uid has an entry, else gid = uid.
#[derive(Debug, Clone, Copy, Default)]
pub struct NixUserResolver;

impl UserResolver for NixUserResolver {
    fn resolve(&self, user: &str) -> Result<Option<UserIds>, nix::Error> {
        use nix::unistd::{Uid, User};
        if let Ok(uid) = user.parse::<u32>() {
            let entry = User::from_uid(Uid::from_raw(uid))?;
            return Ok(Some(UserIds {
                uid,
                gid: entry.map_or(uid, |u| u.gid.as_raw()),
            }));
        }
        Ok(User::from_name(user)?.map(|u| UserIds {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }))
    }
}

/// Everything outside the profile that compiling needs.
pub struct CompileContext<'a> {
    pub expand: ExpandContext,
    /// The environment `process.env.keep` picks from (guard's caller's).
    pub parent_env: Vec<(OsString, OsString)>,
    pub mode: Mode,
    pub users: &'a dyn UserResolver,
}

/// Why a profile could not be compiled for this start.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{key}: `{template}`: {source}")]
    Expand {
        key: String,
        template: String,
        #[source]
        source: ExpandError,
    },
    #[error(
        "process.exec: {} overlaps the write path {} (filesystem.write), so the tool could \
         replace what it may run; move one of them, or accept it with process.exec_writable = true",
        .0.exec.display(),
        .0.write.display()
    )]
    ExecWritable(exec_writable::Overlap),
    #[error(
        "network.unix: {socket} lies in the write path {write} (filesystem.write), so the tool \
         could replace it with a link to any other socket (the guard daemon's included); list a \
         socket outside the write paths",
        socket = .0.exec.display(),
        write = .0.write.display()
    )]
    UnixInWritePath(exec_writable::Overlap),
    #[error(transparent)]
    Baseline(#[from] baseline::BaselineError),
    #[error("process.user: no user `{0}` on this host")]
    UnknownUser(String),
    #[error("process.user: cannot look up `{user}`: {source}")]
    LookupUser {
        user: String,
        #[source]
        source: nix::Error,
    },
}

fn expand_all(
    key: &str,
    items: &[Template],
    ctx: &ExpandContext,
) -> Result<Vec<PathBuf>, PlanError> {
    items
        .iter()
        .map(|t| {
            t.expand_path(ctx).map_err(|source| PlanError::Expand {
                key: key.to_owned(),
                template: t.as_str().to_owned(),
                source,
            })
        })
        .collect()
}

/// Sorts ranges and joins the ones that overlap or touch.
fn merge_ranges(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort_by_key(|r| (r.first, r.last));
    let mut out: Vec<PortRange> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if u32::from(r.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(r.last);
            }
            _ => out.push(r),
        }
    }
    out
}

fn ports(endpoints: &[Endpoint]) -> Vec<PortRange> {
    endpoints
        .iter()
        .map(|e| PortRange {
            first: e.ports.first,
            last: e.ports.last,
        })
        .collect()
}

impl Plan {
    /// Compiles `profile` for one sandbox start.
    pub fn compile(profile: &ResolvedProfile, ctx: &CompileContext<'_>) -> Result<Plan, PlanError> {
        let p = &profile.profile;
        let audit = ctx.mode == Mode::Audit;

        let default = p.on_violation.action.unwrap_or(ViolationAction::Deny);
        let on_violation = if audit {
            ViolationPolicy {
                network: ViolationAction::Audit,
                exec: ViolationAction::Audit,
            }
        } else {
            ViolationPolicy {
                network: p.on_violation.network.unwrap_or(default),
                exec: p.on_violation.exec.unwrap_or(default),
            }
        };

        // Landlock refuses a connect or bind before guard's eBPF hooks see it, and cannot kill or
        // let it through and record it: a network category that says kill or audit leaves ports
        // to the hooks (the enforcement model then requires them), so it means what it says.
        let network_denies = on_violation.network == ViolationAction::Deny;
        // Landlock: one rule per path, the union of the rights every list grants it.
        let mut grants: BTreeMap<PathBuf, FsGrant> = BTreeMap::new();
        for path in expand_all("filesystem.read", &p.filesystem.read, &ctx.expand)? {
            grants.entry(path).or_default().read = true;
        }
        for path in expand_all("filesystem.write", &p.filesystem.write, &ctx.expand)? {
            grants.entry(path).or_default().write = true;
        }
        let execute = expand_all("filesystem.execute", &p.filesystem.execute, &ctx.expand)?;
        for path in &execute {
            grants.entry(path.clone()).or_default().execute = true;
        }
        let dns = p.network.dns.unwrap_or(false);
        let dns_gate = dns || !p.network.connect.is_empty();
        let mut tcp_connect = ports(&p.network.connect);
        if dns_gate {
            tcp_connect.push(PortRange {
                first: DNS_PORT,
                last: DNS_PORT,
            });
        }
        let landlock = LandlockPlan {
            paths: grants
                .into_iter()
                .map(|(path, grant)| PathRule { path, grant })
                .collect(),
            tcp_connect: if network_denies {
                merge_ranges(tcp_connect)
            } else {
                vec![PortRange::ALL]
            },
            tcp_bind: if network_denies {
                merge_ranges(ports(&p.network.bind))
            } else {
                vec![PortRange::ALL]
            },
            scope: true,
        };

        // The argument-filtered rules (TIOCSTI/TIOCLINUX injection into the terminal, user
        // namespaces through clone) close known escapes and cost nothing to legitimate tools, so
        // every sandbox gets them, whatever its profile extends.
        let mut deny: Vec<String> = BASELINE_MARKERS.iter().map(|m| (*m).to_owned()).collect();
        // The escape set of the `base` fragment, whether or not the profile extends it.
        deny.extend(baseline::always_denied()?);
        if p.network.connect.is_empty()
            && p.network.bind.is_empty()
            && !p.network.dns.unwrap_or(false)
            && network_denies
        {
            // No network at all: no IP socket may even be created (TCP, UDP, both families).
            // (Not with kill or audit: the connect must reach the hooks to be killed or recorded.)
            deny.push(MARKER_NO_INET.to_owned());
        }
        if p.network.bind.is_empty() {
            // No bind rules: no listening socket. listen(2) on an unbound TCP socket binds an
            // ephemeral port on every address without calling bind(2), so neither Landlock's
            // bind rules nor the bind hooks see it; a tool could otherwise open a listener
            // reachable from the network in a profile that grants no bind at all.
            deny.push("listen".to_owned());
        }
        if p.network.unix.is_empty() {
            // No unix socket paths allowed: no AF_UNIX socket may be created (socketpair may).
            deny.push(MARKER_NO_UNIX.to_owned());
        }
        // Everything above is the always-on baseline; the profile's own entries come last and
        // are the only ones `syscalls.action` may weaken.
        let mut baseline = deny.clone();
        baseline.sort();
        baseline.dedup();
        deny.extend(p.syscalls.deny.iter().cloned());
        deny.sort();
        deny.dedup();
        let seccomp = SeccompPlan {
            deny,
            baseline,
            audit,
            // Audit mode records instead of denying; for seccomp that is the kernel's log action.
            action: if audit {
                SeccompAction::Log
            } else {
                p.syscalls.action.unwrap_or_default()
            },
        };

        let exec_allow = match &p.process.exec {
            Some(list) => expand_all("process.exec", list, &ctx.expand)?,
            // Everything the profile lets Landlock execute, except the dynamic loaders: see
            // `DYNAMIC_LOADERS` for why running those directly must stay forbidden.
            None => execute
                .into_iter()
                .filter(|p| !DYNAMIC_LOADERS.iter().any(|l| p.as_os_str() == *l))
                .collect(),
        };
        if !p.process.exec_writable.unwrap_or(false) {
            let write: Vec<&std::path::Path> = landlock.write_paths().collect();
            if let Some(overlap) = exec_writable::first_overlap(&exec_allow, &write) {
                return Err(PlanError::ExecWritable(overlap));
            }
        }
        // The probes compare socket paths as strings: a socket the tool could remove and
        // replace (by a symlink, or a directory above it by another) would lead it anywhere.
        let unix = expand_all("network.unix", &p.network.unix, &ctx.expand)?;
        // Compared as written and with symlinks resolved (where the paths exist), so neither
        // spelling hides an overlap; the same comparison as for executables.
        let resolved = |p: &std::path::Path| -> Option<PathBuf> {
            match (p.parent(), p.file_name()) {
                (Some(dir), Some(name)) => dir.canonicalize().ok().map(|d| d.join(name)),
                _ => None,
            }
        };
        let sockets: Vec<PathBuf> = unix
            .iter()
            .flat_map(|s| [Some(s.clone()), resolved(s)])
            .flatten()
            .collect();
        let write: Vec<PathBuf> = landlock
            .write_paths()
            .flat_map(|w| [Some(w.to_path_buf()), w.canonicalize().ok()])
            .flatten()
            .collect();
        let write: Vec<&std::path::Path> = write.iter().map(PathBuf::as_path).collect();
        if let Some(overlap) = exec_writable::first_overlap(&sockets, &write) {
            return Err(PlanError::UnixInWritePath(overlap));
        }
        let ebpf = EbpfPolicy {
            exec_allow,
            connect: p.network.connect.clone(),
            bind: p.network.bind.clone(),
            unix,
            dns,
            dns_gate,
            connects_per_minute: p.limits.connects_per_minute,
            execs_per_minute: p.limits.execs_per_minute,
        };

        Ok(Plan {
            profile_name: profile.name.clone(),
            profile_sha256: profile.sha256.clone(),
            mode: ctx.mode,
            landlock,
            seccomp,
            cgroup: CgroupLimits {
                memory_bytes: p.limits.memory,
                pids: p.limits.pids,
                cpu: p.limits.cpu,
            },
            time: TimeLimits {
                wall_time: p.limits.wall_time,
                cpu_time: p.limits.cpu_time,
            },
            open_files: p.limits.open_files,
            identity: identity(profile, ctx)?,
            ebpf,
            on_violation,
            allow_weaker: p.allow_weaker.clone(),
        })
    }
}

/// The user switch and the command's environment: `env.keep` names present in the parent
/// environment, then `env.set` (which wins), sorted by name.
fn identity(
    profile: &ResolvedProfile,
    ctx: &CompileContext<'_>,
) -> Result<IdentityPlan, PlanError> {
    let proc = &profile.profile.process;
    let user = match &proc.user {
        None => None,
        Some(name) => Some(
            ctx.users
                .resolve(name)
                .map_err(|source| PlanError::LookupUser {
                    user: name.clone(),
                    source,
                })?
                .ok_or_else(|| PlanError::UnknownUser(name.clone()))?,
        ),
    };
    let mut env: BTreeMap<OsString, OsString> = BTreeMap::new();
    for (k, v) in &ctx.parent_env {
        if proc.env_keep.iter().any(|keep| OsString::from(keep) == *k) {
            env.insert(k.clone(), v.clone());
        }
    }
    for (k, t) in &proc.env_set {
        let v = t.expand(&ctx.expand).map_err(|source| PlanError::Expand {
            key: format!("process.env.set.{k}"),
            template: t.as_str().to_owned(),
            source,
        })?;
        env.insert(k.into(), v.into());
    }
    Ok(IdentityPlan {
        user,
        groups: user.map(|u| vec![u.gid]).unwrap_or_default(),
        env: env.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Lookup, Source};

    struct Users;
    impl UserResolver for Users {
        fn resolve(&self, user: &str) -> Result<Option<UserIds>, nix::Error> {
            Ok((user == "nobody").then_some(UserIds {
                uid: 65534,
                gid: 65534,
            }))
        }
    }

    fn resolved(text: &str) -> ResolvedProfile {
        let src = Source {
            display: "t.toml".into(),
            id: "t.toml".into(),
            dir: None,
            text: text.into(),
        };
        crate::profile::resolve(&src, &Lookup::new(None)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ctx(mode: Mode) -> CompileContext<'static> {
        CompileContext {
            expand: ExpandContext {
                cwd: "/w".into(),
                home: Some("/home/u".into()),
                tmpdir: "/tmp".into(),
            },
            parent_env: vec![
                ("PATH".into(), "/usr/bin".into()),
                ("SECRET".into(), "x".into()),
                ("LANG".into(), "C".into()),
            ],
            mode,
            users: &Users,
        }
    }

    fn compile(text: &str) -> Plan {
        Plan::compile(&resolved(text), &ctx(Mode::Enforce)).unwrap()
    }

    #[test]
    fn path_rules_are_merged_per_path_and_expanded() {
        let plan = compile(
            r#"
            [filesystem]
            read = ["${CWD}", "/usr/bin", "/etc"]
            write = ["${CWD}", "${TMPDIR}"]
            execute = ["/usr/bin", "${HOME}/.cargo/bin"]
            "#,
        );
        let g = |p: &str| {
            plan.landlock
                .paths
                .iter()
                .find(|r| r.path.as_os_str() == p)
                .map(|r| (r.grant.read, r.grant.write, r.grant.execute))
        };
        assert_eq!(plan.landlock.paths.len(), 5);
        assert_eq!(g("/w"), Some((true, true, false)));
        assert_eq!(g("/usr/bin"), Some((true, false, true)));
        assert_eq!(g("/tmp"), Some((false, true, false)));
        assert_eq!(g("/home/u/.cargo/bin"), Some((false, false, true)));
        assert!(plan.landlock.scope);
        // The exec allowlist defaults to filesystem.execute.
        assert_eq!(
            plan.ebpf.exec_allow,
            vec![
                PathBuf::from("/usr/bin"),
                PathBuf::from("/home/u/.cargo/bin")
            ]
        );
    }

    #[test]
    fn default_exec_allowlist_leaves_out_the_dynamic_loader() {
        let plan = compile("extends = [\"base\"]\n[filesystem]\nexecute = [\"/usr/bin/x\"]\n");
        assert_eq!(plan.ebpf.exec_allow, vec![PathBuf::from("/usr/bin/x")]);
    }

    #[test]
    fn tcp_ports_come_from_connect_and_bind_merged() {
        let plan = compile(
            r#"
            [network]
            connect = ["a.example:443", "10.0.0.0/8:8000-8080", "[::1]:8080-8090", "1.2.3.4:443"]
            bind = ["127.0.0.1:9000"]
            dns = true
            "#,
        );
        let r = |first, last| PortRange { first, last };
        assert_eq!(
            plan.landlock.tcp_connect,
            vec![r(53, 53), r(443, 443), r(8000, 8090)]
        );
        assert_eq!(plan.landlock.tcp_bind, vec![r(9000, 9000)]);
        assert!(plan.ebpf.dns);
        assert_eq!(plan.ebpf.connect[2].to_string(), "[::1]:8080-8090");
    }

    #[test]
    fn limits_syscalls_and_violations_are_carried_over() {
        let plan = compile(
            r#"
            extends = ["base"]
            allow_weaker = ["bpf.lsm"]
            [process]
            exec = ["/usr/bin/curl"]
            [syscalls]
            deny = ["@mount", "io_uring_setup"]
            action = "kill"
            [limits]
            memory = "512MiB"
            pids = 64
            cpu = 1.5
            wall_time = "5m"
            cpu_time = 120
            open_files = 100
            connects_per_minute = 5
            [on_violation]
            action = "kill"
            network = "deny"
            "#,
        );
        assert_eq!(plan.cgroup.memory_bytes, Some(512 << 20));
        assert_eq!(plan.cgroup.pids, Some(64));
        assert_eq!(plan.cgroup.cpu, Some(1.5));
        assert_eq!(
            plan.time.wall_time,
            Some(std::time::Duration::from_secs(300))
        );
        assert_eq!(
            plan.time.cpu_time,
            Some(std::time::Duration::from_secs(120))
        );
        assert_eq!(plan.open_files, Some(100));
        assert_eq!(plan.ebpf.connects_per_minute, Some(5));
        assert_eq!(plan.ebpf.exec_allow, vec![PathBuf::from("/usr/bin/curl")]);
        // Landlock may execute the loader (the kernel opens it for every dynamic binary).
        assert!(
            plan.landlock
                .paths
                .iter()
                .any(|r| r.grant.execute && r.path.as_os_str() == "/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(plan.seccomp.action, SeccompAction::Kill);
        // The base deny set is merged in, once, sorted.
        let deny = &plan.seccomp.deny;
        assert!(deny.contains(&"ptrace".to_owned()) && deny.contains(&"@mount".to_owned()));
        assert_eq!(deny.iter().filter(|d| *d == "@mount").count(), 1);
        for marker in BASELINE_MARKERS {
            assert!(deny.contains(&(*marker).to_owned()), "{marker} missing");
        }
        assert!(deny.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(plan.on_violation.network, ViolationAction::Deny);
        assert_eq!(plan.on_violation.exec, ViolationAction::Kill);
        assert!(plan.allows_weaker(super::super::Weakening::BpfLsm));
        assert!(!plan.allows_weaker(super::super::Weakening::LandlockNet));
    }

    #[test]
    fn audit_mode_logs_instead_of_denying() {
        let p = resolved("[syscalls]\naction = \"kill\"\n[on_violation]\naction = \"kill\"\n");
        let plan = Plan::compile(&p, &ctx(Mode::Audit)).unwrap();
        assert_eq!(plan.seccomp.action, SeccompAction::Log);
        assert_eq!(plan.on_violation.exec, ViolationAction::Audit);
        assert!(!plan.applies_landlock());
        assert!(
            Plan::compile(&p, &ctx(Mode::Enforce))
                .unwrap()
                .applies_landlock()
        );
    }

    #[test]
    fn environment_is_keep_plus_set_and_nothing_else() {
        let plan = compile(
            r#"
            [process]
            user = "nobody"
            env = { keep = ["PATH", "LANG", "TERM"], set = { LANG = "C.UTF-8", WORK = "${CWD}/out" } }
            "#,
        );
        let env: Vec<(String, String)> = plan
            .identity
            .env
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        let want = [
            ("LANG", "C.UTF-8"),
            ("PATH", "/usr/bin"),
            ("WORK", "/w/out"),
        ];
        assert_eq!(env, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert_eq!(
            plan.identity.user,
            Some(UserIds {
                uid: 65534,
                gid: 65534
            })
        );
    }

    #[test]
    fn unknown_users_and_unset_home_fail_to_compile() {
        let p = resolved("[process]\nuser = \"mallory\"\n");
        assert!(matches!(
            Plan::compile(&p, &ctx(Mode::Enforce)),
            Err(PlanError::UnknownUser(u)) if u == "mallory"
        ));
        let p = resolved("[filesystem]\nread = [\"${HOME}/x\"]\n");
        let mut c = ctx(Mode::Enforce);
        c.expand.home = None;
        assert!(matches!(
            Plan::compile(&p, &c),
            Err(PlanError::Expand { .. })
        ));
    }

    #[test]
    fn profile_identity_is_recorded() {
        let p = resolved("name = \"n\"\n");
        let plan = Plan::compile(&p, &ctx(Mode::Enforce)).unwrap();
        assert_eq!(plan.profile_name, "n");
        assert_eq!(
            plan.profile_sha256,
            crate::profile::sha256_hex(b"name = \"n\"\n")
        );
    }
}
