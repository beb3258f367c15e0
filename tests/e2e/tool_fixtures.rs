//! Fixtures the real-tool tests share (`learn`, `tools`): skipping where a tool is missing,
//! running a host command to set a fixture up, a one-request HTTP server on loopback, and a bare
//! repository's HEAD.

use std::path::Path;
use std::process::Command;

/// Skips a test when the tool at this path is not installed, saying why.
macro_rules! require_tool {
    ($tool:expr) => {
        if !std::path::Path::new($tool).exists() {
            eprintln!(
                "skipping: {} is not installed here (the VM's userland has no such package)",
                $tool
            );
            return;
        }
    };
}
pub(crate) use require_tool;

/// Runs a host command for a fixture (with `env` added), panicking with its stderr when it fails.
pub fn host(cwd: &Path, env: &[(&str, String)], cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The commit a bare repository's HEAD points at.
pub fn head_of(repo: &Path) -> String {
    let out = Command::new("git")
        .args(["--git-dir", repo.to_str().unwrap(), "rev-parse", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A one-request HTTP server on loopback (on `port`, or any): answers `hello` once within
/// `wait`, and says whether anyone reached it. std sets SO_REUSEADDR, so a port used once can
/// be bound again.
pub fn http_once(port: u16, wait: std::time::Duration) -> (u16, std::thread::JoinHandle<bool>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if let Ok((mut stream, _)) = listener.accept() {
                stream.set_nonblocking(false).unwrap();
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n",
                );
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    });
    (port, handle)
}
