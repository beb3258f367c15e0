//! The supervise loop's view of a running sandbox: its cgroup (CPU time, kill) and the
//! sandbox's eBPF ring buffer, whose records become audit log records as they arrive.

use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::Duration;

use super::cgroup::CgroupManager;
use super::fold::{Admit, FoldKey, Folder};
use super::landlock_denials::{Access, LandlockFeed};
use super::launch::error_chain;
use super::probe_events::{self, ExeNames, STDERR_LINES};
use super::supervise::Watcher;
use super::syscall_denials::{Answer, Denial, SyscallListener};
use crate::audit::{AuditError, AuditEvent, AuditLog, Enforcer, Verdict};
use crate::dns::{GateRecord, RunningGate};
use crate::ebpf::RegisteredSandbox;
use crate::plan::LandlockPlan;

/// How long a record of an allowed operation may wait in the ring before the supervisor reads
/// it (the probes submit those without a wake-up; see `guard-ebpf/src/wake.rs`). Short enough
/// that the log trails the sandbox by a blink, long enough that an idle sandbox costs ten
/// wake-ups a second.
const DRAIN_INTERVAL: Duration = Duration::from_millis(100);

/// Watches one sandbox for [`super::supervise::supervise`].
pub struct Monitor<'a> {
    cgroup: &'a dyn CgroupManager,
    /// `cpu.stat` of the sandbox's cgroup2 directory. cgroup2 keeps this core file in every
    /// directory, controllers or not, so it counts the whole sandbox on hybrid hosts too.
    cpu_stat: PathBuf,
    audit: &'a mut AuditLog,
    feed: Option<ProbeFeed<'a>>,
    syscalls: Option<SyscallListener>,
    landlock: Option<LandlockFeed>,
    /// Audit mode: the file rules Landlock would have applied, to judge what the tool opens.
    file_rules: Option<LandlockPlan>,
    /// Denials said on stderr so far (probes, seccomp and Landlock share the budget).
    printed: u32,
    /// Repeated denials, counted (see `fold`).
    folder: Folder,
    /// The sandbox's DNS gate, whose decisions become `dns` records.
    dns: Option<GateFeed>,
}

/// A running DNS gate and who its records name: queries arrive over the network, so the
/// record names the command (the sandbox), not the process that asked.
struct GateFeed {
    gate: RunningGate,
    pid: i32,
    exe: String,
}

/// How long the end of a run waits for Landlock's last records (its domain's deallocation
/// record, which carries the exact count). Only waited for when the domain denied something.
const LANDLOCK_TAIL: Duration = Duration::from_millis(500);

/// The probes' records of one sandbox on their way to its audit log.
pub struct ProbeFeed<'a> {
    sandbox: &'a mut RegisteredSandbox,
    command_exe: String,
    names: ExeNames,
    /// Non-allow decisions only counted, not said on stderr.
    pub unprinted: u32,
    /// Records that could not be parsed (counted as lost).
    pub unreadable: u64,
    /// Set when a violation ended the whole sandbox: the `guard: killed` line's text.
    pub killed_for: Option<String>,
}

impl<'a> ProbeFeed<'a> {
    pub fn new(sandbox: &'a mut RegisteredSandbox, command_exe: &str) -> Self {
        ProbeFeed {
            sandbox,
            command_exe: command_exe.to_owned(),
            names: ExeNames::default(),
            unprinted: 0,
            unreadable: 0,
            killed_for: None,
        }
    }
}

impl<'a> Monitor<'a> {
    pub fn new(
        cgroup: &'a dyn CgroupManager,
        audit: &'a mut AuditLog,
        feed: Option<ProbeFeed<'a>>,
        syscalls: Option<SyscallListener>,
        landlock: Option<LandlockFeed>,
        file_rules: Option<LandlockPlan>,
    ) -> Self {
        Monitor {
            file_rules,
            cgroup,
            cpu_stat: cgroup.cgroup2_path().join("cpu.stat"),
            audit,
            feed,
            syscalls,
            landlock,
            printed: 0,
            folder: Folder::default(),
            dns: None,
        }
    }

    /// Records the decisions of the sandbox's DNS gate from now on; `pid` and `exe` are the
    /// command's.
    pub fn watch_dns_gate(&mut self, gate: RunningGate, pid: i32, exe: &str) {
        self.dns = Some(GateFeed {
            gate,
            pid,
            exe: exe.to_owned(),
        });
    }

    /// Stops the DNS gate (its learned addresses leave the kernel) and records its last
    /// decisions.
    pub fn stop_dns_gate(&mut self) {
        if let Some(feed) = self.dns.take() {
            let records = feed.gate.stop();
            self.record_dns(&feed.exe, feed.pid, records);
        }
    }

    fn drain_dns(&mut self) {
        let Some(feed) = self.dns.as_ref() else {
            return;
        };
        let records = feed.gate.records();
        if !records.is_empty() {
            let (exe, pid) = (feed.exe.clone(), feed.pid);
            self.record_dns(&exe, pid, records);
        }
    }

    /// One `dns` record per decision of the gate; refusals also on stderr, folded like
    /// every other denial.
    fn record_dns(&mut self, exe: &str, pid: i32, records: Vec<GateRecord>) {
        for record in records {
            let rule = Some("network.connect");
            if record.verdict == Verdict::Kill {
                // on_violation.network = "kill": the refused lookup ends the whole sandbox.
                let line = format!(
                    "guard: killed {pid} {exe}: DNS lookup of {}: not covered by network.connect \
                     (rule network.connect, on_violation = kill)",
                    record.name
                );
                match self.feed.as_mut() {
                    Some(feed) if feed.killed_for.is_none() => feed.killed_for = Some(line),
                    Some(_) => {}
                    None => self.say(&format!("{line}\n")),
                }
                if let Err(err) = self.cgroup.kill_all() {
                    eprintln!("guard: error: killing the sandbox: {}", error_chain(&err));
                }
            } else if record.verdict == Verdict::Deny {
                let key = FoldKey {
                    event: AuditEvent::Dns,
                    verdict: record.verdict,
                    rule: rule.map(str::to_owned),
                    enforcer: Enforcer::Supervisor,
                    what: format!("dns {}", record.name),
                };
                let detail = record.detail.clone();
                if self.folder.admit(key, pid, exe, || detail) == Admit::Folded {
                    continue;
                }
                let why = record.detail["why"].as_str().unwrap_or("refused");
                let asked = if record.name.is_empty() {
                    "a DNS message".to_owned()
                } else {
                    format!("DNS lookup of {}", record.name)
                };
                self.say(&format!(
                    "guard: denied {pid} {exe}: {asked}: {why} (rule network.connect)\n"
                ));
            }
            let written = self.audit.record(
                AuditEvent::Dns,
                pid,
                exe,
                record.verdict,
                rule,
                Enforcer::Supervisor,
                record.detail,
            );
            if let Err(err) = written {
                fail_closed(self.cgroup, &err);
            }
        }
    }

    /// Writes the counted repeats that are due (all of them with `all`, at the end of the run).
    pub fn write_folds(&mut self, all: bool) {
        for folded in self.folder.due(all) {
            let written = self.audit.record_deferred(
                folded.key.event,
                folded.pid,
                &folded.exe,
                folded.key.verdict,
                folded.key.rule.as_deref(),
                folded.key.enforcer,
                || folded.detail,
            );
            if let Err(err) = written {
                fail_closed(self.cgroup, &err);
            }
        }
        if all && let Err(err) = self.audit.flush() {
            fail_closed(self.cgroup, &err);
        }
    }

    /// Whether a denial is written now (the first of its kind) or only counted.
    fn admit(
        &mut self,
        key: FoldKey,
        pid: i32,
        exe: &str,
        detail: impl FnOnce() -> serde_json::Value,
    ) -> bool {
        self.folder.admit(key, pid, exe, detail) == Admit::Write
    }

    /// Writes the records of accesses Landlock refused.
    fn record_landlock(&mut self, accesses: Vec<Access>) {
        for access in accesses {
            let what = match (&access.path, access.port) {
                (Some(path), _) => format!("{} {path}", access.blockers),
                (None, Some(port)) => format!(
                    "{} {}:{port}",
                    access.blockers,
                    access.daddr.as_deref().unwrap_or("?")
                ),
                (None, None) => access.blockers.clone(),
            };
            let rule = access.rule();
            let key = FoldKey {
                event: AuditEvent::Violation,
                verdict: Verdict::Deny,
                rule: Some(rule.to_owned()),
                enforcer: Enforcer::Landlock,
                what: format!("{} {what}", access.exe),
            };
            let folded_detail = || {
                serde_json::json!({
                    "op": if access.is_network() { "connect" } else { "file" },
                    "blockers": access.blockers,
                    "path": access.path,
                    "port": access.port,
                    "dst": access.daddr,
                })
            };
            if !self.admit(key, access.pid, &access.exe.clone(), folded_detail) {
                continue;
            }
            self.say(&format!(
                "guard: denied {} {}: {what} (rule {rule}, Landlock)\n",
                access.pid, access.exe
            ));
            let op = if access.is_network() {
                if access.blockers.starts_with("net.bind") {
                    "bind"
                } else {
                    "connect"
                }
            } else {
                "file"
            };
            // Landlock's record names the domain; the event's syscall record names the process
            // (pid 0 and `?` when the kernel wrote none).
            let written = self.audit.record_deferred(
                AuditEvent::Violation,
                access.pid,
                &access.exe,
                Verdict::Deny,
                Some(rule),
                Enforcer::Landlock,
                || {
                    serde_json::json!({
                        "op": op,
                        "blockers": access.blockers,
                        "path": access.path,
                        "port": access.port,
                        "dst": access.daddr,
                    })
                },
            );
            if let Err(err) = written {
                fail_closed(self.cgroup, &err);
            }
        }
        if let Err(err) = self.audit.flush() {
            fail_closed(self.cgroup, &err);
        }
    }

    /// At the end of the run: the Landlock records still in flight, then the domain's own
    /// count against what arrived. Returns the records known lost (0 when exact).
    pub fn finish_landlock(&mut self) -> u64 {
        let Some(mut feed) = self.landlock.take() else {
            return 0;
        };
        // Files the sandbox opened hold its credentials, and with them its Landlock domain:
        // the seccomp listener (created in the child after Landlock) is one, so it goes first or
        // the domain is never freed and never reports its count.
        self.syscalls = None;
        let deadline = std::time::Instant::now() + LANDLOCK_TAIL;
        loop {
            let accesses = feed.drain(false);
            if !accesses.is_empty() {
                self.record_landlock(accesses);
            }
            if !feed.has_domain() || feed.finished() {
                let rest = feed.drain(true);
                if !rest.is_empty() {
                    self.record_landlock(rest);
                }
                break;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                let rest = feed.drain(true);
                if !rest.is_empty() {
                    self.record_landlock(rest);
                }
                break;
            }
            let mut fds = [nix::poll::PollFd::new(
                feed.fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
        }
        match feed.counted {
            Some(n) => n.saturating_sub(feed.delivered),
            // The count never came: if the domain denied anything, say so rather than claim
            // the log is complete.
            None if feed.has_domain() || feed.overflowed => 1,
            None => 0,
        }
    }

    /// The probe feed, for its counters once supervising ended.
    pub fn into_feed(self) -> Option<ProbeFeed<'a>> {
        self.feed
    }

    /// Writes the records of syscalls the seccomp filter handed to guard.
    pub fn record_syscalls(&mut self, denials: Vec<Denial>) {
        for denial in denials {
            if let Some((path, access)) = &denial.file {
                self.record_file_access(&denial, path, *access);
                continue;
            }
            let verdict = match denial.answer {
                Answer::Deny => Verdict::Deny,
                Answer::Continue => Verdict::Audit,
            };
            let exe = &denial.exe;
            let pid = i32::try_from(denial.pid).unwrap_or(0);
            let detail = || {
                serde_json::json!({
                    "op": "syscall",
                    "syscall": denial.name,
                    "nr": denial.nr,
                    "args": denial.args,
                })
            };
            let rule = if denial.signal {
                "(scoping)"
            } else {
                "syscalls.deny"
            };
            let key = FoldKey {
                event: AuditEvent::Violation,
                verdict,
                rule: Some(rule.into()),
                enforcer: Enforcer::Seccomp,
                what: format!("{exe} {}", denial.name),
            };
            if !self.admit(key, pid, exe, detail) {
                continue;
            }
            if verdict == Verdict::Deny {
                self.say(&format!(
                    "guard: denied {} {exe}: syscall {} (rule {rule}, seccomp)\n",
                    denial.pid, denial.name
                ));
            }
            let written = self.audit.record_deferred(
                AuditEvent::Violation,
                pid,
                exe,
                verdict,
                Some(rule),
                Enforcer::Seccomp,
                detail,
            );
            if let Err(err) = written {
                fail_closed(self.cgroup, &err);
            }
        }
        if let Err(err) = self.audit.flush() {
            fail_closed(self.cgroup, &err);
        }
    }

    /// Audit mode: a file access the profile's rules would have refused is recorded (verdict
    /// audit); one they allow is not a decision worth a record.
    fn record_file_access(
        &mut self,
        denial: &Denial,
        path: &std::path::Path,
        access: crate::plan::landlock::FileAccess,
    ) {
        let Some(rules) = &self.file_rules else {
            return;
        };
        let enforcing = denial.answer == Answer::Deny;
        if rules.allows(path, access)
            || (enforcing && super::file_observer::decided_elsewhere(path))
        {
            return;
        }
        let verdict = if enforcing {
            Verdict::Deny
        } else {
            Verdict::Audit
        };
        let key = FoldKey {
            event: AuditEvent::Violation,
            verdict,
            rule: Some(access.key().to_owned()),
            enforcer: Enforcer::Landlock,
            what: format!("{} {} {}", denial.exe, access.key(), path.display()),
        };
        let pid = i32::try_from(denial.pid).unwrap_or(0);
        let detail = || {
            if enforcing {
                // The read-only file tree refused it (EROFS) before Landlock was asked.
                serde_json::json!({
                    "op": "file",
                    "path": path,
                    "access": access.key().trim_start_matches("filesystem."),
                    "syscall": denial.name,
                    "refused_by": "the read-only file tree (EROFS)",
                })
            } else {
                serde_json::json!({
                    "op": "file",
                    "path": path,
                    "access": access.key().trim_start_matches("filesystem."),
                    "syscall": denial.name,
                })
            }
        };
        if !self.admit(key, pid, &denial.exe, detail) {
            return;
        }
        if enforcing {
            self.say(&format!(
                "guard: denied {} {}: write {} (rule {}, read-only file tree)\n",
                denial.pid,
                denial.exe,
                path.display(),
                access.key()
            ));
        }
        let written = self.audit.record_deferred(
            AuditEvent::Violation,
            pid,
            &denial.exe,
            verdict,
            Some(access.key()),
            Enforcer::Landlock,
            detail,
        );
        if let Err(err) = written {
            fail_closed(self.cgroup, &err);
        }
    }

    /// One denial line on stderr in a single write(2), within the shared budget.
    fn say(&mut self, line: &str) {
        if self.printed < STDERR_LINES {
            self.printed += 1;
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        } else if let Some(feed) = self.feed.as_mut() {
            feed.unprinted += 1;
        }
    }
}

impl Watcher for Monitor<'_> {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds: Vec<BorrowedFd<'_>> = self
            .feed
            .as_ref()
            .map(|feed| vec![feed.sandbox.ring_fd()])
            .unwrap_or_default();
        if let Some(listener) = &self.syscalls {
            fds.push(listener.fd());
        }
        if let Some(landlock) = &self.landlock {
            fds.push(landlock.fd());
        }
        if let Some(feed) = &self.dns {
            fds.push(feed.gate.fd());
        }
        fds
    }

    fn drain_interval(&self) -> Option<Duration> {
        self.feed.as_ref().map(|_| DRAIN_INTERVAL)
    }

    fn drain(&mut self) {
        if self.feed.is_none() {
            self.write_folds(false);
        }
        if let Some(landlock) = self.landlock.as_mut() {
            let accesses = landlock.drain(false);
            if !accesses.is_empty() {
                self.record_landlock(accesses);
            }
        }
        if let Some(listener) = &self.syscalls {
            let denials = listener.answer_pending();
            if !denials.is_empty() {
                self.record_syscalls(denials);
            }
        }
        self.drain_dns();
        let learned_names = self.dns.as_ref().map(|d| d.gate.names());
        let Some(feed) = self.feed.as_mut() else {
            return;
        };
        while let Some(record) = feed.sandbox.ring().next_event() {
            let event = match record {
                Ok(event) => event,
                Err(err) => {
                    feed.unreadable += 1;
                    eprintln!("guard: error: unreadable probe record: {err}");
                    continue;
                }
            };
            let mut decision = probe_events::decision(&event, &mut feed.names, &feed.command_exe);
            if let (crate::ebpf::ProbeEvent::Net(net), Some(names)) = (&event, &learned_names)
                && net.learned
            {
                decision.learned_name = names
                    .lock()
                    .ok()
                    .and_then(|n| n.get(&net.addr.ip().to_canonical()).cloned());
            }
            // Repeats of one denial fold into a counted summary (see `fold`); a kill never does.
            if decision.verdict != Verdict::Allow && !event.kills_sandbox() {
                let key = FoldKey {
                    event: decision.event,
                    verdict: decision.verdict,
                    rule: decision.rule.map(str::to_owned),
                    enforcer: Enforcer::Ebpf,
                    what: format!("{} {}", decision.exe, decision.summary()),
                };
                let admitted = self.folder.admit(key, decision.pid, decision.exe, || {
                    serde_json::to_value(decision.detail()).unwrap_or_default()
                });
                if admitted == Admit::Folded {
                    continue;
                }
            }
            if decision.verdict != Verdict::Allow && decision.verdict != Verdict::Audit {
                let rule = decision.rule.unwrap_or("?");
                if event.kills_sandbox() && feed.killed_for.is_none() {
                    feed.killed_for = Some(format!(
                        "guard: killed {} {}: {} (rule {rule}, on_violation = kill)",
                        decision.pid,
                        decision.exe,
                        decision.summary()
                    ));
                } else if self.printed < STDERR_LINES {
                    self.printed += 1;
                    let what = if decision.verdict == Verdict::Kill {
                        "killed"
                    } else {
                        "denied"
                    };
                    // One write(2) per line, so lines of concurrent writers never interleave.
                    let line = format!(
                        "guard: {what} {} {}: {} (rule {rule})\n",
                        decision.pid,
                        decision.exe,
                        decision.summary()
                    );
                    let _ =
                        std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
                } else {
                    feed.unprinted += 1;
                }
            }
            let written = self.audit.record_deferred(
                decision.event,
                decision.pid,
                decision.exe,
                decision.verdict,
                decision.rule,
                Enforcer::Ebpf,
                || decision.detail(),
            );
            if let Err(err) = written {
                fail_closed(self.cgroup, &err);
            }
            if event.kills_sandbox()
                && let Err(err) = self.cgroup.kill_all()
            {
                eprintln!("guard: error: killing the sandbox: {}", error_chain(&err));
            }
        }
        self.write_folds(false);
        // The burst drained is written with one write before the loop sleeps again.
        if let Err(err) = self.audit.flush() {
            fail_closed(self.cgroup, &err);
        }
    }

    fn cpu_used(&mut self) -> Option<Duration> {
        // Only asked when cpu_time is limited. Usage that cannot be read cannot be checked, so it
        // counts as used up: the sandbox ends rather than run past its limit unmeasured.
        let usage = std::fs::read_to_string(&self.cpu_stat)
            .ok()
            .and_then(|text| cpu_usage(&text));
        if usage.is_none() {
            eprintln!(
                "guard: error: cannot read CPU usage from {}; ending the sandbox (limits.cpu_time)",
                self.cpu_stat.display()
            );
        }
        Some(usage.unwrap_or(Duration::MAX))
    }

    fn kill_sandbox(&mut self) -> bool {
        match self.cgroup.kill_all() {
            Ok(()) => true,
            Err(err) => {
                eprintln!("guard: error: killing the sandbox: {}", error_chain(&err));
                false
            }
        }
    }
}

/// No evidence, no run: a record that cannot be written ends the sandbox.
fn fail_closed(cgroup: &dyn CgroupManager, err: &AuditError) {
    eprintln!(
        "guard: error: writing the audit log: {}; ending the sandbox",
        error_chain(err)
    );
    let _ = cgroup.kill_all();
}

/// `usage_usec` of a cgroup2 `cpu.stat`: user plus system time of every process, living or dead.
fn cpu_usage(cpu_stat: &str) -> Option<Duration> {
    cpu_stat.lines().find_map(|line| {
        let micros = line.strip_prefix("usage_usec ")?.trim().parse().ok()?;
        Some(Duration::from_micros(micros))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_from_cpu_stat() {
        let text = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n";
        assert_eq!(cpu_usage(text), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn missing_or_garbled_usage_is_unknown() {
        assert_eq!(cpu_usage("user_usec 5\n"), None);
        assert_eq!(cpu_usage("usage_usec many\n"), None);
    }
}
