//! The audit log: hash-chained JSON lines, one record per decision.
//!
//! Each record carries the contract's fields (design.md; [`record::FIELDS`]) and `prev`, the hex
//! SHA-256 of the file's previous line without its newline, 64 zeros for the file's first line:
//! one chain per file, across every sandbox that writes to it (see [`chain`]). Writers take an
//! exclusive `flock` on the file for each write, so `prev` is always the line really before it.
//! Every run ends with a signed `seal` record ([`seal`]); [`verify_chain`] and
//! [`chain::verify_log`] re-check a log.
//!
//! The file is opened without following symlinks (openat2 `RESOLVE_NO_SYMLINKS`), must be a
//! regular file, and is created with mode 0600; a torn last line (a write cut short by a full
//! disk or a crash) is cut off before anything is appended, so no record is glued onto it.
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
pub mod seal;

use std::fmt;
use std::fs::File;
use std::io::Write;
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
    #[error("the audit log {} is not a regular file ({kind}); refusing to write evidence there", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "the audit log {} has {links} names (hard links); another name could lie in a sandbox's \
         write paths, so refusing to write evidence there",
        path.display()
    )]
    HardLinked { path: PathBuf, links: u64 },
    #[error(
        "the audit log {} is a symlink or lies beneath one; guard never follows a link to its log \
         (give the real path)",
        path.display()
    )]
    Symlinked { path: PathBuf },
    #[error("the audit log's host key")]
    Key(#[from] seal::KeyError),
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
    /// The open log; `None` when only the summary is kept.
    sink: Option<Sink>,
    /// See [`fixed_fields`].
    fixed: Vec<u8>,
    next_seq: u64,
    summary: AuditSummary,
    failed: bool,
    /// Records formatted up to their `prev` value, not yet written, in order.
    pending: Vec<Pending>,
    pending_bytes: usize,
    /// Bytes of a torn last line cut off when the log was opened.
    repaired: u64,
    /// Whether this run's records ended with a seal.
    sealed: bool,
    /// `guard exec --events FD`: the start record, every record that is not an `allow`, and the
    /// exit record, as JSON lines the moment they are made (see [`AuditLog::stream_events`]).
    events: Option<File>,
}

/// An open log file and what this writer knows of its end.
#[derive(Debug)]
struct Sink {
    file: File,
    path: PathBuf,
    /// The file's length and last line's hash after our last write: when the length is still
    /// the same under the lock, nobody appended since and the tail need not be read.
    tail: Option<(u64, String)>,
    key: ed25519_dalek::SigningKey,
}

/// A record waiting to be written: its line up to the value of `prev`.
#[derive(Debug)]
enum Pending {
    Line(Vec<u8>),
    /// A seal: signed once its `prev` is known.
    Seal(Vec<u8>),
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
    /// Opens (creating, mode 0600, appending) the log at `path`, or keeps counts only without
    /// one. The path is resolved without following symlinks and must name a regular file; a
    /// torn last line is cut off (see [`AuditLog::repaired`]). Loads or creates the host key the
    /// run's seal is signed with.
    ///
    /// # Errors
    /// [`AuditError::Open`], [`AuditError::NotRegular`], [`AuditError::HardLinked`],
    /// [`AuditError::Symlinked`], [`AuditError::Key`].
    pub fn open(
        path: Option<&Path>,
        sandbox_id: &str,
        profile: &str,
        profile_sha256: &str,
    ) -> Result<AuditLog, AuditError> {
        let mut repaired = 0;
        let sink = match path {
            None => None,
            Some(path) => {
                let file = open_regular(path)?;
                let key = seal::host_key()?;
                let mut sink = Sink {
                    file,
                    path: path.to_owned(),
                    tail: None,
                    key,
                };
                repaired = sink.repair_torn_tail()?;
                Some(sink)
            }
        };
        Ok(AuditLog {
            sink,
            fixed: fixed_fields(sandbox_id, profile, profile_sha256)?,
            next_seq: 0,
            summary: AuditSummary::default(),
            failed: false,
            pending: Vec::new(),
            pending_bytes: 0,
            repaired,
            sealed: false,
            events: None,
        })
    }

    /// Also writes the start record, every record whose verdict is not `allow` and the exit
    /// record to `stream`, one JSON line each as it is made (the audit line without its chain
    /// fields), for a caller that acts on denials while the command runs. A write that fails (the
    /// reader went away) ends the stream with one line on stderr; the audit log goes on.
    pub fn stream_events(&mut self, stream: File) {
        self.events = Some(stream);
    }

    /// Bytes of a torn last line that [`AuditLog::open`] cut off (0 for a clean log).
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// Ends this run's part of the log with a signed `seal` record and syncs it to disk.
    ///
    /// # Errors
    /// [`AuditError`], as [`AuditLog::record`].
    pub fn seal(&mut self) -> Result<(), AuditError> {
        let Some(sink) = &self.sink else {
            self.next_seq += 1;
            return Ok(());
        };
        if self.failed {
            return Err(AuditError::AfterFailedWrite {
                path: sink.path.clone(),
            });
        }
        let fingerprint = seal::fingerprint(&sink.key.verifying_key());
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = Vec::new();
        write_prefix(
            &mut line,
            &self.fixed,
            now,
            self.next_seq,
            AuditEvent::Seal,
            0,
            "",
            Verdict::Allow,
            None,
            Enforcer::Supervisor,
            serde_json::json!({ "key": fingerprint, "sig": "" }),
        )?;
        self.pending_bytes += line.len();
        self.pending.push(Pending::Seal(line));
        self.next_seq += 1;
        self.sealed = true;
        self.flush_synced(true)
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
        // The start record is on disk before the command's first instruction, the exit record
        // before guard reports the end.
        self.flush_synced(matches!(event, AuditEvent::Start | AuditEvent::Exit))
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
        if self.pending_bytes >= FLUSH_AT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the deferred records, in one O_APPEND write.
    ///
    /// # Errors
    /// [`AuditError::Write`]; the log then refuses further records.
    pub fn flush(&mut self) -> Result<(), AuditError> {
        self.flush_synced(false)
    }

    /// [`AuditLog::flush`], then `fdatasync` when `sync`.
    fn flush_synced(&mut self, sync: bool) -> Result<(), AuditError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let Some(sink) = &mut self.sink else {
            return Ok(());
        };
        if let Err(err) = sink.write_chained(pending, sync) {
            self.failed = true;
            return Err(err);
        }
        Ok(())
    }

    /// Formats one record up to its `prev` onto the deferred lines and advances `seq`.
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
        if let (Some(sink), true) = (&self.sink, self.failed) {
            return Err(AuditError::AfterFailedWrite {
                path: sink.path.clone(),
            });
        }
        let streamed = self.events.is_some()
            && (verdict != Verdict::Allow || matches!(event, AuditEvent::Start | AuditEvent::Exit));
        if self.sink.is_some() || streamed {
            let mut line = Vec::with_capacity(256);
            write_prefix(
                &mut line,
                &self.fixed,
                now,
                self.next_seq,
                event,
                pid,
                exe,
                verdict,
                rule,
                enforcer,
                detail(),
            )?;
            if streamed {
                self.stream(&line);
            }
            if self.sink.is_some() {
                self.pending_bytes += line.len();
                self.pending.push(Pending::Line(line));
            }
        }
        // Without a log no line is formatted or hashed.
        self.next_seq += 1;
        self.summary.count(verdict);
        Ok(())
    }

    /// Writes one record (its line up to `"prev":"`) to the event stream, closed as JSON.
    fn stream(&mut self, prefix: &[u8]) {
        let Some(stream) = &mut self.events else {
            return;
        };
        let body = prefix.strip_suffix(b",\"prev\":\"").unwrap_or(prefix);
        let mut line = Vec::with_capacity(body.len() + 2);
        line.extend_from_slice(body);
        line.extend_from_slice(b"}\n");
        if let Err(err) = stream.write_all(&line) {
            eprintln!(
                "guard: the event stream failed ({err}); it ends here, the audit log goes on"
            );
            self.events = None;
        }
    }

    /// Counts of the records so far, for the stderr summary.
    pub fn summary(&self) -> AuditSummary {
        self.summary
    }

    /// The file written to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.sink.as_ref().map(|sink| sink.path.as_path())
    }
}

impl AuditLog {
    /// A log on an already open file, without the checks of [`AuditLog::open`]: for tests that
    /// need a file whose writes fail (`/dev/full`).
    #[cfg(test)]
    fn on_file(file: File, path: &Path, sandbox: &str) -> AuditLog {
        AuditLog {
            sink: Some(Sink {
                file,
                path: path.to_owned(),
                tail: Some((0, GENESIS_PREV.to_owned())),
                key: ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            }),
            fixed: fixed_fields(sandbox, "curl-github", &"ab".repeat(32)).unwrap_or_default(),
            next_seq: 0,
            summary: AuditSummary::default(),
            failed: false,
            pending: Vec::new(),
            pending_bytes: 0,
            events: None,
            repaired: 0,
            sealed: false,
        }
    }
}

impl Sink {
    /// Writes `pending` under an exclusive lock on the file, each line's `prev` the hash of the
    /// line really before it, seals signed; one `write` for all of them.
    fn write_chained(&mut self, pending: Vec<Pending>, sync: bool) -> Result<(), AuditError> {
        let _lock = FileLock::exclusive(&self.file).map_err(|source| self.write_error(source))?;
        let len = self
            .file
            .metadata()
            .map_err(|source| self.write_error(source))?
            .len();
        let mut prev = match &self.tail {
            Some((known, hash)) if *known == len => hash.clone(),
            _ => last_line_hash(&self.file, len).map_err(|source| self.write_error(source))?,
        };
        let mut out = Vec::new();
        for record in pending {
            let start = out.len();
            match record {
                Pending::Line(prefix) => {
                    out.extend_from_slice(&prefix);
                    out.extend_from_slice(prev.as_bytes());
                    out.extend_from_slice(b"\"}");
                }
                Pending::Seal(prefix) => {
                    let mut line = prefix;
                    line.extend_from_slice(prev.as_bytes());
                    line.extend_from_slice(b"\"}");
                    let sig = seal::sign(&self.key, &line);
                    out.extend_from_slice(&chain::with_signature(&line, &sig));
                }
            }
            prev = chain::line_hash(&out[start..]);
            out.push(b'\n');
        }
        let mut file = &self.file;
        file.write_all(&out)
            .map_err(|source| self.write_error(source))?;
        if sync {
            self.file.sync_data().map_err(|source| AuditError::Sync {
                path: self.path.clone(),
                source,
            })?;
        }
        self.tail = Some((len + out.len() as u64, prev));
        Ok(())
    }

    /// Cuts a torn last line off the file (under the lock); returns the bytes removed.
    fn repair_torn_tail(&mut self) -> Result<u64, AuditError> {
        let open_error = |source| AuditError::Open {
            path: self.path.clone(),
            source,
        };
        let _lock = FileLock::exclusive(&self.file).map_err(open_error)?;
        let len = self.file.metadata().map_err(open_error)?.len();
        if len == 0 {
            return Ok(0);
        }
        let mut last = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&self.file, &mut last, len - 1)
            .map_err(open_error)?;
        if last[0] == b'\n' {
            return Ok(0);
        }
        let keep = last_newline_end(&self.file, len).map_err(open_error)?;
        self.file.set_len(keep).map_err(open_error)?;
        Ok(len - keep)
    }

    fn write_error(&self, source: std::io::Error) -> AuditError {
        AuditError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// An exclusive `flock` held until dropped.
struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    fn exclusive(file: &'a File) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd as _;
        loop {
            // SAFETY: flock on an fd we own for the lock's lifetime.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock(file));
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd as _;
        // SAFETY: unlocking the fd locked in `exclusive`.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The hash of the last line of a file of `len` bytes that ends with a newline (64 zeros for
/// an empty file), read backwards in growing windows.
fn last_line_hash(file: &File, len: u64) -> std::io::Result<String> {
    if len == 0 {
        return Ok(GENESIS_PREV.to_owned());
    }
    let end = len - 1; // the final newline
    let start = last_newline_end(file, end)?;
    let mut line = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut line, start)?;
    Ok(chain::line_hash(&line))
}

/// The offset just after the last newline before `end` (0 if there is none).
fn last_newline_end(file: &File, end: u64) -> std::io::Result<u64> {
    let mut window: u64 = 64 * 1024;
    loop {
        let from = end.saturating_sub(window);
        let mut buf = vec![0u8; usize::try_from(end - from).unwrap_or(0)];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, from)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        if from == 0 {
            return Ok(0);
        }
        window *= 4;
    }
}

/// Opens `path` for appending: no symlink anywhere in it, created 0600, a regular file only
/// (not `/dev/null`, a FIFO or a device, where evidence would vanish or block).
fn open_regular(path: &Path) -> Result<File, AuditError> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
    use nix::sys::stat::Mode;
    let open_error = |source: std::io::Error| AuditError::Open {
        path: path.to_owned(),
        source,
    };
    let how = OpenHow::new()
        .flags(
            // Read too: the tail is read to chain onto it and to cut a torn line.
            OFlag::O_RDWR
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_CLOEXEC
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK,
        )
        .mode(Mode::from_bits_truncate(0o600))
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = openat2(nix::fcntl::AT_FDCWD, path, how).map_err(|errno| match errno {
        // RESOLVE_NO_SYMLINKS and O_NOFOLLOW both answer a link with ELOOP.
        nix::errno::Errno::ELOOP => AuditError::Symlinked {
            path: path.to_owned(),
        },
        errno => open_error(std::io::Error::from(errno)),
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(open_error)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt as _;
        let kind = if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(AuditError::NotRegular {
            path: path.to_owned(),
            kind,
        });
    }
    // The check that no sandbox may write the log compares paths: a second name for the same
    // file (a hard link made in a write path) would pass it and let the tool rewrite the log.
    let links = std::os::unix::fs::MetadataExt::nlink(&meta);
    if links != 1 {
        return Err(AuditError::HardLinked {
            path: path.to_owned(),
            links,
        });
    }
    Ok(file)
}

/// Appends one record to `out` as JSON up to the value of `prev` (the writer adds it and the
/// closing `"}` once it knows the line before): the contract's fields in [`record::FIELDS`]
/// order, exactly as serde_json writes an [`AuditRecord`] (a test holds the two equal). Written
/// field by field because this runs for every record the probes send: the timestamp needs no
/// escaping and the sandbox's fixed fields are escaped once.
#[expect(
    clippy::too_many_arguments,
    reason = "the record's fields in contract order, as AuditLog::record()"
)]
fn write_prefix<D: Serialize>(
    out: &mut Vec<u8>,
    fixed: &[u8],
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
        // Every run's records end with a seal, early returns on error paths included.
        let result = if self.sink.is_some() && self.next_seq > 0 && !self.sealed && !self.failed {
            self.seal()
        } else {
            self.flush()
        };
        if let Err(err) = result {
            eprintln!("guard: error: writing the audit log: {err}");
        }
    }
}

#[cfg(test)]
mod tests;
