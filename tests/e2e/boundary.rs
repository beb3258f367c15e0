//! The sandbox's boundary to host objects that are not files or sockets (issue 11): System V
//! IPC. Each attack runs bare first, then under guard, and the outcome is read from outside.

use crate::support::{TempDir, guard, require_root, write_profile};

/// Creates a 0600 segment holding a marker and prints its id (run by the test, outside).
const CREATE_SECRET: &str = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
shmid = libc.shmget(0, 4096, 0o1600)
addr = libc.shmat(shmid, None, 0)
ctypes.memmove(addr, b"host-secret", 11)
print(shmid)
"#;

/// argv[1]: a host segment id to read; argv[2]: a key under which a segment and a message
/// queue are created and left behind.
const ATTACK: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
addr = libc.shmat(int(sys.argv[1]), None, 0o10000)
if addr is None or addr == ctypes.c_void_p(-1).value:
    print("shmat errno", ctypes.get_errno())
else:
    print("read", ctypes.string_at(addr, 11).decode())
key = int(sys.argv[2])
print("shm", libc.shmget(key, 1 << 20, 0o1600), "msg", libc.msgget(key, 0o1600))
"#;

fn python(args: &[&str]) -> String {
    let out = std::process::Command::new("/usr/bin/python3")
        .args(args)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a System V object with `key` exists on the host (`/proc/sysvipc/{kind}`, read from
/// the test's own IPC namespace, like `ipcs`).
fn host_has_key(kind: &str, key: i32) -> bool {
    let table = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).expect("sysvipc");
    table
        .lines()
        .skip(1)
        .any(|line| line.split_whitespace().next() == Some(&key.to_string()))
}

fn remove_key(kind: &str, key: i32) {
    let _ = std::process::Command::new("ipcrm")
        .args([if kind == "shm" { "-M" } else { "-Q" }, &key.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

#[test]
fn system_v_ipc_is_private_and_does_not_outlive_the_run() {
    require_root!();
    let dir = TempDir::new("sysvipc");
    let secret = python(&["-c", CREATE_SECRET]).trim().to_string();
    let key = 0x6e73_0000 | (std::process::id() as i32 & 0xffff);

    // Bare: the root-owned 0600 segment is readable, and the objects outlive the process.
    let bare = python(&["-c", ATTACK, &secret, &key.to_string()]);
    let bare_left = (host_has_key("shm", key), host_has_key("msg", key));
    remove_key("shm", key);
    remove_key("msg", key);
    assert!(bare.contains("read host-secret"), "bare: {bare}");
    assert_eq!(bare_left, (true, true), "bare objects outlive the process");

    let profile = write_profile(
        &dir,
        "ipc",
        r#"
name = "ipc"
[filesystem]
read = ["/usr", "/etc", "/lib", "/lib64"]
execute = ["/usr/bin", "/usr/lib", "/lib64", "/usr/lib64"]
"#,
    );
    let run = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/python3",
        "-c",
        ATTACK,
        &secret,
        &key.to_string(),
    ]);
    let left = (host_has_key("shm", key), host_has_key("msg", key));
    remove_key("shm", key);
    remove_key("msg", key);
    let _ = std::process::Command::new("ipcrm")
        .args(["-m", &secret])
        .status();
    assert_eq!(run.code(), 0, "{run}");
    assert!(
        run.stdout.contains("shmat errno 22"),
        "the host segment does not exist in the sandbox: {run}"
    );
    assert!(!run.stdout.contains("host-secret"), "{run}");
    assert!(
        !run.stdout.contains("shm -1"),
        "the sandbox can create its own objects: {run}"
    );
    assert_eq!(
        left,
        (false, false),
        "no System V object outlives guard: {run}"
    );
}

/// A rule for `/proc/<pid>` would be opened by the supervisor and grant another process's
/// files: refused before anything runs.
#[test]
fn a_fixed_proc_pid_in_a_profile_is_refused() {
    let dir = TempDir::new("procpid");
    let marker = dir.path().join("ran");
    let profile = write_profile(
        &dir,
        "procpid",
        r#"
name = "procpid"
[filesystem]
read = ["/usr", "/etc", "/lib", "/lib64", "/proc/1234"]
write = ["/tmp"]
execute = ["/usr/bin", "/usr/lib", "/lib64", "/usr/lib64"]
"#,
    );
    let run = guard(&[
        "exec",
        "--profile",
        &profile,
        "--",
        "/usr/bin/touch",
        marker.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code(), 125, "{run}");
    assert!(run.stderr.contains("/proc/1234"), "{run}");
    assert!(run.stderr.contains("fixed process id"), "{run}");
    assert!(!marker.exists(), "nothing ran: {run}");
}
