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
    if let Ok(cold) = &start.cold {
        out.push(format!(
            "**Cold start** ({} median, {} bwrap): the probe object is loaded and verified and \
             the kernel's BTF is parsed in-process for a handful of struct offsets ({} of CPU, \
             {} of it in the kernel; peak RSS {}). Candidates: cache the computed offsets under \
             `/run/guard` keyed by the kernel's build id, so only the first load after boot \
             parses BTF (that parse is what lifts the peak RSS over 16 MiB); let the daemon \
             (or a boot-time unit) load the probes, so no tool call is ever cold.",
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
                 runs in the sandboxed process: the cgroup `sock_addr` programs (every build \
                 of guard's probes loaded on the host runs its own; another build's returns \
                 after one lookup), the socket lock the kernel takes around a sendmsg hook, \
                 and the probe's lookups, timestamp and ring write. perf put them at about \
                 10-15% of a loopback `sendto` (one to three builds loaded), which is the \
                 floor for one record per datagram; below it only counting allowed sends \
                 per destination instead of recording each one would go.",
                label,
                ratio(m.loop_ratio()),
                m.overhead_ns(),
                m.bare_ns(),
                m.guard_cpu_ns,
                m.guard_wakeups,
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
            "**Audit under an exec storm**: the storm's loops ran {:.0} execs/s ({}), and {} \
             records were lost. The supervisor spends {} of CPU per exec record with \
             `--audit-log`, so one CPU keeps up with about {:.0} records/s; the 1 MiB ring \
             holds about {:.0} exec records, {:.2} s of backlog at {:.0}/s.",
            s.rate(),
            if s.rate() < storm::TARGET_RATE {
                "one loop per CPU; bare fork+exec of `/bin/true` alone does not reach 5,000/s on \
                 this host"
            } else {
                "above the target rate"
            },
            s.missing().max(s.audit.lost),
            duration(s.guard_cpu_per_record() / 1e9),
            1e9 / s.guard_cpu_per_record().max(1.0),
            fits,
            fits / storm::TARGET_RATE,
            storm::TARGET_RATE,
        ));
    }
    out
}

/// The warm-start bullets: grace periods, then the smaller costs.
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
        .filter(|c| limits::explain(&c.key).contains("grace period"))
        .collect();
    let waited: f64 = waiting.iter().map(|c| c.median).sum();
    let gp = p.grace_period.map_or("unknown".to_string(), duration);
    vec![
        format!(
            "**Warm start** ({} median, {} bare): three kernel calls wait for an RCU grace \
             period (one grace period here: {gp}): inserting and deleting the sandbox's ring \
             in `EVENT_RINGS` (a hash of maps: the kernel synchronizes after every update of a \
             map-in-map) and the first `cgroup.procs` write (`cgroup_threadgroup_rwsem`). \
             Traced, they take {} of each start. Nothing guard does in user space comes close \
             (its own CPU is a few ms, mostly fork, exec and page faults).",
            duration(warm.median),
            ratio(times_bare),
            duration(waited),
        ),
        "**Candidates for the warm start**: (1) create a pool of rings when the probes are \
         loaded, in an array of maps that is never written afterwards, and give each sandbox a \
         slot (claimed with a lock file, its index in `SandboxPolicy`): no map-in-map update at \
         start or end, two grace periods fewer; (2) start the child with \
         `clone3(CLONE_INTO_CGROUP)` on cgroup2 (5.7+), which takes the threadgroup rwsem only \
         for reading; on v1 hierarchies the `favordynmods` mount option (6.1+) removes the \
         writer's grace period; (3) hand the end of a sandbox (map deletions, cgroup removal) \
         to the sentinel after the exit status is known, so no grace period sits between the \
         command's exit and guard's; (4) smaller: the SHA-256 of the embedded probe object for \
         the pin stamp is computed at every start (build.rs can do it once), and freezing an \
         already empty v1 cgroup toggles the freezer's static key twice per run (text patching \
         with IPIs to every CPU)."
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
        assert!(found[1].contains("1000 execs/s"));
        assert!(found[1].contains("20 µs of CPU per exec record"));
        assert!(found[1].contains("about 1202 exec records"));
    }
}
