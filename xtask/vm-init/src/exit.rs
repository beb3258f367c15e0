//! Ending the VM with a verdict qemu turns into its exit status.
//!
//! qemu's `isa-debug-exit` device at I/O port 0xf4 exits qemu with `(value << 1) | 1`: writing 0
//! gives 1 (pass), writing 1 gives 3 (fail). A guest that panics or powers off instead makes
//! qemu exit 0, which the host counts as a failure.

/// The port of `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Ends the VM; never returns.
pub fn end_vm(passed: bool) -> ! {
    // SAFETY: sync takes no arguments.
    unsafe { libc::sync() };
    let value: u8 = if passed { 0 } else { 1 };
    // SAFETY: ioperm only changes this process's I/O permission bitmap (PID 1 is root).
    if unsafe { libc::ioperm(libc::c_ulong::from(DEBUG_EXIT_PORT), 4, 1) } == 0 {
        // SAFETY: the port was granted above; the debug-exit device ends qemu on this write,
        // and on a machine without it the write to an unused port does nothing.
        unsafe {
            std::arch::asm!(
                "out dx, al",
                in("dx") DEBUG_EXIT_PORT,
                in("al") value,
                options(nomem, nostack, preserves_flags)
            );
        }
    }
    // No debug-exit device: power off, which qemu reports as exit 0 (a failure to the host,
    // which then goes by the console report instead).
    println!("guard-vm: no isa-debug-exit device; powering off");
    // SAFETY: reboot with a valid command; PID 1 has CAP_SYS_BOOT.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
    loop {
        // PID 1 must not exit, whatever happened above.
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
