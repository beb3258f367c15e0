//! Running external programs with the command line echoed and failures reported in full.

use std::process::{Command, Output};

use anyhow::{Context as _, bail};

/// Renders `cmd` as a shell-like line for logs and error messages.
pub fn display(cmd: &Command) -> String {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            line.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    line.push_str(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs `cmd` with inherited stdio, echoing it first; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let line = display(cmd);
    eprintln!("+ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed: {status}");
    }
    Ok(())
}

/// Runs `cmd` with captured output; `None` when the program does not exist, so probes can
/// treat "not installed" as an answer rather than an error.
pub fn probe(cmd: &mut Command) -> anyhow::Result<Option<Output>> {
    match cmd.output() {
        Ok(output) => Ok(Some(output)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot start `{}`", display(cmd))),
    }
}
