//! The run plan: what the guest runs, in which directory, with which environment.
//!
//! A plain line format, so a person can read it from the initramfs (`/vm/plan`): one record per
//! line, fields separated by tabs, the record kind first (`→` stands for a tab here):
//!
//! ```text
//! env→GUARD_VM→1
//! cwd→/work/guard/supervisor
//! run→e2e→/work/guard/target/vm/build/.../e2e-0123→--show-output
//! ```
//!
//! Fields cannot contain tabs or newlines; [`Plan::render`] refuses such values rather than
//! producing a plan that parses differently.

use std::fmt;

/// Where the plan lives in the guest.
pub const PLAN_PATH: &str = "/vm/plan";

/// One program to run, reported under `label`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub label: String,
    pub argv: Vec<String>,
}

/// Everything the guest runs, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The environment of every run (the guest starts from an empty one).
    pub env: Vec<(String, String)>,
    /// The working directory of every run.
    pub cwd: Option<String>,
    pub runs: Vec<Run>,
}

/// A plan that cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// A value holds a tab or newline, which the format uses as separators.
    Separator(String),
    /// A line of the file is not a known record.
    Line { number: usize, line: String },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Separator(value) => {
                write!(f, "plan value {value:?} contains a tab or newline")
            }
            PlanError::Line { number, line } => {
                write!(f, "plan line {number} is not a record: {line:?}")
            }
        }
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    /// The plan as file text.
    pub fn render(&self) -> Result<String, PlanError> {
        let mut lines: Vec<Vec<&str>> = Vec::new();
        for (key, value) in &self.env {
            lines.push(vec!["env", key, value]);
        }
        if let Some(cwd) = &self.cwd {
            lines.push(vec!["cwd", cwd]);
        }
        for run in &self.runs {
            let mut fields = vec!["run", run.label.as_str()];
            fields.extend(run.argv.iter().map(String::as_str));
            lines.push(fields);
        }
        let mut text = String::new();
        for fields in lines {
            if let Some(bad) = fields.iter().find(|f| f.contains(['\t', '\n'])) {
                return Err(PlanError::Separator((*bad).to_string()));
            }
            text.push_str(&fields.join("\t"));
            text.push('\n');
        }
        Ok(text)
    }

    /// Reads the file text back.
    pub fn parse(text: &str) -> Result<Plan, PlanError> {
        let mut plan = Plan::default();
        for (index, line) in text.lines().enumerate() {
            let bad = || PlanError::Line {
                number: index + 1,
                line: line.to_string(),
            };
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                [""] => {}
                ["env", key, value] => plan.env.push((key.to_string(), value.to_string())),
                ["cwd", dir] => plan.cwd = Some(dir.to_string()),
                ["run", label, program, args @ ..] => plan.runs.push(Run {
                    label: label.to_string(),
                    argv: std::iter::once(program)
                        .chain(args)
                        .map(|s| s.to_string())
                        .collect(),
                }),
                _ => return Err(bad()),
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Plan {
        Plan {
            env: vec![
                ("GUARD_VM".into(), "1".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("EMPTY".into(), String::new()),
            ],
            cwd: Some("/work/guard/supervisor".into()),
            runs: vec![
                Run {
                    label: "e2e".into(),
                    argv: vec!["/t/e2e".into(), "--test-threads".into(), "2".into()],
                },
                Run {
                    label: "profile".into(),
                    argv: vec!["/g".into(), "exec".into(), String::new(), "a b".into()],
                },
            ],
        }
    }

    #[test]
    fn plans_round_trip() {
        let text = sample().render().unwrap();
        assert_eq!(Plan::parse(&text).unwrap(), sample());
        assert!(text.starts_with("env\tGUARD_VM\t1\n"), "{text}");
    }

    #[test]
    fn separators_in_values_are_refused() {
        let mut plan = sample();
        plan.runs[0].argv.push("a\tb".into());
        assert_eq!(plan.render(), Err(PlanError::Separator("a\tb".into())));
        plan.runs[0].argv.pop();
        plan.env.push(("X".into(), "line\nbreak".into()));
        assert!(plan.render().is_err());
    }

    #[test]
    fn unknown_records_are_errors_with_their_line() {
        let err = Plan::parse("env\tA\t1\nexec\tx\n").unwrap_err();
        assert_eq!(
            err,
            PlanError::Line {
                number: 2,
                line: "exec\tx".into()
            }
        );
        assert!(Plan::parse("run\tlabel-only\n").is_err());
    }
}
