//! The audit log: hash-chained JSON lines, one record per decision.
//!
//! Each record carries the contract's fields (design.md; [`record::FIELDS`]) and `prev`, the hex
//! SHA-256 of the sandbox's previous line without its newline, 64 zeros for seq 0 (see
//! [`chain`]). [`verify_chain`] re-checks a log.
//!
//! Every record is one `write` on a file opened with O_APPEND, done before [`AuditLog::record`]
//! returns, so a record the caller was told about survives a crash of guard. A record that cannot
//! be written is an error the caller must act on: evidence is never dropped silently, and the
//! launcher kills the sandbox when its log cannot be written (no evidence, no run). After a failed
//! write the log refuses further records, since a partial line may sit at the end of the file.
//!
//! Without `--audit-log` nothing is written; records are still numbered and counted for the
//! one-line stderr summary ([`AuditLog::summary`]).

pub mod chain;
pub mod record;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

pub use chain::{ChainError, verify_chain};
pub use record::{AuditEvent, AuditRecord, Enforcer, Verdict};

use record::{GENESIS_PREV, format_timestamp};

/// Why a record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("opening the audit log {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the detail of a {event:?} record must be a JSON object")]
    DetailNotObject { event: AuditEvent },
    #[error("serializing a {event:?} record")]
    Serialize {
        event: AuditEvent,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing to the audit log {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("syncing the audit log {}", path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the audit log {} failed earlier; no further records are accepted", path.display())]
    AfterFailedWrite { path: PathBuf },
}

/// Counts of the records of one sandbox, by verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditSummary {
    pub allow: u64,
    pub deny: u64,
    pub kill: u64,
    pub audit: u64,
}

impl AuditSummary {
    /// All records counted.
    pub fn records(&self) -> u64 {
        self.allow + self.deny + self.kill + self.audit
    }

    fn count(&mut self, verdict: Verdict) {
        let slot = match verdict {
            Verdict::Allow => &mut self.allow,
            Verdict::Deny => &mut self.deny,
            Verdict::Kill => &mut self.kill,
            Verdict::Audit => &mut self.audit,
        };
        *slot += 1;
    }
}

impl fmt::Display for AuditSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records: {} allowed, {} denied, {} killed, {} audited",
            self.records(),
            self.allow,
            self.deny,
            self.kill,
            self.audit
        )
    }
}

/// The audit log of one sandbox.
#[derive(Debug)]
pub struct AuditLog {
    /// The open log and its path; `None` when only the summary is kept.
    sink: Option<(File, PathBuf)>,
    sandbox: String,
    profile: String,
    profile_sha256: String,
    next_seq: u64,
    prev: String,
    summary: AuditSummary,
    failed: bool,
}

impl AuditLog {
    /// Opens (creating, mode 0600, appending) the log at `path`, or keeps counts only without one.
    /// Appending lets one file collect many sandboxes; each has its own chain.
    ///
    /// # Errors
    /// [`AuditError::Open`] when the file cannot be opened for appending.
    pub fn open(
        path: Option<&Path>,
        sandbox_id: &str,
        profile: &str,
        profile_sha256: &str,
    ) -> Result<AuditLog, AuditError> {
        let sink = match path {
            None => None,
            Some(path) => {
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|source| AuditError::Open {
                        path: path.to_owned(),
                        source,
                    })?;
                Some((file, path.to_owned()))
            }
        };
        Ok(AuditLog {
            sink,
            sandbox: sandbox_id.to_owned(),
            profile: profile.to_owned(),
            profile_sha256: profile_sha256.to_owned(),
            next_seq: 0,
            prev: GENESIS_PREV.to_owned(),
            summary: AuditSummary::default(),
            failed: false,
        })
    }

    /// Writes one record now (one O_APPEND write; the `exit` record is also fsynced, closing the
    /// chain durably) and advances `seq` and `prev`.
    ///
    /// # Errors
    /// [`AuditError`]; the caller must not let the sandbox go on unrecorded.
    #[expect(
        clippy::too_many_arguments,
        reason = "the record's fields in contract order read better at call sites than a builder"
    )]
    pub fn record(
        &mut self,
        event: AuditEvent,
        pid: i32,
        exe: &str,
        verdict: Verdict,
        rule: Option<&str>,
        enforcer: Enforcer,
        detail: Value,
    ) -> Result<(), AuditError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            // A clock before 1970 is a broken host; the chain, not the clock, orders records.
            .unwrap_or_default();
        self.record_at(now, event, pid, exe, verdict, rule, enforcer, detail)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "record() plus the time, which tests fix"
    )]
    fn record_at(
        &mut self,
        now: Duration,
        event: AuditEvent,
        pid: i32,
        exe: &str,
        verdict: Verdict,
        rule: Option<&str>,
        enforcer: Enforcer,
        detail: Value,
    ) -> Result<(), AuditError> {
        if self.failed
            && let Some((_, path)) = &self.sink
        {
            return Err(AuditError::AfterFailedWrite { path: path.clone() });
        }
        let Value::Object(detail) = detail else {
            return Err(AuditError::DetailNotObject { event });
        };
        let record = AuditRecord {
            ts: format_timestamp(now),
            seq: self.next_seq,
            sandbox: self.sandbox.clone(),
            profile: self.profile.clone(),
            profile_sha256: self.profile_sha256.clone(),
            event,
            pid,
            exe: exe.to_owned(),
            verdict,
            rule: rule.map(str::to_owned),
            enforcer,
            detail,
            prev: self.prev.clone(),
        };
        let mut line = serde_json::to_vec(&record)
            .map_err(|source| AuditError::Serialize { event, source })?;
        let hash = chain::line_hash(&line);
        if let Some((file, path)) = &mut self.sink {
            line.push(b'\n');
            // One write_all of the whole line: with O_APPEND the kernel places it at the end even
            // when other sandboxes append to the same file.
            if let Err(source) = file.write_all(&line) {
                self.failed = true;
                return Err(AuditError::Write {
                    path: path.clone(),
                    source,
                });
            }
            if event == AuditEvent::Exit
                && let Err(source) = file.sync_data()
            {
                self.failed = true;
                return Err(AuditError::Sync {
                    path: path.clone(),
                    source,
                });
            }
        }
        self.next_seq += 1;
        self.prev = hash;
        self.summary.count(verdict);
        Ok(())
    }

    /// Counts of the records so far, for the stderr summary.
    pub fn summary(&self) -> AuditSummary {
        self.summary
    }

    /// The file written to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.sink.as_ref().map(|(_, path)| path.as_path())
    }
}

#[cfg(test)]
mod tests;
