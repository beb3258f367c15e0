//! Running one program of the plan as PID 1: in its own session, with the plan's environment,
//! reaping every orphan the kernel hands to PID 1 while waiting.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};

use guard_vm_init::plan::{Plan, Run};

/// Makes /dev/console stdin, stdout and stderr, whether or not the kernel could open it before
/// /dev was mounted.
pub fn attach_console() -> Result<(), String> {
    let console = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
        .map_err(|e| format!("open /dev/console: {e}"))?;
    use std::os::fd::AsRawFd as _;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors; the console stays open through them.
        if unsafe { libc::dup2(console.as_raw_fd(), fd) } < 0 {
            return Err(format!("dup2 console: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Runs `one` to its end and returns its status (128+N when killed by signal N).
pub fn run(one: &Run, plan: &Plan) -> Result<i32, String> {
    let Some((program, args)) = one.argv.split_first() else {
        return Err(format!("run {} has no program", one.label));
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        // The console is not the tests' terminal: tests that need one open a pty.
        .stdin(Stdio::null());
    if let Some(cwd) = &plan.cwd {
        command.current_dir(cwd);
    }
    // SAFETY: setsid is async-signal-safe. A session of its own keeps the run off the console's
    // job control, as under a terminal-less CI runner.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = command
        .spawn()
        .map_err(|e| format!("start {program}: {e}"))?;
    let pid = i32::try_from(child.id()).map_err(|e| format!("pid: {e}"))?;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer. -1: any child, so orphans re-parented to
        // PID 1 (sandboxes guard killed, daemons of the tests) are reaped here too.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(format!("wait for {program}: {err}"));
        }
        if reaped == pid {
            return Ok(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
    }
}
