//! What the numbers of one run say limits guard, and what would lift each limit: the
//! "What limits guard" bullets of the report, each tied to a measurement of the same run.

use super::limits::{self, Profile};
use super::micro;
use super::startup::{self, Startup};
use super::storm::{self, Storm};
use super::table::{duration, mib, ratio};
use super::targets;

/// The bullets, in the order of the targets.
pub fn findings(
    start: &Startup,
    micro: &[micro::Result],
    storms: &[Storm],
    profile: Option<&Profile>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = profile {
        out.extend(warm_start(start, p));
    }
    if let (Some(daemon), Some(warm), Some(times_bare)) = (
        start.timing(startup::DAEMON),
        start.timing(startup::WARM),
        start.paired_ratio(startup::DAEMON),
    ) {
        out.push(format!(
            "**Daemon start** ({} median back to back, {} bare interleaved): the same start as \
             a warm one, with the same grace period on v1 hierarchies, made by a worker the \
             daemon executes as the caller (one more exec of guard), plus the client's own \
             exec and the fsync of the `exit` record in the daemon's audit log: {} more than a \
             local warm start back to back.",
            duration(daemon.median),
            ratio(times_bare),
            duration((daemon.median - warm.median).max(0.0)),
        ));
    }
    if let Ok(cold) = &start.cold {
        out.push(format!(
            "**Cold start** ({} median, {} bwrap): the probe object is loaded, verified and \
             attached ({} of CPU, {} of it in the kernel; peak RSS {}). The kernel's BTF is \
             mapped, not read, and parsed only for what is not cached: the exec probe's struct \
             offsets on the first load after boot (then cached in `/run/guard` per kernel \
             build) and the BPF LSM hook's id where LSM programs load; the ring pool's first ring \
             is stored (a grace period) while the verifier runs. What remains is the verifier \
             and attaching the probes, which every load pays, and the warm start's grace period \
             for the v1 `cgroup.procs` write. Candidate: let the daemon (or a boot-time unit) \
             load the probes, so no tool call is ever cold.",
            duration(cold.guard.median),
            ratio(cold.guard.median / cold.bwrap.median),
            duration(cold.guard_cpu),
            duration(cold.guard_sys),
            mib(cold.guard_rss_kib.last().copied().unwrap_or(0)),
        ));
    }
    let find = |label| micro.iter().find(|m| m.label == label);
    if let Some(m) = find(targets::GETPPID) {
        let cached = m.references.first().map(|(_, _, r)| *r);
        out.push(format!(
            "**System calls** ({} bare, +{:.0} ns under guard): {}. What remains is the \
             kernel's seccomp entry path, paid by any process with a filter; no filter can \
             get closer to bare here, so 1.03× is out of reach on this kernel.",
            ratio(m.loop_ratio()),
            m.overhead_ns(),
            cached.map_or("no reference filter was measured".to_string(), |c| format!(
                "a one-instruction allow-all filter, which the kernel's action cache \
                     answers without running it, costs {} in the same rounds, so guard's filter \
                     is already served from the cache for `getppid`",
                ratio(c)
            )),
        ));
    }
    for label in [targets::CONNECT, targets::UDP] {
        if let Some(m) = find(label) {
            out.push(format!(
                "**{}** ({}, +{:.0} ns per operation on a bare {:.0} ns): every allowed \
                 operation makes the probe write a ring-buffer record, submitted without \
                 waking the supervisor, which drains the ring every 100 ms (or when it is an \
                 eighth full) and turns each record into an audit record: {:.0} ns of guard \
                 CPU and {:.2} wake-ups per operation, on the other CPU of two. What is left \
                 runs in the sandboxed process: the cgroup `sock_addr` program (every build of \
                 guard's probes loaded on the host runs its own; another build's returns after \
                 one lookup) and the probe's lookups, timestamp and ring write{}",
                label,
                ratio(m.loop_ratio()),
                m.overhead_ns(),
                m.bare_ns(),
                m.guard_cpu_ns,
                m.guard_wakeups,
                if label == targets::UDP {
                    ", plus the socket lock the kernel takes around a sendmsg hook. perf put \
                     them at about 10-15% of a loopback `sendto` (one to three builds loaded): \
                     the floor for one record per datagram, below which only counting allowed \
                     sends per destination, instead of recording each, would go; the design \
                     asks for a record of every decision."
                } else {
                    "."
                },
            ));
        }
    }
    if let Some(m) = find(targets::SPAWN) {
        out.push(format!(
            "**fork+exec** ({}, +{:.1} µs per exec on a bare {:.0} µs): the exec tracepoint \
             checks the file's identity and writes a record; the supervisor spends {:.1} µs of \
             CPU per exec on it.",
            ratio(m.loop_ratio()),
            m.overhead_ns() / 1e3,
            m.bare_ns() / 1e3,
            m.guard_cpu_ns / 1e3,
        ));
    }
    if let Some(s) = storms.first() {
        let fits = f64::from(limits::RING_BYTES) / f64::from(limits::EXEC_RECORD_BYTES);
        out.push(format!(
            "**Audit under an exec storm**: the storm's loops ran {:.0} execs/s of {} ({}), and \
             {} records were lost. The supervisor spends {} of CPU per exec record with \
             `--audit-log`, so one CPU keeps up with about {:.0} records/s; the 1 MiB ring \
             holds about {:.0} exec records, {:.2} s of backlog at {:.0}/s.",
            s.rate(),
            s.program.name(),
            if s.rate() < storm::TARGET_RATE {
                "one loop per CPU, as fast as they went: below the target rate on this host"
            } else {
                "as fast as they went, above the target rate"
            },
            s.missing().max(s.audit.lost),
            duration(s.guard_cpu_per_record() / 1e9),
            1e9 / s.guard_cpu_per_record().max(1.0),
            fits,
            fits / storm::TARGET_RATE,
            storm::TARGET_RATE,
        ));
        // The fast storm shows the headroom; the paced one is what the target is judged on.
        if let Some(paced) = storms.iter().find(|s| s.paced.is_some())
            && let Some(last) = out.last_mut()
        {
            last.push_str(&format!(
                " Paced to {:.0}/s the loops ran {:.0} execs/s and {} records were lost.",
                paced.paced.unwrap_or(storm::TARGET_RATE),
                paced.rate(),
                paced.missing().max(paced.audit.lost),
            ));
        }
    }
    out
}

/// The warm-start bullets: what the start waits in, then what is left to try.
fn warm_start(start: &Startup, p: &Profile) -> Vec<String> {
    let (Some(warm), Some(times_bare)) = (
        start.timing(startup::WARM),
        start.paired_ratio(startup::WARM),
    ) else {
        return Vec::new();
    };
    let waiting: Vec<&limits::Cost> = p
        .top
        .iter()
        .filter(|c| c.key.ends_with("/cgroup.procs"))
        .collect();
    let waited: f64 = waiting.iter().map(|c| c.median).sum();
    let gp = p.grace_period.map_or("unknown".to_string(), duration);
    let spaced = match (start.spaced(startup::WARM), start.spaced(startup::BARE)) {
        (Some(guard), Some(bare)) => ratio(guard.median / bare.median),
        _ => "not measured".to_string(),
    };
    vec![
        format!(
            "**Warm start** ({} median back to back, {} bare interleaved, {spaced} bare with \
             0.2 s between runs): on this host's v1 hierarchies the child must be written into \
             each controller's `cgroup.procs`, and the first write takes \
             `cgroup_threadgroup_rwsem` for writing, which waits for an RCU grace period \
             (one grace period here: {gp}) unless another migration ended less than one grace \
             period earlier. That is why back-to-back runs are faster than spaced ones. Traced, \
             the writes take {} per start. The child confines itself (capabilities, Landlock) \
             while the parent waits there, so the wait hides guard's own work.",
            duration(warm.median),
            ratio(times_bare),
            duration(waited),
        ),
        "**What was removed from the warm start**: the ring buffer of a sandbox is a slot of a \
         pool (`EVENT_RINGS` is an array of maps; a slot's ring stays after its sandbox), so no \
         start or end updates a map of maps, which cost two grace periods per run; an empty \
         sandbox is not frozen at the end; on a pure cgroup v2 host the child is created in \
         its cgroup by `clone3(CLONE_INTO_CGROUP)`, which takes the rwsem only for reading, so \
         no grace period is left at all there. **What would remove the last one here**: only \
         the host can: cgroup v2 for memory, pids and cpu, or the v1 hierarchies mounted with \
         `favordynmods` (6.1+), which keeps the rwsem's writer path ready at the price of \
         slower forks host-wide; guard does not remount the host's cgroups."
            .to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::hyperfine::Timing;
    use crate::bench::storm::AuditCount;
    use crate::bench::workload::Tally;

    #[test]
    fn findings_quote_the_measurements() {
        let start = Startup {
            rows: Vec::new(),
            cold: Err("not run".into()),
            daemon_hwm_kib: None,
        };
        let getppid = micro::Result {
            label: targets::GETPPID,
            what: "",
            count: 1_000_000,
            rounds: 3,
            bare_loop: Timing::flat(0.1),
            guarded_loop: Timing::flat(0.12),
            guard_cpu_ns: 0.0,
            guard_wakeups: 0.0,
            paired_loop_ratio: 1.2,
            paired_wall_ratio: 1.3,
            references: vec![("allow-all", Timing::flat(0.121), 1.21)],
        };
        let storm = Storm {
            program: crate::bench::storm::Program::Exit0("/t/exit0".into()),
            paced: None,
            tally: Tally {
                ops: 10_000,
                ns: 10_000_000_000,
                ..Tally::default()
            },
            audit: AuditCount {
                execs: 10_000,
                lost: 0,
                records: 10_002,
            },
            guard_cpu_ns: 200_000_000,
        };
        let found = findings(&start, &[getppid], &[storm], None);
        assert_eq!(found.len(), 2);
        assert!(found[0].contains("(1.20× bare, +20 ns under guard)"));
        assert!(found[0].contains("costs 1.21× in the same rounds"));
        assert!(found[1].contains("1000 execs/s of the bench's static executable"));
        assert!(found[1].contains("20 µs of CPU per exec record"));
        assert!(found[1].contains("about 1202 exec records"));
    }
}
