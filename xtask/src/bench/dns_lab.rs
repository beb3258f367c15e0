//! The DNS lookup benchmark's world: a network namespace of the bench's own with a resolver on
//! 127.0.0.1:53 that answers every query at once, and a `resolv.conf` naming it, bind-mounted
//! over `/etc/resolv.conf` in a mount namespace of each workload's own. Bare, the workload
//! asks that resolver directly; under guard, the sandbox's DNS gate asks it (the gate's
//! upstream is the `resolv.conf` guard reads). Same resolver, same socket calls: the ratio is
//! what the gate costs. Nothing of the host's network or files is touched.

use std::ffi::CString;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;

/// The namespace and the resolver serving in it (for as long as xtask runs).
pub struct DnsLab {
    netns: OwnedFd,
    resolv_conf: CString,
}

impl DnsLab {
    /// Creates the namespace, starts the resolver, and writes `dir/resolv.conf`.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let resolv = dir.join("resolv.conf");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").context("writing resolv.conf")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // unshare(CLONE_NEWNET) moves only this thread; the resolver's socket, made here,
        // stays in the new namespace.
        std::thread::spawn(move || {
            let made = (|| -> anyhow::Result<(OwnedFd, UdpSocket)> {
                // SAFETY: plain system call.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error()).context("unshare(CLONE_NEWNET)");
                }
                loopback_up()?;
                let netns = std::fs::File::open("/proc/thread-self/ns/net")
                    .context("opening the namespace")?
                    .into();
                let socket = UdpSocket::bind("127.0.0.1:53").context("binding 127.0.0.1:53")?;
                Ok((netns, socket))
            })();
            match made {
                Ok((netns, socket)) => {
                    let _ = tx.send(Ok(netns));
                    serve(&socket);
                }
                Err(err) => {
                    let _ = tx.send(Err(err));
                }
            }
        });
        let netns = rx.recv().context("the resolver thread")??;
        Ok(Self {
            netns,
            resolv_conf: CString::new(resolv.as_os_str().as_encoded_bytes())
                .context("NUL in the path")?,
        })
    }

    /// Makes `command` run in the lab: its network namespace, and `/etc/resolv.conf` naming
    /// the lab's resolver.
    pub fn enter(&self, command: &mut Command) {
        let netns = self.netns.as_raw_fd();
        let resolv = self.resolv_conf.clone();
        // SAFETY: only system calls on memory prepared before fork run in the child.
        unsafe {
            command.pre_exec(move || {
                let check = |rc: libc::c_int| {
                    if rc == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                check(libc::setns(netns, libc::CLONE_NEWNET))?;
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    resolv.as_ptr(),
                    c"/etc/resolv.conf".as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))
            });
        }
    }
}

/// Sets `lo` up in the calling thread's network namespace.
fn loopback_up() -> anyhow::Result<()> {
    // SAFETY: a socket for the ioctl and an ifreq-sized buffer holding the name and flags.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket");
        }
        let mut ifr = [0u8; 40];
        ifr[..2].copy_from_slice(b"lo");
        let flags = (libc::IFF_UP | libc::IFF_RUNNING) as i16;
        ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
        let rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, ifr.as_mut_ptr());
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(err).context("setting lo up");
        }
    }
    Ok(())
}

/// Answers every query with one A record (127.0.0.5, TTL 60), the question echoed.
fn serve(socket: &UdpSocket) {
    let mut buf = [0u8; 1500];
    while let Ok((n, peer)) = socket.recv_from(&mut buf) {
        let query = &buf[..n];
        // Header (12) and the question up to its end (name, type, class).
        let Some(end) = query
            .get(12..)
            .and_then(|q| q.iter().position(|&b| b == 0))
            .map(|zero| 12 + zero + 5)
            .filter(|&end| end <= n)
        else {
            continue;
        };
        let mut reply = Vec::with_capacity(end + 16);
        reply.extend_from_slice(&query[..2]);
        // Response, recursion desired and available; one question, one answer; no EDNS
        // (additional records of the query are not echoed).
        reply.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        reply.extend_from_slice(&query[12..end]);
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 5]);
        let _ = socket.send_to(&reply, peer);
    }
}
