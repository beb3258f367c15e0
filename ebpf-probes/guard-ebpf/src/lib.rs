//! Exists so the supervisor can name this crate as a build-dependency (rebuild on probe changes);
//! the probes themselves are the `guard-probes` binary (src/main.rs).
#![no_std]
