//! The typed handshake between the supervisor and the child it forked.
//!
//! Two pipes: the parent writes [`GO`] once the child is in its cgroups and the probes watch that
//! cgroup; until then the child blocks and runs nothing of the command. The child reports a failed
//! setup step as a fixed 8-byte [`ChildFailure`] on a close-on-exec pipe, so a successful `execve`
//! shows up in the parent as end-of-file with no message (youki's `process/message.rs` does the
//! same with a richer channel).

use std::fmt;

/// The single byte that releases the child.
pub const GO: u8 = b'G';

/// The setup step of the child that failed. The numbers travel over the pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChildStep {
    WaitForGo = 1,
    ResetSignals = 2,
    Workdir = 3,
    Rlimits = 4,
    DropBoundingSet = 5,
    SwitchUser = 6,
    ClearCapabilities = 7,
    NoNewPrivs = 8,
    Landlock = 9,
    Seccomp = 10,
    Exec = 11,
    Stdio = 12,
    IpcNamespace = 13,
    Mounts = 14,
    /// Handing the seccomp listener to the supervisor.
    SeccompListener = 15,
}

impl ChildStep {
    fn from_u8(value: u8) -> Option<Self> {
        use ChildStep::*;
        [
            WaitForGo,
            ResetSignals,
            Workdir,
            Rlimits,
            DropBoundingSet,
            SwitchUser,
            ClearCapabilities,
            NoNewPrivs,
            Landlock,
            Seccomp,
            Exec,
            Stdio,
            IpcNamespace,
            Mounts,
            SeccompListener,
        ]
        .into_iter()
        .find(|step| *step as u8 == value)
    }

    /// How the step is named in guard's error messages.
    pub fn describe(self) -> &'static str {
        match self {
            ChildStep::WaitForGo => "waiting for the supervisor",
            ChildStep::ResetSignals => "resetting signal mask and dispositions",
            ChildStep::Workdir => "changing to the working directory",
            ChildStep::Rlimits => "setting resource limits",
            ChildStep::DropBoundingSet => "dropping the capability bounding set",
            ChildStep::SwitchUser => "switching to process.user",
            ChildStep::ClearCapabilities => "clearing capabilities",
            ChildStep::NoNewPrivs => "setting no_new_privs",
            ChildStep::Landlock => "applying the Landlock ruleset",
            ChildStep::Seccomp => "loading the seccomp filter",
            ChildStep::Exec => "executing the command",
            ChildStep::Stdio => "setting up standard streams",
            ChildStep::IpcNamespace => "entering a private IPC namespace",
            ChildStep::Mounts => "making the file tree read-only outside the write paths",
            ChildStep::SeccompListener => "handing the seccomp listener to the supervisor",
        }
    }
}

/// A child's report that `step` failed with `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildFailure {
    pub step: ChildStep,
    pub errno: i32,
}

impl ChildFailure {
    /// Wire size: step (1 byte), 3 bytes padding, errno (4 bytes, native endian).
    pub const WIRE_SIZE: usize = 8;

    pub fn encode(self) -> [u8; Self::WIRE_SIZE] {
        let mut out = [0u8; Self::WIRE_SIZE];
        out[0] = self.step as u8;
        out[4..].copy_from_slice(&self.errno.to_ne_bytes());
        out
    }

    /// Decodes a message; `None` for a short or unknown message (treated as a failed setup).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::WIRE_SIZE] = bytes.try_into().ok()?;
        let step = ChildStep::from_u8(bytes[0])?;
        let errno = i32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        Some(ChildFailure { step, errno })
    }
}

impl fmt::Display for ChildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {}",
            self.step.describe(),
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_round_trips_over_the_wire() {
        let failure = ChildFailure {
            step: ChildStep::Landlock,
            errno: libc::EPERM,
        };
        assert_eq!(ChildFailure::decode(&failure.encode()), Some(failure));
    }

    #[test]
    fn short_or_unknown_messages_do_not_decode() {
        assert_eq!(ChildFailure::decode(&[9, 0, 0]), None);
        assert_eq!(ChildFailure::decode(&[200, 0, 0, 0, 1, 0, 0, 0]), None);
    }

    #[test]
    fn every_step_number_decodes_to_itself() {
        for n in 1..=12u8 {
            let step = ChildStep::from_u8(n).expect("step numbers 1..=12 are defined");
            assert_eq!(step as u8, n);
        }
    }
}
