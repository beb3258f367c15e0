//! `guard exec`'s one linear function: every confinement step in the order design.md gives,
//! each with the reason it sits where it does.

use std::ffi::{CString, OsStr, OsString, c_char};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::unistd::{Pid, pipe2};
use serde_json::json;

use super::cgroup::{self, CgroupEvents, CgroupManager};
use super::child::{self, ChildSetup, Spawned};
use super::coverage;
use super::handshake::{ChildFailure, ChildStep, GO};
use super::landlock::{self as sandbox_landlock, LandlockGap};
use super::monitor::ProbeFeed;
use super::mounts::{MountPlan, MountPlanError};
use super::probes::{self, AttachError, AttachedProbes};
use super::program::{self, ProgramError};
use super::protected;
use super::seccomp;
use super::sentinel::{Sentinel, SentinelError};
use super::supervise::{self, Deadlines, Ending};
use super::{exit, monitor::Monitor};
use crate::audit::{AuditEvent, AuditLog, Enforcer, Verdict};
use crate::plan::{Mode, Plan};

/// What to run and where to write the evidence.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub command: Vec<OsString>,
    pub workdir: PathBuf,
    pub audit_log: Option<PathBuf>,
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
    #[error("preparing the Landlock ruleset")]
    Landlock(#[from] sandbox_landlock::LandlockError),
    #[error("refusing to run with less protection than the profile asks for: {}", .0.join("; "))]
    Unenforceable(Vec<String>),
    #[error("the profile's network rules cannot be enforced: {0}")]
    Policy(String),
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
            _ => exit::GUARD_FAILED,
        }
    }
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
    let landlock = if enforce {
        let prepared = sandbox_landlock::prepare(&plan.landlock, landlock_abi)?;
        let refused: Vec<LandlockGap> = prepared
            .gaps
            .iter()
            .filter(|gap| !gap.accepted_by(plan))
            .cloned()
            .collect();
        let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
        if !refused.is_empty() {
            return Err(LaunchError::Unenforceable(refused));
        }
        prepared.ruleset
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
    let filter = seccomp::compile(&seccomp_plan)?;

    // 3. The audit log before the sandbox exists: if evidence cannot be written, nothing runs.
    let mut audit = AuditLog::open(
        request.audit_log.as_deref(),
        &sandbox_id,
        &plan.profile_name,
        &plan.profile_sha256,
    )?;

    // 4. The sandbox cgroup with its limits; every process the command forks stays in it.
    let cgroup = cgroup::create(&sandbox_id, &plan.cgroup)?;
    // Held (with the sentinel, which inherits it) while supervised: the orphan sweep asks this
    // lock, which every PID namespace sees, not the pid in the id (sandbox/liveness.rs).
    let _supervised = super::liveness::hold(cgroup.cgroup2_path()).ok();

    // 5. The sandbox's policy into the eBPF probes (loaded and pinned by the first guard that
    //    needs them), keyed by the cgroup's id, before anything runs in it. Probes that cannot
    //    be used on this host are gaps the profile must accept by name, or nothing runs.
    let mut probes = match attach_probes(plan, cgroup.as_ref()) {
        Ok(probes) => probes,
        Err(err) => {
            let _ = cgroup.remove();
            return Err(err);
        }
    };

    // 6. A sentinel outside the cgroup ends the sandbox if guard itself is killed.
    let sentinel = match Sentinel::spawn(&sandbox_id, cgroup.as_ref()) {
        Ok(sentinel) => sentinel,
        Err(err) => {
            let _ = cgroup.remove();
            release_probes(probes);
            return Err(err.into());
        }
    };

    // 7. Block the relayed signals now, so none arriving between fork and the wait loop is lost,
    //    and make guard non-dumpable so the tool cannot read its memory or environment via /proc.
    let signals = match supervise::block_signals() {
        Ok(signals) => signals,
        Err(err) => {
            let _ = cgroup.remove();
            release_probes(probes);
            return Err(err.into());
        }
    };
    make_undumpable();

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
    // The read-only file tree's write mounts, prepared here: the child may not allocate.
    let mount_plan = if enforce {
        Some(MountPlan::new(&plan.landlock)?)
    } else {
        None
    };
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
        seccomp: Some(&filter),
        mounts: mount_plan.as_ref(),
        go: go_read.as_raw_fd(),
        report: report_write.as_raw_fd(),
        supervisor_pid: nix::unistd::getpid().as_raw(),
    };

    // 9. Start the child: on a pure cgroup v2 host directly in the sandbox cgroup (clone3 with
    //    CLONE_INTO_CGROUP), else by fork. The child blocks on the go pipe, then confines itself
    //    and execs (child.rs).
    let clone_into = cgroup.clone_into_dir().and_then(open_cgroup_dir);
    // SAFETY: the child only runs `child::run`, which uses raw syscalls on prepared memory.
    let spawned = unsafe { child::spawn(&setup, clone_into.as_ref().map(AsFd::as_fd)) };
    drop(clone_into);
    let spawned = match spawned {
        Ok(spawned) => spawned,
        Err(err) => {
            let _ = cgroup.remove();
            release_probes(probes);
            return Err(LaunchError::Fork(err));
        }
    };
    drop(go_read);
    drop(report_write);
    drop(landlock);

    // 10. A forked child goes into the sandbox cgroups now; then it is released. If that fails
    //     it never runs.
    let child = match spawned {
        Spawned::InCgroup(child) => child,
        Spawned::Forked(child) => {
            if let Err(err) = cgroup.add_task(child) {
                abandon(child, cgroup.as_ref(), sentinel, probes);
                return Err(child_failure_or(report_read, err.into()));
            }
            child
        }
    };
    if let Err(err) = write_go(go_write) {
        abandon(child, cgroup.as_ref(), sentinel, probes);
        return Err(child_failure_or(report_read, LaunchError::Release(err)));
    }

    // 11. The report pipe closes on a successful execve; a message means a failed step and the
    //     command never ran.
    let exe = program.to_string_lossy().into_owned();
    if let Some(failure) = read_report(report_read) {
        abandon(child, cgroup.as_ref(), sentinel, probes);
        return Err(LaunchError::Child(failure));
    }
    let started = audit
        .record(
            AuditEvent::Start,
            child.as_raw(),
            &exe,
            Verdict::Allow,
            None,
            Enforcer::Supervisor,
            json!({
                "mode": if enforce { "enforce" } else { "audit" },
                "workdir": request.workdir,
                "cgroup": cgroup.cgroup2_path(),
                "cgroup_id": cgroup.cgroup2_id(),
                "bpf_lsm": probes
                    .as_ref()
                    .is_some_and(|p| crate::ebpf::loader::lsm_attached(&p.sandbox.probes().pin_dir)),
                "probes": match probes.as_ref().map(|p| p.start) {
                    Some(crate::ebpf::Start::Cold) => "loaded",
                    Some(crate::ebpf::Start::Warm) => "pinned",
                    None => "none",
                },
            }),
        )
        .and_then(|()| {
            if probes.is_some() {
                // The exec probe records the command's exec itself, with what the kernel ran.
                return Ok(());
            }
            audit.record(
                AuditEvent::Exec,
                child.as_raw(),
                &exe,
                Verdict::Allow,
                Some("process.exec"),
                Enforcer::Supervisor,
                json!({ "argv": request.command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>() }),
            )
        });
    if let Err(err) = started {
        // No evidence, no run: the command dies before it does anything else.
        abandon(child, cgroup.as_ref(), sentinel, probes);
        return Err(err.into());
    }

    // 12. Supervise: relay signals, enforce time limits, turn probe records into audit records,
    //     until the command ends. Then nothing of the sandbox may survive it (double-forked
    //     daemons included): kill the whole cgroup, record what the probes saw until then, and
    //     only then take its policy out of the probes.
    let feed = probes
        .as_mut()
        .map(|p| ProbeFeed::new(&mut p.sandbox, &mut audit, &exe));
    let mut monitor = Monitor::new(cgroup.as_ref(), feed);
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
        sentinel.dismiss();
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
    if let Some(report) = probe_report {
        report_probes(&mut audit, child, &exe, &report, lost_events);
    }
    let events = events.unwrap_or_default();
    Ok(report_ending(&mut audit, plan, child, &exe, ending, events))
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

/// Step 5 of [`launch`]: the sandbox under the probes, or a gap the profile accepts.
fn attach_probes(
    plan: &Plan,
    cgroup: &dyn CgroupManager,
) -> Result<Option<AttachedProbes>, LaunchError> {
    let (attached, status) = match probes::attach(plan, cgroup) {
        Ok(attached) => (Some(attached), Ok(())),
        Err(AttachError::Policy(message)) => return Err(LaunchError::Policy(message)),
        Err(AttachError::Unavailable(err)) => (None, Err(error_chain(&err))),
    };
    let refused = coverage::refused_gaps(plan, status.as_ref().map(|_| ()).map_err(String::as_str));
    if !refused.is_empty() {
        if let Some(attached) = attached {
            let _ = attached.sandbox.unregister();
        }
        return Err(LaunchError::Unenforceable(
            refused.iter().map(ToString::to_string).collect(),
        ));
    }
    if let Err(why) = &status {
        eprintln!(
            "guard: warning: running without the eBPF probes ({why}); the profile accepts it \
             (allow_weaker)"
        );
    }
    Ok(attached)
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

/// Kills a child that must not run, reaps it and removes its cgroup.
fn abandon(
    child: Pid,
    cgroup: &dyn CgroupManager,
    sentinel: Sentinel,
    probes: Option<AttachedProbes>,
) {
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(child, None);
    if cgroup.kill_all().is_ok() {
        release_probes(probes);
    }
    let _ = cgroup.remove();
    sentinel.dismiss();
}

/// Takes the sandbox's policy out of the probes; only once nothing runs in its cgroup.
fn release_probes(probes: Option<AttachedProbes>) {
    if let Some(attached) = probes
        && let Err(err) = attached.sandbox.unregister()
    {
        eprintln!("guard: error: {}", error_chain(&err));
    }
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
/// only once the child is gone (after [`abandon`]), or the read waits for it.
fn child_failure_or(report: OwnedFd, err: LaunchError) -> LaunchError {
    read_report(report).map_or(err, LaunchError::Child)
}

/// Reads the child's report until EOF: `None` means execve succeeded.
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
