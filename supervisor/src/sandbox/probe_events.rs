//! Turning the probes' records into audit log records and the lines guard prints on stderr.
//!
//! Every decision the probes make for the sandbox becomes one record (`enforcer = "ebpf"`):
//! allowed execs, connects, binds and sends under their own event names, refused or audited
//! ones as `violation` with the operation in `detail.op`. What is denied or killed is also said
//! on stderr, the first [`STDERR_LINES`] times; the log has all of them.

use std::collections::HashMap;

use guard_common::{Rule, Verdict as ProbeVerdict};
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;

use serde::{Serialize, Serializer};

use crate::audit::{AuditEvent, Verdict};
use crate::ebpf::{NetOp, ProbeEvent};

/// Denials printed on stderr before guard only counts them.
pub const STDERR_LINES: u32 = 20;

/// One probe record, ready for [`crate::audit::AuditLog::record_deferred`]. The detail and
/// the stderr summary are built only when asked for: a sandbox sending datagrams in a loop
/// makes thousands of records a second, most of them allowed and, without `--audit-log`, only
/// counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    pub event: AuditEvent,
    pub pid: i32,
    pub exe: &'a str,
    pub verdict: Verdict,
    pub rule: Option<&'static str>,
    /// The name a learned destination came from (set by the caller, which knows the gate).
    pub learned_name: Option<String>,
    source: &'a ProbeEvent,
}

/// The `detail` of a probe record, serialized straight into the log line: its fields in
/// alphabetical order, as the `json!` objects that came before wrote them.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Detail<'a> {
    /// An exec refused by the BPF LSM hook before it happened.
    Refused {
        op: &'static str,
        refused_before_exec: bool,
    },
    Exec {
        argv: &'a [String],
        argv_truncated: bool,
        dev: u64,
        ino: u64,
        /// For a `#!` script: the interpreter its first line names (the new image).
        #[serde(skip_serializing_if = "Option::is_none")]
        interpreter: Option<String>,
        old_pid: u32,
        op: &'static str,
        path: &'a str,
        /// For a `#!` script: the script the interpreter runs (the exec path).
        #[serde(skip_serializing_if = "Option::is_none")]
        script: Option<String>,
    },
    /// A unix socket connect or datagram send.
    Unix {
        op: &'static str,
        path: &'a str,
        protocol: &'static str,
    },
    Net {
        /// DNS the probes sent to the sandbox's gate (`dst` is where the tool sent it).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        dns_gate: bool,
        #[serde(serialize_with = "as_text")]
        dst: SocketAddr,
        ipv4_mapped: bool,
        /// For a connect allowed by a learned address: the name whose answer gave it.
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        op: &'static str,
        protocol: Cow<'static, str>,
    },
}

/// `value` as a JSON string of its `Display` form, without building the string first.
fn as_text<S: Serializer>(value: &impl fmt::Display, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The profile key behind a probe rule.
pub fn rule_key(rule: Rule) -> Option<&'static str> {
    match rule {
        Rule::None => None,
        Rule::NetworkConnect => Some("network.connect"),
        Rule::NetworkBind => Some("network.bind"),
        Rule::ProcessExec => Some("process.exec"),
        Rule::ConnectsPerMinute => Some("limits.connects_per_minute"),
        Rule::ExecsPerMinute => Some("limits.execs_per_minute"),
        Rule::ProbeError => Some("ebpf.fail_closed"),
        Rule::NetworkUnix => Some("network.unix"),
    }
}

fn verdict(v: ProbeVerdict) -> Verdict {
    match v {
        ProbeVerdict::Allow => Verdict::Allow,
        ProbeVerdict::Deny => Verdict::Deny,
        ProbeVerdict::Kill => Verdict::Kill,
        ProbeVerdict::Audit => Verdict::Audit,
    }
}

/// Remembers which program each pid last executed, so network records (which carry only a
/// pid) name the executable.
#[derive(Debug, Default)]
pub struct ExeNames {
    by_pid: HashMap<u32, String>,
}

impl ExeNames {
    /// Looks `/proc/<pid>/exe` up once per pid (a forked child that never exec'd), not once per
    /// record: a process sending datagrams in a loop would otherwise pay a readlink each.
    fn name_of(&mut self, pid: u32, fallback: &str) -> &str {
        self.by_pid.entry(pid).or_insert_with(|| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| fallback.to_owned())
        })
    }

    /// Notes that `pid` now runs `exe`.
    fn executed(&mut self, pid: u32, exe: &str) -> &str {
        let name = self.by_pid.entry(pid).or_default();
        if name != exe {
            exe.clone_into(name);
        }
        name
    }
}

/// The audit record for `event`; `command_exe` names processes guard knows nothing else about.
pub fn decision<'a>(
    event: &'a ProbeEvent,
    names: &'a mut ExeNames,
    command_exe: &str,
) -> Decision<'a> {
    let header = event.header();
    let verdict = verdict(event.verdict());
    let (audit_event, exe) = match event {
        // Refused by the BPF LSM hook before the exec: the record has no file name, the
        // process is still the one that tried.
        ProbeEvent::Exec(exec) if exec.filename.as_os_str().is_empty() => (
            AuditEvent::Violation,
            names.name_of(header.pid, command_exe),
        ),
        ProbeEvent::Exec(exec) => (
            if verdict == Verdict::Allow {
                AuditEvent::Exec
            } else {
                AuditEvent::Violation
            },
            names.executed(header.pid, &exec.filename.to_string_lossy()),
        ),
        ProbeEvent::Net(net) => (
            if verdict == Verdict::Allow {
                match net.op {
                    NetOp::Connect => AuditEvent::Connect,
                    NetOp::Bind => AuditEvent::Bind,
                    NetOp::Send => AuditEvent::Send,
                }
            } else {
                AuditEvent::Violation
            },
            names.name_of(header.pid, command_exe),
        ),
        ProbeEvent::Unix(unix) => (
            if verdict == Verdict::Allow {
                match unix.op {
                    NetOp::Send => AuditEvent::Send,
                    _ => AuditEvent::Connect,
                }
            } else {
                AuditEvent::Violation
            },
            names.name_of(header.pid, command_exe),
        ),
    };
    Decision {
        event: audit_event,
        pid: header.pid as i32,
        exe,
        verdict,
        rule: rule_key(event.rule()),
        learned_name: None,
        source: event,
    }
}

impl Decision<'_> {
    /// The record's `detail`.
    pub fn detail(&self) -> Detail<'_> {
        match self.source {
            ProbeEvent::Exec(exec) if exec.filename.as_os_str().is_empty() => Detail::Refused {
                op: "exec",
                refused_before_exec: true,
            },
            ProbeEvent::Exec(exec) => {
                let (script, interpreter) =
                    crate::ebpf::scripts::script_of(&exec.filename, exec.dev, exec.ino).unzip();
                Detail::Exec {
                    argv: &exec.argv,
                    argv_truncated: exec.argv_truncated,
                    dev: exec.dev,
                    ino: exec.ino,
                    interpreter,
                    old_pid: exec.old_pid,
                    op: "exec",
                    path: self.exe,
                    script,
                }
            }
            ProbeEvent::Unix(unix) => Detail::Unix {
                op: unix.op.as_str(),
                path: &unix.path,
                protocol: "unix",
            },
            ProbeEvent::Net(net) => Detail::Net {
                dns_gate: net.dns_gate,
                dst: net.addr,
                ipv4_mapped: net.v4_mapped,
                name: self.learned_name.clone(),
                op: net.op.as_str(),
                protocol: net.protocol_name(),
            },
        }
    }

    /// For stderr when the verdict is not allow: what happened, in words.
    pub fn summary(&self) -> String {
        let rule = self.source.rule();
        match self.source {
            ProbeEvent::Exec(exec) if exec.filename.as_os_str().is_empty() => {
                "an exec refused before it happened: not in the exec allowlist".into()
            }
            ProbeEvent::Exec(_) => {
                let why = match rule {
                    Rule::ExecsPerMinute => "over the exec rate limit",
                    Rule::ProbeError => "the exec could not be checked (failing closed)",
                    _ => "not in the exec allowlist",
                };
                format!("exec of {}: {why}", self.exe)
            }
            ProbeEvent::Unix(unix) => {
                let why = match rule {
                    Rule::ProbeError => "the socket path could not be read (failing closed)",
                    _ => "not in network.unix",
                };
                format!("{} to unix socket {}: {why}", unix.op.as_str(), unix.path)
            }
            ProbeEvent::Net(net) => {
                let why = match rule {
                    Rule::ConnectsPerMinute => "over the connect rate limit",
                    Rule::ProbeError => "the connect rate could not be counted (failing closed)",
                    _ => "not allowed by the profile",
                };
                format!(
                    "{} {} {}/{}: {why}",
                    net.op.as_str(),
                    if net.op == NetOp::Bind { "on" } else { "to" },
                    net.addr,
                    net.protocol_name()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::{ExecRecord, NetRecord};
    use guard_common::{EventHeader, EventType};

    fn header(etype: EventType, verdict: ProbeVerdict, rule: Rule) -> EventHeader {
        EventHeader {
            etype: etype as u32,
            flags: 0,
            ktime_ns: 0,
            cgroup_id: 1,
            pid: 7,
            tid: 7,
            sandbox_id: 1,
            verdict: verdict as u32,
            rule: rule as u32,
        }
    }

    #[test]
    fn a_denied_connect_is_a_violation_naming_exe_and_rule() {
        let mut names = ExeNames::default();
        let exec = ProbeEvent::Exec(ExecRecord {
            header: header(EventType::Exec, ProbeVerdict::Allow, Rule::None),
            filename: "/usr/bin/curl".into(),
            truncated: false,
            argv: vec!["curl".into(), "http://x".into()],
            argv_truncated: false,
            old_pid: 7,
            dev: 1,
            ino: 2,
            comm: "curl".into(),
        });
        let d = decision(&exec, &mut names, "/bin/sh");
        assert_eq!(d.event, AuditEvent::Exec);
        let detail = |d: &Decision<'_>| {
            serde_json::to_value(d.detail()).unwrap_or_else(|e| panic!("detail: {e}"))
        };
        assert_eq!(detail(&d)["argv"][1], "http://x");

        let connect = ProbeEvent::Net(NetRecord {
            header: header(EventType::Connect, ProbeVerdict::Deny, Rule::NetworkConnect),
            op: NetOp::Connect,
            addr: "127.0.0.1:9".parse().unwrap(),
            sock_type: 1,
            protocol: 6,
            v4_mapped: false,
            dns_gate: false,
            learned: false,
        });
        let d = decision(&connect, &mut names, "/bin/sh");
        assert_eq!(d.event, AuditEvent::Violation);
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.rule, Some("network.connect"));
        assert_eq!(d.exe, "/usr/bin/curl");
        assert_eq!(detail(&d)["dst"], "127.0.0.1:9");
        // Keys in the order the json! objects before the typed details wrote them.
        assert_eq!(
            serde_json::to_string(&d.detail()).unwrap_or_else(|e| panic!("{e}")),
            r#"{"dst":"127.0.0.1:9","ipv4_mapped":false,"op":"connect","protocol":"tcp"}"#
        );
        assert_eq!(
            d.summary(),
            "connect to 127.0.0.1:9/tcp: not allowed by the profile"
        );
    }
}
