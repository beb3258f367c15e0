//! `cargo xtask setup` on a "fresh machine": fake `dpkg-query`, `apt-get`, `cargo`, `rustup` and
//! `id` on PATH record what setup runs, so the install path is tested without touching the host.

#![expect(
    clippy::unwrap_used,
    reason = "test scaffolding: a failure to build the fake host should panic right there"
)]
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// dpkg reports curl and strace as not installed until the fake apt-get ran `install`.
const DPKG_QUERY: &str = r#"#!/bin/sh
shift 3
for p in "$@"; do
  if [ -e "$STATE/apt-installed" ] || { [ "$p" != curl ] && [ "$p" != strace ]; }; then
    printf '%s\tii \n' "$p"
  fi
done
[ -e "$STATE/apt-installed" ] || { echo "dpkg-query: no packages found matching curl" >&2; exit 1; }
"#;
const APT_GET: &str = r#"#!/bin/sh
echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND apt-get $*" >> "$LOG"
[ "$1" = install ] && touch "$STATE/apt-installed"
exit 0
"#;
/// `cargo install` drops a fake bpf-linker 0.13.0 on PATH; `cargo fmt|clippy --version` work.
const CARGO: &str = r#"#!/bin/sh
case "$1" in
  install) echo "LLVM_PREFIX=$LLVM_PREFIX cargo $*" >> "$LOG"
           printf '#!/bin/sh\necho bpf-linker 0.13.0\n' > "$STATE/bin/bpf-linker"
           chmod +x "$STATE/bin/bpf-linker" ;;
  *) echo "$1 1.0" ;;
esac
"#;
const RUSTUP: &str = r#"#!/bin/sh
case "$1 $2" in
  "toolchain list") echo "stable-x86_64-unknown-linux-gnu (active, default)"
                    [ -e "$STATE/linked" ] && echo deb-1.96 ;;
  "toolchain link") echo "rustup $*" >> "$LOG"; touch "$STATE/linked" ;;
  "run deb-1.96") echo "rustc 1.96.0 (ac68faa20 2026-05-25)" ;;
esac
exit 0
"#;

struct FakeHost {
    dir: PathBuf,
}

impl FakeHost {
    fn new(name: &str, uid: u32) -> Self {
        let dir = std::env::temp_dir().join(format!("xtask-setup-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        let id = format!("#!/bin/sh\necho {uid}\n");
        for (name, script) in [
            ("dpkg-query", DPKG_QUERY),
            ("apt-get", APT_GET),
            ("cargo", CARGO),
            ("rustup", RUSTUP),
            ("id", id.as_str()),
        ] {
            let path = bin.join(name);
            fs::write(&path, script).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        // The scripts themselves need a few real tools; nothing else of the host is on PATH.
        for tool in ["sh", "touch", "chmod", "printf"] {
            let real = ["/bin", "/usr/bin"]
                .iter()
                .map(|d| Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap();
            std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
        }
        FakeHost { dir }
    }

    fn setup(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("setup")
            .env_clear()
            .env("PATH", self.dir.join("bin"))
            .env("STATE", &self.dir)
            .env("LOG", self.dir.join("log"))
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        let log = fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        let _ = fs::remove_file(self.dir.join("log"));
        log
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn installs_what_is_missing_then_nothing() {
    let host = FakeHost::new("fresh", 0);
    let out = host.setup();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        host.log(),
        "DEBIAN_FRONTEND=noninteractive apt-get update -q\n\
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q strace curl\n\
         LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker@0.13.0 --locked --no-default-features --features llvm-22\n\
         rustup toolchain link deb-1.96 /usr\n",
        "{stderr}"
    );

    let out = host.setup();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(host.log(), "", "second run installs nothing: {stderr}");
    assert!(stderr.contains("found  bpf-linker 0.13.0"), "{stderr}");
}

#[test]
fn refuses_to_install_packages_without_root() {
    let host = FakeHost::new("nonroot", 1000);
    let out = host.setup();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("must run as root to apt-get install strace curl"),
        "{stderr}"
    );
    assert_eq!(host.log(), "", "nothing was attempted");
}
