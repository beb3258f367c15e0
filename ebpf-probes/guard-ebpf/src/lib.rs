//! Exists so the supervisor can name this crate as a build-dependency (rebuild on probe changes).
#![no_std]
