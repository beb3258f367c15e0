//! End-to-end tests: every test here runs the real `guard` binary the way a user or an attacker
//! would, and asserts what can be seen from outside (exit status, stderr, files, listeners).

mod check;
mod doctor;
mod ebpf;
mod exec;
mod explain;
mod support;
