//! The command line as users meet it: `--help` with examples, man pages and completions
//! generated from the same definition, and `guard list`.

use std::process::Command;

use crate::support::{TempDir, guard, guard_with_env, write_profile};

#[test]
fn every_subcommand_has_examples_in_its_help() {
    for sub in [
        "exec", "check", "explain", "list", "doctor", "unload", "daemon", "status", "stop",
    ] {
        let run = guard(&[sub, "--help"]);
        assert_eq!(run.code(), 0, "{sub}: {run}");
        let examples = run
            .stdout
            .split_once("Examples:\n")
            .map(|(_, e)| e)
            .unwrap_or_else(|| panic!("{sub}: no examples: {run}"));
        assert!(
            examples
                .lines()
                .next()
                .is_some_and(|l| l.contains(&format!("guard {sub}"))),
            "{sub}: {run}"
        );
    }
}

#[test]
fn man_pages_and_completions_come_from_the_cli() {
    let dir = TempDir::new("cli-docs");
    let man = dir.path().join("man1");
    let completions = dir.path().join("completions");
    let run = guard(&[
        "generate-docs",
        "--man",
        &man.to_string_lossy(),
        "--completions",
        &completions.to_string_lossy(),
    ]);
    assert_eq!(run.code(), 0, "{run}");
    // `man` renders the page guard wrote, with the option users look for. (The VM's userland
    // has no man; there the page's source is checked instead.)
    let page = man.join("guard-exec.1");
    match Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
    {
        Ok(rendered) => {
            let text = String::from_utf8_lossy(&rendered.stdout);
            assert!(rendered.status.success(), "{text}");
            assert!(text.contains("--profile"), "{text}");
            assert!(
                text.contains("guard exec --profile shell-readonly"),
                "{text}"
            );
        }
        Err(err) => {
            eprintln!("skipping the rendering check: no man here ({err})");
            let source = std::fs::read_to_string(&page).expect("page");
            assert!(source.contains("profile"), "{source}");
        }
    }
    assert!(man.join("guard.1").is_file() && man.join("guard-explain.1").is_file());
    assert!(
        !man.join("guard-daemon-worker.1").exists(),
        "hidden commands get no page"
    );
    let bash = std::fs::read_to_string(completions.join("guard.bash")).expect("bash completion");
    for sub in ["exec", "explain", "list", "doctor"] {
        assert!(bash.contains(sub), "{sub} missing from the bash completion");
    }
    assert!(completions.join("_guard").is_file() && completions.join("guard.fish").is_file());
}

#[test]
fn list_shows_where_each_profile_comes_from_and_which_wins() {
    let dir = TempDir::new("cli-list");
    write_profile(&dir, "build", "name = \"build\"\n");
    write_profile(&dir, "mine", "name = \"mine\"\n");
    let path = dir.path().to_string_lossy().into_owned();
    let run = guard_with_env(&["list"], &[("GUARD_PROFILE_PATH", &path)]);
    assert_eq!(run.code(), 0, "{run}");
    let mine = format!("{path}/build.toml");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("build ") && l.contains(&mine) && !l.contains("shadowed")),
        "{run}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("build ")
            && l.contains("<shipped>/build.toml")
            && l.contains(&format!("shadowed by {mine}"))),
        "{run}"
    );
    assert!(lines.iter().any(|l| l.starts_with("mine ")), "{run}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("base ") && l.contains("fragment")),
        "{run}"
    );
}

#[test]
fn explain_takes_the_base_fragment() {
    let run = guard(&["explain", "base"]);
    assert_eq!(run.code(), 0, "{run}");
    assert!(
        run.stdout.contains("profile base (<builtin>/base.toml"),
        "{run}"
    );
    assert!(run.stdout.contains("/etc/ld.so.cache"), "{run}");
}
