//! The guest side of `cargo xtask vm-test`: the run plan that xtask writes into the initramfs
//! and the guest's PID 1 reads ([`plan`]), and the console lines through which the guest reports
//! back ([`report`]). xtask depends on this library so both sides share one definition.

pub mod plan;
pub mod report;
