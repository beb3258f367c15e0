//! `guard explain PROFILE`: the effective policy in words, and which layer enforces each part here.
//!
//! [`describe`] is pure (a compiled plan and hand-made [`HostFeatures`] in, text out) so each
//! host situation is unit-tested; [`run`] loads, compiles and detects the host.
//!
//! Audit mode, decided here and stated in the output: `guard exec --mode audit` does not apply
//! Landlock at all (Landlock has no log-only mode, and a denied open cannot be observed and then
//! allowed), turns the seccomp action into `log`, and makes the eBPF checks record `audit`
//! verdicts instead of denying or killing. cgroup limits, rlimits and the wall-time limit still
//! apply, because they protect the host rather than express the policy under test.

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::host::{CgroupMode, HostFeatures};
use crate::plan::seccomp::SeccompAction;
use crate::plan::{CompileContext, Mode, NixUserResolver, Plan, ViolationAction, Weakening};
use crate::profile::{self, ExpandContext, Lookup, ProfileError, ResolvedProfile};
use crate::sandbox::coverage::Gap;

/// Exit status when the profile cannot be loaded or compiled.
const INVALID: u8 = 1;

pub fn run(spec: &str) -> ExitCode {
    let profile = match profile::load(spec, &Lookup::from_env()) {
        Ok(p) => p,
        Err(ProfileError::Invalid(d)) => {
            eprintln!("{d}");
            return ExitCode::from(INVALID);
        }
        Err(e) => {
            eprintln!("guard explain: {e}");
            return ExitCode::from(INVALID);
        }
    };
    let expand = match ExpandContext::from_process() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("guard explain: cannot read the current directory: {e}");
            return ExitCode::from(INVALID);
        }
    };
    let ctx = CompileContext {
        expand,
        parent_env: std::env::vars_os().collect(),
        mode: Mode::Enforce,
        users: &NixUserResolver,
    };
    let plan = match Plan::compile(&profile, &ctx) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("guard explain: {}: {e}", profile.file);
            return ExitCode::from(INVALID);
        }
    };
    print!("{}", describe(&profile, &plan, &HostFeatures::detect()));
    ExitCode::SUCCESS
}

/// Appends one line; writing to a String cannot fail.
macro_rules! say {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "(none)".to_owned()
    } else {
        v.join(", ")
    }
}

fn action(a: ViolationAction) -> &'static str {
    match a {
        ViolationAction::Deny => "deny (the operation fails, the tool goes on)",
        ViolationAction::Kill => "kill (the whole sandbox is killed)",
        ViolationAction::Audit => "audit (allowed and recorded)",
    }
}

/// Says what happens to a part whose kernel feature is missing: allowed weaker or fail closed.
fn missing(plan: &Plan, part: Weakening, what: &str) -> String {
    if plan.allows_weaker(part) {
        format!(
            "weaker here: {what} (accepted by allow_weaker \"{}\")",
            part.as_str()
        )
    } else {
        format!(
            "MISSING here: {what}; required (not in allow_weaker), so `guard exec` refuses to start (exit 125)"
        )
    }
}

/// Whether the cgroup controller `c` is usable on this host, and where.
fn controller(host: &HostFeatures, c: &str) -> Option<&'static str> {
    match &host.cgroup {
        CgroupMode::V2 { controllers, .. } if controllers.iter().any(|x| x == c) => {
            Some("cgroup v2")
        }
        CgroupMode::Hybrid {
            v1,
            unified_controllers,
            ..
        } => {
            if unified_controllers.iter().any(|x| x == c) {
                Some("cgroup v2 (unified)")
            } else if v1.iter().any(|(x, _)| x == c) {
                Some("cgroup v1")
            } else {
                None
            }
        }
        CgroupMode::V1 { v1 } if v1.iter().any(|(x, _)| x == c) => Some("cgroup v1"),
        _ => None,
    }
}

/// The line for a part `guard exec` does not enforce yet, and whether the profile accepts that.
fn not_enforced(plan: &Plan, gap: Gap) -> String {
    if plan.allows_weaker(gap.weakening()) {
        format!(
            "NOT ENFORCED here: {gap}; this profile accepts that, so guard exec runs it without"
        )
    } else {
        format!(
            "NOT ENFORCED here: {gap}; this profile does not accept that, so guard exec refuses to start (exit 125)"
        )
    }
}

fn has_cgroup2(host: &HostFeatures) -> bool {
    matches!(
        host.cgroup,
        CgroupMode::V2 { .. } | CgroupMode::Hybrid { .. }
    )
}

/// The effective policy of `profile` (compiled as `plan`) and its enforcement on `host`.
pub fn describe(profile: &ResolvedProfile, plan: &Plan, host: &HostFeatures) -> String {
    let mut o = String::new();
    let p = &profile.profile;
    let abi = host.landlock_abi;
    say!(
        o,
        "profile {} ({}, sha256 {})",
        profile.name,
        profile.file,
        profile.sha256
    );
    if let Some(d) = &profile.description {
        say!(o, "  {d}");
    }
    say!(o, "  layers merged: {}", profile.layers.join(" -> "));
    say!(
        o,
        "  host: kernel {}, Landlock ABI {abi}",
        host.kernel_release
    );
    say!(o);

    let paths = |f: fn(&crate::plan::landlock::FsGrant) -> bool| {
        list(
            plan.landlock
                .paths
                .iter()
                .filter(|r| f(&r.grant))
                .map(|r| r.path.display().to_string()),
        )
    };
    say!(o, "files");
    say!(o, "  read:    {}", paths(|g| g.read));
    say!(o, "  write:   {}", paths(|g| g.write));
    say!(o, "  execute: {}", paths(|g| g.execute));
    say!(
        o,
        "  everything else under / is denied; paths missing on this host are skipped"
    );
    say!(
        o,
        "  never writable, whatever the profile says: /sys, /proc, /boot, cgroup, bpf, debugfs, tracefs and other kernel file systems wherever mounted, /run/guard, /etc/guard, /var/log/guard, /dev itself, block devices and the run's own audit log (refused with 125); rule paths beneath a write path must not lead out of it through a symlink"
    );
    if abi >= 1 {
        say!(
            o,
            "  enforced by Landlock ABI {abi}: EACCES in the kernel, whatever on_violation says (Landlock cannot kill)"
        );
        if abi < 3 {
            say!(
                o,
                "  weaker here: Landlock ABI {abi} < 3 cannot restrict truncate() of files outside write"
            );
        }
    } else {
        say!(
            o,
            "  MISSING here: Landlock is not available; files cannot be confined, so `guard exec` refuses to start (exit 125)"
        );
    }
    say!(o);

    say!(o, "network");
    say!(o, "  connect: {}", list(&plan.ebpf.connect));
    say!(o, "  bind:    {}", list(&plan.ebpf.bind));
    say!(
        o,
        "  unix:    {}",
        list(plan.ebpf.unix.iter().map(|u| u.display()))
    );
    say!(
        o,
        "  dns:     {}",
        if plan.ebpf.dns {
            "to the resolvers of /etc/resolv.conf"
        } else {
            "no"
        }
    );
    say!(
        o,
        "  host names are resolved once, when the sandbox starts (system resolver); every address returned is allowed"
    );
    if !plan.ebpf.unix.is_empty() {
        say!(o, "  {}", not_enforced(plan, Gap::UnixPaths));
    }
    if plan
        .seccomp
        .deny
        .iter()
        .any(|d| d == crate::plan::seccomp_groups::MARKER_NO_INET)
    {
        say!(
            o,
            "  no network at all: seccomp refuses to create IPv4/IPv6 sockets (EPERM), so no TCP or UDP packet can leave"
        );
    }
    if plan.seccomp.deny.iter().any(|d| d == "listen") {
        say!(
            o,
            "  no network.bind rules: seccomp refuses listen(2) (EPERM), which would otherwise take a port on every address for a never-bound socket"
        );
    }
    if host.bpf.cgroup_sock_addr.is_available() && has_cgroup2(host) {
        say!(
            o,
            "  enforced by eBPF cgroup hooks connect4/6, sendmsg4/6 (UDP too), bind4/6 below guard's cgroup: EPERM before any packet leaves; an IPv4 host reached through an IPv6 socket (::ffff:a.b.c.d) is checked against the IPv4 rules"
        );
    } else {
        say!(
            o,
            "  {}",
            not_enforced(
                plan,
                Gap::Network(
                    "cgroup_sock_addr programs or a cgroup2 mount are not available".into()
                )
            )
        );
    }
    let ports = |v: &[crate::plan::landlock::PortRange]| {
        list(v.iter().map(|r| {
            if r.first == r.last {
                r.first.to_string()
            } else {
                format!("{}-{}", r.first, r.last)
            }
        }))
    };
    if abi >= 4 {
        say!(
            o,
            "  also Landlock TCP rules (ABI 4): connect ports {}, bind ports {}",
            ports(&plan.landlock.tcp_connect),
            ports(&plan.landlock.tcp_bind)
        );
    } else {
        say!(
            o,
            "  {}",
            missing(
                plan,
                Weakening::LandlockNet,
                &format!(
                    "Landlock ABI {abi} < 4 has no TCP port rules; network rests on eBPF alone"
                )
            )
        );
    }
    if abi >= 6 {
        say!(
            o,
            "  abstract unix sockets and signals are scoped to the sandbox (Landlock ABI 6)"
        );
    } else {
        say!(
            o,
            "  {}",
            missing(
                plan,
                Weakening::LandlockScope,
                &format!("Landlock ABI {abi} < 6 cannot scope abstract unix sockets and signals")
            )
        );
    }
    say!(o);

    say!(o, "exec allowlist");
    say!(
        o,
        "  may execute: {}",
        list(plan.ebpf.exec_allow.iter().map(|p| p.display()))
    );
    if p.process.exec.is_none() {
        say!(
            o,
            "  (process.exec not set: defaults to filesystem.execute)"
        );
    }
    if p.process.exec_writable == Some(true) {
        say!(
            o,
            "  process.exec_writable = true: entries may overlap write paths, so the tool can replace what it may run; the allowlist is only as strong as the write paths"
        );
    } else {
        say!(
            o,
            "  no entry overlaps a write path (guard refuses such a profile unless process.exec_writable = true)"
        );
    }
    say!(
        o,
        "  Landlock execute right: exec of anything outside filesystem.execute fails with EACCES"
    );
    if host.bpf.tracepoint.is_available() {
        say!(
            o,
            "  enforced by the eBPF tracepoint sched_process_exec: the executed file (device and inode) must be an allowed file or lie beneath an allowed directory, else the process is killed after exec, before its first instruction; the dynamic loader, a memfd or an fd run directly are checked as themselves"
        );
        if host.bpf.lsm.is_available() {
            say!(
                o,
                "  and first by BPF LSM bprm_check_security: a forbidden exec fails with EPERM before it happens"
            );
        } else {
            say!(
                o,
                "  weaker: BPF LSM not available (bprm_check_security would deny with EPERM before the exec); a forbidden exec is killed instead"
            );
        }
    } else {
        say!(
            o,
            "  {}",
            not_enforced(plan, Gap::Exec("tracepoint programs do not load".into()))
        );
    }
    scripts_section(&mut o, plan);
    say!(o);

    say!(o, "syscalls");
    say!(o, "  denied: {}", list(&plan.seccomp.deny));
    say!(
        o,
        "  the base fragment's deny set is part of every profile, whether or not it extends base"
    );
    let act = |a: SeccompAction| match a {
        SeccompAction::Errno => "the syscall fails with EPERM",
        SeccompAction::Kill => "the process is killed (SIGSYS)",
        SeccompAction::Log => "allowed and logged by the kernel",
    };
    say!(
        o,
        "  enforced by seccomp (libseccomp, groups expanded for this architecture): the profile's own syscalls.deny entries: {}; the always-on baseline (base deny set, user namespaces, TIOCSTI/TIOCLINUX, setuid bits, process reach, sockets): {} (a profile's `log` never weakens it; only audit mode logs it)",
        act(plan.seccomp.profile_action()),
        act(plan.seccomp.baseline_action())
    );
    say!(
        o,
        "  process reach: prlimit64, sched_setaffinity/setscheduler/setparam/setattr, migrate_pages, move_pages and get_robust_list work only on the caller (pid 0); setpriority/ioprio_set only on the caller's own process; kcmp, process_madvise, process_mrelease refused; ptrace, process_vm_*, pidfd_getfd, perf_event_open are in the base deny set; signals (kill, tgkill, pidfd_send_signal, rt_sigqueueinfo) are confined by Landlock's signal scope"
    );
    say!(
        o,
        "  sockets: only AF_INET/AF_INET6 TCP or UDP (no ICMP/ping, raw, UDP-Lite, SCTP, MPTCP), AF_NETLINK NETLINK_ROUTE (resolvers) and AF_UNIX can be created, and the profile narrows that further; packet, vsock and every other family fail with EPERM. setsockopt of IP_OPTIONS, IP_RETOPTS, IP_TRANSPARENT, IP_UNICAST_IF, the IPv6 routing/hop-by-hop/destination option headers (and their RFC 2292 forms), IPV6_PKTINFO, IPV6_TRANSPARENT, IPV6_UNICAST_IF, SO_BINDTODEVICE, SO_BINDTOIFINDEX and SO_MARK fails with EPERM. Seccomp cannot read sendmsg control messages: an IPV6_RTHDR or IP_RETOPTS cmsg is left to the eBPF egress packet backstop"
    );
    say!(
        o,
        "  xattrs: getxattr, lgetxattr, listxattr, llistxattr (and getxattrat/listxattrat where the kernel has them) fail with ENOTSUP, which cp/tar/ls read as \"no xattrs\": Landlock has no right for xattr reads, so values outside the read paths would otherwise be readable; fgetxattr on a file the tool opened still works. Left: readlink of a symlink outside the read paths still returns its target (Landlock has no rule for it)"
    );
    say!(o);

    say!(o, "limits");
    let cg = |c: &str| match controller(host, c) {
        Some(w) => format!("enforced by {w}"),
        None => {
            format!("MISSING here: no {c} controller; `guard exec` refuses to start (exit 125)")
        }
    };
    if let Some(m) = plan.cgroup.memory_bytes {
        say!(
            o,
            "  memory: {m} bytes ({}): the sandbox is OOM-killed beyond it",
            cg("memory")
        );
    }
    if let Some(n) = plan.cgroup.pids {
        say!(o, "  pids: {n} ({}): fork fails beyond it", cg("pids"));
    }
    if let Some(c) = plan.cgroup.cpu {
        say!(o, "  cpu: {c} CPUs of bandwidth ({})", cg("cpu"));
    }
    if let Some(t) = plan.time.wall_time {
        say!(
            o,
            "  wall_time: {} (the supervisor kills the whole sandbox)",
            humantime::format_duration(t)
        );
    }
    if let Some(t) = plan.time.cpu_time {
        say!(
            o,
            "  cpu_time: {} (the supervisor kills the whole sandbox when its cgroup has used this much CPU; RLIMIT_CPU per process a second above as a backstop)",
            humantime::format_duration(t)
        );
    }
    if let Some(n) = plan.open_files {
        say!(o, "  open_files: {n} (RLIMIT_NOFILE)");
    }
    for (name, v) in [
        ("connects_per_minute", plan.ebpf.connects_per_minute),
        ("execs_per_minute", plan.ebpf.execs_per_minute),
    ] {
        if let Some(n) = v {
            say!(
                o,
                "  {name}: {n} (eBPF counter per sandbox; beyond it on_violation applies)"
            );
        }
    }
    say!(o);

    say!(o, "identity");
    match &p.process.user {
        Some(u) => say!(
            o,
            "  runs as user {u} (when guard runs as root); capabilities dropped, no_new_privs"
        ),
        None => {
            say!(
                o,
                "  runs as the caller; capabilities dropped, no_new_privs"
            );
            say!(
                o,
                "  when the caller is root: the tool is uid 0 without capabilities and still owns root-owned files, so it can change their mode bits and timestamps anywhere (Landlock does not cover chmod/utimes; setuid/setgid bits are refused by seccomp); set process.user to avoid that"
            );
        }
    }
    say!(
        o,
        "  namespaces: a private IPC namespace (System V shared memory, queues and semaphores of the host are invisible, the sandbox's own vanish with the run); a mount namespace whose file tree is read-only outside the write paths (EROFS for writes and for chmod, chown, utimensat, setxattr, chattr there; write paths no execute rule overlaps are noexec); the pid and network namespaces are still the host's, and /proc/self and /proc/<pid> paths are refused in profiles (rules are opened by guard, so they would mean guard or another process); symlink targets (readlink) outside the read paths stay readable: Landlock has no right for them"
    );
    let set: Vec<&String> = p.process.env_set.keys().collect();
    say!(
        o,
        "  environment: keeps {}; sets {}; everything else is dropped",
        list(&p.process.env_keep),
        list(set)
    );
    say!(o);

    say!(o, "on_violation");
    say!(o, "  network: {}", action(plan.on_violation.network));
    say!(o, "  exec:    {}", action(plan.on_violation.exec));
    if plan.on_violation.exec == ViolationAction::Deny && !host.bpf.lsm.is_available() {
        say!(
            o,
            "  exec deny here: Landlock EACCES outside filesystem.execute; an exec allowed by Landlock but not by process.exec can only be killed after exec (no BPF LSM)"
        );
    }
    say!(
        o,
        "  files:   always EACCES (Landlock) or EROFS (read-only tree); syscalls: the profile's own entries per syscalls.action, the baseline always EPERM (or kill)"
    );
    say!(o);

    say!(o, "audit mode (guard exec --mode audit)");
    say!(
        o,
        "  Landlock is not applied: it cannot log instead of deny, so file and TCP-port rules are not enforced;"
    );
    say!(
        o,
        "  the seccomp action becomes `log`; eBPF network and exec checks record verdict `audit` instead of"
    );
    say!(
        o,
        "  denying or killing; cgroup limits, rlimits and wall_time still apply."
    );
    o
}

/// What `explain` says about `#!` scripts listed in `process.exec` (see `ebpf::scripts`).
fn scripts_section(o: &mut String, plan: &Plan) {
    let path_var = plan
        .identity
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str());
    let scripts = crate::ebpf::scripts::scripts(&plan.ebpf.exec_allow, path_var);
    if scripts.is_empty() {
        return;
    }
    say!(
        o,
        "  scripts: a listed #! script runs through its interpreter, which stays unlisted: the interpreter may run only that script, by its listed absolute path (guard runs the command by its absolute path; inside the sandbox a relative path, a symlink, /dev/fd/N or a copy is killed); running the interpreter directly, with -c or another script is killed. The script's directory must not be writable by the tool. An interpreter runs whatever its environment tells it to (BASH_ENV, PYTHONSTARTUP, PERL5OPT, ...): allowing a script means allowing that interpreter's code paths for it"
    );
    for script in &scripts {
        say!(
            o,
            "    {} via {}",
            script.paths[0].display(),
            script.interpreter.display()
        );
        if let Some(target) = &script.env_target {
            say!(
                o,
                "      env then runs {} directly: it must be allowed by process.exec itself",
                target.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{BpfSupport, Probe};
    use crate::plan::{UserIds, UserResolver};
    use crate::profile::Source;

    struct NoUsers;
    impl UserResolver for NoUsers {
        fn resolve(&self, _: &str) -> Result<Option<UserIds>, nix::Error> {
            Ok(None)
        }
    }

    fn host(abi: u32, lsm: bool) -> HostFeatures {
        let p = |ok: bool| {
            if ok {
                Probe::Available
            } else {
                Probe::Refused("EINVAL".into())
            }
        };
        HostFeatures {
            kernel_release: "6.18.0".into(),
            landlock_abi: abi,
            bpf: BpfSupport {
                tracepoint: p(true),
                cgroup_sock_addr: p(true),
                lsm: p(lsm),
                fentry: p(false),
            },
            cgroup: CgroupMode::Hybrid {
                v1: vec![("memory".into(), "/sys/fs/cgroup/memory".into())],
                unified: "/sys/fs/cgroup/unified".into(),
                unified_controllers: vec![],
            },
            btf: true,
        }
    }

    fn explain(text: &str, h: &HostFeatures) -> String {
        let src = Source {
            display: "t.toml".into(),
            id: "t.toml".into(),
            dir: None,
            text: text.into(),
        };
        let prof =
            crate::profile::resolve(&src, &Lookup::new(None)).unwrap_or_else(|e| panic!("{e}"));
        let ctx = CompileContext {
            expand: ExpandContext {
                cwd: "/w".into(),
                home: None,
                tmpdir: "/tmp".into(),
            },
            parent_env: vec![],
            mode: Mode::Enforce,
            users: &NoUsers,
        };
        describe(&prof, &Plan::compile(&prof, &ctx).unwrap(), h)
    }

    const PROFILE: &str = r#"
        name = "t"
        extends = ["base"]
        [filesystem]
        read = ["${CWD}"]
        execute = ["/usr/bin/curl"]
        [network]
        connect = ["api.github.com:443"]
        [limits]
        memory = "1MiB"
        pids = 5
        [on_violation]
        exec = "kill"
    "#;

    #[test]
    fn names_the_effective_policy() {
        let out = explain(PROFILE, &host(7, true));
        assert!(
            out.contains("layers merged: <builtin>/base.toml -> t.toml"),
            "{out}"
        );
        assert!(out.contains("/w"), "{out}");
        assert!(out.contains("connect: api.github.com:443"), "{out}");
        assert!(out.contains("may execute: /usr/bin/curl"), "{out}");
        assert!(out.contains("ptrace"), "{out}");
        assert!(out.contains("exec:    kill"), "{out}");
        assert!(
            out.contains("Landlock TCP rules (ABI 4): connect ports 443,"),
            "{out}"
        );
        assert!(out.contains("audit mode"), "{out}");
    }

    #[test]
    fn says_what_is_weaker_on_this_host() {
        let out = explain(PROFILE, &host(7, false));
        assert!(
            out.contains("else the process is killed after exec, before its first instruction"),
            "{out}"
        );
        assert!(out.contains("BPF LSM not available"), "{out}");
        let deny = explain(
            &PROFILE.replace("exec = \"kill\"", "exec = \"deny\""),
            &host(7, false),
        );
        assert!(deny.contains("can only be killed after exec"), "{deny}");
        assert!(!out.contains("can only be killed after exec"), "{out}");
        let with_lsm = explain(PROFILE, &host(7, true));
        assert!(
            with_lsm.contains("BPF LSM bprm_check_security: a forbidden exec fails with EPERM"),
            "{with_lsm}"
        );
    }

    #[test]
    fn old_landlock_and_missing_controllers_are_reported() {
        let out = explain(PROFILE, &host(3, true));
        assert!(
            out.contains("Landlock ABI 3 < 4 has no TCP port rules"),
            "{out}"
        );
        assert!(out.contains("Landlock ABI 3 < 6 cannot scope"), "{out}");
        assert!(
            out.contains("memory: 1048576 bytes (enforced by cgroup v1)"),
            "{out}"
        );
        assert!(
            out.contains("pids: 5 (MISSING here: no pids controller"),
            "{out}"
        );
        let none = explain(PROFILE, &host(0, true));
        assert!(none.contains("Landlock is not available"), "{none}");
    }
}
