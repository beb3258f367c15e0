//! Floods folded, never lost. A tool that repeats one refused operation a million times must not
//! write a million lines (3 s of refused UDP sends once wrote 188 MB), and must not make guard drop
//! any either. The first denial of a kind is written as it happens; identical ones after it are
//! counted, and once a second (and at the end of the run) each count becomes one record with
//! `detail.repeated`, `detail.first` and `detail.last`. Past a per-sandbox budget of distinct
//! denials, new kinds are folded by event, rule and layer only, so the log stays bounded while
//! every denial is still counted exactly.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// Distinct denials written in full per sandbox; beyond it, new kinds fold by rule and layer.
pub const DISTINCT_BUDGET: usize = 10_000;
/// How often folded counts are written out.
pub const FOLD_INTERVAL: Duration = Duration::from_secs(1);

/// What makes two denials "the same": the operation and its target, or, past the budget, only
/// the coarse fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FoldKey {
    pub event: crate::audit::AuditEvent,
    pub verdict: crate::audit::Verdict,
    pub rule: Option<String>,
    pub enforcer: crate::audit::Enforcer,
    /// exe, op and target (destination, path, syscall) joined; empty when folded coarsely.
    pub what: String,
}

/// Counted repeats of one key since it was last written.
#[derive(Debug)]
struct Fold {
    repeated: u64,
    first: SystemTime,
    last: SystemTime,
    pid: i32,
    exe: String,
    /// The detail of the first denial, which the summary repeats.
    detail: serde_json::Value,
}

/// A summary record due: write it with the key's fields.
#[derive(Debug)]
pub struct Folded {
    pub key: FoldKey,
    pub pid: i32,
    pub exe: String,
    pub detail: serde_json::Value,
}

/// The fold state of one sandbox.
#[derive(Debug)]
pub struct Folder {
    seen: HashMap<FoldKey, Option<Fold>>,
    last_flush: Instant,
}

impl Default for Folder {
    fn default() -> Self {
        Folder {
            seen: HashMap::new(),
            last_flush: Instant::now(),
        }
    }
}

/// What to do with a denial.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write it now (the first of its kind).
    Write,
    /// Counted; it will be in a summary.
    Folded,
}

impl Folder {
    /// Decides for one denial. `detail` is only called for the first repeat of a kind (to keep
    /// for the summary).
    pub fn admit(
        &mut self,
        mut key: FoldKey,
        pid: i32,
        exe: &str,
        detail: impl FnOnce() -> serde_json::Value,
    ) -> Admit {
        if !self.seen.contains_key(&key) && self.seen.len() >= DISTINCT_BUDGET {
            // Over the budget: one summary per coarse kind.
            key.what.clear();
        }
        let now = SystemTime::now();
        match self.seen.get_mut(&key) {
            None if key.what.is_empty() => {
                self.seen.insert(
                    key,
                    Some(Fold {
                        repeated: 1,
                        first: now,
                        last: now,
                        pid,
                        exe: exe.to_owned(),
                        detail: detail(),
                    }),
                );
                Admit::Folded
            }
            None => {
                self.seen.insert(key, None);
                Admit::Write
            }
            Some(Some(fold)) => {
                fold.repeated += 1;
                fold.last = now;
                Admit::Folded
            }
            Some(slot @ None) => {
                *slot = Some(Fold {
                    repeated: 1,
                    first: now,
                    last: now,
                    pid,
                    exe: exe.to_owned(),
                    detail: detail(),
                });
                Admit::Folded
            }
        }
    }

    /// The summaries due: every count once [`FOLD_INTERVAL`] has passed, or all of them with
    /// `all` (the end of the run). Counted kinds start counting again from zero.
    pub fn due(&mut self, all: bool) -> Vec<Folded> {
        if !all && self.last_flush.elapsed() < FOLD_INTERVAL {
            return Vec::new();
        }
        self.last_flush = Instant::now();
        let mut out = Vec::new();
        for (key, slot) in &mut self.seen {
            let Some(fold) = slot.take() else { continue };
            let mut detail = fold.detail;
            if let Some(map) = detail.as_object_mut() {
                map.insert("repeated".into(), fold.repeated.into());
                map.insert("first".into(), stamp(fold.first).into());
                map.insert("last".into(), stamp(fold.last).into());
                if key.what.is_empty() {
                    map.insert("folded_by".into(), "rule".into());
                }
            }
            out.push(Folded {
                key: key.clone(),
                pid: fold.pid,
                exe: fold.exe,
                detail,
            });
        }
        out
    }
}

fn stamp(t: SystemTime) -> String {
    crate::audit::record::format_timestamp(
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, Enforcer, Verdict};

    fn key(what: &str) -> FoldKey {
        FoldKey {
            event: AuditEvent::Violation,
            verdict: Verdict::Deny,
            rule: Some("network.connect".into()),
            enforcer: Enforcer::Ebpf,
            what: what.into(),
        }
    }

    #[test]
    fn the_first_is_written_the_rest_counted_exactly() {
        let mut f = Folder::default();
        assert_eq!(
            f.admit(key("a"), 1, "x", || serde_json::json!({})),
            Admit::Write
        );
        for _ in 0..999 {
            assert_eq!(
                f.admit(key("a"), 1, "x", || serde_json::json!({"dst": "a"})),
                Admit::Folded
            );
        }
        assert_eq!(
            f.admit(key("b"), 1, "x", || serde_json::json!({})),
            Admit::Write
        );
        let due = f.due(true);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].detail["repeated"], 999);
        assert_eq!(due[0].detail["dst"], "a");
        // Counting starts again; nothing new, nothing due.
        assert!(f.due(true).is_empty());
        assert_eq!(
            f.admit(key("a"), 1, "x", || serde_json::json!({})),
            Admit::Folded
        );
        assert_eq!(f.due(true)[0].detail["repeated"], 1);
    }

    #[test]
    fn past_the_budget_new_kinds_fold_by_rule() {
        let mut f = Folder::default();
        for i in 0..DISTINCT_BUDGET {
            assert_eq!(
                f.admit(key(&i.to_string()), 1, "x", || serde_json::json!({})),
                Admit::Write
            );
        }
        for i in 0..5000 {
            assert_eq!(
                f.admit(key(&format!("new{i}")), 1, "x", || serde_json::json!({})),
                Admit::Folded
            );
        }
        let due = f.due(true);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].detail["repeated"], 5000);
        assert_eq!(due[0].detail["folded_by"], "rule");
    }
}
