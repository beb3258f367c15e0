//! Diagnostics with source positions: `FILE:LINE:COL: key: message`, where the key is the
//! dotted path of the value at fault (`network.connect[2]`, `limits.memory`).
//!
//! serde reports one error and stops (malformed TOML, unknown key, wrong type); its span is
//! mapped back to a key path through the spanned tree of `toml::de::DeTable`. Value errors are
//! found by [`super::validate`], which sees the whole file and reports all of them.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem in one profile file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it (or `<shipped>/NAME.toml`, `<builtin>/NAME`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Dotted key path of the offending value.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.key, self.message
        )
    }
}

/// The diagnostics of one profile and everything it extends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file's text.
#[derive(Debug)]
pub struct Reporter<'a> {
    file: &'a str,
    text: &'a str,
    pub found: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Reporter {
            file,
            text,
            found: Vec::new(),
        }
    }

    /// Records `message` about `key` at byte offset `span.start`.
    pub fn error(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, col) = line_col(self.text, span.start);
        self.found.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            col,
            key: key.into(),
            message: message.into(),
        });
    }

    /// Records a serde/TOML error, locating its key path in the (partially) parsed document.
    pub fn toml_error(&mut self, err: &toml::de::Error) {
        let span = err.span().unwrap_or(0..0);
        let key = key_at(self.text, span.start).unwrap_or_else(|| "toml".to_owned());
        // The message of toml's errors is one line; its Display adds a source excerpt we do not want.
        let message = err.message().trim().replace('\n', " ");
        self.error(span, key, message);
    }
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// The dotted key path of the innermost key or value whose span contains `at`.
fn key_at(text: &str, at: usize) -> Option<String> {
    let (root, _) = DeTable::parse_recoverable(text);
    let mut best: Option<(usize, String)> = None;
    walk_table(root.get_ref(), "", at, &mut best);
    best.map(|(_, k)| k)
}

/// Descends everywhere (a `[table]` header's span does not cover its body) and keeps the
/// narrowest span that contains `at`.
fn walk_table(table: &DeTable<'_>, prefix: &str, at: usize, best: &mut Option<(usize, String)>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        consider(k.span(), &path, at, best);
        walk_value(v, &path, at, best);
    }
}

fn walk_value(v: &Spanned<DeValue<'_>>, path: &str, at: usize, best: &mut Option<(usize, String)>) {
    consider(v.span(), path, at, best);
    match v.get_ref() {
        DeValue::Table(t) => walk_table(t, path, at, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_value(item, &format!("{path}[{i}]"), at, best);
            }
        }
        _ => {}
    }
}

fn consider(span: Range<usize>, path: &str, at: usize, best: &mut Option<(usize, String)>) {
    if span.start <= at && at < span.end.max(span.start + 1) {
        let width = span.end - span.start;
        if best.as_ref().is_none_or(|(w, _)| width <= *w) {
            *best = Some((width, path.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // `=` after "bé " — é is two bytes but one column.
        assert_eq!(line_col(text, 10), (2, 4));
    }

    #[test]
    fn key_paths_name_tables_keys_and_array_items() {
        let text = "name = \"x\"\n[network]\nconnect = [\"a:1\", \"b:2\"]\n";
        let at = text.find("\"b:2\"").unwrap();
        assert_eq!(key_at(text, at).as_deref(), Some("network.connect[1]"));
        let at = text.find("connect").unwrap();
        assert_eq!(key_at(text, at).as_deref(), Some("network.connect"));
    }
}
