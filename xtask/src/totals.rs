//! Counting test results from libtest's console output, for `cargo xtask test`'s summary line
//! and the VM suite.

/// Sums of `test result:` lines, with tests that said they skipped moved from passed to skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TestTotals {
    pub passed: u64,
    pub failed: u64,
    /// `#[ignore]`d tests and tests that printed `skipping: <reason>`.
    pub skipped: u64,
}

impl TestTotals {
    /// Adds one `test result: ok. 3 passed; 1 failed; 2 ignored; ...` line; other lines are ignored.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(count) = count.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.skipped += count,
                _ => {}
            }
        }
    }

    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &TestTotals) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}

/// Passing tests that printed `skipping: <reason>`, as (test name, reason), read from libtest's
/// `--show-output` blocks (`---- name stdout ----`) in its `successes:` section. A skip is a
/// pass to libtest; this is how it is counted as what it is.
pub fn skipped_tests<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut skipped = Vec::new();
    let mut in_successes = false;
    let mut current: Option<String> = None;
    // A test that says `skipping:` twice is one skip; the same name in another test binary
    // (after the next `running N tests`) is another.
    let mut this_binary: Vec<String> = Vec::new();
    for line in lines {
        let trimmed = line.trim_end();
        match trimmed {
            "successes:" => {
                in_successes = true;
                current = None;
                continue;
            }
            "failures:" => {
                in_successes = false;
                current = None;
                continue;
            }
            _ => {}
        }
        if trimmed.starts_with("running ") {
            this_binary.clear();
        }
        if trimmed.starts_with("test result: ") || trimmed.starts_with("running ") {
            in_successes = false;
            current = None;
            continue;
        }
        if let Some(name) = trimmed
            .strip_prefix("---- ")
            .and_then(|rest| rest.strip_suffix(" stdout ----"))
        {
            current = in_successes.then(|| name.to_string());
            continue;
        }
        if let Some(name) = &current
            && let Some(reason) = trimmed.trim_start().strip_prefix("skipping: ")
            && !this_binary.contains(name)
        {
            this_binary.push(name.clone());
            skipped.push((name.clone(), reason.to_string()));
        }
    }
    skipped
}

/// How long each test took, from the times its console lines arrived: with one test thread
/// libtest prints `test NAME ... ok` when the test ends, so a test took from the previous
/// result (or `running N tests`) to its own. A kernel message may split the line, leaving the
/// verdict on a line of its own; the name is kept until a verdict comes.
pub fn test_durations<'a>(
    lines: impl IntoIterator<Item = (std::time::Duration, &'a str)>,
) -> Vec<(String, std::time::Duration)> {
    let mut durations = Vec::new();
    let mut since = None;
    let mut pending: Option<String> = None;
    for (at, line) in lines {
        let line = line.trim_end();
        if line.starts_with("running ") && line.ends_with(" tests") || line == "running 1 test" {
            since = Some(at);
            pending = None;
            continue;
        }
        if let Some(rest) = line.strip_prefix("test ")
            && let Some((name, _)) = rest.split_once(" ... ")
        {
            pending = Some(name.to_string());
        }
        let verdict = ["ok", "FAILED", "ignored"]
            .iter()
            .any(|v| line.ends_with(v));
        if verdict && let (Some(name), Some(start)) = (pending.take(), since) {
            durations.push((name, at.saturating_sub(start)));
            since = Some(at);
        }
    }
    durations
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_run_from_one_result_to_the_next() {
        let s = Duration::from_secs;
        let lines = [
            (s(1), "running 3 tests"),
            (s(3), "test a ... ok"),
            (
                s(4),
                "test b ... [  7.4] Memory cgroup out of memory: Killed process 90",
            ),
            (s(10), "ok"),
            (s(11), "test c ... FAILED"),
            (s(12), "test result: FAILED. 2 passed; 1 failed"),
        ];
        assert_eq!(
            test_durations(lines),
            [
                ("a".to_string(), s(2)),
                ("b".to_string(), s(7)),
                ("c".to_string(), s(1))
            ]
        );
    }

    #[test]
    fn totals_add_up_cargo_result_lines() {
        let mut totals = TestTotals::default();
        for line in [
            "test result: ok. 129 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.27s",
            "running 3 tests",
            "test result: FAILED. 30 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 4.27s",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
        ] {
            totals.add_line(line);
        }
        assert_eq!(
            totals,
            TestTotals {
                passed: 159,
                failed: 2,
                skipped: 2
            }
        );
    }

    #[test]
    fn skips_are_read_from_passing_tests_output_only() {
        let output = "\
running 3 tests
test vm::a ... ok
test vm::b ... FAILED
test exec::c ... ok

successes:

---- vm::a stdout ----
skipping: runs only in the VM (GUARD_VM=1)

---- exec::c stdout ----
some other output


successes:
    exec::c
    vm::a

failures:

---- vm::b stdout ----
skipping: this one failed anyway
thread 'vm::b' panicked

failures:
    vm::b

test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out
";
        assert_eq!(
            skipped_tests(output.lines()),
            [(
                "vm::a".to_string(),
                "runs only in the VM (GUARD_VM=1)".to_string()
            )]
        );
    }
}
