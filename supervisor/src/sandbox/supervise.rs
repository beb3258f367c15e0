//! The supervisor's wait loop: relays signals, enforces wall-clock and CPU time, reaps the child.
//!
//! Signals are read through a signalfd (blocked before `fork` so none is lost), so the loop is a
//! plain `poll` over the signalfd and any extra descriptors the caller watches (the eBPF ring
//! buffer), with a timeout that is the nearest deadline.
//!
//! The probes submit records of allowed operations without waking the supervisor (a wake-up
//! costs the sandboxed process more than the record itself), so a watcher with a ring also
//! names a drain interval: the loop wakes at least that often and drains, and the probes wake
//! it at once for denials, kills and a ring that is filling up.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Signals the supervisor relays to the command instead of dying of them.
pub const RELAYED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// `si_code` of a signal the kernel generated (a terminal's Ctrl-C, for instance).
const SI_KERNEL: i32 = 0x80;

/// How often CPU time is sampled when `cpu_time` is limited.
const CPU_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Why the supervised command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The command exited with this status.
    Exited(i32),
    /// The command was ended by this signal.
    Signaled(i32),
    /// guard killed the sandbox: `limits.wall_time` passed.
    WallTime,
    /// guard killed the sandbox: `limits.cpu_time` used up.
    CpuTime,
    /// A time limit (the profile key) was reached but killing the sandbox failed: reported as
    /// a failure, never as a kill. Only the command itself was sent SIGKILL.
    KillFailed(&'static str),
}

/// Errors of the wait loop.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("blocking the relayed signals")]
    BlockSignals(#[source] Errno),
    #[error("creating the signalfd")]
    SignalFd(#[source] Errno),
    #[error("polling for signals and events")]
    Poll(#[source] Errno),
    #[error("waiting for the command")]
    Wait(#[source] Errno),
}

/// Blocks the relayed signals and SIGCHLD and opens a signalfd for them. Call before `fork`.
pub fn block_signals() -> Result<SignalFd, SuperviseError> {
    let mut mask = SigSet::empty();
    for signal in RELAYED {
        mask.add(signal);
    }
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(SuperviseError::BlockSignals)?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(SuperviseError::SignalFd)
}

/// What the loop needs from its caller besides the child.
pub trait Watcher {
    /// Extra descriptors to poll (the eBPF ring buffer); may be empty.
    fn fds(&self) -> Vec<BorrowedFd<'_>>;
    /// Called when any of [`Watcher::fds`] is readable, at least every
    /// [`Watcher::drain_interval`], and once more before returning.
    fn drain(&mut self);
    /// How long records may wait in [`Watcher::fds`] without a wake-up: the longest the loop
    /// sleeps without draining. `None` when every record wakes the loop (or there are none).
    fn drain_interval(&self) -> Option<Duration>;
    /// CPU time used by the whole sandbox so far, if known.
    fn cpu_used(&mut self) -> Option<Duration>;
    /// Ends every process of the sandbox (used on wall/CPU time and when the command exits);
    /// false when that failed.
    fn kill_sandbox(&mut self) -> bool;
}

/// Time limits of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlines {
    pub wall_time: Option<Duration>,
    pub cpu_time: Option<Duration>,
}

/// Supervises `child` until it ends; returns why it ended.
pub fn supervise(
    child: Pid,
    signals: &SignalFd,
    deadlines: Deadlines,
    watcher: &mut dyn Watcher,
) -> Result<Ending, SuperviseError> {
    let started = Instant::now();
    let wall_deadline = deadlines.wall_time.map(|limit| started + limit);
    loop {
        if let Some(ending) = reap(child)? {
            watcher.drain();
            return Ok(ending);
        }
        if let Some(deadline) = wall_deadline
            && Instant::now() >= deadline
        {
            let killed = kill_or_fallback(watcher, child);
            reap_blocking(child)?;
            watcher.drain();
            return Ok(if killed {
                Ending::WallTime
            } else {
                Ending::KillFailed("limits.wall_time")
            });
        }
        if let Some(limit) = deadlines.cpu_time
            && watcher.cpu_used().is_some_and(|used| used >= limit)
        {
            let killed = kill_or_fallback(watcher, child);
            reap_blocking(child)?;
            watcher.drain();
            return Ok(if killed {
                Ending::CpuTime
            } else {
                Ending::KillFailed("limits.cpu_time")
            });
        }

        let drain_interval = watcher.drain_interval();
        let timeout = next_timeout(wall_deadline, deadlines.cpu_time.is_some(), drain_interval);
        let extra = watcher.fds();
        let mut fds = Vec::with_capacity(1 + extra.len());
        fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
        fds.extend(
            extra
                .into_iter()
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
        );
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(err) => return Err(SuperviseError::Poll(err)),
        }
        let signal_ready = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        let events_ready = fds[1..]
            .iter()
            .any(|fd| fd.revents().is_some_and(|r| !r.is_empty()));
        drop(fds);
        // Draining an empty ring reads two positions from shared memory, so every wake-up
        // drains rather than keep a separate deadline for the interval.
        if events_ready || drain_interval.is_some() {
            watcher.drain();
        }
        if signal_ready {
            relay_signals(child, signals);
        }
    }
}

/// Forwards pending relayed signals to the command.
fn relay_signals(child: Pid, signals: &SignalFd) {
    while let Ok(Some(info)) = signals.read_signal() {
        let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if signal == Signal::SIGCHLD {
            continue;
        }
        // A terminal sends Ctrl-C & co. to the whole foreground process group, which includes
        // the command: relaying it too would deliver it twice.
        if info.ssi_code == SI_KERNEL && same_process_group(child) {
            continue;
        }
        // The command may have exited meanwhile; ESRCH is harmless, the reap sees it.
        let _ = kill(child, signal);
    }
}

fn same_process_group(child: Pid) -> bool {
    nix::unistd::getpgid(Some(child)).ok() == Some(nix::unistd::getpgrp())
}

fn next_timeout(
    wall_deadline: Option<Instant>,
    sample_cpu: bool,
    drain_interval: Option<Duration>,
) -> PollTimeout {
    let mut wait: Option<Duration> =
        wall_deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let periods = [sample_cpu.then_some(CPU_SAMPLE_INTERVAL), drain_interval];
    for period in periods.into_iter().flatten() {
        wait = Some(wait.map_or(period, |w| w.min(period)));
    }
    match wait {
        None => PollTimeout::NONE,
        // Round up so the loop does not spin on a sub-millisecond remainder.
        Some(w) => {
            PollTimeout::try_from(w.as_millis().saturating_add(1).min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX)
        }
    }
}

/// Non-blocking reap of the command.
fn reap(child: Pid) -> Result<Option<Ending>, SuperviseError> {
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Some(Ending::Exited(code))),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                return Ok(Some(Ending::Signaled(signal as i32)));
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => return Ok(None),
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(SuperviseError::Wait(err)),
        }
    }
}

/// Kills the sandbox; when that fails, SIGKILLs the command itself so the reap below cannot
/// wait forever, and says the sandbox kill failed.
fn kill_or_fallback(watcher: &mut dyn Watcher, child: Pid) -> bool {
    if watcher.kill_sandbox() {
        return true;
    }
    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
    false
}

/// Blocking reap after the sandbox was killed.
fn reap_blocking(child: Pid) -> Result<(), SuperviseError> {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD) => {
                return Ok(());
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(err) => return Err(SuperviseError::Wait(err)),
        }
    }
}
