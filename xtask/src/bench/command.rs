//! Small helpers for the commands the bench runs: a shell-like spelling for hyperfine and the
//! report, and a run-once check that a command works before it is timed.

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Runs `argv` once (with `env` added); fails with its exit status and stderr unless it
/// exits 0.
pub fn check_once(argv: &[String], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let (program, args) = argv.split_first().context("empty command")?;
    let output = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {program}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{}; stderr: {}", output.status, one_line(&stderr));
    }
    Ok(())
}

/// `argv` as one line hyperfine (with `-N`) splits back into the same words.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with all whitespace runs folded into one space, for one-line error messages.
pub fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        "(empty)".into()
    } else {
        joined
    }
}

/// Owned strings from string slices.
pub fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_line_quotes_only_when_needed() {
        let argv = ["/a b/guard", "exec", "--", "it's", ""].map(String::from);
        assert_eq!(shell_line(&argv), r"'/a b/guard' exec -- 'it'\''s' ''");
    }

    #[test]
    fn one_line_folds_whitespace() {
        assert_eq!(one_line(" a\n b\t c "), "a b c");
        assert_eq!(one_line("\n"), "(empty)");
    }
}
