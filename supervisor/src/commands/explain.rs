//! `guard explain PROFILE`: the effective policy in words, and which layer enforces each part here.
//!
//! What is enforced where is not decided here: [`crate::enforcement::assess`] decides it (the
//! same function `guard exec` refuses from), and this module renders its answer next to the
//! policy. [`describe`] is pure (a compiled plan and a [`HostView`] in, text out) so each host
//! situation is unit-tested; [`run`] loads, compiles and detects the host.
//!
//! Audit mode: `guard exec --mode audit` does not apply Landlock at all (Landlock has no log-only
//! mode), turns the seccomp action into `log`, and makes the eBPF checks record `audit`
//! verdicts instead of denying or killing. cgroup limits, rlimits and the wall-time limit still
//! apply, because they protect the host rather than express the policy under test.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::enforcement::{self, Enforcement, HostView, Layer, Part, Status};
use crate::host::HostFeatures;
use crate::plan::seccomp::SeccompAction;
use crate::plan::{CompileContext, Mode, NixUserResolver, Plan, ViolationAction};
use crate::profile::{self, ExpandContext, Lookup, ProfileError, ResolvedProfile, Source};

/// Exit status when the profile cannot be loaded or compiled.
const INVALID: u8 = 1;

pub fn run(spec: &str) -> ExitCode {
    let profile = match load(spec) {
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
    let host = HostView::from_features(&HostFeatures::detect(), crate::sandbox::cgroup::layout());
    print!(
        "{}",
        describe(&profile, &plan, &host, &kernel_release(), &ctx.expand)
    );
    ExitCode::SUCCESS
}

/// A profile by name or path, or one of the built-in fragments (`base`) on its own, so what
/// every profile extends can be explained too.
fn load(spec: &str) -> Result<ResolvedProfile, ProfileError> {
    let lookup = Lookup::from_env();
    match (profile::load(spec, &lookup), Source::fragment(spec)) {
        (Err(ProfileError::NotFound { .. }), Some(fragment)) => {
            profile::resolve(&fragment, &lookup)
        }
        (other, _) => other,
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
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

/// The line that says how `part` is enforced here, from the enforcement model's answer.
fn enforced(e: &Enforcement, part: Part) -> String {
    let Some(p) = e.part(part) else {
        return "not part of this profile".to_owned();
    };
    match &p.status {
        Status::Enforced { by, note } => {
            let mut line = format!("enforced here by {}", list(by));
            if let Some(note) = note {
                let _ = write!(
                    line,
                    " (no Landlock layer for it here, {note}; the layers named cover it)"
                );
            }
            line
        }
        Status::Weaker { by, loss, accepted } => {
            let by = if by.is_empty() {
                "nothing".to_owned()
            } else {
                list(by)
            };
            format!(
                "weaker here: {loss}; enforced only by {by} (accepted by allow_weaker \"{}\")",
                accepted.as_str()
            )
        }
        Status::NotApplied(loss) => format!("{loss}"),
        Status::Refused(r) => {
            format!("MISSING here: {r}; `guard exec` refuses to start (exit 125)")
        }
    }
}

/// The effective policy of `profile` (compiled as `plan`) and its enforcement on `host`.
pub fn describe(
    profile: &ResolvedProfile,
    plan: &Plan,
    host: &HostView,
    kernel: &str,
    expand: &ExpandContext,
) -> String {
    let e = enforcement::assess(plan, host);
    let mut o = String::new();
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
        "  host: kernel {kernel}, Landlock ABI {}",
        host.landlock_abi
    );
    let refusals = e.refusals();
    if refusals.is_empty() {
        say!(o, "  verdict: guard exec runs this profile here");
    } else {
        say!(
            o,
            "  verdict: guard exec REFUSES this profile here (exit 125): {}",
            list(&refusals)
        );
    }
    say!(o);
    files_section(&mut o, profile, plan, (&e, host), expand);
    network_section(&mut o, plan, &e, host);
    exec_section(&mut o, profile, plan, &e);
    syscalls_section(&mut o, plan, &e);
    limits_section(&mut o, plan, &e);
    identity_section(&mut o, profile, plan, &e);
    violation_section(&mut o, plan);
    o
}

/// System directories a `${CWD}` or `${HOME}` grant must not silently widen a profile to.
const SYSTEM_DIRS: &[&str] = &[
    "/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/var", "/home", "/opt", "/srv",
    "/boot", "/run", "/tmp",
];

/// Where `${CWD}`/`${HOME}` expand to a system directory, says so: the same profile grants far
/// more when run from `/` or `/etc` than from a project directory.
fn widening(o: &mut String, profile: &ResolvedProfile, expand: &ExpandContext) {
    let fs = &profile.profile.filesystem;
    let entries = fs.read.iter().chain(&fs.write).chain(&fs.execute);
    for (var, value) in [
        ("${CWD}", Some(&expand.cwd)),
        ("${HOME}", expand.home.as_ref()),
    ] {
        let Some(value) = value else { continue };
        let used = entries.clone().any(|t| t.as_str().contains(var));
        if used && SYSTEM_DIRS.iter().any(|d| Path::new(d) == value.as_path()) {
            say!(
                o,
                "  WARNING: {var} is {} here, a system directory: this run grants the profile's {var} rights on all of it; run from a project directory (or pass --workdir)",
                value.display()
            );
        }
    }
}

fn files_section(
    o: &mut String,
    profile: &ResolvedProfile,
    plan: &Plan,
    (e, host): (&Enforcement, &HostView),
    expand: &ExpandContext,
) {
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
    widening(o, profile, expand);
    say!(
        o,
        "  everything else under / is denied (EACCES from Landlock; EROFS for writes on the read-only tree); paths missing on this host are skipped"
    );
    say!(
        o,
        "  never writable, whatever the profile says: /sys, /proc, /boot, cgroup, bpf, debugfs, tracefs and other kernel file systems wherever mounted, /run/guard, /etc/guard, /var/log/guard, /dev itself, block devices and the run's own audit log (refused with 125); rule paths beneath a write path must not lead out of it through a symlink"
    );
    say!(o, "  {}", enforced(e, Part::Files));
    match enforcement::evidence(Part::Files, host) {
        enforcement::Evidence::Recorded(_) => say!(
            o,
            "  evidence: each file denial by Landlock is an audit record (guard turns the kernel's auditing on while its sandboxes run); writes outside the write paths, which the read-only tree refuses (EROFS) before Landlock is asked, are recorded by guard from the parked call; refused metadata changes (chmod, chown, utimensat) are not"
        ),
        enforcement::Evidence::NotObservable(why) => say!(
            o,
            "  evidence: file denials are NOT recorded here: {why}; the tool still gets EACCES/EROFS"
        ),
    }
    say!(o);
}

fn network_section(o: &mut String, plan: &Plan, e: &Enforcement, host: &HostView) {
    say!(o, "network");
    say!(o, "  connect: {}", list(&plan.ebpf.connect));
    say!(o, "  bind:    {}", list(&plan.ebpf.bind));
    say!(
        o,
        "  unix:    {}",
        list(plan.ebpf.unix.iter().map(|u| u.display()))
    );
    if !plan.ebpf.unix.is_empty() {
        say!(
            o,
            "    a unix connect or datagram send must name a listed path exactly as written (absolute); a link, a relative path or any other socket is refused (EPERM, a network.unix record); abstract names are left to scoping"
        );
    }
    let names = crate::dns::names::NameRules::from_endpoints(&plan.ebpf.connect);
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    if names.is_empty() {
        say!(o, "  names:   none");
    } else {
        say!(
            o,
            "  names:   {}",
            names.texts().collect::<Vec<_>>().join(", ")
        );
        for (name, _) in names.exact_names() {
            let pinned = crate::dns::hosts::addresses(&hosts, name);
            if !pinned.is_empty() {
                say!(
                    o,
                    "    {name}: from /etc/hosts ({}), allowed at those addresses from the start (its lookups never reach the gate)",
                    list(pinned)
                );
            }
        }
    }
    if plan.ebpf.dns_gate {
        let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let servers = crate::dns::upstream::servers(&resolv);
        say!(
            o,
            "  dns:     through guard's DNS gate: every query of the sandbox (UDP or TCP to port 53, any address, whatever resolv.conf the tool reads) goes to a resolver in guard; it answers only the names above, by asking {} a rebuilt question; any other name is refused (a dns record) and nothing of it leaves the host",
            if servers.is_empty() {
                "(no name server in /etc/resolv.conf: every name fails)".to_owned()
            } else {
                list(servers)
            }
        );
        say!(
            o,
            "  a permitted answer's addresses are allowed on the rule's ports for the answer's TTL, at least {} s and at most {} s; connects to them are recorded with the name",
            crate::dns::learned::TTL_FLOOR.as_secs(),
            crate::dns::learned::TTL_CAP.as_secs()
        );
    } else {
        say!(
            o,
            "  dns:     no (no network): a query is a connect and is refused"
        );
    }
    say!(
        o,
        "  by address, UDP and DNS: {}",
        enforced(e, Part::Network)
    );
    if e.part(Part::TcpPorts).is_some() {
        say!(o, "  TCP ports: {}", enforced(e, Part::TcpPorts));
        let landlock_ports = e.part(Part::TcpPorts).is_some_and(|p| {
            p.layers()
                .iter()
                .any(|l| matches!(l, Layer::Landlock { .. }))
        });
        if landlock_ports {
            say!(
                o,
                "  a forbidden port is refused by Landlock first; {}",
                if host.landlock_abi >= enforcement::landlock_abi::AUDIT {
                    "its audit record (Landlock ABI 7) is the evidence"
                } else {
                    "below Landlock ABI 7 that refusal is NOT recorded"
                }
            );
        }
    }
    if e.part(Part::UnixPaths).is_some() {
        say!(o, "  unix paths: {}", enforced(e, Part::UnixPaths));
    }
    say!(
        o,
        "  signals and abstract unix sockets to outside the sandbox: {}",
        enforced(e, Part::Scoping)
    );
    if plan
        .seccomp
        .deny
        .iter()
        .any(|d| d == crate::policy::syscall_groups::MARKER_NO_INET)
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
    if e.part(Part::Network)
        .is_some_and(|p| p.layers().contains(&Layer::EbpfCgroupHooks))
    {
        say!(
            o,
            "  the eBPF hooks (connect4/6, sendmsg4/6, bind4/6) decide before any packet leaves; an IPv4 host reached through an IPv6 socket (::ffff:a.b.c.d) is checked against the IPv4 rules"
        );
    }
    if plan.on_violation.network != ViolationAction::Deny {
        say!(
            o,
            "  on_violation.network = {}: Landlock's TCP port rules and the seccomp socket ban are not applied (they can only deny), so every connect reaches the eBPF hooks",
            if plan.on_violation.network == ViolationAction::Kill {
                "kill"
            } else {
                "audit"
            }
        );
    }
    say!(o);
}

fn exec_section(o: &mut String, profile: &ResolvedProfile, plan: &Plan, e: &Enforcement) {
    let p = &profile.profile;
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
    say!(o, "  {}", enforced(e, Part::Exec));
    let layers = e.part(Part::Exec).map(|p| p.layers()).unwrap_or(&[]);
    if layers.contains(&Layer::BpfLsm) {
        say!(
            o,
            "  BPF LSM bprm_check_security: a forbidden exec fails with EPERM before it happens"
        );
    }
    if layers.contains(&Layer::EbpfExecTracepoint) {
        say!(
            o,
            "  eBPF tracepoint sched_process_exec: the executed file (device and inode) must be an allowed file or lie beneath an allowed directory, else the process is killed after exec, before its first instruction; the dynamic loader, a memfd or an fd run directly are checked as themselves"
        );
        if !layers.contains(&Layer::BpfLsm) {
            say!(
                o,
                "  weaker: BPF LSM not available (bprm_check_security would deny with EPERM before the exec); a forbidden exec is killed instead"
            );
        }
    }
    if layers.iter().any(|l| matches!(l, Layer::Landlock { .. })) {
        say!(
            o,
            "  Landlock execute right: exec of anything outside filesystem.execute fails with EACCES"
        );
    }
    scripts_section(o, plan);
    say!(o);
}

fn syscalls_section(o: &mut String, plan: &Plan, e: &Enforcement) {
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
    say!(o, "  {}", enforced(e, Part::Syscalls));
    say!(
        o,
        "  evidence: a denied syscall is parked for guard, which answers EPERM and writes an audit record (pid, exe, syscall); kill is the kernel's (the process dies with SIGSYS)"
    );
    say!(
        o,
        "  the profile's own syscalls.deny entries: {}; the always-on baseline (base deny set, user namespaces, TIOCSTI/TIOCLINUX, setuid bits, process reach, sockets): {} (a profile's `log` never weakens it; only audit mode logs it)",
        act(plan.seccomp.profile_action()),
        act(plan.seccomp.baseline_action())
    );
    say!(
        o,
        "  process reach: prlimit64, sched_setaffinity/setscheduler/setparam/setattr, migrate_pages, move_pages and get_robust_list work only on the caller (pid 0); setpriority/ioprio_set only on the caller's own process; kcmp, process_madvise, process_mrelease refused; ptrace, process_vm_*, pidfd_getfd, perf_event_open are in the base deny set; signals (kill, tgkill, pidfd_send_signal, rt_sigqueueinfo) are confined by Landlock's signal scope"
    );
    say!(
        o,
        "  sockets: only AF_INET/AF_INET6 TCP or UDP (no ICMP/ping, raw, UDP-Lite, SCTP, MPTCP), AF_NETLINK NETLINK_ROUTE (resolvers) and AF_UNIX can be created, and the profile narrows that further; packet, vsock and every other family fail with EPERM. setsockopt of IP_OPTIONS, IP_RETOPTS, IP_TRANSPARENT, IP_UNICAST_IF, the IPv6 routing/hop-by-hop/destination option headers (and their RFC 2292 forms), IPV6_PKTINFO, IPV6_TRANSPARENT, IPV6_UNICAST_IF, SO_BINDTODEVICE, SO_BINDTOIFINDEX and SO_MARK fails with EPERM. The same options as sendmsg control messages need CAP_NET_RAW, which no sandbox has"
    );
    say!(
        o,
        "  xattrs: getxattr, lgetxattr, listxattr, llistxattr (and getxattrat/listxattrat where the kernel has them) fail with ENOTSUP, which cp/tar/ls read as \"no xattrs\": Landlock has no right for xattr reads, so values outside the read paths would otherwise be readable; fgetxattr on a file the tool opened still works. Left: readlink of a symlink outside the read paths still returns its target (Landlock has no rule for it)"
    );
    say!(o);
}

fn limits_section(o: &mut String, plan: &Plan, e: &Enforcement) {
    say!(o, "limits");
    if let Some(m) = plan.cgroup.memory_bytes {
        say!(
            o,
            "  memory: {m} bytes ({}): the sandbox is OOM-killed beyond it",
            enforced(e, Part::Memory)
        );
    }
    if let Some(n) = plan.cgroup.pids {
        say!(
            o,
            "  pids: {n} ({}): fork fails beyond it",
            enforced(e, Part::Pids)
        );
    }
    if let Some(c) = plan.cgroup.cpu {
        say!(
            o,
            "  cpu: {c} CPUs of bandwidth ({})",
            enforced(e, Part::Cpu)
        );
    }
    if let Some(t) = plan.time.wall_time {
        say!(
            o,
            "  wall_time: {} ({}: the whole sandbox is killed)",
            humantime::format_duration(t),
            enforced(e, Part::WallTime)
        );
    }
    if let Some(t) = plan.time.cpu_time {
        say!(
            o,
            "  cpu_time: {} ({}: the whole sandbox is killed when its cgroup has used this much CPU; RLIMIT_CPU per process a second above as a backstop)",
            humantime::format_duration(t),
            enforced(e, Part::CpuTime)
        );
    }
    if let Some(n) = plan.open_files {
        say!(o, "  open_files: {n} ({})", enforced(e, Part::OpenFiles));
    }
    for (name, part, v) in [
        (
            "connects_per_minute",
            Part::ConnectRate,
            plan.ebpf.connects_per_minute,
        ),
        (
            "execs_per_minute",
            Part::ExecRate,
            plan.ebpf.execs_per_minute,
        ),
    ] {
        if let Some(n) = v {
            say!(
                o,
                "  {name}: {n} (counter per sandbox, {}; beyond it on_violation applies)",
                enforced(e, part)
            );
        }
    }
    say!(o);
}

fn identity_section(o: &mut String, profile: &ResolvedProfile, plan: &Plan, _e: &Enforcement) {
    let p = &profile.profile;
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
                "  when the caller is root: the tool is uid 0 without capabilities; outside the write paths the tree is read-only, so it cannot change modes or owners there; set process.user to run as someone else"
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
    let _ = plan;
    say!(o);
}

fn violation_section(o: &mut String, plan: &Plan) {
    say!(o, "on_violation");
    say!(o, "  network: {}", action(plan.on_violation.network));
    say!(o, "  exec:    {}", action(plan.on_violation.exec));
    say!(
        o,
        "  files:   always denied (Landlock EACCES or EROFS), whatever on_violation says: Landlock cannot kill or let through and record; syscalls: the profile's own entries per syscalls.action, the baseline always EPERM (or kill)"
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
    use crate::enforcement::CgroupLayout;
    use crate::plan::{UserIds, UserResolver};

    struct NoUsers;
    impl UserResolver for NoUsers {
        fn resolve(&self, _: &str) -> Result<Option<UserIds>, nix::Error> {
            Ok(None)
        }
    }

    fn host(abi: u32, lsm: bool) -> HostView {
        HostView {
            landlock_abi: abi,
            probes: Ok(()),
            bpf_lsm: lsm,
            unix_hooks: Ok(()),
            cgroup: CgroupLayout::Hybrid {
                v1: vec!["memory".into(), "pids".into()],
            },
        }
    }

    fn expand(cwd: &str) -> ExpandContext {
        ExpandContext {
            cwd: cwd.into(),
            home: None,
            tmpdir: "/tmp".into(),
        }
    }

    fn explain_in(text: &str, h: &HostView, cwd: &str) -> String {
        let src = Source {
            display: "t.toml".into(),
            id: "t.toml".into(),
            dir: None,
            text: text.into(),
        };
        let prof =
            crate::profile::resolve(&src, &Lookup::new(None)).unwrap_or_else(|e| panic!("{e}"));
        let ctx = CompileContext {
            expand: expand(cwd),
            parent_env: vec![],
            mode: Mode::Enforce,
            users: &NoUsers,
        };
        describe(
            &prof,
            &Plan::compile(&prof, &ctx).unwrap(),
            h,
            "6.18.0",
            &ctx.expand,
        )
    }

    fn explain(text: &str, h: &HostView) -> String {
        explain_in(text, h, "/w")
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
            out.contains("TCP ports: enforced here by eBPF cgroup hooks, Landlock ABI 7"),
            "{out}"
        );
        assert!(
            out.contains("verdict: guard exec runs this profile here"),
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
        let with_lsm = explain(PROFILE, &host(7, true));
        assert!(
            with_lsm.contains("BPF LSM bprm_check_security: a forbidden exec fails with EPERM"),
            "{with_lsm}"
        );
    }

    #[test]
    fn old_landlock_and_missing_controllers_are_reported() {
        let out = explain(PROFILE, &host(3, true));
        // Ports fall to the eBPF hooks alone; signals to guard (parked by seccomp).
        assert!(
            out.contains("TCP ports: enforced here by eBPF cgroup hooks\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "signals and abstract unix sockets to outside the sandbox: enforced here by seccomp, the supervisor (no Landlock layer for it here, Landlock ABI 3 < 6; the layers named cover it)"
            ),
            "{out}"
        );
        assert!(
            out.contains("memory: 1048576 bytes (enforced here by cgroup v1)"),
            "{out}"
        );
        let no_pids = HostView {
            cgroup: CgroupLayout::Hybrid {
                v1: vec!["memory".into()],
            },
            ..host(7, true)
        };
        let out = explain(PROFILE, &no_pids);
        assert!(
            out.contains("pids: 5 (MISSING here: the pids limit"),
            "{out}"
        );
        let none = explain(PROFILE, &host(0, true));
        assert!(none.contains("Landlock is not available"), "{none}");
    }

    #[test]
    fn network_audit_alone_is_allowed_and_recorded_by_the_hooks() {
        let out = explain(
            &PROFILE.replace("exec = \"kill\"", "network = \"audit\""),
            &host(7, true),
        );
        assert!(
            out.contains("network: audit (allowed and recorded)"),
            "{out}"
        );
        assert!(
            out.contains("Landlock's TCP port rules and the seccomp socket ban are not applied"),
            "{out}"
        );
        assert!(!out.contains("TCP ports:"), "{out}");
    }

    #[test]
    fn cwd_on_a_system_directory_is_called_out() {
        // `/` itself is refused when the profile is compiled; other system directories are
        // allowed but called out.
        let out = explain_in(PROFILE, &host(7, true), "/etc");
        assert!(out.contains("WARNING: ${CWD} is /etc here"), "{out}");
        let fine = explain_in(PROFILE, &host(7, true), "/home/me/project");
        assert!(!fine.contains("WARNING"), "{fine}");
    }
}
