//! Which sandbox the current task belongs to: the nearest cgroup v2 ancestor (or the task's own
//! cgroup) that has a policy in `SANDBOXES`.
//!
//! Looking policy up by the task's own cgroup only would let a tool that creates a child cgroup
//! under its sandbox (and moves itself there) leave enforcement: its new cgroup id is unknown and
//! unknown cgroups are "not ours". Every probe therefore asks this module, so a process in the
//! sandbox cgroup or any descendant of it is the sandbox. The nearest ancestor wins, so a
//! sandbox nested below another guard sandbox keeps its own (stricter or not) policy.
//!
//! `bpf_get_current_cgroup_id` and `bpf_get_current_ancestor_cgroup_id` both name the cgroup v2
//! (default) hierarchy, which is where guard registers sandboxes on pure v2 and hybrid hosts
//! alike; child cgroups made in v1 hierarchies do not change the v2 id at all.
//! The ancestor helper exists since 5.6 and is offered to tracing, LSM and cgroup programs.

use aya_ebpf::helpers::{bpf_get_current_ancestor_cgroup_id, bpf_get_current_cgroup_id};
use guard_common::SandboxPolicy;

use crate::maps::SANDBOXES;

/// Deepest cgroup level examined. cgroup v2 has no hard depth limit (`cgroup.max.depth` is
/// unlimited by default), but the verifier needs a bound; sandboxes live a few levels below the
/// root, so 32 leaves a tool room for about 25 levels of its own children. A task deeper than
/// this below a sandbox is still found as long as the sandbox itself is within the bound, because
/// the walk goes from the root downwards.
const MAX_LEVEL: i32 = 32;

/// The sandbox of the current task: its cgroup id (the key of every per-sandbox map) and a copy
/// of its policy, or `None` when no ancestor is registered (not ours).
#[inline(always)]
pub fn current_sandbox() -> Option<(u64, SandboxPolicy)> {
    // SAFETY: helper without arguments.
    let own = unsafe { bpf_get_current_cgroup_id() };
    // Fast path: the task sits in the sandbox cgroup itself (nearly every event).
    if let Some(policy) = SANDBOXES.get_ptr(own) {
        // SAFETY: a map value pointer from a successful lookup; copied at once.
        return Some((own, unsafe { *policy }));
    }
    let mut found = None;
    let mut level = 0;
    while level < MAX_LEVEL {
        // SAFETY: plain helper call; returns 0 past the task's own level.
        let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
        if id == 0 || id == own {
            break;
        }
        if let Some(policy) = SANDBOXES.get_ptr(id) {
            // Keep going: a deeper registered ancestor is nearer and wins.
            // SAFETY: a map value pointer from a successful lookup; copied at once.
            found = Some((id, unsafe { *policy }));
        }
        level += 1;
    }
    found
}
