//! Landlock denials as evidence. Landlock (ABI 7) writes an `AUDIT_LANDLOCK_ACCESS` record for
//! each denial of a domain restricted with `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON`, and one
//! `AUDIT_LANDLOCK_DOMAIN` record when the domain first denies something (naming the pid that
//! created it: the sandbox's first process) and when it is freed (with its exact denial count).
//! guard reads them from the audit multicast group while auditing is on (see
//! [`crate::host::audit`]), adopts the domain its child created, and turns each of its denials
//! into an audit record. Other sandboxes' domains are ignored.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

use crate::host::audit;

/// `AUDIT_LANDLOCK_ACCESS`.
const RECORD_ACCESS: u16 = 1423;
/// `AUDIT_LANDLOCK_DOMAIN`.
const RECORD_DOMAIN: u16 = 1424;
/// `AUDIT_SYSCALL`: with auditing on, it follows a denial's records and names the process.
const RECORD_SYSCALL: u16 = 1300;
/// `AUDIT_EOE`: the end of one event's records.
const RECORD_EOE: u16 = 1320;
/// Unclaimed records kept per foreign or not yet known domain, and domains tracked.
const PENDING_PER_DOMAIN: usize = 256;
const PENDING_DOMAINS: usize = 64;

/// One access Landlock refused in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// What was missing, as Landlock names it (`fs.read_file`, `net.connect_tcp`, ...).
    pub blockers: String,
    /// The file, when the access was to one.
    pub path: Option<String>,
    /// The TCP port, for network accesses.
    pub port: Option<u16>,
    /// The destination address of a refused connect.
    pub daddr: Option<String>,
    /// The process, from the event's syscall record (0 and `?` when the kernel wrote none).
    pub pid: i32,
    pub exe: String,
}

impl Access {
    /// The profile key that would have allowed it.
    pub fn rule(&self) -> &'static str {
        let first = self.blockers.split(',').next().unwrap_or("");
        match first {
            "fs.execute" => "filesystem.execute",
            "fs.read_file" | "fs.read_dir" => "filesystem.read",
            b if b.starts_with("fs.") => "filesystem.write",
            "net.connect_tcp" => "network.connect",
            "net.bind_tcp" => "network.bind",
            _ => "(scoping)",
        }
    }

    /// Whether the access was a network one.
    pub fn is_network(&self) -> bool {
        self.blockers.starts_with("net.")
    }
}

/// The Landlock records of one sandbox.
#[derive(Debug)]
pub struct LandlockFeed {
    sock: OwnedFd,
    child_pid: u32,
    domain: Option<String>,
    pending: HashMap<String, Vec<Access>>,
    /// Our accesses of the event being read (its serial), waiting for its syscall record.
    event: Option<(String, Vec<Access>)>,
    /// Denials of our domain delivered so far.
    pub delivered: u64,
    /// The domain's own count, from its deallocation record.
    pub counted: Option<u64>,
    /// The socket overflowed at least once (records were dropped by the kernel).
    pub overflowed: bool,
}

impl LandlockFeed {
    /// Subscribes to the audit records; call before the child restricts itself.
    pub fn open() -> Result<Self, Errno> {
        let sock = audit::socket(audit::NLGRP_READLOG)?;
        // A bigger buffer for bursts: the kernel drops multicast records that do not fit.
        let size: libc::c_int = 4 * 1024 * 1024;
        // SAFETY: setsockopt with a c_int value of the size passed.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&raw const size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(LandlockFeed {
            sock,
            child_pid: 0,
            domain: None,
            pending: HashMap::new(),
            event: None,
            delivered: 0,
            counted: None,
            overflowed: false,
        })
    }

    /// The pid whose domain is the sandbox's (the child that called landlock_restrict_self).
    pub fn set_child(&mut self, pid: u32) {
        self.child_pid = pid;
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Whether the domain has been freed and reported its count (nothing more will come).
    pub fn finished(&self) -> bool {
        self.counted.is_some()
    }

    /// Whether the sandbox's domain has denied anything (only then is a count to come).
    pub fn has_domain(&self) -> bool {
        self.domain.is_some()
    }

    /// Reads every record queued now; returns the sandbox's denials among them. With `last`,
    /// the event still being read is complete too (the end of the run).
    pub fn drain(&mut self, last: bool) -> Vec<Access> {
        let mut out = Vec::new();
        loop {
            match recv_nonblocking(&self.sock) {
                Ok(Some((kind, text))) => self.take(kind, &text, &mut out),
                Ok(None) => break,
                Err(Errno::ENOBUFS) => self.overflowed = true,
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        if last && let Some((_, accesses)) = self.event.take() {
            out.extend(accesses);
        }
        out
    }

    fn take(&mut self, kind: u16, text: &str, out: &mut Vec<Access>) {
        let serial = serial(text);
        // A record of another event completes the one being read.
        if self
            .event
            .as_ref()
            .is_some_and(|(s, _)| Some(s.as_str()) != serial)
            && let Some((_, accesses)) = self.event.take()
        {
            out.extend(accesses);
        }
        match kind {
            RECORD_SYSCALL => {
                if let Some((_, accesses)) = self.event.as_mut() {
                    let f = fields(text);
                    let pid = f.get("pid").and_then(|p| p.parse().ok()).unwrap_or(0);
                    let exe = f.get("exe").cloned().unwrap_or_else(|| "?".to_owned());
                    for a in accesses.iter_mut() {
                        a.pid = pid;
                        a.exe.clone_from(&exe);
                    }
                }
                return;
            }
            RECORD_EOE => {
                if let Some((_, accesses)) = self.event.take() {
                    out.extend(accesses);
                }
                return;
            }
            _ => {}
        }
        let fields = fields(text);
        let Some(domain) = fields.get("domain").cloned() else {
            return;
        };
        match kind {
            RECORD_DOMAIN => {
                let status = fields.get("status").map(String::as_str);
                let pid = fields.get("pid").and_then(|p| p.parse::<u32>().ok());
                if status == Some("allocated") && pid == Some(self.child_pid) && pid != Some(0) {
                    if let Some(mine) = self.pending.remove(&domain) {
                        self.delivered += mine.len() as u64;
                        self.hold(serial, mine, out);
                    }
                    self.domain = Some(domain);
                } else if status == Some("deallocated") && self.domain.as_ref() == Some(&domain) {
                    self.counted = fields.get("denials").and_then(|n| n.parse().ok());
                }
            }
            RECORD_ACCESS => {
                let access = Access {
                    blockers: fields.get("blockers").cloned().unwrap_or_default(),
                    path: fields.get("path").cloned(),
                    port: fields
                        .get("dest")
                        .or_else(|| fields.get("lport"))
                        .and_then(|p| p.parse().ok()),
                    daddr: fields.get("daddr").cloned(),
                    pid: 0,
                    exe: "?".to_owned(),
                };
                if self.domain.as_ref() == Some(&domain) {
                    self.delivered += 1;
                    self.hold(serial, vec![access], out);
                } else if self.domain.is_none() {
                    // The domain record follows its first access record: keep a bounded few
                    // until we know whose domain this is.
                    if self.pending.len() >= PENDING_DOMAINS && !self.pending.contains_key(&domain)
                    {
                        return;
                    }
                    let list = self.pending.entry(domain).or_default();
                    if list.len() < PENDING_PER_DOMAIN {
                        list.push(access);
                    }
                }
            }
            _ => {}
        }
    }
}

impl LandlockFeed {
    /// Keeps `accesses` with their event until its syscall record names the process.
    fn hold(&mut self, serial: Option<&str>, accesses: Vec<Access>, out: &mut Vec<Access>) {
        let Some(serial) = serial else {
            out.extend(accesses);
            return;
        };
        match self.event.as_mut() {
            Some((s, held)) if s == serial => held.extend(accesses),
            _ => {
                if let Some((_, held)) = self.event.take() {
                    out.extend(held);
                }
                self.event = Some((serial.to_owned(), accesses));
            }
        }
    }
}

/// The `audit(<time>:<serial>)` stamp's serial, which all records of one event share.
fn serial(text: &str) -> Option<&str> {
    let stamp = text.strip_prefix("audit(")?.split_once(')')?.0;
    Some(stamp.split_once(':')?.1)
}

fn recv_nonblocking(sock: &OwnedFd) -> Result<Option<(u16, String)>, Errno> {
    let mut buf = [0u8; 8192];
    // SAFETY: receives into `buf`, which has the length passed.
    let n = unsafe {
        libc::recv(
            std::os::fd::AsRawFd::as_raw_fd(sock),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let err = Errno::last();
        return if err == Errno::EAGAIN {
            Ok(None)
        } else {
            Err(err)
        };
    }
    let n = usize::try_from(n).unwrap_or(0);
    if n < 16 {
        return Ok(None);
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    let text = String::from_utf8_lossy(&buf[16..n])
        .trim_end_matches('\0')
        .to_owned();
    Ok(Some((kind, text)))
}

/// The `key=value` fields of an audit record's text (after `audit(...): `); quoted values are
/// unquoted, hex-encoded paths (the kernel's form for unusual bytes) decoded.
pub fn fields(text: &str) -> HashMap<String, String> {
    let body = text.split_once("): ").map_or(text, |(_, b)| b);
    let mut out = HashMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, n)) => (v.to_owned(), n),
                None => (quoted.to_owned(), ""),
            }
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            let raw = &after[..end];
            let value = if key == "path" {
                decode_hex(raw).unwrap_or_else(|| raw.to_owned())
            } else {
                raw.to_owned()
            };
            (value, &after[end..])
        };
        out.insert(key.trim().to_owned(), value);
        rest = next.trim_start();
    }
    out
}

fn decode_hex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) || s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect();
    Some(String::from_utf8_lossy(&bytes?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_access_and_domain_records() {
        let f = fields(
            r#"audit(1733400000.123:456): domain=1a2b blockers=fs.read_file path="/etc/shadow" dev="vda" ino=1234"#,
        );
        assert_eq!(f["domain"], "1a2b");
        assert_eq!(f["blockers"], "fs.read_file");
        assert_eq!(f["path"], "/etc/shadow");
        let hex = fields("domain=1 blockers=fs.read_file path=2F746D702F6120622063 ino=5");
        assert_eq!(hex["path"], "/tmp/a b c");
        let d = fields(
            r#"domain=1a2b status=allocated mode=enforcing pid=77 uid=0 exe="/usr/bin/cat" comm="cat""#,
        );
        assert_eq!(d["pid"], "77");
        assert_eq!(d["exe"], "/usr/bin/cat");
    }

    #[test]
    fn serials_group_an_events_records() {
        assert_eq!(serial("audit(1796472904.024:226): domain=1"), Some("226"));
        assert_eq!(serial("domain=1"), None);
    }

    #[test]
    fn rules_name_the_key_to_change() {
        let a = |b: &str| Access {
            blockers: b.into(),
            path: None,
            port: None,
            daddr: None,
            pid: 0,
            exe: "?".into(),
        };
        assert_eq!(a("fs.read_file").rule(), "filesystem.read");
        assert_eq!(a("fs.write_file,fs.truncate").rule(), "filesystem.write");
        assert_eq!(a("fs.execute").rule(), "filesystem.execute");
        assert_eq!(a("net.connect_tcp").rule(), "network.connect");
    }
}
