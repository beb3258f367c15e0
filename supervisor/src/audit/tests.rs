//! Writing a log and checking it against the contract and the chain.

use std::io::Cursor;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;

use super::record::FIELDS;
use super::*;

/// A file under the temp directory, removed when dropped.
struct TempLog(PathBuf);

impl TempLog {
    fn new() -> TempLog {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "guard-audit-test-{}-{}.jsonl",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        TempLog(path)
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_else(|e| panic!("reading {:?}: {e}", self.0))
    }
}

impl Drop for TempLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn open(path: Option<&Path>, sandbox: &str) -> AuditLog {
    AuditLog::open(path, sandbox, "curl-github", &"ab".repeat(32))
        .unwrap_or_else(|e| panic!("open: {e}"))
}

/// A log on /dev/full, which accepts the open and fails every write with ENOSPC. `open` refuses
/// it (not a regular file), so the test builds the log on the file directly.
fn full_log() -> AuditLog {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap_or_else(|e| panic!("/dev/full: {e}"));
    AuditLog::on_file(file, Path::new("/dev/full"), "sb-1")
}

/// A start, two connects, a violation and an exit.
fn write_session(log: &mut AuditLog) {
    let records = [
        (
            AuditEvent::Start,
            Verdict::Allow,
            None,
            Enforcer::Supervisor,
            json!({"mode": "enforce"}),
        ),
        (
            AuditEvent::Connect,
            Verdict::Allow,
            Some("network.connect"),
            Enforcer::Ebpf,
            json!({"dst": "140.82.112.3:443"}),
        ),
        (
            AuditEvent::Connect,
            Verdict::Deny,
            Some("network.connect"),
            Enforcer::Ebpf,
            json!({"dst": "10.0.0.1:22"}),
        ),
        (
            AuditEvent::Violation,
            Verdict::Deny,
            Some("syscalls.deny"),
            Enforcer::Seccomp,
            json!({"syscall": "ptrace"}),
        ),
        (
            AuditEvent::Exit,
            Verdict::Allow,
            None,
            Enforcer::Supervisor,
            json!({"status": 0}),
        ),
    ];
    for (event, verdict, rule, enforcer, detail) in records {
        log.record(
            event,
            4242,
            "/usr/bin/curl",
            verdict,
            rule,
            enforcer,
            detail,
        )
        .unwrap_or_else(|e| panic!("record {event:?}: {e}"));
    }
}

fn written_session() -> (TempLog, String) {
    let file = TempLog::new();
    let mut log = open(Some(&file.0), "sb-1");
    write_session(&mut log);
    let text = file.text();
    (file, text)
}

fn verify(text: &str) -> Result<usize, ChainError> {
    verify_chain(Cursor::new(text.as_bytes()))
}

#[test]
fn written_chain_verifies() {
    let (_file, text) = written_session();
    assert_eq!(verify(&text).unwrap_or_else(|e| panic!("{e}\n{text}")), 5);
}

#[test]
fn records_have_exactly_the_contract_fields_in_order() {
    let (_file, text) = written_session();
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"))
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut expected = FIELDS.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        // Written in contract order, so humans read ts first and prev last.
        let positions: Vec<usize> = FIELDS
            .iter()
            .map(|f| line.find(&format!("\"{f}\":")).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
    }
    let first: Value = serde_json::from_str(text.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first["seq"], 0);
    assert_eq!(first["prev"], GENESIS_PREV);
    assert_eq!(first["rule"], Value::Null);
    assert_eq!(first["event"], "start");
    assert_eq!(first["verdict"], "allow");
    assert_eq!(first["enforcer"], "supervisor");
    assert_eq!(first["sandbox"], "sb-1");
    assert_eq!(first["profile"], "curl-github");
    assert_eq!(first["pid"], 4242);
    assert_eq!(first["exe"], "/usr/bin/curl");
    assert_eq!(first["detail"], json!({"mode": "enforce"}));
}

#[test]
fn prev_is_the_hash_of_the_previous_line() {
    let (_file, text) = written_session();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.windows(2) {
        let next: Value = serde_json::from_str(pair[1]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(next["prev"], chain::line_hash(pair[0].as_bytes()));
    }
}

#[test]
fn written_timestamp_has_the_contract_format() {
    let (_file, text) = written_session();
    let first: Value = serde_json::from_str(text.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let ts = first["ts"]
        .as_str()
        .unwrap_or_else(|| panic!("ts: {first}"));
    // 2026-11-21T01:30:25.123456Z
    assert_eq!(ts.len(), 27, "{ts}");
    for (i, c) in ts.char_indices() {
        let expected_sep = match i {
            4 | 7 => Some('-'),
            10 => Some('T'),
            13 | 16 => Some(':'),
            19 => Some('.'),
            26 => Some('Z'),
            _ => None,
        };
        match expected_sep {
            Some(sep) => assert_eq!(c, sep, "{ts} at {i}"),
            None => assert!(c.is_ascii_digit(), "{ts} at {i}"),
        }
    }
}

#[test]
fn a_changed_line_is_reported_at_the_next_line_naming_the_changed_one() {
    let (_file, text) = written_session();
    let lines: Vec<&str> = text.lines().collect();
    // Every line but the last: a chain cannot see a change to its own last line (see chain.rs).
    for changed in 0..lines.len() - 1 {
        let tampered: String = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let l = if i == changed {
                    l.replace("/usr/bin/curl", "/usr/bin/curL")
                } else {
                    (*l).to_owned()
                };
                l + "\n"
            })
            .collect();
        match verify(&tampered) {
            Err(ChainError::Prev {
                line,
                previous_line,
                ..
            }) => {
                assert_eq!(previous_line, changed + 1);
                assert_eq!(line, changed + 2);
            }
            other => panic!("changed line {}: {other:?}", changed + 1),
        }
    }
}

#[test]
fn changed_prev_removed_and_inserted_lines_are_detected() {
    let (_file, text) = written_session();
    let lines: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();

    let mut forged = lines.clone();
    let bad_prev = chain::line_hash(b"forged");
    let old_prev: Value = serde_json::from_str(&lines[2]).unwrap_or_else(|e| panic!("{e}"));
    let old_prev = old_prev["prev"].as_str().unwrap_or_default().to_owned();
    forged[2] = lines[2].replace(&old_prev, &bad_prev);
    assert!(
        matches!(
            verify(&forged.concat()),
            Err(ChainError::Prev {
                line: 3,
                previous_line: 2,
                ..
            })
        ),
        "{:?}",
        verify(&forged.concat())
    );

    // One chain per file: a removed, inserted or headless line breaks the link at once.
    let mut removed = lines.clone();
    removed.remove(1);
    assert!(
        matches!(
            verify(&removed.concat()),
            Err(ChainError::Prev {
                line: 2,
                previous_line: 1
            })
        ),
        "{:?}",
        verify(&removed.concat())
    );

    let mut inserted = lines.clone();
    inserted.insert(2, lines[1].clone());
    assert!(
        matches!(
            verify(&inserted.concat()),
            Err(ChainError::Prev {
                line: 3,
                previous_line: 2
            })
        ),
        "{:?}",
        verify(&inserted.concat())
    );

    let headless = lines[1..].concat();
    assert!(
        matches!(verify(&headless), Err(ChainError::Genesis)),
        "{:?}",
        verify(&headless)
    );
}

#[test]
fn extra_or_missing_fields_and_partial_lines_are_errors() {
    let (_file, text) = written_session();
    let first = text.lines().next().unwrap_or_default();

    let extra = first.replacen('{', "{\"note\":1,", 1) + "\n";
    assert!(
        matches!(verify(&extra), Err(ChainError::Fields { line: 1, ref unexpected, .. }) if unexpected == &["note"]),
        "{:?}",
        verify(&extra)
    );

    let missing = first.replacen("\"rule\":null,", "", 1) + "\n";
    assert!(
        matches!(verify(&missing), Err(ChainError::Fields { line: 1, ref missing, .. }) if missing == &["rule"]),
        "{:?}",
        verify(&missing)
    );

    let partial = format!("{first}\n{}", &first[..first.len() / 2]);
    assert!(
        matches!(verify(&partial), Err(ChainError::Unterminated { line: 2 })),
        "{:?}",
        verify(&partial)
    );
}

#[test]
fn sandboxes_sharing_a_file_form_one_chain() {
    let file = TempLog::new();
    let mut a = open(Some(&file.0), "sb-a");
    let mut b = open(Some(&file.0), "sb-b");
    for i in 0..3 {
        for log in [&mut a, &mut b] {
            log.record(
                AuditEvent::Exec,
                i,
                "/bin/sh",
                Verdict::Allow,
                Some("process.exec"),
                Enforcer::Ebpf,
                json!({}),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    assert_eq!(verify(&file.text()).unwrap_or_else(|e| panic!("{e}")), 6);
}

#[test]
fn without_a_path_records_are_only_counted() {
    let mut log = open(None, "sb-1");
    write_session(&mut log);
    assert_eq!(log.path(), None);
    let summary = log.summary();
    assert_eq!(
        summary,
        AuditSummary {
            allow: 3,
            deny: 2,
            kill: 0,
            audit: 0
        }
    );
    assert_eq!(
        summary.to_string(),
        "5 records: 3 allowed, 2 denied, 0 killed, 0 audited"
    );
}

#[test]
fn detail_must_be_an_object() {
    let mut log = open(None, "sb-1");
    let err = log
        .record(
            AuditEvent::Exit,
            1,
            "/bin/true",
            Verdict::Allow,
            None,
            Enforcer::Supervisor,
            json!([1, 2]),
        )
        .err();
    assert!(
        matches!(
            err,
            Some(AuditError::DetailNotObject {
                event: AuditEvent::Exit
            })
        ),
        "{err:?}"
    );
}

#[test]
fn a_failed_write_is_an_error_and_stops_the_log() {
    let mut log = full_log();
    let mut record = || {
        log.record(
            AuditEvent::Start,
            1,
            "/bin/true",
            Verdict::Allow,
            None,
            Enforcer::Supervisor,
            json!({}),
        )
    };
    let first = record().err();
    assert!(matches!(first, Some(AuditError::Write { .. })), "{first:?}");
    let second = record().err();
    assert!(
        matches!(second, Some(AuditError::AfterFailedWrite { .. })),
        "{second:?}"
    );
}

#[test]
fn ts_is_the_time_of_recording_in_utc_with_microseconds() {
    let file = TempLog::new();
    let mut log = open(Some(&file.0), "sb-1");
    log.record_at(
        Duration::new(1_795_224_625, 123_456_789),
        AuditEvent::Start,
        1,
        "/bin/true",
        Verdict::Allow,
        None,
        Enforcer::Supervisor,
        json!({}),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text = file.text();
    let record: Value = serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record["ts"], "2026-11-21T01:30:25.123456Z");
}

/// One allowed connect, deferred.
fn defer_connect(log: &mut AuditLog, port: u16) {
    log.record_deferred(
        AuditEvent::Connect,
        7,
        "/usr/bin/curl",
        Verdict::Allow,
        None,
        Enforcer::Ebpf,
        || json!({"dst": format!("127.0.0.1:{port}")}),
    )
    .unwrap_or_else(|e| panic!("deferred record: {e}"));
}

#[test]
fn deferred_records_join_the_chain_when_flushed_or_before_the_next_record() {
    let file = TempLog::new();
    let mut log = open(Some(&file.0), "sb-1");
    write_session(&mut log);
    let before = file.text();
    defer_connect(&mut log, 1);
    defer_connect(&mut log, 2);
    assert_eq!(file.text(), before, "written before the flush");
    log.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    assert_eq!(file.text().lines().count(), 7);
    // record() writes what is deferred first, in chain order.
    defer_connect(&mut log, 3);
    log.record(
        AuditEvent::Exit,
        7,
        "/usr/bin/curl",
        Verdict::Allow,
        None,
        Enforcer::Supervisor,
        json!({"status": 0}),
    )
    .unwrap_or_else(|e| panic!("record: {e}"));
    let text = file.text();
    assert_eq!(verify(&text).unwrap_or_else(|e| panic!("{e}\n{text}")), 9);
    let events: Vec<String> = text
        .lines()
        .skip(5)
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}"));
            format!("{} {}", v["event"], v["detail"]["dst"])
        })
        .collect();
    assert_eq!(
        events,
        [
            "\"connect\" \"127.0.0.1:1\"",
            "\"connect\" \"127.0.0.1:2\"",
            "\"connect\" \"127.0.0.1:3\"",
            "\"exit\" null"
        ]
    );
}

#[test]
fn deferred_records_are_written_when_the_log_is_dropped() {
    let file = TempLog::new();
    let mut log = open(Some(&file.0), "sb-1");
    defer_connect(&mut log, 1);
    drop(log);
    // The deferred record, then the seal every run ends with.
    assert_eq!(verify(&file.text()).unwrap_or_else(|e| panic!("{e}")), 2);
    assert!(
        file.text()
            .lines()
            .last()
            .is_some_and(|l| l.contains("\"event\":\"seal\""))
    );
}

#[test]
fn without_a_log_deferred_details_are_not_built_but_counted() {
    let mut log = open(None, "sb-1");
    log.record_deferred(
        AuditEvent::Send,
        7,
        "/usr/bin/dig",
        Verdict::Allow,
        None,
        Enforcer::Ebpf,
        || -> Value { panic!("detail built without a log") },
    )
    .unwrap_or_else(|e| panic!("deferred record: {e}"));
    log.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    assert_eq!(log.summary().allow, 1);
}

#[test]
fn a_failed_flush_is_an_error_and_stops_the_log() {
    let mut log = full_log();
    defer_connect(&mut log, 1);
    let first = log.flush().err();
    assert!(matches!(first, Some(AuditError::Write { .. })), "{first:?}");
    let second = log
        .record_deferred(
            AuditEvent::Connect,
            7,
            "/usr/bin/curl",
            Verdict::Allow,
            None,
            Enforcer::Ebpf,
            || json!({}),
        )
        .err();
    assert!(
        matches!(second, Some(AuditError::AfterFailedWrite { .. })),
        "{second:?}"
    );
}

#[test]
fn lines_are_what_serde_writes_for_the_record() {
    let file = TempLog::new();
    let mut log = AuditLog::open(Some(&file.0), "sb \"1\"", "prof\\ile", &"ab".repeat(32))
        .unwrap_or_else(|e| panic!("open: {e}"));
    write_session(&mut log);
    log.record_deferred(
        AuditEvent::Exec,
        -1,
        "/tmp/a \"b\"\n\u{e9}",
        Verdict::Kill,
        Some("process.exec"),
        Enforcer::Ebpf,
        || json!({"argv": ["x\ty"], "n": 1}),
    )
    .unwrap_or_else(|e| panic!("deferred record: {e}"));
    log.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    let text = file.text();
    assert_eq!(verify(&text).unwrap_or_else(|e| panic!("{e}\n{text}")), 6);
    for line in text.lines() {
        let record: AuditRecord = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        let again = serde_json::to_string(&record).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, line);
    }
}

#[test]
fn a_deferred_detail_that_is_not_an_object_is_refused() {
    let file = TempLog::new();
    let mut log = open(Some(&file.0), "sb-1");
    let err = log
        .record_deferred(
            AuditEvent::Send,
            7,
            "/usr/bin/dig",
            Verdict::Allow,
            None,
            Enforcer::Ebpf,
            || "text",
        )
        .err();
    assert!(
        matches!(
            err,
            Some(AuditError::DetailNotObject {
                event: AuditEvent::Send
            })
        ),
        "{err:?}"
    );
    // Nothing half-formatted is left to be written, and the chain goes on.
    defer_connect(&mut log, 1);
    log.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    assert_eq!(verify(&file.text()).unwrap_or_else(|e| panic!("{e}")), 1);
}
