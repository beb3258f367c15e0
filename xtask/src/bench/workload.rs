//! The programs the micro-benchmarks time: `xtask bench-workload <kind> ...`, a hidden
//! subcommand of xtask itself, run once bare and once under `guard exec` with the same
//! arguments.
//!
//! Each workload times its own loop with a monotonic clock and prints one line,
//! `ops=<N> ns=<loop time> failed=<F> killed=<K> cpu_ns=<C> vcsw=<V>`, so the bench can compare
//! the cost of the operation itself, without guard's start-up, next to the whole run's wall
//! time; `cpu_ns` and `vcsw` (its own and its children's CPU time and voluntary context
//! switches) let the bench tell guard's share of a guarded run's CPU from the workload's. The loops
//! call libc directly: std's wrappers add allocation and error mapping, and python's
//! interpreter would swamp a 100 ns system call.

use std::ffi::CString;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::rss::Usage;

/// `cargo xtask bench-workload` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Debug, clap::Subcommand)]
enum Kind {
    /// `getppid()` COUNT times: a system call the seccomp filter allows unconditionally.
    Getppid {
        /// Install this seccomp filter first (a reference for what guard's filter costs).
        #[arg(long, value_enum)]
        filter: Option<Filter>,
        count: u64,
    },
    /// COUNT TCP connects to 127.0.0.1:PORT, each closed with a reset.
    Connect { port: u16, count: u64 },
    /// COUNT one-byte UDP datagrams from one unconnected socket to 127.0.0.1:PORT.
    Udp { port: u16, count: u64 },
    /// COUNT DNS lookups of `bench.test` (type A) over one connected UDP socket to
    /// 127.0.0.1:53, each answer waited for and checked, as a stub resolver does.
    Dns { count: u64 },
    /// fork+exec of PROGRAM COUNT times, each waited for.
    Spawn { program: String, count: u64 },
    /// COUNT RCU grace periods, each waited for with `membarrier(MEMBARRIER_CMD_GLOBAL)`,
    /// which is `synchronize_rcu()` on a multi-CPU host: the wait some of guard's kernel calls
    /// pay.
    Rcu { count: u64 },
    /// fork+exec of PROGRAM for SECONDS from THREADS loops, as fast as they go or at most
    /// RATE per second in total.
    Storm {
        program: String,
        seconds: f64,
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 1)]
        threads: u32,
    },
}

/// Reference seccomp filters for the getppid workload.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Filter {
    /// One instruction, `return ALLOW`: every syscall constant-allowed, so the kernel's action
    /// cache answers without running it. The floor of any seccomp filter.
    Allow,
    /// Loads the first argument, then allows: the kernel cannot prove the result constant, so
    /// the filter runs on every call (what a filter that defeats the cache costs).
    Uncached,
}

/// What one workload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Operations that succeeded.
    pub ops: u64,
    /// Loop time in nanoseconds.
    pub ns: u64,
    /// Operations that failed (an error return or a non-zero exit).
    pub failed: u64,
    /// Spawned processes killed by SIGKILL (guard's exec probe kills rather than denies).
    pub killed: u64,
    /// CPU time (user and system) of the workload and the children it waited for, in ns.
    pub cpu_ns: u64,
    /// Voluntary context switches of the workload and its children.
    pub vcsw: u64,
}

impl Tally {
    /// The line a workload prints.
    pub fn to_line(self) -> String {
        format!(
            "ops={} ns={} failed={} killed={} cpu_ns={} vcsw={}",
            self.ops, self.ns, self.failed, self.killed, self.cpu_ns, self.vcsw
        )
    }

    /// Parses [`Tally::to_line`]'s output (the last such line of `stdout`).
    pub fn parse(stdout: &str) -> anyhow::Result<Self> {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("ops="))
            .with_context(|| format!("no `ops=` line in the workload's output: {stdout:?}"))?;
        let mut tally = Tally::default();
        for field in line.split_whitespace() {
            let (key, value) = field
                .split_once('=')
                .with_context(|| format!("malformed field `{field}`"))?;
            let value: u64 = value
                .parse()
                .with_context(|| format!("malformed number in `{field}`"))?;
            match key {
                "ops" => tally.ops = value,
                "ns" => tally.ns = value,
                "failed" => tally.failed = value,
                "killed" => tally.killed = value,
                "cpu_ns" => tally.cpu_ns = value,
                "vcsw" => tally.vcsw = value,
                _ => bail!("unknown field `{key}`"),
            }
        }
        Ok(tally)
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut tally = match &args.kind {
        Kind::Getppid { filter, count } => {
            if let Some(filter) = filter {
                install(*filter)?;
            }
            getppid(*count)
        }
        Kind::Connect { port, count } => connect(*port, *count)?,
        Kind::Udp { port, count } => udp(*port, *count)?,
        Kind::Dns { count } => dns(*count)?,
        Kind::Rcu { count } => grace_periods(*count)?,
        Kind::Spawn { program, count } => {
            let program = Program::new(program)?;
            timed(|tally| {
                for _ in 0..*count {
                    program.spawn_wait(tally)?;
                }
                Ok(())
            })?
        }
        Kind::Storm {
            program,
            seconds,
            rate,
            threads,
        } => storm(&Program::new(program)?, *seconds, *rate, *threads)?,
    };
    let usage = Usage::own();
    tally.cpu_ns = usage.cpu_ns;
    tally.vcsw = usage.vcsw;
    println!("{}", tally.to_line());
    Ok(())
}

/// Runs `body` and fills in the loop time.
fn timed(body: impl FnOnce(&mut Tally) -> anyhow::Result<()>) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let start = Instant::now();
    body(&mut tally)?;
    tally.ns = nanos(start.elapsed());
    Ok(tally)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn getppid(count: u64) -> Tally {
    let start = Instant::now();
    let mut sum: i64 = 0;
    for _ in 0..count {
        // The raw system call: glibc has never cached getppid, but this says so for certain.
        // SAFETY: getppid takes no arguments and cannot fail.
        sum = sum.wrapping_add(unsafe { libc::syscall(libc::SYS_getppid) });
    }
    std::hint::black_box(sum);
    Tally {
        ops: count,
        ns: nanos(start.elapsed()),
        ..Tally::default()
    }
}

/// Installs a reference seccomp filter on this process.
fn install(filter: Filter) -> anyhow::Result<()> {
    // `struct seccomp_data`: nr (4 bytes), arch (4), instruction_pointer (8), then args.
    const ARGS_OFFSET: u32 = 16;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let ret_allow = libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: RET_ALLOW,
    };
    let load_arg = libc::sock_filter {
        code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k: ARGS_OFFSET,
    };
    let program: Vec<libc::sock_filter> = match filter {
        Filter::Allow => vec![ret_allow],
        Filter::Uncached => vec![load_arg, ret_allow],
    };
    let fprog = libc::sock_fprog {
        len: u16::try_from(program.len()).context("filter too long")?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with integer arguments; seccomp reads `fprog`, which outlives the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error()).context("PR_SET_NO_NEW_PRIVS");
        }
        if libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &raw const fprog,
        ) != 0
        {
            return Err(std::io::Error::last_os_error()).context("installing the seccomp filter");
        }
    }
    Ok(())
}

/// `MEMBARRIER_CMD_GLOBAL` from `<linux/membarrier.h>` (the libc crate does not export it).
const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;

fn grace_periods(count: u64) -> anyhow::Result<Tally> {
    timed(|tally| {
        for _ in 0..count {
            // SAFETY: membarrier with a command and zero flags touches no memory of ours.
            let done = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
            if done != 0 {
                return Err(std::io::Error::last_os_error()).context("membarrier");
            }
            tally.ops += 1;
        }
        Ok(())
    })
}

/// 127.0.0.1:`port` as a C socket address.
fn loopback(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    }
}

const SOCKADDR_IN_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_in>() as _;

fn connect(port: u16, count: u64) -> anyhow::Result<Tally> {
    let addr = loopback(port);
    // A reset on close leaves no TIME_WAIT socket behind: 20,000 connects per run, several runs,
    // would otherwise use up the ephemeral ports.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    timed(|tally| {
        for _ in 0..count {
            // SAFETY: plain socket calls on a descriptor this loop owns and closes.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error()).context("socket");
                }
                let connected = libc::connect(fd, (&raw const addr).cast(), SOCKADDR_IN_LEN) == 0;
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
                libc::close(fd);
                if connected {
                    tally.ops += 1;
                } else {
                    tally.failed += 1;
                }
            }
        }
        Ok(())
    })
}

fn udp(port: u16, count: u64) -> anyhow::Result<Tally> {
    let addr = loopback(port);
    // SAFETY: a plain socket call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket");
    }
    let byte = [0u8; 1];
    // Unconnected: every sendto carries its destination, so guard's sendmsg4 hook runs on each.
    let result = timed(|tally| {
        for _ in 0..count {
            // SAFETY: the buffer and address outlive the call.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    byte.as_ptr().cast(),
                    byte.len(),
                    0,
                    (&raw const addr).cast(),
                    SOCKADDR_IN_LEN,
                )
            };
            if sent == 1 {
                tally.ops += 1;
            } else {
                tally.failed += 1;
            }
        }
        Ok(())
    });
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    result
}

/// The name the DNS workload looks up (the bench profile lists it; the bench's resolver
/// answers it).
pub const DNS_NAME: &str = "bench.test";

/// A DNS query for [`DNS_NAME`], type A, with `id`.
pub fn dns_query(id: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(32);
    q.extend_from_slice(&id.to_be_bytes());
    // Recursion desired; one question.
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in DNS_NAME.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

fn dns(count: u64) -> anyhow::Result<Tally> {
    let server = loopback(53);
    // Not std's UdpSocket, which binds first: the bench profile grants no bind, and a stub
    // resolver only connects (the kernel picks the local port).
    // SAFETY: plain socket calls on a descriptor closed below; the buffers outlive the calls.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket");
    }
    let timeout = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: as above.
    let ready = unsafe {
        libc::connect(fd, (&raw const server).cast(), SOCKADDR_IN_LEN) == 0
            && libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            ) == 0
    };
    if !ready {
        let err = std::io::Error::last_os_error();
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(fd) };
        return Err(err).context("connecting to 127.0.0.1:53");
    }
    let mut answer = [0u8; 1500];
    let result = timed(|tally| {
        for i in 0..count {
            let id = i as u16;
            let query = dns_query(id);
            // SAFETY: as above.
            let (sent, n) = unsafe {
                (
                    libc::send(fd, query.as_ptr().cast(), query.len(), 0),
                    libc::recv(fd, answer.as_mut_ptr().cast(), answer.len(), 0),
                )
            };
            // Our id, a response, no error, one answer or more.
            let ok = sent == query.len() as isize
                && n >= 12
                && answer[..2] == id.to_be_bytes()
                && answer[2] & 0x80 != 0
                && answer[3] & 0x0f == 0
                && u16::from_be_bytes([answer[6], answer[7]]) >= 1;
            if ok {
                tally.ops += 1;
            } else {
                tally.failed += 1;
            }
        }
        Ok(())
    });
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    result
}

/// A program to run with no arguments and an empty environment, prepared once.
struct Program {
    path: CString,
}

impl Program {
    fn new(path: &str) -> anyhow::Result<Self> {
        Ok(Self {
            path: CString::new(path).context("NUL in the program path")?,
        })
    }

    /// fork+exec and wait; counts the outcome.
    fn spawn_wait(&self, tally: &mut Tally) -> anyhow::Result<()> {
        let argv = [self.path.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let mut pid: libc::pid_t = 0;
        // posix_spawn is glibc's vfork-style clone+exec, what a shell or an agent's runtime
        // uses for a tool call.
        // SAFETY: argv and envp are NULL-terminated arrays of live C strings.
        let err = unsafe {
            libc::posix_spawn(
                &mut pid,
                self.path.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                argv.as_ptr().cast(),
                envp.as_ptr().cast(),
            )
        };
        if err != 0 {
            tally.failed += 1;
            return Ok(());
        }
        let mut status = 0;
        // SAFETY: waiting for the child just spawned.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            return Err(std::io::Error::last_os_error()).context("waitpid");
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            tally.ops += 1;
        } else if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL {
            tally.killed += 1;
        } else {
            tally.failed += 1;
        }
        Ok(())
    }
}

/// Spawns `program` from `threads` loops until `seconds` have passed; paced to `rate` per
/// second in total when given.
fn storm(
    program: &Program,
    seconds: f64,
    rate: Option<f64>,
    threads: u32,
) -> anyhow::Result<Tally> {
    let length = Duration::from_secs_f64(seconds);
    let threads = threads.max(1);
    // Each loop keeps its share of the rate.
    let interval = rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(f64::from(threads) / r));
    let start = Instant::now();
    let tallies = std::thread::scope(|scope| {
        let loops: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| storm_loop(program, start, length, interval)))
            .collect();
        loops
            .into_iter()
            .map(|l| {
                l.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a storm loop panicked")))
            })
            .collect::<anyhow::Result<Vec<Tally>>>()
    })?;
    let mut total = Tally {
        ns: nanos(start.elapsed()),
        ..Tally::default()
    };
    for tally in tallies {
        total.ops += tally.ops;
        total.failed += tally.failed;
        total.killed += tally.killed;
    }
    Ok(total)
}

fn storm_loop(
    program: &Program,
    start: Instant,
    length: Duration,
    interval: Option<Duration>,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut started: u32 = 0;
    while start.elapsed() < length {
        if let Some(interval) = interval {
            // Paced against the start, not the previous spawn, so a slow spawn is caught up
            // rather than lowering the rate.
            let due = interval * started;
            let now = start.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        program.spawn_wait(&mut tally)?;
        started = started.saturating_add(1);
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_line_round_trips() {
        let tally = Tally {
            ops: 20_000,
            ns: 123_456_789,
            failed: 2,
            killed: 1,
            cpu_ns: 5,
            vcsw: 6,
        };
        assert_eq!(
            tally.to_line(),
            "ops=20000 ns=123456789 failed=2 killed=1 cpu_ns=5 vcsw=6"
        );
        assert_eq!(
            Tally::parse(&format!("noise\n{}\n", tally.to_line())).unwrap(),
            tally
        );
        assert!(Tally::parse("nothing here").is_err());
        assert!(Tally::parse("ops=1 ns=x").is_err());
        assert!(Tally::parse("ops=1 bogus=2").is_err());
    }

    #[test]
    fn getppid_counts_its_calls() {
        let tally = getppid(1000);
        assert_eq!(tally.ops, 1000);
        assert_eq!(tally.failed, 0);
    }
}
