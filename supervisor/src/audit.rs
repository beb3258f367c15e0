//! The audit log: hash-chained JSON lines, one record per decision.
