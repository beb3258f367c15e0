//! The profile the micro-benchmarks and the exec storm run under: `minimal`'s syscall deny
//! list and limits, plus exactly what the workloads need (the workload binary, `/bin/true`, the
//! storm's static executable, the bench's own TCP and UDP ports on 127.0.0.1), and no exec rate
//! limit, so the storm measures guard's cost rather than its rate limiter.
//!
//! `process.exec` is left to default to `filesystem.execute`: the exec probe then allows the
//! same files Landlock lets run, and kills the rest, which the storm would count as kills.

use std::path::Path;

/// What the workloads reach.
pub struct Needs<'a> {
    /// The xtask binary that runs the workloads.
    pub workload: &'a Path,
    /// The storm's program when it is not in `/bin` or `/usr/bin`.
    pub storm: Option<&'a Path>,
    pub tcp_port: u16,
    pub udp_port: u16,
}

/// The profile's TOML text.
pub fn text(needs: &Needs<'_>) -> String {
    let mut files = toml_string(&needs.workload.display().to_string());
    if let Some(storm) = needs.storm {
        files.push_str(", ");
        files.push_str(&toml_string(&storm.display().to_string()));
    }
    format!(
        r#"# Written by `cargo xtask bench`; removed when it ends.
name = "bench"
description = "guard's benchmark workloads: minimal's filter and limits, the bench's own ports"
extends = ["base"]
allow_weaker = ["bpf.lsm"]

[filesystem]
read = ["/usr/bin", "/bin", {files}]
execute = ["/usr/bin", "/bin", {files}]

[network]
# The DNS lookup case's name, answered through the DNS gate.
connect = ["127.0.0.1:{tcp}", "127.0.0.1:{udp}", "bench.test:443"]
dns = false

[process]
env = {{ keep = ["PATH", "LANG", "LC_ALL", "TERM", "TZ"] }}

[syscalls]
deny = ["@debug", "@obsolete", "@cpu-emulation", "@raw-io", "@module", "@reboot", "@swap", "@privileged"]
action = "errno"

[limits]
memory = "256MiB"
pids = 16
cpu = 2.0
wall_time = "2m"
open_files = 256

[on_violation]
action = "deny"
"#,
        tcp = needs.tcp_port,
        udp = needs.udp_port,
    )
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_the_workload_and_ports() {
        let text = text(&Needs {
            workload: Path::new("/w/target/release/xtask"),
            storm: None,
            tcp_port: 4000,
            udp_port: 4001,
        });
        assert!(text.contains(r#"execute = ["/usr/bin", "/bin", "/w/target/release/xtask"]"#));
        assert!(
            text.contains(r#"connect = ["127.0.0.1:4000", "127.0.0.1:4001", "bench.test:443"]"#)
        );
        assert!(!text.contains("execs_per_minute"));
        // No explicit list: the exec probe's allowlist is `filesystem.execute`.
        assert!(!text.contains("exec ="));
    }

    #[test]
    fn profile_lets_the_storm_program_run() {
        let text = text(&Needs {
            workload: Path::new("/w/xtask"),
            storm: Some(Path::new("/tmp/b/exit0")),
            tcp_port: 1,
            udp_port: 2,
        });
        assert!(text.contains(r#"read = ["/usr/bin", "/bin", "/w/xtask", "/tmp/b/exit0"]"#));
        assert!(text.contains(r#"execute = ["/usr/bin", "/bin", "/w/xtask", "/tmp/b/exit0"]"#));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
