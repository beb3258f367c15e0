//! The worker: one process per sandbox, started by the daemon, running local-mode `guard exec`
//! for the caller.
//!
//! Running the sandbox in a separate process keeps every confinement step in the one linear
//! launch function that local mode uses (same denials, same exit status, same `guard: killed`
//! line, written straight to the caller's stderr), and keeps the daemon single-purpose and
//! free of fork-after-threads hazards.
//!
//! The daemon starts `/proc/self/exe daemon-worker` with:
//! - the caller's stdin, stdout and stderr (received over the socket) as fds 0, 1, 2;
//! - the caller's working directory (received as a descriptor) as its cwd, through `fchdir`, so
//!   the path the caller cannot forge is the one used;
//! - the [`Job`] as JSON in a memfd at fd 3 ([`JOB_FD`]), not in argv or the environment where
//!   other users could read the caller's environment through /proc;
//! - the caller's event stream, when it asked for one, at fd 4 ([`EVENTS_FD`]);
//! - an environment of its own (only `PATH`): the caller's variables travel in the job and reach
//!   the sandbox only through the profile's `process.env`;
//! - `PR_SET_PDEATHSIG(SIGKILL)`, so a daemon killed with SIGKILL takes its workers with it and
//!   their sentinels kill the sandboxes. PDEATHSIG fires when the parent *thread* ends; the
//!   daemon's runtime is current-thread, so the spawning thread is the daemon's main thread;
//! - a session of its own, so a terminal the daemon was started from cannot signal it.

use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::protocol::{WireBytes, WireMode};

/// The worker's descriptor carrying the job.
pub const JOB_FD: i32 = 3;

/// The worker's descriptor carrying the caller's event stream (`guard exec --events`), if any.
pub const EVENTS_FD: i32 = 4;

/// The hidden subcommand the worker runs.
pub const WORKER_COMMAND: &str = "daemon-worker";

/// Everything the worker needs besides its descriptors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// A profile NAME, already authorized.
    pub profile: String,
    /// The daemon's profile search path.
    pub profile_path: Vec<PathBuf>,
    pub mode: WireMode,
    pub command: Vec<WireBytes>,
    /// The caller's environment.
    pub env: Vec<(WireBytes, WireBytes)>,
    /// The caller's umask (applied to the worker, inherited by the sandbox).
    pub umask: u32,
    /// The central audit log.
    pub audit_log: PathBuf,
    pub caller: Caller,
    /// The caller's event stream is at [`EVENTS_FD`].
    #[serde(default)]
    pub events: bool,
    /// Rights the caller takes away from the profile for this call.
    #[serde(default)]
    pub narrowing: crate::profile::narrow::Narrowing,
}

/// Starting a worker failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("creating the job memfd")]
    Memfd(#[source] std::io::Error),
    #[error("writing the job")]
    WriteJob(#[source] std::io::Error),
    #[error("encoding the job")]
    Encode(#[source] serde_json::Error),
    #[error("starting the worker process")]
    Spawn(#[source] std::io::Error),
}

/// Starts the worker for `job` with the caller's `stdio` and working directory `cwd`.
pub fn spawn(
    job: &Job,
    stdio: [OwnedFd; 3],
    cwd: &OwnedFd,
    events: Option<&OwnedFd>,
) -> Result<tokio::process::Child, WorkerError> {
    let memfd = job_memfd(job)?;
    let memfd_raw = memfd.as_raw_fd();
    let events_raw = events.map(AsRawFd::as_raw_fd);
    let cwd_raw = cwd.as_raw_fd();
    let daemon_pid = std::process::id() as libc::pid_t;
    let umask = (job.umask & 0o777) as libc::mode_t;
    let [stdin, stdout, stderr] = stdio;
    let mut command = tokio::process::Command::new("/proc/self/exe");
    command
        .arg0("guard")
        .arg(WORKER_COMMAND)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(false);
    // SAFETY: the closure runs between fork and exec and only makes raw, async-signal-safe
    // syscalls on descriptors the daemon keeps open until `spawn` returns.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The daemon may have died before prctl: then nothing would kill us later.
            if libc::getppid() != daemon_pid {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            // A copy above both targets first, so placing the job at 3 cannot close it.
            let events_copy = match events_raw {
                Some(fd) => {
                    let copy = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 16);
                    if copy < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Some(copy)
                }
                None => None,
            };
            libc::umask(umask);
            if libc::setsid() < 0 || libc::fchdir(cwd_raw) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if memfd_raw == JOB_FD {
                // dup2 onto itself keeps close-on-exec; clear it instead.
                if libc::fcntl(JOB_FD, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(memfd_raw, JOB_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 clears close-on-exec on the new descriptor; the copy closes at exec.
            if let Some(copy) = events_copy
                && libc::dup2(copy, EVENTS_FD) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn().map_err(WorkerError::Spawn)?;
    drop(memfd);
    Ok(child)
}

/// The job as JSON in an anonymous memory file, rewound for the worker to read.
fn job_memfd(job: &Job) -> Result<OwnedFd, WorkerError> {
    let bytes = serde_json::to_vec(job).map_err(WorkerError::Encode)?;
    let fd = nix::sys::memfd::memfd_create(c"guard-job", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| WorkerError::Memfd(e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&bytes).map_err(WorkerError::WriteJob)?;
    std::io::Seek::rewind(&mut file).map_err(WorkerError::WriteJob)?;
    Ok(OwnedFd::from(file))
}

/// Reads the job the daemon left at [`JOB_FD`] (worker side).
pub fn read_job() -> Result<Job, ReadJobError> {
    use std::io::Read as _;
    use std::os::fd::FromRawFd as _;
    // The daemon put the job there; if fd 3 is anything else (a user running the hidden
    // subcommand by hand), the JSON check below fails and nothing runs.
    if nix::fcntl::fcntl(
        // SAFETY: only probes whether fd 3 is open; nothing is taken over yet.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(JOB_FD) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .is_err()
    {
        return Err(ReadJobError::NoJob);
    }
    // SAFETY: fd 3 is open (checked above) and nothing else in this process uses it.
    let mut file = unsafe { std::fs::File::from_raw_fd(JOB_FD) };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(ReadJobError::Read)?;
    serde_json::from_slice(&bytes).map_err(ReadJobError::Decode)
}

/// The worker could not read its job.
#[derive(Debug, thiserror::Error)]
pub enum ReadJobError {
    #[error("no job at fd {JOB_FD}: `guard {WORKER_COMMAND}` is started by `guard daemon` only")]
    NoJob,
    #[error("reading the job")]
    Read(#[source] std::io::Error),
    #[error("decoding the job")]
    Decode(#[source] serde_json::Error),
}
