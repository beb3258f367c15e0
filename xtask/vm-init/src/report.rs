//! The lines the guest prints on its console for the host to act on. Everything else on the
//! console is passed through for people to read; only these lines carry meaning.

/// Prefix of every report line.
const PREFIX: &str = "guard-vm: ";

/// One report line, as the host reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The run `label` ended with `status` (128+N for signal N, as shells report it).
    Status { label: String, status: i32 },
    /// Every run has ended; `failed` of them did not exit 0.
    Done { failed: usize },
    /// The guest could not carry out the plan.
    Error(String),
}

impl Report {
    /// The console line, without the newline.
    pub fn line(&self) -> String {
        match self {
            Report::Status { label, status } => format!("{PREFIX}status {label} {status}"),
            Report::Done { failed } => format!("{PREFIX}done {failed} failed"),
            Report::Error(message) => format!("{PREFIX}error {message}"),
        }
    }

    /// Recognises a report line; `None` for any other console output. Kernel messages may be
    /// printed in the middle of a line, so the prefix is searched for, not required at the start.
    pub fn parse(line: &str) -> Option<Report> {
        let start = line.find(PREFIX)?;
        let rest = line[start + PREFIX.len()..].trim_end();
        if let Some(status) = rest.strip_prefix("status ") {
            let (label, code) = status.rsplit_once(' ')?;
            return Some(Report::Status {
                label: label.to_string(),
                status: code.parse().ok()?,
            });
        }
        if let Some(done) = rest.strip_prefix("done ") {
            let count = done.strip_suffix(" failed")?;
            return Some(Report::Done {
                failed: count.parse().ok()?,
            });
        }
        rest.strip_prefix("error ")
            .map(|message| Report::Error(message.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_round_trip() {
        for report in [
            Report::Status {
                label: "e2e".into(),
                status: 101,
            },
            Report::Status {
                label: "two words".into(),
                status: 137,
            },
            Report::Done { failed: 0 },
            Report::Error("mount /proc: EPERM".into()),
        ] {
            assert_eq!(Report::parse(&report.line()), Some(report.clone()));
        }
    }

    #[test]
    fn other_console_lines_are_not_reports() {
        assert_eq!(Report::parse("test result: ok. 3 passed"), None);
        assert_eq!(Report::parse("guard-vm: status e2e notanumber"), None);
        assert_eq!(
            Report::parse("[   12.3] oom-killguard-vm: done 2 failed\r"),
            Some(Report::Done { failed: 2 })
        );
    }
}
