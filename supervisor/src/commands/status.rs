//! `guard status`: the live sandboxes of the daemon, one line each (the caller's own; all of
//! them for root).

use std::process::ExitCode;

use crate::daemon::protocol::SandboxStatus;
use crate::sandbox::exit::GUARD_FAILED;
use crate::sandbox::launch::error_chain;

pub fn run(json: bool) -> ExitCode {
    match crate::client::status() {
        Ok(sandboxes) if json => match serde_json::to_string_pretty(&sandboxes) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("guard: encoding the status: {err}");
                ExitCode::from(GUARD_FAILED)
            }
        },
        Ok(sandboxes) => {
            print!("{}", table(&sandboxes));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("guard: {}", error_chain(&err));
            ExitCode::from(GUARD_FAILED)
        }
    }
}

/// The human-readable table.
fn table(sandboxes: &[SandboxStatus]) -> String {
    let header = [
        "ID",
        "PROFILE",
        "USER",
        "PID",
        "AGE",
        "MEMORY",
        "VIOLATIONS",
        "COMMAND",
    ];
    let rows: Vec<[String; 8]> = sandboxes
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.profile.clone(),
                s.user.clone().unwrap_or_else(|| s.uid.to_string()),
                s.pid.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                humantime::format_duration(std::time::Duration::from_secs(s.age_secs)).to_string(),
                s.memory_bytes.map_or_else(|| "-".to_owned(), human_bytes),
                s.violations.to_string(),
                s.command.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up() {
        let s = SandboxStatus {
            id: "g12-abc".into(),
            profile: "python".into(),
            uid: 1001,
            user: Some("alice".into()),
            pid: Some(4242),
            age_secs: 65,
            memory_bytes: Some(3 * 1024 * 1024),
            violations: 2,
            command: "python3 x.py".into(),
        };
        let text = table(&[s]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("ID       PROFILE  USER   PID   AGE"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("g12-abc  python   alice  4242  1m 5s"),
            "{text}"
        );
        assert!(lines[1].contains("3.0MiB"), "{text}");
        assert!(lines[1].ends_with("2           python3 x.py"), "{text}");
        assert_eq!(human_bytes(512), "512B");
    }
}
