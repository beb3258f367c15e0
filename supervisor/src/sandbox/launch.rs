//! `guard exec`'s one linear function: every confinement step in the order design.md gives,
//! each with the reason it sits where it does.

use std::ffi::{CString, OsStr, OsString, c_char};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::{Pid, pipe2};
use serde_json::json;

use super::cgroup::{self, CgroupEvents, CgroupManager};
use super::child::{self, ChildSetup, Spawned};
use super::handshake::{ChildFailure, ChildStep, GO};
use super::landlock as sandbox_landlock;
use super::landlock_denials::LandlockFeed;
use super::monitor::ProbeFeed;
use super::mounts::{MountPlan, MountPlanError};
use super::probes::{self, AttachError, PolicyError};
use super::program::{self, ProgramError};
use super::protected;
use super::seccomp;
use super::sentinel::{Sentinel, SentinelError};
use super::supervise::{self, Deadlines, Ending};
use super::syscall_denials::{self, Answer, Denial, SyscallListener};
use super::teardown::StartGuard;
use super::{exit, monitor::Monitor};
use crate::audit::{AuditEvent, AuditLog, Enforcer, Verdict};
use crate::dns::learned::{Learned, LearnedNames};
use crate::dns::{BoundGate, GateConfig, RunningGate};
use crate::enforcement::{self, HostView, Refusal};
use crate::plan::{Mode, Plan};

/// What to run and where to write the evidence.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub command: Vec<OsString>,
    pub workdir: PathBuf,
    pub audit_log: Option<PathBuf>,
    /// `--events FD`: a descriptor of guard's (close-on-exec) that gets the run's events as
    /// JSON lines (see [`AuditLog::stream_events`]).
    pub events: Option<std::os::fd::RawFd>,
    /// The narrowing flags applied to the profile for this call, for the start record.
    pub narrowed: Vec<&'static str>,
}

/// Everything that can stop guard before or while starting the command.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error("preparing the read-only file tree")]
    Mounts(#[from] MountPlanError),
    #[error(transparent)]
    Protected(#[from] protected::ProtectedError),
    #[error("an argument or environment value contains a NUL byte")]
    NulByte,
    #[error("the event stream (--events)")]
    Events(#[source] std::io::Error),
    #[error("starting the DNS gate")]
    DnsGate(#[source] std::io::Error),
    #[error("preparing the Landlock ruleset")]
    Landlock(#[from] sandbox_landlock::LandlockError),
    #[error("refusing to run with less protection than the profile asks for: {}", join(.0))]
    Unenforceable(Vec<Refusal>),
    #[error("the profile's network rules cannot be enforced: {0}")]
    Policy(#[from] PolicyError),
    #[error("compiling the seccomp filter")]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("opening the audit log")]
    Audit(#[from] crate::audit::AuditError),
    #[error("setting up the sandbox cgroup")]
    Cgroup(#[from] cgroup::CgroupError),
    #[error("starting the sentinel")]
    Sentinel(#[from] SentinelError),
    #[error("setting up signal handling")]
    Signals(#[from] supervise::SuperviseError),
    #[error("creating the handshake pipes")]
    Pipe(#[source] nix::Error),
    #[error("starting the command's process")]
    Fork(#[source] nix::Error),
    #[error("releasing the command")]
    Release(#[source] std::io::Error),
    #[error("{0}")]
    Child(ChildFailure),
    /// The kernel refused to execute the command itself (EACCES/EPERM): not in the profile's
    /// execute rules, or on a write path mounted noexec.
    #[error(
        "executing {path} was refused ({}): the profile does not let it run; add it to filesystem.execute (and process.exec if set), and keep it out of the write paths",
        std::io::Error::from_raw_os_error(*.errno)
    )]
    ExecRefused { path: String, errno: i32 },
}

impl LaunchError {
    /// The exit status of `guard exec` for this error (contract: 125, or 126/127 for the program).
    pub fn exit_code(&self) -> u8 {
        match self {
            LaunchError::Program(ProgramError::NotFound(_)) => exit::NOT_FOUND,
            LaunchError::Program(ProgramError::NotExecutable(_)) => exit::NOT_EXECUTABLE,
            LaunchError::Child(ChildFailure {
                step: ChildStep::Exec,
                errno,
            }) => {
                if *errno == libc::ENOENT || *errno == libc::ENOTDIR {
                    exit::NOT_FOUND
                } else {
                    exit::NOT_EXECUTABLE
                }
            }
            LaunchError::ExecRefused { .. } => exit::NOT_EXECUTABLE,
            _ => exit::GUARD_FAILED,
        }
    }
}

/// A close-on-exec copy of the caller's `--events` descriptor, which must be open for writing.
fn events_stream(fd: std::os::fd::RawFd) -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if flags & libc::O_ACCMODE == libc::O_RDONLY {
        return Err(std::io::Error::other(format!(
            "descriptor {fd} is open for reading only"
        )));
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor this function then owns.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` is a fresh descriptor nothing else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(copy) })
}

/// Runs `request.command` confined by `plan` and returns guard's exit status.
///
/// `landlock_abi` is this kernel's Landlock ABI (0 = none); only what the launch needs is probed
/// on this path, because every tool call an agent makes pays guard's start-up.
pub fn launch(plan: &Plan, request: &LaunchRequest, landlock_abi: u32) -> Result<u8, LaunchError> {
    let sandbox_id = new_sandbox_id();
    let enforce = plan.mode == Mode::Enforce;

    // 1. Resolve the program with the sandbox's PATH, before anything is created, so a typo is a
    //    plain 127 and nothing else happens.
    let Some(name) = request.command.first() else {
        return Err(ProgramError::NotFound(String::new()).into());
    };
    let sandbox_path = plan
        .identity
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_os_str());
    let program = program::resolve(name, sandbox_path, &request.workdir)?;

    // 1b. No write grant on the kernel's control files or guard's own state (the audit log of
    //     this run included), whatever the profile says: see `protected`.
    protected::check_write_paths(plan.landlock.write_paths(), request.audit_log.as_deref())?;

    // 2. Build the Landlock ruleset and the seccomp program here, in the parent: the child must
    //    not allocate after fork. A part the kernel cannot enforce stops us (fail closed).
    //    In audit mode Landlock is not applied at all: it cannot log-and-allow.
    //    Whether this host can enforce the plan is decided once, in step 5, by the enforcement
    //    model (with what the probes could do); here the ruleset is only built.
    let landlock = if enforce && landlock_abi > 0 {
        sandbox_landlock::prepare(&plan.landlock, landlock_abi)?.ruleset
    } else {
        None
    };
    // Audit mode: denied syscalls are allowed and logged by the kernel instead.
    let seccomp_plan = if enforce {
        plan.seccomp.clone()
    } else {
        crate::plan::SeccompPlan {
            audit: true,
            ..plan.seccomp.clone()
        }
    };
    // Denied syscalls are parked for the supervisor, which answers and records them.
    // Below Landlock ABI 6 guard itself keeps signals inside the sandbox (see `signal_scope`).
    let scope_signals = enforce && landlock_abi < enforcement::landlock_abi::SCOPE;
    let filter =
        seccomp::compile_for(&seccomp_plan, seccomp::Recording::Supervisor, scope_signals)?;

    // 3. The audit log before the sandbox exists: if evidence cannot be written, nothing runs.
    let mut audit = AuditLog::open(
        request.audit_log.as_deref(),
        &sandbox_id,
        &plan.profile_name,
        &plan.profile_sha256,
    )?;
    if let Some(fd) = request.events {
        audit.stream_events(events_stream(fd).map_err(LaunchError::Events)?);
    }

    // 4. The sandbox cgroup with its limits; every process the command forks stays in it.
    let cgroup = cgroup::create(&sandbox_id, &plan.cgroup)?;
    // Held (with the sentinel, which inherits it) while supervised: the orphan sweep asks this
    // lock, which every PID namespace sees, not the pid in the id (sandbox/liveness.rs).
    let _supervised = super::liveness::hold(cgroup.cgroup2_path()).ok();

    // 5. A sentinel outside the cgroup ends the sandbox if guard itself is killed. From here on,
    //    a failed start is undone by `start` when it is dropped (one place, see `teardown`).
    let mut start = StartGuard::new(
        cgroup.as_ref(),
        Sentinel::spawn(&sandbox_id, cgroup.as_ref())?,
    );

    // 6. The sandbox's policy into the eBPF probes (loaded and pinned by the first guard that
    //    needs them), keyed by the cgroup's id, before anything runs in it. Then the enforcement
    //    model decides, with what was really set up, whether every part of the profile is
    //    enforced here or accepted weaker by name; otherwise nothing runs.
    //    The DNS gate's sockets first: the policy names their ports (see `crate::dns`).
    let dns_gate = if plan.ebpf.dns_gate {
        Some(BoundGate::bind().map_err(LaunchError::DnsGate)?)
    } else {
        None
    };
    let dns_ports = dns_gate.as_ref().map_or((0, 0), BoundGate::ports);
    let probe_status = attach_probes(plan, cgroup.as_ref(), &mut start, dns_ports)?;
    let host = HostView {
        landlock_abi,
        bpf_lsm: start
            .probes
            .as_ref()
            .is_some_and(|p| crate::ebpf::loader::lsm_attached(&p.sandbox.probes().pin_dir)),
        unix_hooks: match start.probes.as_ref() {
            Some(p) if crate::ebpf::unix_hooks::attached(&p.sandbox.probes().pin_dir) => Ok(()),
            Some(_) => Err(crate::ebpf::unix_hooks::kernel_has_unix_hooks()
                .err()
                .unwrap_or_else(|| "the unix socket hooks were not attached".to_owned())),
            None => Err("no eBPF probes".to_owned()),
        },
        probes: probe_status,
        cgroup: cgroup::layout(),
    };
    let refusals = enforcement::assess(plan, &host).refusals();
    if !refusals.is_empty() {
        return Err(LaunchError::Unenforceable(refusals));
    }
    if let Err(why) = &host.probes {
        eprintln!(
            "guard: warning: running without the eBPF probes ({why}); the profile accepts it \
             (allow_weaker)"
        );
    }

    // 7. Block the relayed signals now, so none arriving between fork and the wait loop is lost,
    //    and make guard non-dumpable so the tool cannot read its memory or environment via /proc.
    let signals = supervise::block_signals()?;
    make_undumpable();

    // 7b. Landlock's denials become records where the kernel reports them (Landlock ABI 7 with
    //     auditing on): subscribed before the child restricts itself, so none is missed.
    let (_audit_session, mut landlock_feed, landlock_evidence) =
        landlock_evidence(landlock.is_some(), landlock_abi);

    // 8. Everything the child touches, prepared before fork.
    let env_pairs: Vec<OsString> = plan
        .identity
        .env
        .iter()
        .map(|(key, value)| {
            let mut pair = key.clone();
            pair.push("=");
            pair.push(value);
            pair
        })
        .collect();
    let argv_strings = to_cstrings(request.command.iter().map(OsString::as_os_str))?;
    let envp_strings = to_cstrings(env_pairs.iter().map(OsString::as_os_str))?;
    let argv = null_terminated(&argv_strings);
    let envp = null_terminated(&envp_strings);
    let program_c = to_cstring(program.as_os_str())?;
    let workdir_c = to_cstring(request.workdir.as_os_str())?;
    let rlimits = rlimits(plan);
    let (go_read, go_write) = pipe2(OFlag::O_CLOEXEC).map_err(LaunchError::Pipe)?;
    let (report_read, report_write) = pipe2(OFlag::O_CLOEXEC).map_err(LaunchError::Pipe)?;
    // The child hands its seccomp listener over this pair (see `syscall_denials`).
    let (listener_socket, child_listener_socket) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(LaunchError::Pipe)?;
    // The read-only file tree's write mounts, prepared here: the child may not allocate.
    let mount_plan = Some(if enforce {
        MountPlan::new(&plan.landlock)?
    } else {
        MountPlan::hide_only()
    });
    let setup = ChildSetup {
        program: &program_c,
        argv: &argv,
        envp: &envp,
        workdir: &workdir_c,
        rlimits: &rlimits,
        last_cap: last_capability(),
        user: plan.identity.user,
        groups: &plan.identity.groups,
        landlock_ruleset: landlock.as_ref().map(AsRawFd::as_raw_fd),
        landlock_flags: if landlock_feed.is_some() {
            LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON
        } else {
            0
        },
        seccomp: Some(&filter),
        mounts: mount_plan.as_ref(),
        go: go_read.as_raw_fd(),
        report: report_write.as_raw_fd(),
        supervisor_pid: nix::unistd::getpid().as_raw(),
        listener_socket: child_listener_socket.as_raw_fd(),
    };

    // 9. Start the child: on a pure cgroup v2 host directly in the sandbox cgroup (clone3 with
    //    CLONE_INTO_CGROUP), else by fork. The child blocks on the go pipe, then confines itself
    //    and execs (child.rs).
    let clone_into = cgroup.clone_into_dir().and_then(open_cgroup_dir);
    // SAFETY: the child only runs `child::run`, which uses raw syscalls on prepared memory.
    let spawned = unsafe { child::spawn(&setup, clone_into.as_ref().map(AsFd::as_fd)) };
    drop(clone_into);
    let spawned = spawned.map_err(LaunchError::Fork)?;
    drop(go_read);
    drop(report_write);
    drop(child_listener_socket);
    drop(landlock);

    // 10. A forked child goes into the sandbox cgroups now; then it is released. If that fails
    //     it never runs.
    let (child, moved) = match spawned {
        Spawned::InCgroup(child) => (child, Ok(())),
        Spawned::Forked(child) => (child, cgroup.add_task(child)),
    };
    start.set_child(child);
    if let Some(feed) = landlock_feed.as_mut() {
        feed.set_child(u32::try_from(child.as_raw()).unwrap_or(0));
    }
    if let Err(err) = moved {
        drop(start);
        return Err(child_failure_or(report_read, err.into()));
    }
    // 10b. The start record on disk (fdatasync) before the command's first instruction: if the
    //      evidence cannot be written, the child is killed before it is released.
    let exe = program.to_string_lossy().into_owned();
    let started = audit.record(
        AuditEvent::Start,
        child.as_raw(),
        &exe,
        Verdict::Allow,
        None,
        Enforcer::Supervisor,
        json!({
            "mode": if enforce { "enforce" } else { "audit" },
            "landlock_denials": landlock_evidence,
            "workdir": request.workdir,
            "cgroup": cgroup.cgroup2_path(),
            "cgroup_id": cgroup.cgroup2_id(),
            "bpf_lsm": host.bpf_lsm,
            "probes": match start.probes.as_ref().map(|p| p.start) {
                Some(crate::ebpf::Start::Cold) => "loaded",
                Some(crate::ebpf::Start::Warm) => "pinned",
                None => "none",
            },
            "log_repaired_bytes": audit.repaired(),
            "narrowed": request.narrowed,
        }),
    );
    if let Err(err) = started {
        drop(start);
        return Err(err.into());
    }
    // 10c. The DNS gate serves before the command's first query.
    let dns_gate = match dns_gate {
        Some(gate) => match start_gate(gate, plan, &start, cgroup.cgroup2_id(), enforce) {
            Ok(running) => Some(running),
            Err(err) => {
                drop(start);
                return Err(LaunchError::DnsGate(err));
            }
        },
        None => None,
    };
    if let Err(err) = write_go(go_write) {
        drop(start);
        return Err(child_failure_or(report_read, LaunchError::Release(err)));
    }

    // 11. The report pipe closes on a successful execve; a message means a failed step and the
    //     command never ran.
    let answer = if enforce {
        Answer::Deny
    } else {
        Answer::Continue
    };
    let (failure, listener, early_denials) = wait_for_exec(report_read, listener_socket, answer);
    let listener = match (listener, scope_signals) {
        (Some(l), true) => own_cgroup(child).map(|cg| l.scope_signals(cg)),
        (l, _) => l,
    };
    if let Some(failure) = failure {
        return Err(refused_command(&mut audit, child, &exe, failure));
    }
    let started = if start.probes.is_some() {
        // The exec probe records the command's exec itself, with what the kernel ran.
        Ok(())
    } else {
        audit.record(
            AuditEvent::Exec,
            child.as_raw(),
            &exe,
            Verdict::Allow,
            Some("process.exec"),
            Enforcer::Supervisor,
            json!({ "argv": request.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>() }),
        )
    };
    // No evidence, no run: the command dies before it does anything else.
    started?;
    let super::teardown::Started {
        mut probes,
        sentinel,
    } = start.started();

    // 12. Supervise: relay signals, enforce time limits, turn probe records into audit records,
    //     until the command ends. Then nothing of the sandbox may survive it (double-forked
    //     daemons included): kill the whole cgroup, record what the probes saw until then, and
    //     only then take its policy out of the probes.
    let feed = probes
        .as_mut()
        .map(|p| ProbeFeed::new(&mut p.sandbox, &exe));
    // The write paths as written and as resolved: the tool names files by either.
    let file_rules = Some(with_resolved_paths(&plan.landlock));
    let mut monitor = Monitor::new(
        cgroup.as_ref(),
        &mut audit,
        feed,
        listener,
        landlock_feed,
        file_rules,
    );
    monitor.record_syscalls(early_denials);
    if let Some(gate) = dns_gate {
        monitor.watch_dns_gate(gate, child.as_raw(), &exe);
    }
    let ending = supervise::supervise(
        child,
        &signals,
        Deadlines {
            wall_time: plan.time.wall_time,
            cpu_time: plan.time.cpu_time,
        },
        &mut monitor,
    );
    let cleanup = cgroup.kill_all();
    supervise::Watcher::drain(&mut monitor);
    monitor.stop_dns_gate();
    let landlock_lost = monitor.finish_landlock();
    monitor.write_folds(true);
    let probe_report = monitor.into_feed().map(|feed| ProbeReport {
        killed_for: feed.killed_for,
        unprinted: feed.unprinted,
        unreadable: feed.unreadable,
    });
    let mut lost_events = 0;
    let unregistered = match probes {
        Some(attached) if cleanup.is_ok() => {
            lost_events = attached.sandbox.lost_events();
            attached.sandbox.unregister()
        }
        // Processes may still run: their policy stays until the sentinel has killed them.
        _ => Ok(()),
    };
    let events = cgroup.events();
    let removed = cgroup.remove();
    if cleanup.is_ok() && removed.is_ok() {
        if let Some(sentinel) = sentinel {
            sentinel.dismiss();
        }
    } else {
        // Something of the sandbox may still run: leave it to the sentinel, which kills and
        // removes it once guard is gone, rather than leave it unsupervised.
        drop(sentinel);
    }
    let ending = ending?;
    for (what, result) in [
        ("killing the rest of the sandbox", cleanup),
        ("removing the sandbox cgroup", removed),
    ] {
        if let Err(err) = result {
            eprintln!("guard: error: {what}: {}", error_chain(&err));
        }
    }

    if let Err(err) = unregistered {
        eprintln!("guard: error: {}", error_chain(&err));
    }

    // 13. Evidence and the contract's exit status.
    if landlock_lost > 0 {
        report_landlock_lost(&mut audit, child, &exe, landlock_lost);
    }
    if let Some(report) = probe_report {
        report_probes(&mut audit, child, &exe, &report, lost_events);
    }
    let events = events.unwrap_or_default();
    let status = report_ending(&mut audit, plan, child, &exe, ending, events);
    // The run's records end with the signed seal (see `audit::seal`).
    if let Err(err) = audit.seal() {
        eprintln!("guard: error: sealing the audit log: {}", error_chain(&err));
    }
    Ok(status)
}

/// What the probe feed saw, for the end of the run.
struct ProbeReport {
    killed_for: Option<String>,
    unprinted: u32,
    unreadable: u64,
}

/// Prints the violation kill line and the denials not printed, and records lost events: a
/// record the probes could not deliver is never silent.
fn report_probes(
    audit: &mut AuditLog,
    child: Pid,
    exe: &str,
    report: &ProbeReport,
    lost_in_kernel: u64,
) {
    if let Some(line) = &report.killed_for {
        eprintln!("{line}");
    }
    if report.unprinted > 0 {
        eprintln!(
            "guard: {} more denial(s) not shown here; the audit log has every one",
            report.unprinted
        );
    }
    let lost = lost_in_kernel + report.unreadable;
    if lost > 0 {
        eprintln!(
            "guard: warning: {lost} probe record(s) were lost (ring buffer full or unreadable); \
             the audit log is incomplete for this sandbox"
        );
        if let Err(err) = audit.record(
            AuditEvent::Limit,
            child.as_raw(),
            exe,
            Verdict::Allow,
            Some("audit.lost_events"),
            Enforcer::Ebpf,
            json!({ "lost": lost, "lost_in_kernel": lost_in_kernel, "unreadable": report.unreadable }),
        ) {
            eprintln!("guard: error: writing the audit log: {}", error_chain(&err));
        }
    }
}

/// Step 6 of [`launch`]: the sandbox under the probes. `Err(why)` when the probes cannot be
/// used on this host (the enforcement model then decides whether the profile accepts that); a
/// rule that cannot be written is always an error.
fn attach_probes(
    plan: &Plan,
    cgroup: &dyn CgroupManager,
    start: &mut StartGuard<'_>,
    dns_ports: (u16, u16),
) -> Result<Result<(), String>, LaunchError> {
    match probes::attach(plan, cgroup, dns_ports) {
        Ok(attached) => {
            start.probes = Some(attached);
            Ok(Ok(()))
        }
        Err(AttachError::Policy(err)) => Err(err.into()),
        Err(AttachError::Unavailable(err)) => Ok(Err(error_chain(&err))),
    }
}

/// Step 10c of [`launch`]: the DNS gate serving, writing what it learns into the probes'
/// `LEARNED` map (where the probes are attached; without them nothing would reach the gate).
fn start_gate(
    gate: BoundGate,
    plan: &Plan,
    start: &StartGuard<'_>,
    cgroup_id: u64,
    enforce: bool,
) -> std::io::Result<RunningGate> {
    let map = match start.probes.as_ref() {
        Some(p) => Some(
            crate::ebpf::loader::open_learned(&p.sandbox.probes().pin_dir)
                .map_err(|e| std::io::Error::other(error_chain(&e)))?,
        ),
        None => None,
    };
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let config = GateConfig {
        names: crate::dns::names::NameRules::from_endpoints(&plan.ebpf.connect),
        servers: crate::dns::upstream::servers(&resolv),
        audit: !enforce,
        kill: plan.on_violation.network == crate::plan::ViolationAction::Kill,
    };
    gate.start(
        config,
        Learned::new(map, cgroup_id, LearnedNames::default()),
    )
}

/// A failed last step of the child. A command the kernel would not execute is a denial like
/// any other: recorded (with the key to change) and named in the error.
fn refused_command(
    audit: &mut AuditLog,
    child: Pid,
    exe: &str,
    failure: ChildFailure,
) -> LaunchError {
    let refused = failure.step == ChildStep::Exec
        && (failure.errno == libc::EACCES || failure.errno == libc::EPERM);
    if !refused {
        return LaunchError::Child(failure);
    }
    if let Err(err) = audit.record(
        AuditEvent::Violation,
        child.as_raw(),
        exe,
        Verdict::Deny,
        Some("filesystem.execute"),
        Enforcer::Landlock,
        json!({ "op": "exec", "path": exe, "errno": failure.errno }),
    ) {
        eprintln!("guard: error: writing the audit log: {}", error_chain(&err));
    }
    LaunchError::ExecRefused {
        path: exe.to_owned(),
        errno: failure.errno,
    }
}

/// `plan` with each existing rule path's resolved form added (Landlock grants the target of a
/// symlinked rule path; the tool may name the file through either).
fn with_resolved_paths(plan: &crate::plan::LandlockPlan) -> crate::plan::LandlockPlan {
    let mut rules = plan.clone();
    for rule in &plan.paths {
        if let Ok(resolved) = std::fs::canonicalize(&rule.path)
            && resolved != rule.path
        {
            rules.paths.push(crate::plan::landlock::PathRule {
                path: resolved,
                grant: rule.grant,
            });
        }
    }
    rules
}

/// The cgroup2 path (as /proc/<pid>/cgroup names it) of the sandbox's first process. `None`
/// drops the listener, and with it every parked call fails (ENOSYS): failing closed.
fn own_cgroup(child: Pid) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{child}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(PathBuf::from)
}

/// `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON` (ABI 7): log denials after the next exec too.
const LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON: u32 = 1 << 1;

/// Step 7b: the audit session and record feed for Landlock's denials, and what the start record
/// says about them. Where the kernel cannot report them, the run goes on and says so: Landlock
/// still denies, only the evidence is missing (and `guard explain` tells in advance).
fn landlock_evidence(
    applied: bool,
    abi: u32,
) -> (
    Option<crate::host::audit::AuditSession>,
    Option<LandlockFeed>,
    String,
) {
    if !applied {
        return (None, None, "landlock not applied".to_owned());
    }
    if abi < enforcement::landlock_abi::AUDIT {
        return (
            None,
            None,
            format!("not observable: Landlock ABI {abi} < 7 has no audit records"),
        );
    }
    let session = match crate::host::audit::AuditSession::begin() {
        Ok(session) => session,
        Err(err) => {
            eprintln!(
                "guard: warning: Landlock denials will not be recorded: {}",
                error_chain(&err)
            );
            return (None, None, format!("not observable: {}", error_chain(&err)));
        }
    };
    match LandlockFeed::open() {
        Ok(feed) => (Some(session), Some(feed), "recorded".to_owned()),
        Err(err) => {
            eprintln!(
                "guard: warning: Landlock denials will not be recorded: reading the audit records: {err}"
            );
            (
                Some(session),
                None,
                format!("not observable: reading the audit records: {err}"),
            )
        }
    }
}

/// Landlock counted more denials than reached guard: said on stderr and in the log.
fn report_landlock_lost(audit: &mut AuditLog, child: Pid, exe: &str, lost: u64) {
    eprintln!(
        "guard: warning: {lost} Landlock denial record(s) did not reach guard; the audit log is incomplete for this sandbox"
    );
    if let Err(err) = audit.record(
        AuditEvent::Limit,
        child.as_raw(),
        exe,
        Verdict::Allow,
        Some("audit.lost_events"),
        Enforcer::Landlock,
        json!({ "lost": lost }),
    ) {
        eprintln!("guard: error: writing the audit log: {}", error_chain(&err));
    }
}

/// The refusals of one start, as one line.
fn join(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes the limit and exit records, prints the kill line, and returns the exit status.
fn report_ending(
    audit: &mut AuditLog,
    plan: &Plan,
    child: Pid,
    exe: &str,
    ending: Ending,
    events: CgroupEvents,
) -> u8 {
    let mut limits: Vec<(&str, Verdict, Enforcer, String, serde_json::Value)> = Vec::new();
    match ending {
        Ending::WallTime => limits.push((
            "limits.wall_time",
            Verdict::Kill,
            Enforcer::Supervisor,
            format!("wall time limit of {} reached", human(plan.time.wall_time)),
            json!({ "limit_ms": plan.time.wall_time.map(|d| d.as_millis() as u64) }),
        )),
        Ending::CpuTime => limits.push((
            "limits.cpu_time",
            Verdict::Kill,
            Enforcer::Supervisor,
            format!("CPU time limit of {} used up", human(plan.time.cpu_time)),
            json!({ "limit_ms": plan.time.cpu_time.map(|d| d.as_millis() as u64) }),
        )),
        Ending::KillFailed(key) => {
            eprintln!(
                "guard: error: {key} reached but the sandbox could not be killed; only the command was sent SIGKILL, its other processes may survive"
            );
            limits.push((
                key,
                Verdict::Deny,
                Enforcer::Supervisor,
                format!("{key} reached; killing the sandbox failed"),
                json!({ "kill_failed": true }),
            ));
        }
        _ => {}
    }
    if events.oom_kills > 0 {
        limits.push((
            "limits.memory",
            Verdict::Kill,
            Enforcer::Cgroup,
            format!(
                "out of memory in its cgroup (limit {} bytes), {} process(es) OOM-killed",
                plan.cgroup.memory_bytes.unwrap_or(0),
                events.oom_kills
            ),
            json!({ "limit_bytes": plan.cgroup.memory_bytes, "oom_kills": events.oom_kills }),
        ));
    }
    if events.pids_max > 0 {
        limits.push((
            "limits.pids",
            Verdict::Deny,
            Enforcer::Cgroup,
            format!("{} fork(s) refused at the pids limit", events.pids_max),
            json!({ "limit": plan.cgroup.pids, "refused_forks": events.pids_max }),
        ));
    }
    for (rule, verdict, enforcer, what, detail) in limits {
        if verdict == Verdict::Kill {
            eprintln!("guard: killed {child} {exe}: {what} (rule {rule})");
        }
        if let Err(err) = audit.record(
            AuditEvent::Limit,
            child.as_raw(),
            exe,
            verdict,
            Some(rule),
            enforcer,
            detail,
        ) {
            eprintln!("guard: error: writing the audit log: {}", error_chain(&err));
        }
    }
    let code = exit::exit_code(ending);
    let (status, signal) = match ending {
        Ending::Exited(status) => (Some(status), None),
        Ending::Signaled(signal) => (None, Some(signal)),
        Ending::WallTime | Ending::CpuTime | Ending::KillFailed(_) => (None, Some(libc::SIGKILL)),
    };
    if let Err(err) = audit.record(
        AuditEvent::Exit,
        child.as_raw(),
        exe,
        Verdict::Allow,
        None,
        Enforcer::Supervisor,
        json!({ "status": status, "signal": signal, "guard_exit": code }),
    ) {
        eprintln!("guard: error: writing the audit log: {}", error_chain(&err));
    }
    code
}

fn human(limit: Option<std::time::Duration>) -> String {
    limit.map_or_else(
        || "?".to_owned(),
        |d| humantime::format_duration(d).to_string(),
    )
}

/// `error: cause: cause` for one line on stderr.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A sandbox id unique on this host: guard's pid and the start time in microseconds.
fn new_sandbox_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("g{}-{micros:x}", std::process::id())
}

fn make_undumpable() {
    // SAFETY: prctl with integer arguments. Failure leaves guard dumpable, which only matters
    // for processes with the same uid, and the tool has no capabilities to use it.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

fn to_cstring(value: &OsStr) -> Result<CString, LaunchError> {
    CString::new(value.as_bytes()).map_err(|_| LaunchError::NulByte)
}

fn to_cstrings<'a>(values: impl Iterator<Item = &'a OsStr>) -> Result<Vec<CString>, LaunchError> {
    values.map(to_cstring).collect()
}

fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn rlimits(plan: &Plan) -> Vec<(libc::__rlimit_resource_t, libc::rlimit)> {
    let mut limits = Vec::new();
    if let Some(files) = plan.open_files {
        limits.push((
            libc::RLIMIT_NOFILE,
            libc::rlimit {
                rlim_cur: files,
                rlim_max: files,
            },
        ));
    }
    if let Some(cpu) = plan.time.cpu_time {
        // Per process, a backstop to the sandbox-wide accounting of the supervise loop, which
        // samples every 100 ms and must be the one that fires (with its audit record): the
        // soft limit sits a second above the limit, the hard one (SIGKILL) a second later.
        let secs = cpu.as_secs_f64().ceil() as u64 + 1;
        limits.push((
            libc::RLIMIT_CPU,
            libc::rlimit {
                rlim_cur: secs,
                rlim_max: secs + 1,
            },
        ));
    }
    limits
}

/// The highest capability number this kernel knows; 63 covers any kernel if it cannot be read.
fn last_capability() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// The sandbox's cgroup2 directory as the fd `clone3` takes; `None` (the child is forked and
/// moved instead, which reports a vanished directory itself) when it cannot be opened.
fn open_cgroup_dir(dir: &std::path::Path) -> Option<OwnedFd> {
    nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()
}

fn write_go(go: OwnedFd) -> std::io::Result<()> {
    let mut file = std::fs::File::from(go);
    std::io::Write::write_all(&mut file, &[GO])
}

/// The child confines itself before it waits for GO, so a step that failed there ended it and
/// made the parent's move or release fail too: its report, when there is one, says why. Call
/// only once the child is gone (after its [`StartGuard`] is dropped), or the read waits for it.
fn child_failure_or(report: OwnedFd, err: LaunchError) -> LaunchError {
    read_report(report).map_or(err, LaunchError::Child)
}

/// Reads the child's report until EOF: `None` means execve succeeded.
/// Waits until the child has exec'd the command (the report pipe closes) or reported a failed
/// step, meanwhile taking its seccomp listener and answering what the filter parks before the
/// exec (guard's own last syscalls in the child could be among the profile's denials).
fn wait_for_exec(
    report: OwnedFd,
    socket: OwnedFd,
    answer: Answer,
) -> (Option<ChildFailure>, Option<SyscallListener>, Vec<Denial>) {
    let mut socket = Some(socket);
    let mut listener: Option<SyscallListener> = None;
    let mut denials = Vec::new();
    loop {
        let (socket_ready, listener_ready, report_ready) = {
            let mut fds = vec![PollFd::new(report.as_fd(), PollFlags::POLLIN)];
            if let Some(s) = &socket {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let Some(l) = &listener {
                fds.push(PollFd::new(l.fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
                Ok(_) => {}
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            let mut rest = fds[1..].iter();
            let socket_ready = socket.is_some() && rest.next().is_some_and(ready);
            let listener_ready = listener.is_some() && rest.next().is_some_and(ready);
            (socket_ready, listener_ready, ready(&fds[0]))
        };
        if socket_ready && let Some(s) = socket.take() {
            listener = take_listener(&s, answer);
        }
        if listener_ready && let Some(l) = &listener {
            denials.extend(l.answer_pending());
        }
        if report_ready {
            break;
        }
    }
    // Sent before the exec, so it is queued by now (or the socket reads EOF).
    if let Some(s) = socket.take() {
        listener = take_listener(&s, answer);
    }
    (read_report(report), listener, denials)
}

fn take_listener(socket: &OwnedFd, answer: Answer) -> Option<SyscallListener> {
    match syscall_denials::receive_listener(socket) {
        Ok(fd) => fd.map(|fd| SyscallListener::new(fd, answer)),
        Err(err) => {
            eprintln!("guard: error: receiving the seccomp listener: {err}");
            None
        }
    }
}

fn read_report(report: OwnedFd) -> Option<ChildFailure> {
    let mut file = std::fs::File::from(report);
    let mut bytes = Vec::new();
    match file.read_to_end(&mut bytes) {
        Ok(_) if bytes.is_empty() => None,
        Ok(_) => Some(ChildFailure::decode(&bytes).unwrap_or(ChildFailure {
            step: ChildStep::Exec,
            errno: libc::EIO,
        })),
        Err(err) => Some(ChildFailure {
            step: ChildStep::WaitForGo,
            errno: err.raw_os_error().unwrap_or(libc::EIO),
        }),
    }
}
