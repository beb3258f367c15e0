//! Types shared by the eBPF probes and the supervisor: event records and map keys/values, all
//! `#[repr(C)]` with their sizes checked at compile time.
#![no_std]
