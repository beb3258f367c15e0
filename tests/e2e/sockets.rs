//! Issue 11 seams, seccomp side: sockets the hooks do not police, reach into processes outside
//! the sandbox, and a profile `log` action that must not weaken the always-on baseline. Each
//! test runs the technique bare first, then under guard, and looks at the outcome from outside.

use std::fs;
use std::process::{Command, Stdio};

use crate::support::{TempDir, guard, require_root, write_profile};

const PYTHON: &str = "/usr/bin/python3";

/// A profile that runs python3 with network rules (so IP sockets are allowed at all) and
/// `syscalls.action` set to `action`.
fn python_profile(dir: &TempDir, action: &str) -> String {
    write_profile(
        dir,
        "py",
        &format!(
            r#"
name = "py"
extends = ["base"]
[filesystem]
read = ["/usr", "/etc"]
execute = ["/usr/bin", "/usr/lib"]
[network]
connect = ["127.0.0.1:9"]
[syscalls]
action = "{action}"
"#
        ),
    )
}

/// Creates each socket kind and prints `name=ok` or `name=<errno>`.
const SOCKETS: &str = r#"
import socket, errno
kinds = {
  "icmp": (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP),
  "icmp6": (socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6),
  "vsock": (40, socket.SOCK_STREAM, 0),
  "sock_diag": (16, socket.SOCK_RAW, 4),
  "packet": (17, socket.SOCK_RAW, 0),
  "tcp": (socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK, 0),
}
for name, (f, t, p) in kinds.items():
    try:
        socket.socket(f, t, p).close(); print(f"{name}=ok")
    except OSError as e:
        print(f"{name}={errno.errorcode.get(e.errno, e.errno)}")
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try:
    # A one-segment IPv6 segment routing header (type 4) naming ::1: valid, needs no capability.
    srh = bytes([0, 2, 4, 0, 0, 0, 0, 0]) + socket.inet_pton(socket.AF_INET6, "::1")
    s.setsockopt(socket.IPPROTO_IPV6, 57, srh); print("rthdr=ok")
except OSError as e:
    print(f"rthdr={errno.errorcode.get(e.errno, e.errno)}")
"#;

fn outcome<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or("missing")
}

#[test]
fn only_tcp_udp_netlink_route_and_unix_sockets_can_be_created() {
    require_root!();
    let dir = TempDir::new("sockets");
    let profile = python_profile(&dir, "errno");
    let bare = Command::new(PYTHON)
        .args(["-c", SOCKETS])
        .output()
        .expect("python3");
    let bare = String::from_utf8_lossy(&bare.stdout).into_owned();
    let run = guard(&["exec", "--profile", &profile, "--", PYTHON, "-c", SOCKETS]);
    assert_eq!(run.code(), 0, "{run}");
    for name in ["icmp", "icmp6", "vsock", "sock_diag", "packet", "rthdr"] {
        if outcome(&bare, name) == "ok" {
            assert_eq!(
                outcome(&run.stdout, name),
                "EPERM",
                "{name} under guard: {run}"
            );
        } else {
            eprintln!(
                "skipping {name}: fails bare here ({})",
                outcome(&bare, name)
            );
        }
    }
    assert_eq!(outcome(&run.stdout, "tcp"), "ok", "TCP still works: {run}");
}

#[test]
fn prlimit64_cannot_touch_a_process_outside_the_sandbox() {
    require_root!();
    let dir = TempDir::new("prlimit");
    let profile = python_profile(&dir, "errno");
    let mut victim = Command::new("/bin/sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .expect("victim");
    let pid = victim.id();
    let limits = || fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let nofile = |l: &str| {
        l.lines()
            .find(|l| l.starts_with("Max open files"))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let set = |n: u32| {
        format!(
            "import resource; resource.prlimit({pid}, resource.RLIMIT_NOFILE, ({n}, {n})); print('set')"
        )
    };

    // Bare: it works, seen in the victim's /proc limits.
    let bare = Command::new(PYTHON)
        .args(["-c", &set(77)])
        .output()
        .expect("python3");
    assert!(bare.status.success(), "bare prlimit: {bare:?}");
    assert!(
        nofile(&limits()).contains("77"),
        "bare changed it: {}",
        limits()
    );

    let run = guard(&["exec", "--profile", &profile, "--", PYTHON, "-c", &set(33)]);
    assert_ne!(run.code(), 0, "{run}");
    assert!(
        run.stderr.contains("PermissionError") || run.stderr.contains("Operation not permitted"),
        "{run}"
    );
    assert!(
        nofile(&limits()).contains("77"),
        "victim untouched: {}",
        limits()
    );
    assert!(victim.try_wait().expect("wait").is_none(), "victim alive");
    // The tool's own limits still work (setrlimit is prlimit64 on pid 0).
    let own = "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (50, 50)); print('own')";
    let run = guard(&["exec", "--profile", &profile, "--", PYTHON, "-c", own]);
    assert!(run.stdout.contains("own"), "{run}");
    victim.kill().expect("kill victim");
    victim.wait().expect("reap victim");
}

#[test]
fn a_log_action_does_not_weaken_the_user_namespace_rule() {
    require_root!();
    let dir = TempDir::new("logaction");
    let profile = python_profile(&dir, "log");
    let probe = "import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.unshare(0x10000000)\nprint('userns=ok' if r == 0 else 'userns=' + errno.errorcode[ctypes.get_errno()])";
    let bare = Command::new(PYTHON)
        .args(["-c", probe])
        .output()
        .expect("python3");
    let bare = String::from_utf8_lossy(&bare.stdout).into_owned();
    if outcome(&bare, "userns") != "ok" {
        eprintln!("skipping: unshare(CLONE_NEWUSER) fails bare here: {bare}");
        return;
    }
    let run = guard(&["exec", "--profile", &profile, "--", PYTHON, "-c", probe]);
    assert_eq!(outcome(&run.stdout, "userns"), "EPERM", "{run}");
}

/// Sends an ICMP echo through an unprivileged ping socket and prints whether the reply came.
const PING: &str = r#"
import socket, errno
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    s.settimeout(2)
    s.sendto(bytes([8, 0, 0, 0, 0, 1, 0, 1]) + b"guard", ("127.0.0.1", 0))
    data, _ = s.recvfrom(64)
    print("ping=reply" if b"guard" in data else "ping=noreply")
except OSError as e:
    print(f"ping={errno.errorcode.get(e.errno, e.errno)}")
"#;

/// Removes the network namespace when the test ends, pass or fail.
struct NetNs(String);

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn icmp_echo_sockets_are_refused() {
    require_root!();
    // The host's ping_group_range may exclude root; in a namespace of our own we widen it, so
    // the bare run shows the echo socket really delivers (the loopback reply comes back).
    let name = format!("guard-sec-icmp-{}", std::process::id());
    let made = Command::new("ip").args(["netns", "add", &name]).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipping: cannot create a network namespace");
        return;
    }
    let ns = NetNs(name);
    let in_ns = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &ns.0])
            .args(args)
            .output()
            .expect("ip netns exec")
    };
    assert!(in_ns(&["ip", "link", "set", "lo", "up"]).status.success());
    let sysctl = in_ns(&["sysctl", "-w", "net.ipv4.ping_group_range=0 2147483647"]);
    assert!(sysctl.status.success(), "{sysctl:?}");
    let bare = in_ns(&[PYTHON, "-c", PING]);
    let bare = String::from_utf8_lossy(&bare.stdout).into_owned();
    assert_eq!(
        outcome(&bare, "ping"),
        "reply",
        "bare: the echo socket works"
    );

    let dir = TempDir::new("icmp");
    let profile = python_profile(&dir, "errno");
    let guard_bin = crate::support::guard_bin();
    // nsenter switches the network namespace only: `ip netns exec` would remount /sys and
    // hide the cgroup mounts guard needs.
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", ns.0))
        .args([
            guard_bin.to_str().expect("utf-8 path"),
            "exec",
            "--profile",
            &profile,
            "--",
            PYTHON,
            "-c",
            PING,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("nsenter");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        outcome(&stdout, "ping"),
        "EPERM",
        "under guard: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn xattr_values_outside_the_read_paths_are_not_readable() {
    require_root!();
    let dir = TempDir::new("xattr");
    let secret = dir.mkdir("secret").join("file");
    fs::write(&secret, "x").expect("write");
    let set = Command::new(PYTHON)
        .args([
            "-c",
            &format!(
                "import os; os.setxattr('{}', 'user.note', b'hidden')",
                secret.display()
            ),
        ])
        .status()
        .expect("python3");
    if !set.success() {
        eprintln!("skipping: the temp file system has no user xattrs");
        return;
    }
    let probe = format!(
        "import os, errno\ntry:\n    print('xattr=' + os.getxattr('{0}', 'user.note').decode())\nexcept OSError as e:\n    print('xattr=' + errno.errorcode[e.errno])",
        secret.display()
    );
    let bare = Command::new(PYTHON)
        .args(["-c", &probe])
        .output()
        .expect("python3");
    assert_eq!(
        outcome(&String::from_utf8_lossy(&bare.stdout), "xattr"),
        "hidden"
    );
    let profile = python_profile(&dir, "errno");
    let run = guard(&["exec", "--profile", &profile, "--", PYTHON, "-c", &probe]);
    assert_eq!(outcome(&run.stdout, "xattr"), "ENOTSUP", "{run}");
}

/// The same read through `getxattrat` (Linux 6.13), which libseccomp 2.5 cannot name: the rule
/// is added by number, or the sibling syscall would read what `getxattr` may not.
#[test]
fn xattr_values_cannot_be_read_through_getxattrat() {
    require_root!();
    let dir = TempDir::new("xattrat");
    let secret = dir.mkdir("secret").join("file");
    fs::write(&secret, "x").expect("write");
    let set = Command::new(PYTHON)
        .args([
            "-c",
            &format!(
                "import os; os.setxattr('{}', 'user.note', b'hidden')",
                secret.display()
            ),
        ])
        .status()
        .expect("python3");
    if !set.success() {
        eprintln!("skipping: the temp file system has no user xattrs");
        return;
    }
    // getxattrat(AT_FDCWD, path, 0, name, &struct xattr_args { value, size, flags }, 16)
    let probe = format!(
        "import ctypes, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n\
         class Args(ctypes.Structure):\n    _fields_ = [('value', ctypes.c_uint64), ('size', ctypes.c_uint32), ('flags', ctypes.c_uint32)]\n\
         buf = ctypes.create_string_buffer(64)\n\
         args = Args(ctypes.cast(buf, ctypes.c_void_p).value, 64, 0)\n\
         r = libc.syscall(464, -100, b'{0}', 0, b'user.note', ctypes.byref(args), ctypes.sizeof(args))\n\
         print('xattr=' + (buf.value.decode() if r >= 0 else errno.errorcode[ctypes.get_errno()]))",
        secret.display()
    );
    let bare = Command::new(PYTHON)
        .args(["-c", &probe])
        .output()
        .expect("python3");
    let bare_out = String::from_utf8_lossy(&bare.stdout).into_owned();
    if outcome(&bare_out, "xattr") == "ENOSYS" {
        eprintln!("skipping: this kernel has no getxattrat (Linux 6.13+)");
        return;
    }
    assert_eq!(outcome(&bare_out, "xattr"), "hidden", "bare: {bare_out}");
    let profile = python_profile(&dir, "errno");
    let run = guard(&["exec", "--profile", &profile, "--", PYTHON, "-c", &probe]);
    assert_eq!(outcome(&run.stdout, "xattr"), "ENOTSUP", "{run}");
}
