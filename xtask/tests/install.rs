//! `cargo xtask install` into a staging directory: the layout, the unit pointing at the
//! installed binary, administrators' files kept, and the units passing `systemd-analyze verify`.

#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding: a failed setup should panic right there"
)]
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

struct Stage(PathBuf);

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn stage(label: &str) -> Stage {
    let dir = std::env::temp_dir().join(format!("xtask-install-{label}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    Stage(dir)
}

fn install(dest: &Path, binary: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["install", "--prefix", "/opt/guard", "--destdir"])
        .arg(dest)
        .arg("--binary")
        .arg(binary)
        .current_dir(repo_root())
        .output()
        .unwrap()
}

/// A stand-in for the guard binary: the layout does not depend on what it is. Asked to
/// `generate-docs --man DIR --completions DIR`, it writes one page and the three completions.
fn fake_binary(dir: &Path) -> PathBuf {
    let path = dir.join("guard-built");
    fs::write(
        &path,
        "#!/bin/sh\nif [ \"$1\" = generate-docs ]; then\n  mkdir -p \"$3\" \"$5\"\n  \
         echo '.TH GUARD-EXEC 1' > \"$3/guard-exec.1\"\n  \
         for f in guard.bash _guard guard.fish; do echo \"# $f\" > \"$5/$f\"; done\nfi\nexit 0\n",
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn installs_binary_units_config_and_profiles_and_keeps_edits() {
    let stage = stage("layout");
    let dest = stage.0.join("root");
    let binary = fake_binary(&stage.0);
    let out = install(&dest, &binary);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let installed = dest.join("opt/guard/bin/guard");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(&binary).unwrap());
    assert_eq!(
        fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let units = dest.join("opt/guard/lib/systemd/system");
    let service = fs::read_to_string(units.join("guard.service")).unwrap();
    assert!(
        service
            .contains("\nExecStart=/opt/guard/bin/guard daemon --config /etc/guard/daemon.toml\n"),
        "{service}"
    );
    assert!(units.join("guard.socket").exists());
    let config = dest.join("etc/guard/daemon.toml");
    assert!(
        fs::read_to_string(&config)
            .unwrap()
            .contains("audit_log = ")
    );
    // The man pages and completions the binary generated, where man and the shells look.
    assert!(dest.join("opt/guard/share/man/man1/guard-exec.1").is_file());
    assert!(
        dest.join("opt/guard/share/bash-completion/completions/guard")
            .is_file()
    );
    assert!(
        dest.join("opt/guard/share/zsh/site-functions/_guard")
            .is_file()
    );
    assert!(
        dest.join("opt/guard/share/fish/vendor_completions.d/guard.fish")
            .is_file()
    );
    for profile in ["minimal", "shell-readonly", "python", "build"] {
        assert!(
            dest.join(format!("etc/guard/profiles/{profile}.toml"))
                .exists(),
            "{profile}"
        );
    }

    // A second install keeps the administrator's files and replaces the binary.
    fs::write(&config, "# edited\n").unwrap();
    let second = fs::read_to_string(&binary).unwrap() + "# second build\n";
    fs::write(&binary, &second).unwrap();
    let out = install(&dest, &binary);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), "# edited\n");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(&binary).unwrap());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kept"));
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    // `cargo xtask setup` installs the systemd package (systemd-analyze works without systemd
    // as PID 1); say so rather than skip silently where it is missing.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: systemd-analyze not available (cargo xtask setup installs it)");
        return;
    }
    let stage = stage("verify");
    let dest = stage.0.join("root");
    let binary = fake_binary(&stage.0);
    assert!(install(&dest, &binary).status.success());
    // verify checks that ExecStart exists: point a copy at the staged binary.
    let units = dest.join("opt/guard/lib/systemd/system");
    let checked = stage.0.join("units");
    fs::create_dir_all(&checked).unwrap();
    let service = fs::read_to_string(units.join("guard.service"))
        .unwrap()
        .replace(
            "ExecStart=/opt/guard/bin/guard ",
            &format!("ExecStart={} ", dest.join("opt/guard/bin/guard").display()),
        );
    fs::write(checked.join("guard.service"), service).unwrap();
    fs::copy(units.join("guard.socket"), checked.join("guard.socket")).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(checked.join("guard.service"))
        .arg(checked.join("guard.socket"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
