//! The hash chain: how `prev` links records, and [`verify_chain`] that re-checks a log.
//!
//! One chain per file: `prev` of a line is the hex SHA-256 of the file's previous line, taken over
//! its bytes without the newline, and the file's first line has 64 zeros. Writers lock the file
//! while they append (see `audit::Sink`), so sandboxes sharing a log still form one chain; `seq`
//! counts each sandbox's records from 0.
//!
//! What the chain proves: no line was changed, removed, inserted or moved before the last one.
//! The signed `seal` record every run ends with proves the rest: its signature covers the chain
//! head, so a log changed and re-chained no longer verifies without the host's private key, and
//! a log whose last line is not a seal was cut short (or its run is still going). What no
//! verifier can tell from the file alone is that whole runs were cut off the end after a seal;
//! keeping a copy of the last seal elsewhere covers that.

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
    #[error("line 1: the first line's prev must be 64 zeros (lines were removed before it)")]
    Genesis,
    #[error(
        "line {line}: prev does not match line {previous_line}: a line was changed, removed, inserted or moved"
    )]
    Prev { line: usize, previous_line: usize },
    #[error(
        "line {line}: the seal's signature does not verify with key {key}: the log was changed and re-chained, or sealed by another key"
    )]
    BadSeal { line: usize, key: String },
    #[error(
        "line {line}: the log does not end with a seal: its last lines were removed, or a run is still going"
    )]
    Unsealed { line: usize },
    #[error("the log is empty")]
    Empty,
}

/// The field a seal is signed without, and written with.
const EMPTY_SIG: &[u8] = b"\"sig\":\"\"";

/// The seal line with `sig` in place of the empty signature it was signed with.
pub fn with_signature(line: &[u8], sig: &str) -> Vec<u8> {
    replace_once(line, EMPTY_SIG, format!("\"sig\":\"{sig}\"").as_bytes())
}

fn replace_once(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    match haystack.windows(needle.len()).position(|w| w == needle) {
        Some(i) => [&haystack[..i], with, &haystack[i + needle.len()..]].concat(),
        None => haystack.to_vec(),
    }
}

/// What a verified log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub records: usize,
    pub seals: usize,
}

/// [`verify_chain`] plus the seals: every `seal` record's signature must verify with `key`, and
/// the last line must be a seal.
///
/// # Errors
/// The first [`ChainError`], naming the first bad line.
pub fn verify_log<R: Read>(
    reader: R,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<Verified, ChainError> {
    let mut seals = 0;
    let mut last_was_seal = false;
    let fingerprint = super::seal::fingerprint(key);
    let records = walk(reader, |line, text, record| {
        last_was_seal = record.event == super::AuditEvent::Seal;
        if last_was_seal {
            let sig = record
                .detail
                .get("sig")
                .and_then(|s| s.as_str())
                .unwrap_or("");
            let signed = replace_once(text, format!("\"sig\":\"{sig}\"").as_bytes(), EMPTY_SIG);
            if !super::seal::verify(key, &signed, sig) {
                return Err(ChainError::BadSeal {
                    line,
                    key: fingerprint.clone(),
                });
            }
            seals += 1;
        }
        Ok(())
    })?;
    if records == 0 {
        return Err(ChainError::Empty);
    }
    if !last_was_seal {
        return Err(ChainError::Unsealed { line: records });
    }
    Ok(Verified { records, seals })
}

/// Re-checks every line of an audit log: the contract's field set, `seq` counting up from 0 per
/// sandbox, and each `prev` against the hash of the file's previous line.
///
/// Reads through its own buffer, so a plain `File` will do. Returns the number of records checked.
///
/// # Errors
/// The first [`ChainError`], naming the line where it shows. A changed line shows at the next
/// line, as [`ChainError::Prev`] whose `previous_line` is the changed one.
pub fn verify_chain<R: Read>(reader: R) -> Result<usize, ChainError> {
    walk(reader, |_, _, _| Ok(()))
}

/// Walks the chain, calling `each` with every line's number, bytes and record.
fn walk<R: Read>(
    reader: R,
    mut each: impl FnMut(usize, &[u8], &AuditRecord) -> Result<(), ChainError>,
) -> Result<usize, ChainError> {
    let mut reader = BufReader::new(reader);
    let mut next_seq: HashMap<String, u64> = HashMap::new();
    let mut prev = GENESIS_PREV.to_owned();
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
        if record.prev != prev {
            return Err(if line == 1 {
                ChainError::Genesis
            } else {
                ChainError::Prev {
                    line,
                    previous_line: line - 1,
                }
            });
        }
        let expected = next_seq.entry(record.sandbox.clone()).or_insert(0);
        check_seq(line, &record, *expected)?;
        *expected += 1;
        each(line, text, &record)?;
        prev = line_hash(text);
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
