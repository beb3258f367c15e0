//! The hash chain: how `prev` links records, and [`verify_chain`] that re-checks a log.
//!
//! Each sandbox has its own chain: `prev` of a record is the hex SHA-256 of the previous line of
//! the same sandbox, taken over the line's bytes without its newline, and the first record
//! (seq 0) has 64 zeros. Chains are per sandbox rather than per file because several sandboxes
//! may append to one log (each line is one O_APPEND write), so their lines interleave.
//!
//! What the chain proves: no line of a chain was changed, removed or inserted before that chain's
//! last line, and every chain starts at seq 0. What it cannot prove on its own: that lines were
//! not cut off the end (a complete chain ends with an `exit` record), or that a whole chain was not
//! removed; anchoring the last hash elsewhere (a remote log) covers those.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::record::{AuditRecord, FIELDS, GENESIS_PREV};

/// Hex SHA-256 of one line's bytes (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    let digest = Sha256::digest(line);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

/// Where and how a log fails verification. Lines count from 1.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("line {line}: reading the log")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("line {line}: no newline at the end (a partial write)")]
    Unterminated { line: usize },
    #[error("line {line}: not a JSON object")]
    ParseJson {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "line {line}: fields differ from the contract (missing: {missing:?}, unexpected: {unexpected:?})"
    )]
    Fields {
        line: usize,
        missing: Vec<String>,
        unexpected: Vec<String>,
    },
    #[error("line {line}: a field has the wrong type or value")]
    ParseRecord {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("line {line}: sandbox {sandbox}: seq {found}, expected {expected}")]
    Seq {
        line: usize,
        sandbox: String,
        expected: u64,
        found: u64,
    },
    #[error("line {line}: sandbox {sandbox}: seq 0 must have prev of 64 zeros")]
    Genesis { line: usize, sandbox: String },
    #[error(
        "line {line}: sandbox {sandbox}: prev does not match line {previous_line} (changed or removed)"
    )]
    Prev {
        line: usize,
        sandbox: String,
        previous_line: usize,
    },
}

/// What the verifier remembers of each sandbox's chain so far.
struct ChainTip {
    next_seq: u64,
    hash: String,
    line: usize,
}

/// Re-checks every line of an audit log: the contract's field set, `seq` counting up from 0 per
/// sandbox, and each `prev` against the hash of that sandbox's previous line.
///
/// Reads through its own buffer, so a plain `File` will do. Returns the number of records checked.
///
/// # Errors
/// The first [`ChainError`], naming the line where it shows. A changed line shows at the next
/// line of its sandbox, as [`ChainError::Prev`] whose `previous_line` is the changed one.
pub fn verify_chain<R: Read>(reader: R) -> Result<usize, ChainError> {
    let mut reader = BufReader::new(reader);
    let mut tips: HashMap<String, ChainTip> = HashMap::new();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| ChainError::Read {
                line: line + 1,
                source,
            })?;
        if read == 0 {
            return Ok(line);
        }
        line += 1;
        let Some(text) = buf.strip_suffix(b"\n") else {
            return Err(ChainError::Unterminated { line });
        };
        let record = parse(line, text)?;
        let hash = line_hash(text);
        match tips.get_mut(&record.sandbox) {
            None => {
                check_seq(line, &record, 0)?;
                if record.prev != GENESIS_PREV {
                    return Err(ChainError::Genesis {
                        line,
                        sandbox: record.sandbox,
                    });
                }
                tips.insert(
                    record.sandbox,
                    ChainTip {
                        next_seq: 1,
                        hash,
                        line,
                    },
                );
            }
            Some(tip) => {
                check_seq(line, &record, tip.next_seq)?;
                if record.prev != tip.hash {
                    return Err(ChainError::Prev {
                        line,
                        sandbox: record.sandbox,
                        previous_line: tip.line,
                    });
                }
                *tip = ChainTip {
                    next_seq: tip.next_seq + 1,
                    hash,
                    line,
                };
            }
        }
    }
}

fn check_seq(line: usize, record: &AuditRecord, expected: u64) -> Result<(), ChainError> {
    if record.seq == expected {
        return Ok(());
    }
    Err(ChainError::Seq {
        line,
        sandbox: record.sandbox.clone(),
        expected,
        found: record.seq,
    })
}

/// Parses one line, insisting on exactly the contract's fields: serde alone would accept a
/// missing `rule` as null.
fn parse(line: usize, text: &[u8]) -> Result<AuditRecord, ChainError> {
    let value: Value =
        serde_json::from_slice(text).map_err(|source| ChainError::ParseJson { line, source })?;
    let Value::Object(fields) = &value else {
        return Err(ChainError::Fields {
            line,
            missing: FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            unexpected: Vec::new(),
        });
    };
    let missing: Vec<String> = FIELDS
        .iter()
        .filter(|f| !fields.contains_key(**f))
        .map(|f| (*f).to_owned())
        .collect();
    let unexpected: Vec<String> = fields
        .keys()
        .filter(|k| !FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(ChainError::Fields {
            line,
            missing,
            unexpected,
        });
    }
    serde_json::from_value(value).map_err(|source| ChainError::ParseRecord { line, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_hash_is_lowercase_hex_sha256() {
        // SHA-256 of the empty string.
        assert_eq!(
            line_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
