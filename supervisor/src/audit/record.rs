//! One audit record: the contract's field set, its enums, and the timestamp format.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The fields of every record, in the order they are written. The contract (design.md) fixes
/// the set; extending it is allowed, removing or renaming is not.
pub const FIELDS: [&str; 13] = [
    "ts",
    "seq",
    "sandbox",
    "profile",
    "profile_sha256",
    "event",
    "pid",
    "exe",
    "verdict",
    "rule",
    "enforcer",
    "detail",
    "prev",
];

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditEvent {
    /// The sandbox was set up and the command is about to run.
    Start,
    /// A process of the sandbox executed a binary.
    Exec,
    /// An outgoing connection (TCP connect, or a connected UDP socket).
    Connect,
    /// A socket bound to a local address.
    Bind,
    /// A datagram sent to an explicit address.
    Send,
    /// A name looked up through the DNS gate.
    Dns,
    /// A rule was broken (a denied syscall, file or exec).
    Violation,
    /// A resource or time limit was reached.
    Limit,
    /// The command ended.
    Exit,
    /// The end of a run's records: the chain head signed with the host key (see `audit::seal`).
    Seal,
}

/// What guard or the kernel decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    Kill,
    /// Would have been denied; allowed because the sandbox runs in audit mode.
    Audit,
}

/// The layer that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcer {
    Landlock,
    Seccomp,
    Ebpf,
    Cgroup,
    Supervisor,
}

/// One line of the audit log, as written and as read back by [`super::verify_chain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// RFC 3339, UTC, microseconds: `2026-11-21T01:30:25.123456Z`.
    pub ts: String,
    /// Position in this sandbox's chain, from 0.
    pub seq: u64,
    /// The sandbox id.
    pub sandbox: String,
    /// The profile's name.
    pub profile: String,
    /// SHA-256 (hex) of the profile file.
    pub profile_sha256: String,
    pub event: AuditEvent,
    pub pid: i32,
    pub exe: String,
    pub verdict: Verdict,
    /// The profile key that decided (`network.connect`), or null when no rule did (start, exit).
    pub rule: Option<String>,
    pub enforcer: Enforcer,
    /// Event-specific facts: dst, path, argv, signal, ...
    pub detail: Map<String, Value>,
    /// Hex SHA-256 of this sandbox's previous line without its newline; 64 zeros at seq 0.
    pub prev: String,
}

/// `prev` of the first record of a chain.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Formats time since the Unix epoch as RFC 3339 in UTC with exactly six fractional digits.
/// Written by hand rather than with a date crate: it is one function, and UTC needs no zone data.
pub fn format_timestamp(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        since_epoch.subsec_micros(),
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by shifting to years that start
/// in March (so the leap day ends a year) and counting 400-year eras of 146,097 days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719,468 days from 0000-03-01 to 1970-01-01.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            // 2026-11-21T01:30:25.123456Z, the example of the contract.
            (1_795_224_625, 123_456_789, "2026-11-21T01:30:25.123456Z"),
            // Leap day and the last second of a leap year.
            (951_782_400, 1_000, "2000-02-29T00:00:00.000001Z"),
            (1_735_689_599, 999_999_999, "2024-12-31T23:59:59.999999Z"),
            (1_709_251_199, 0, "2024-02-29T23:59:59.000000Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000000Z"),
        ];
        for (secs, nanos, expected) in cases {
            assert_eq!(
                format_timestamp(Duration::new(secs, nanos)),
                expected,
                "{secs}.{nanos:09}"
            );
        }
    }

    #[test]
    fn enums_serialize_lowercase() {
        let json = |v: Result<String, serde_json::Error>| v.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json(serde_json::to_string(&AuditEvent::Violation)),
            "\"violation\""
        );
        assert_eq!(json(serde_json::to_string(&Verdict::Audit)), "\"audit\"");
        assert_eq!(json(serde_json::to_string(&Enforcer::Ebpf)), "\"ebpf\"");
    }

    #[test]
    fn genesis_is_64_zeros() {
        assert_eq!(GENESIS_PREV.len(), 64);
        assert!(GENESIS_PREV.bytes().all(|b| b == b'0'));
    }
}
