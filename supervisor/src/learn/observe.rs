//! The audit records of a learning run, read back as what the command did.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Everything a learning run showed, beyond what its learning profile already allowed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Files and directories opened for reading.
    pub reads: BTreeSet<PathBuf>,
    /// Paths opened for writing, created, removed, renamed or truncated.
    pub writes: BTreeSet<PathBuf>,
    /// Files executed (by `execve`/`execveat`), with `#!` scripts as themselves.
    pub execs: BTreeSet<PathBuf>,
    /// `addr:port` destinations of TCP connects and UDP sends (DNS to the gate excluded).
    pub connects: BTreeSet<String>,
    /// The name each address came from, as the DNS gate answered it.
    pub names: BTreeMap<String, String>,
    /// Whether the command looked any name up (sent DNS, which the gate took).
    pub looked_up: bool,
    /// Unix socket paths connected or sent to (abstract names are Landlock's scoping's).
    pub unix: BTreeSet<String>,
    /// `addr:port` local addresses bound.
    pub binds: BTreeSet<String>,
    /// Syscalls the baseline refuses that the command made, with how often.
    pub refused_syscalls: BTreeMap<String, u64>,
    /// The command's exit status, when it exited.
    pub status: Option<i64>,
    /// Records the kernel could not deliver: the observation is incomplete when not zero.
    pub lost: u64,
}

impl Observed {
    /// Reads the JSON-lines audit log of a learning run; lines that are not records are errors.
    pub fn from_log(text: &str) -> Result<Observed, serde_json::Error> {
        let mut observed = Observed::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let record: serde_json::Value = serde_json::from_str(line)?;
            observed.add(&record);
        }
        Ok(observed)
    }

    /// Adds one audit record.
    pub fn add(&mut self, record: &serde_json::Value) {
        let detail = &record["detail"];
        let event = record["event"].as_str().unwrap_or_default();
        let op = detail["op"].as_str().unwrap_or(event);
        let path = detail["path"].as_str().map(PathBuf::from);
        let times = 1 + detail["repeated"].as_u64().unwrap_or(0);
        match (event, op) {
            ("exit", _) => self.status = detail["status"].as_i64(),
            ("limit", _) if record["rule"] == "audit.lost_events" => {
                self.lost += detail["lost"].as_u64().unwrap_or(0);
            }
            ("exec" | "violation", "exec") => {
                if let Some(path) = path {
                    self.execs.insert(path);
                }
                if let Some(script) = detail["script"].as_str() {
                    self.execs.insert(PathBuf::from(script));
                }
            }
            ("dns", _) => {
                self.looked_up = true;
                let name = detail["name"].as_str().unwrap_or_default();
                let answers = detail["answers"].as_array().into_iter().flatten();
                for answer in answers {
                    // Allowed answers list objects with `addr`; audited ones plain addresses.
                    let addr = answer["addr"].as_str().or(answer.as_str());
                    if let Some(addr) = addr
                        && !name.is_empty()
                    {
                        self.names.entry(addr.to_owned()).or_insert(name.to_owned());
                    }
                }
            }
            ("connect" | "send" | "violation", "connect" | "send")
                if detail["protocol"] == "unix" =>
            {
                if let Some(path) = detail["path"].as_str()
                    && path.starts_with('/')
                {
                    self.unix.insert(path.to_owned());
                }
            }
            ("connect" | "send" | "violation", "connect" | "send")
                if detail["dns_gate"].as_bool() == Some(true) =>
            {
                self.looked_up = true;
            }
            ("connect" | "send" | "violation", "connect" | "send") => {
                if let Some(dst) = destination(detail) {
                    self.connects.insert(dst);
                }
            }
            ("bind" | "violation", "bind") => {
                if let Some(dst) = destination(detail) {
                    self.binds.insert(dst);
                }
            }
            ("violation", "file") => {
                let Some(path) = path else { return };
                match detail["access"].as_str() {
                    Some("write") => self.writes.insert(path),
                    Some("execute") => self.execs.insert(path),
                    _ => self.reads.insert(path),
                };
            }
            ("violation", "syscall") => {
                if let Some(name) = detail["syscall"].as_str() {
                    *self.refused_syscalls.entry(name.to_owned()).or_default() += times;
                }
            }
            _ => {}
        }
    }
}

impl Observed {
    /// `dst` (`addr:port` or `[v6]:port`) with the name its address came from, when the DNS
    /// gate saw the lookup.
    pub fn named(&self, dst: &str) -> String {
        let Some((addr, port)) = dst.rsplit_once(':') else {
            return dst.to_owned();
        };
        let bare = addr.trim_start_matches('[').trim_end_matches(']');
        match self.names.get(bare) {
            Some(name) => format!("{name}:{port}"),
            None => dst.to_owned(),
        }
    }
}

/// `addr:port` of a network record (eBPF records carry `dst` as that already; Landlock's carry
/// the port apart).
fn destination(detail: &serde_json::Value) -> Option<String> {
    let dst = detail["dst"].as_str()?;
    match detail["port"].as_u64() {
        Some(port) if !dst.ends_with(&format!(":{port}")) => {
            if dst.contains(':') {
                Some(format!("[{dst}]:{port}"))
            } else {
                Some(format!("{dst}:{port}"))
            }
        }
        _ => Some(dst.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_socket_paths_are_listed_and_abstract_names_are_not() {
        let log = r#"{"event":"violation","rule":"network.unix","detail":{"op":"connect","path":"/var/run/nscd/socket","protocol":"unix"}}
{"event":"connect","detail":{"op":"connect","path":"@abstract","protocol":"unix"}}
"#;
        let o = Observed::from_log(log).unwrap();
        assert_eq!(o.unix.iter().collect::<Vec<_>>(), ["/var/run/nscd/socket"]);
        assert!(o.connects.is_empty());
    }

    #[test]
    fn connects_to_looked_up_addresses_take_the_name() {
        let log = r#"{"event":"send","detail":{"op":"send","dst":"10.0.0.53:53","dns_gate":true,"protocol":"udp"}}
{"event":"dns","verdict":"audit","detail":{"name":"api.test","type":"A","answers":["10.1.2.3"]}}
{"event":"connect","detail":{"op":"connect","dst":"10.1.2.3:443","protocol":"tcp"}}
{"event":"connect","detail":{"op":"connect","dst":"10.9.9.9:80","protocol":"tcp"}}
"#;
        let o = Observed::from_log(log).unwrap();
        assert!(o.looked_up);
        assert_eq!(
            o.connects.len(),
            2,
            "DNS to the gate is not a connect: {o:?}"
        );
        assert_eq!(o.named("10.1.2.3:443"), "api.test:443");
        assert_eq!(o.named("10.9.9.9:80"), "10.9.9.9:80");
    }

    #[test]
    fn records_become_observations() {
        let log = r#"{"event":"start","detail":{"mode":"audit"}}
{"event":"violation","rule":"filesystem.read","enforcer":"landlock","detail":{"op":"file","access":"read","path":"/usr/lib/python3.11/os.py","syscall":"openat"}}
{"event":"violation","rule":"filesystem.write","enforcer":"landlock","detail":{"op":"file","access":"write","path":"/tmp/w/out","syscall":"openat"}}
{"event":"violation","rule":"process.exec","enforcer":"ebpf","verdict":"audit","detail":{"op":"exec","path":"/usr/bin/python3"}}
{"event":"exec","detail":{"op":"exec","path":"/usr/bin/env","script":"/w/run.sh"}}
{"event":"violation","rule":"network.connect","enforcer":"ebpf","detail":{"op":"connect","dst":"127.0.0.1:8080","protocol":"tcp"}}
{"event":"send","detail":{"op":"send","dst":"[::1]:53","protocol":"udp"}}
{"event":"violation","rule":"syscalls.deny","enforcer":"seccomp","detail":{"op":"syscall","syscall":"ptrace","repeated":2}}
{"event":"exit","detail":{"status":3}}
"#;
        let o = Observed::from_log(log).unwrap();
        assert!(
            o.reads
                .contains(&PathBuf::from("/usr/lib/python3.11/os.py"))
        );
        assert!(o.writes.contains(&PathBuf::from("/tmp/w/out")));
        assert_eq!(
            o.execs
                .iter()
                .map(|p| p.to_str().unwrap())
                .collect::<Vec<_>>(),
            ["/usr/bin/env", "/usr/bin/python3", "/w/run.sh"]
        );
        assert_eq!(
            o.connects.iter().cloned().collect::<Vec<_>>(),
            ["127.0.0.1:8080", "[::1]:53"]
        );
        assert_eq!(o.refused_syscalls["ptrace"], 3);
        assert_eq!(o.status, Some(3));
    }
}
