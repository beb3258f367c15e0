//! Booting the guest under qemu (software emulation) and following its console.
//!
//! The flags are the verified recipe of the project's toolchain notes: TCG because KVM cannot
//! run a normal guest on these hosts, one CPU because two oopsed in one boot of eight, no
//! default devices, the console on the first serial port, and `isa-debug-exit` for the verdict.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use guard_vm_init::report::Report;

/// The kernel command line: BPF LSM enabled at boot, cgroup v1 off so every controller is on
/// cgroup2, panics ending the VM at once (qemu then exits 0, a failure).
pub const KERNEL_CMDLINE: &str = "console=ttyS0 quiet panic=-1 \
     lsm=landlock,lockdown,yama,bpf cgroup_no_v1=all";

/// How a boot ended.
#[derive(Debug)]
pub struct Boot {
    /// qemu's exit code: 1 when the guest reported success, 3 for failure, 0 for a panic or
    /// power-off; `None` when it was killed.
    pub qemu_status: Option<i32>,
    pub timed_out: bool,
    /// Report lines of the guest, in order.
    pub reports: Vec<Report>,
    /// Every console line (for the test counts).
    pub console: Vec<String>,
    /// When each console line arrived, from qemu's start (for test durations).
    pub arrived: Vec<Duration>,
    /// From qemu's start to the guest's `done` report.
    pub to_result: Option<Duration>,
}

/// What the guest's verdict means.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    /// qemu exited 0: the kernel panicked or the guest rebooted or powered off.
    Crashed,
    TimedOut,
}

impl Boot {
    pub fn verdict(&self) -> Verdict {
        if self.timed_out {
            return Verdict::TimedOut;
        }
        match self.qemu_status {
            Some(1) => Verdict::Passed,
            Some(0) => Verdict::Crashed,
            _ => Verdict::Failed,
        }
    }
}

/// Boots `kernel` with `initrd` and `memory_mib` of RAM, echoing the console to stdout, until
/// the guest ends the VM or `timeout` passes.
pub fn boot(
    kernel: &Path,
    initrd: &Path,
    memory_mib: u32,
    timeout: Duration,
) -> anyhow::Result<Boot> {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "1"])
        .args(["-m", &format!("{memory_mib}M")])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        .args(["-serial", "stdio"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", KERNEL_CMDLINE])
        // No stdin: the console is output only, and a CI job has no terminal.
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let line = crate::cmd::display(&command);
    eprintln!("+ {line}");
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start `{line}` (is qemu-system-x86 installed?)"))?;
    let stdout = child.stdout.take().context("qemu has no stdout pipe")?;

    // A thread reads the console so the main thread can wait with a deadline.
    let (lines, received) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = std::io::BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match stdout.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let text = text.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if lines.send(text).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let deadline = started + timeout;
    let mut boot = Boot {
        qemu_status: None,
        timed_out: false,
        reports: Vec::new(),
        console: Vec::new(),
        arrived: Vec::new(),
        to_result: None,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(text) => {
                println!("{text}");
                if let Some(report) = Report::parse(&text) {
                    if matches!(report, Report::Done { .. }) {
                        boot.to_result = Some(started.elapsed());
                    }
                    boot.reports.push(report);
                }
                boot.console.push(text);
                boot.arrived.push(started.elapsed());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                boot.timed_out = true;
                eprintln!("vm: no result after {}s; stopping qemu", timeout.as_secs());
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().context("waiting for qemu")?;
    let _ = reader.join();
    boot.qemu_status = if boot.timed_out { None } else { status.code() };
    Ok(boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(status: Option<i32>, timed_out: bool) -> Boot {
        Boot {
            qemu_status: status,
            timed_out,
            reports: Vec::new(),
            console: Vec::new(),
            arrived: Vec::new(),
            to_result: None,
        }
    }

    #[test]
    fn qemu_exit_codes_map_to_verdicts() {
        assert_eq!(boot(Some(1), false).verdict(), Verdict::Passed);
        assert_eq!(boot(Some(3), false).verdict(), Verdict::Failed);
        assert_eq!(boot(Some(0), false).verdict(), Verdict::Crashed);
        assert_eq!(boot(None, true).verdict(), Verdict::TimedOut);
        assert_eq!(boot(Some(1), true).verdict(), Verdict::TimedOut);
        assert_eq!(boot(None, false).verdict(), Verdict::Failed);
    }

    #[test]
    fn the_command_line_enables_bpf_lsm_and_pure_cgroup2() {
        assert!(KERNEL_CMDLINE.contains("lsm=landlock,lockdown,yama,bpf"));
        assert!(KERNEL_CMDLINE.contains("cgroup_no_v1=all"));
        assert!(KERNEL_CMDLINE.contains("panic=-1"));
    }
}
