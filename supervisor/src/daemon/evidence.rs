//! The daemon's side of the central audit log: records for requests it refuses, and the
//! violation counts `guard status` shows, read back from the log the workers append to.
//!
//! A refusal is a record like any other (same fields, same hash chain, a chain of one line under
//! a sandbox id of its own): `event: violation`, `verdict: deny`, `enforcer: supervisor`,
//! `rule: daemon.allow`, and the caller and request in `detail`. No new event or field is needed,
//! so readers of the contract's format read it as is.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::auth::Caller;
use crate::audit::{AuditError, AuditEvent, AuditLog, Enforcer, Verdict};

/// The rule key of refusals.
pub const REFUSAL_RULE: &str = "daemon.allow";

/// Appends the record of a refused request.
pub fn record_refusal(
    log: &Path,
    caller: &Caller,
    profile: &str,
    command: &[String],
    reason: &str,
) -> Result<(), AuditError> {
    let id = format!("d{}-{:x}", std::process::id(), micros_now());
    let mut audit = AuditLog::open(Some(log), &id, profile, "")?;
    let exe = std::fs::read_link(format!("/proc/{}/exe", caller.pid))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    audit.record(
        AuditEvent::Violation,
        caller.pid,
        &exe,
        Verdict::Deny,
        Some(REFUSAL_RULE),
        Enforcer::Supervisor,
        json!({
            "uid": caller.uid,
            "gid": caller.gid,
            "groups": caller.groups,
            "argv": command,
            "reason": reason,
        }),
    )
}

fn micros_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Deny and kill records per sandbox, read incrementally from the central log.
#[derive(Debug)]
pub struct ViolationCounts {
    path: PathBuf,
    offset: u64,
    /// A line not yet ended by a newline (a worker mid-write).
    partial: Vec<u8>,
    counts: HashMap<String, u64>,
}

impl ViolationCounts {
    /// Starts at the current end of `path`: sandboxes of earlier daemon runs are not live.
    pub fn new(path: &Path) -> Self {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        ViolationCounts {
            path: path.to_owned(),
            offset,
            partial: Vec::new(),
            counts: HashMap::new(),
        }
    }

    /// Reads what was appended since the last call.
    pub fn update(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Rotated or truncated: start over.
            self.offset = 0;
            self.partial.clear();
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        let Ok(read) = file.read_to_end(&mut fresh) else {
            return;
        };
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let rest = self.partial.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            #[derive(serde::Deserialize)]
            struct Head {
                sandbox: String,
                verdict: Verdict,
            }
            if let Ok(head) = serde_json::from_slice::<Head>(line)
                && matches!(head.verdict, Verdict::Deny | Verdict::Kill)
            {
                *self.counts.entry(head.sandbox).or_default() += 1;
            }
        }
    }

    pub fn count(&self, sandbox: &str) -> u64 {
        self.counts.get(sandbox).copied().unwrap_or(0)
    }

    /// Forgets an ended sandbox.
    pub fn forget(&mut self, sandbox: &str) {
        self.counts.remove(sandbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn counts_deny_and_kill_records_as_they_are_appended() {
        let dir = std::env::temp_dir().join(format!("guard-evidence-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        std::fs::write(&path, b"{\"sandbox\":\"old\",\"verdict\":\"deny\"}\n").unwrap();
        let mut counts = ViolationCounts::new(&path);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"{\"sandbox\":\"a\",\"verdict\":\"deny\"}\n{\"sandbox\":\"a\",\"verdict\":\"allow\"}\n{\"sandbox\":\"b\",\"verd")
            .unwrap();
        counts.update();
        assert_eq!(counts.count("old"), 0);
        assert_eq!(counts.count("a"), 1);
        file.write_all(b"ict\":\"kill\"}\n").unwrap();
        counts.update();
        assert_eq!(counts.count("b"), 1);
        counts.forget("a");
        assert_eq!(counts.count("a"), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refusals_are_ordinary_chained_records() {
        let dir = std::env::temp_dir().join(format!("guard-refusal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let caller = Caller {
            pid: std::process::id() as i32,
            uid: 1001,
            gid: 1001,
            groups: vec![1001],
            privileged: false,
        };
        record_refusal(&path, &caller, "python", &["python3".into()], "not allowed").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        crate::audit::verify_chain(text.as_bytes()).unwrap();
        // The refusal, then the seal that ends every writer's records.
        let record: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(text.lines().nth(1).unwrap().contains("\"event\":\"seal\""));
        assert_eq!(record["event"], "violation");
        assert_eq!(record["verdict"], "deny");
        assert_eq!(record["rule"], REFUSAL_RULE);
        assert_eq!(record["enforcer"], "supervisor");
        assert_eq!(record["detail"]["uid"], 1001);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
