//! `cargo xtask vm-test`: guard's tests on another kernel, in a qemu VM.
//!
//! The development hosts run a 6.18 kernel where BPF LSM and fentry programs are refused and
//! cgroup controllers sit on v1 hierarchies. The VM boots a Debian cloud kernel with BPF LSM
//! enabled and pure cgroup v2, from an initramfs holding the host's own userland and statically
//! linked guard binaries, runs the same tests there (plus those that only the VM can show, which
//! check `GUARD_VM=1`), and reports through the console and qemu's exit status.
//!
//! - [`kernel`]: the guest kernel, fetched with apt and cached;
//! - [`binaries`]: guard, its tests and the guest init, built statically;
//! - [`userland`] and [`elf`]: which host files the guest gets;
//! - [`guest`]: what a run adds (guard, the tests or one command) and the plan the guest runs;
//! - [`cpio`] and [`initramfs`]: the archive the kernel unpacks;
//! - [`qemu`]: booting and following the console;
//! - [`outcome`]: counts, skips, times and the verdict.

mod binaries;
mod cpio;
mod elf;
mod guest;
mod initramfs;
mod kernel;
mod outcome;
mod qemu;
mod userland;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

pub use kernel::{DebianKernel, KernelSpec};
pub use outcome::{Outcome, VmFailed};
pub use userland::all_packages as image_packages;

/// Guest memory: the initramfs (about 150 MB) is held twice while the kernel unpacks it, and the
/// memory-limit tests need room above their 64 MiB limit.
const MEMORY_MIB: u32 = 1024;

/// Options of `cargo xtask vm-test`.
#[derive(clap::Args, Debug, Clone)]
pub struct Options {
    /// The guest kernel: debian-6.12 (BPF LSM, Landlock ABI 6), debian-6.1 (Landlock ABI 2),
    /// debian-5.10 (no Landlock) or
    /// the path of a bzImage.
    #[arg(long, default_value = "debian-6.12", value_name = "KERNEL")]
    pub kernel: KernelSpec,
    /// Instead of the test suite, run one command (after `--`) under this profile in the VM.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Stop the VM after this many seconds and fail.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub timeout: u64,
    /// After `--`: a test name filter for the suite, or with `--profile` the command to run.
    #[arg(last = true, value_name = "FILTER|CMD")]
    pub rest: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kernel: KernelSpec::Debian(kernel::DebianKernel::V6_12),
            profile: None,
            timeout: 900,
            rest: Vec::new(),
        }
    }
}

/// Boots the VM for `options`; `invocation_dir` is where the user ran xtask (relative paths of
/// `--profile` and the guest's working directory for it). Fails when the suite failed, the
/// guest crashed or the run timed out.
pub fn run(options: &Options, invocation_dir: &Path) -> anyhow::Result<Outcome> {
    let root = std::env::current_dir()?;
    let vm_dir = root.join("target/vm");
    std::fs::create_dir_all(&vm_dir)
        .with_context(|| format!("cannot create {}", vm_dir.display()))?;

    let kernel = kernel::prepare(&options.kernel, &vm_dir.join("kernels"))?;
    let build_dir = vm_dir.join("build");
    let binaries = binaries::build(&build_dir)?;
    let userland = initramfs::userland_archive(&vm_dir)?;

    let (mut files, mut plan) = guest::base(&binaries)?;
    match &options.profile {
        None => guest::suite(
            &mut files,
            &mut plan,
            &root,
            &build_dir,
            &binaries,
            &options.rest,
        )?,
        Some(profile) => guest::one_command(
            &mut files,
            &mut plan,
            &binaries.guard,
            profile,
            &options.rest,
            invocation_dir,
        )?,
    }
    guest::finish(&mut files, &plan)?;
    let initrd = vm_dir.join("initramfs.cpio");
    initramfs::write(&initrd, &userland, &files)?;

    let boot = qemu::boot(
        &kernel,
        &initrd,
        MEMORY_MIB,
        Duration::from_secs(options.timeout),
    )?;
    match options.profile {
        None => outcome::suite(&boot, &options.rest),
        Some(_) => outcome::one_command(&boot),
    }
}
