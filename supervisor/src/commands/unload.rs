//! `guard unload`: takes guard's eBPF probes out of the kernel.
//!
//! Exit status: 0 when nothing of guard's is left loaded, 1 when the probes are in use (a
//! sandbox or the daemon runs) or something could not be removed.

use std::process::ExitCode;

use crate::ebpf::unload::{UnloadError, loaded_programs_named, unload};
use crate::sandbox::launch::error_chain;

/// How guard's programs start (`guard_common::names`); the kernel keeps 15 characters.
const PROGRAM_PREFIX: &str = "guard_";

pub fn run() -> ExitCode {
    let sandboxes = || crate::sandbox::cgroup::list_sandboxes().map_err(|e| error_chain(&e));
    let live = || crate::sandbox::cgroup::live_sandbox_ids().map_err(|e| error_chain(&e));
    match unload(&sandboxes, &live) {
        Ok(unloaded) => {
            for dir in &unloaded.removed {
                println!("removed {}", dir.display());
            }
            if unloaded.removed.is_empty() {
                println!("no probes of guard were pinned");
            }
            // Unpinned links and programs go once the last handle closes; nothing else should
            // hold one, so anything still loaded is worth saying.
            let left = loaded_programs_named(PROGRAM_PREFIX);
            if left.is_empty() {
                println!("no program of guard is loaded");
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "guard: error: still loaded (held by another process): {}",
                    left.join(", ")
                );
                ExitCode::from(1)
            }
        }
        Err(
            err @ (UnloadError::InUse
            | UnloadError::SandboxCgroups(_)
            | UnloadError::LiveEntries { .. }),
        ) => {
            eprintln!("guard: {err}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("guard: error: {}", error_chain(&err));
            ExitCode::from(1)
        }
    }
}
