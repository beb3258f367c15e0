//! The DNS gate: names, not addresses.
//!
//! A profile names the hosts a tool may reach (`api.example.com:443`, `*.example.com:443`);
//! their addresses rotate, and a lookup is itself a channel out. So every DNS query of a
//! sandbox (UDP or TCP to port 53, any address) is re-addressed in the kernel to this gate, in
//! the sandbox's supervisor (`guard-ebpf/src/gate.rs`). The gate answers only names
//! `network.connect` covers, by asking the host's resolvers a question it rebuilt (name and
//! type only), and allows the answer's addresses for that sandbox, on the rule's ports, for the
//! answer's TTL (between [`learned::TTL_FLOOR`] and [`learned::TTL_CAP`]). Any other name is
//! refused and recorded, and nothing of it leaves the host.
//!
//! - [`names`]: which names a profile covers;
//! - [`answer`]: what an answer says (CNAME chain, addresses, TTLs);
//! - [`learned`]: the learned addresses and their kernel entries;
//! - [`upstream`]: asking the host's resolvers;
//! - [`hosts`]: names `/etc/hosts` answers, which never reach the gate;
//! - [`server`]: the gate's sockets and thread.

pub mod answer;
pub mod hosts;
pub mod learned;
pub mod names;
pub mod server;
pub mod upstream;

pub use server::{BoundGate, GateConfig, GateRecord, RunningGate};
