//! The audit log: hash-chained JSON lines, one record per decision.
//!
//! Each record carries the contract's fields (design.md; [`record::FIELDS`]) and `prev`, the hex
//! SHA-256 of the sandbox's previous line without its newline, 64 zeros for seq 0 (see
//! [`chain`]). [`verify_chain`] re-checks a log.
//!
//! [`AuditLog::record`] writes its record (and any deferred before it) with one `write` on a
//! file opened with O_APPEND before it returns, so a record the caller was told about survives a
//! crash of guard. The probes' records come in bursts of thousands, so the supervisor defers
//! them ([`AuditLog::record_deferred`]) and writes each burst with one `write` when it has
//! drained the ring ([`AuditLog::flush`]): the chain is the same, a crash can only lose the burst
//! in hand, which until then sat in the kernel's ring buffer anyway. A record that cannot be
//! written is an error the caller must act on: evidence is never dropped silently, and the
//! launcher kills the sandbox when its log cannot be written (no evidence, no run). After a failed
//! write the log refuses further records, since a partial line may sit at the end of the file.
//!
//! Without `--audit-log` nothing is written; records are still numbered and counted for the
//! one-line stderr summary ([`AuditLog::summary`]), and a deferred record's detail is not even
//! built.

pub mod chain;
pub mod record;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
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
    /// See [`fixed_fields`].
    fixed: Vec<u8>,
    next_seq: u64,
    prev: String,
    summary: AuditSummary,
    failed: bool,
    /// Whole lines of deferred records not yet written, in chain order.
    pending: Vec<u8>,
}

/// Deferred lines are written once this many bytes are waiting, even mid-burst: one `write`
/// of this size costs about what a few records cost to format, and O_APPEND places it whole.
const FLUSH_AT_BYTES: usize = 64 * 1024;

/// `"sandbox":…,"profile":…,"profile_sha256":…`: the fields every line of a sandbox repeats,
/// as JSON, so they are escaped once rather than for every record.
fn fixed_fields(sandbox: &str, profile: &str, profile_sha256: &str) -> Result<Vec<u8>, AuditError> {
    let mut fixed = Vec::new();
    for (name, value) in [
        ("sandbox", sandbox),
        ("profile", profile),
        ("profile_sha256", profile_sha256),
    ] {
        if !fixed.is_empty() {
            fixed.push(b',');
        }
        fixed.push(b'"');
        fixed.extend_from_slice(name.as_bytes());
        fixed.extend_from_slice(b"\":");
        serde_json::to_writer(&mut fixed, value).map_err(|source| AuditError::Serialize {
            event: AuditEvent::Start,
            source,
        })?;
    }
    Ok(fixed)
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
            fixed: fixed_fields(sandbox_id, profile, profile_sha256)?,
            next_seq: 0,
            prev: GENESIS_PREV.to_owned(),
            summary: AuditSummary::default(),
            failed: false,
            pending: Vec::new(),
        })
    }

    /// Writes one record now, after any deferred ones (one O_APPEND write; the `exit` record is
    /// also fsynced, closing the chain durably) and advances `seq` and `prev`.
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
        // Checked with or without a log, so a caller's mistake shows in every test.
        if !detail.is_object() {
            return Err(AuditError::DetailNotObject { event });
        }
        self.append(now, event, pid, exe, verdict, rule, enforcer, || detail)?;
        self.flush()?;
        if event == AuditEvent::Exit
            && let Some((file, path)) = &self.sink
            && let Err(source) = file.sync_data()
        {
            self.failed = true;
            return Err(AuditError::Sync {
                path: path.clone(),
                source,
            });
        }
        Ok(())
    }

    /// Adds one record to the chain without writing it yet: it goes out with the next
    /// [`AuditLog::flush`] or [`AuditLog::record`] (or once enough lines wait). `detail` is only
    /// called when there is a log to write it to.
    ///
    /// # Errors
    /// [`AuditError`], as [`AuditLog::record`]; a write error may belong to an earlier record.
    #[expect(
        clippy::too_many_arguments,
        reason = "the record's fields in contract order, as record()"
    )]
    pub fn record_deferred<D: Serialize>(
        &mut self,
        event: AuditEvent,
        pid: i32,
        exe: &str,
        verdict: Verdict,
        rule: Option<&str>,
        enforcer: Enforcer,
        detail: impl FnOnce() -> D,
    ) -> Result<(), AuditError> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.append(now, event, pid, exe, verdict, rule, enforcer, detail)?;
        if self.pending.len() >= FLUSH_AT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the deferred records, in one O_APPEND write.
    ///
    /// # Errors
    /// [`AuditError::Write`]; the log then refuses further records.
    pub fn flush(&mut self) -> Result<(), AuditError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some((file, path)) = &mut self.sink else {
            self.pending.clear();
            return Ok(());
        };
        // One write_all of whole lines: with O_APPEND the kernel places them at the end even
        // when other sandboxes append to the same file.
        let written = file.write_all(&self.pending);
        self.pending.clear();
        if let Err(source) = written {
            self.failed = true;
            return Err(AuditError::Write {
                path: path.clone(),
                source,
            });
        }
        Ok(())
    }

    /// Formats one record onto the deferred lines and advances `seq` and `prev`.
    #[expect(
        clippy::too_many_arguments,
        reason = "the record's fields in contract order, as record()"
    )]
    fn append<D: Serialize>(
        &mut self,
        now: Duration,
        event: AuditEvent,
        pid: i32,
        exe: &str,
        verdict: Verdict,
        rule: Option<&str>,
        enforcer: Enforcer,
        detail: impl FnOnce() -> D,
    ) -> Result<(), AuditError> {
        if let Some((_, path)) = &self.sink {
            if self.failed {
                return Err(AuditError::AfterFailedWrite { path: path.clone() });
            }
            let start = self.pending.len();
            let line = write_line(
                &mut self.pending,
                &self.fixed,
                &self.prev,
                now,
                self.next_seq,
                event,
                pid,
                exe,
                verdict,
                rule,
                enforcer,
                detail(),
            );
            if let Err(err) = line {
                self.pending.truncate(start);
                return Err(err);
            }
            self.prev = chain::line_hash(&self.pending[start..]);
            self.pending.push(b'\n');
        }
        // Without a log `prev` is never read, so no line is formatted or hashed for it.
        self.next_seq += 1;
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

/// Appends one record to `out` as one line of JSON without its newline: the contract's fields
/// in [`record::FIELDS`] order, exactly as serde_json writes an [`AuditRecord`] (a test holds
/// the two equal). Written field by field because this runs for every record the probes send:
/// the timestamp and `prev` need no escaping and the sandbox's fixed fields are escaped once.
#[expect(
    clippy::too_many_arguments,
    reason = "the record's fields in contract order, as AuditLog::record()"
)]
fn write_line<D: Serialize>(
    out: &mut Vec<u8>,
    fixed: &[u8],
    prev: &str,
    now: Duration,
    seq: u64,
    event: AuditEvent,
    pid: i32,
    exe: &str,
    verdict: Verdict,
    rule: Option<&str>,
    enforcer: Enforcer,
    detail: D,
) -> Result<(), AuditError> {
    out.extend_from_slice(b"{\"ts\":\"");
    out.extend_from_slice(format_timestamp(now).as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    json(out, event, &seq)?;
    out.push(b',');
    out.extend_from_slice(fixed);
    out.extend_from_slice(b",\"event\":");
    json(out, event, &event)?;
    out.extend_from_slice(b",\"pid\":");
    json(out, event, &pid)?;
    out.extend_from_slice(b",\"exe\":");
    json(out, event, &exe)?;
    out.extend_from_slice(b",\"verdict\":");
    json(out, event, &verdict)?;
    out.extend_from_slice(b",\"rule\":");
    json(out, event, &rule)?;
    out.extend_from_slice(b",\"enforcer\":");
    json(out, event, &enforcer)?;
    out.extend_from_slice(b",\"detail\":");
    let detail_at = out.len();
    json(out, event, &detail)?;
    if out.get(detail_at) != Some(&b'{') {
        return Err(AuditError::DetailNotObject { event });
    }
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(prev.as_bytes());
    out.extend_from_slice(b"\"}");
    Ok(())
}

/// `value` as JSON onto `out`.
fn json<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    event: AuditEvent,
    value: &T,
) -> Result<(), AuditError> {
    serde_json::to_writer(out, value).map_err(|source| AuditError::Serialize { event, source })
}

impl Drop for AuditLog {
    /// A last chance for deferred records whose caller did not flush (an early return on an
    /// error path); the error has nowhere to go but stderr.
    fn drop(&mut self) {
        if let Err(err) = self.flush() {
            eprintln!("guard: error: writing the audit log: {err}");
        }
    }
}

#[cfg(test)]
mod tests;
