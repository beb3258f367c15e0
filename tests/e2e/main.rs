//! End-to-end tests: every test here runs the real `guard` binary the way a user or an attacker
//! would, and asserts what can be seen from outside (exit status, stderr, files, listeners).

// Helpers outside `#[test]` functions panic too: a failed setup must stop the test with context.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code panics with context"
)]

mod ancestry;
mod attacks;
mod boundary;
mod check;
mod clean_state;
mod cli;
mod daemon;
mod daemon_limits;
mod daemon_seams;
mod daemon_support;
mod denials;
mod dns;
mod doctor;
mod enforce;
mod evidence;
mod exec;
mod explain;
mod harness;
mod identity;
mod learn;
mod model;
mod profile_input;
mod profiles;
mod scripts;
mod sockets;
mod support;
mod tool_fixtures;
mod tools;
mod unix;
mod vm;
