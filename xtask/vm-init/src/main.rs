//! PID 1 of the test VM: prepares the kernel's file systems, runs the plan xtask packed into the
//! initramfs, reports each result on the console and ends the VM through isa-debug-exit with
//! 0 (every run exited 0) or 1.
//!
//! PID 1 must never return: the kernel would panic. Every failure ends in [`exit::end_vm`].

mod exit;
mod mounts;
mod net;
mod run;

use guard_vm_init::plan::{PLAN_PATH, Plan};
use guard_vm_init::report::Report;

fn main() {
    let failed = match prepare_and_run() {
        Ok(failed) => failed,
        Err(message) => {
            println!("{}", Report::Error(message).line());
            1
        }
    };
    println!("{}", Report::Done { failed }.line());
    exit::end_vm(failed == 0)
}

/// Everything between boot and the verdict; returns how many runs failed.
fn prepare_and_run() -> Result<usize, String> {
    // Before anything prints: the kernel's initial console is in place only when the archive
    // has /dev/console, and /dev needs devtmpfs for everything else.
    mounts::mount_all()?;
    run::attach_console()?;
    net::loopback_up()?;
    let text = std::fs::read_to_string(PLAN_PATH).map_err(|e| format!("read {PLAN_PATH}: {e}"))?;
    let plan = Plan::parse(&text).map_err(|e| e.to_string())?;
    let mut failed = 0;
    for one in &plan.runs {
        let status = run::run(one, &plan)?;
        println!(
            "{}",
            Report::Status {
                label: one.label.clone(),
                status,
            }
            .line()
        );
        if status != 0 {
            failed += 1;
        }
    }
    Ok(failed)
}
