//! Builds the eBPF probes from `ebpf-probes/guard-ebpf` and places the object in OUT_DIR, where
//! `src/ebpf/loader.rs` embeds it with `include_bytes_aligned!`.
//!
//! The probes need a compiler whose `core` source is installed to build `core` for
//! `bpfel-unknown-none`; on these machines that is Debian's rustc 1.96 linked into rustup as
//! `deb-1.96` (docs/toolchain.md), whatever toolchain builds the supervisor itself.

use std::path::PathBuf;

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

#[path = "src/ebpf/stamp.rs"]
mod stamp;

/// The rustup toolchain that builds the probes.
const EBPF_TOOLCHAIN: &str = "deb-1.96";

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?,
    );
    let probes_dir = manifest_dir
        .parent()
        .context("supervisor/ has no parent directory")?
        .join("ebpf-probes/guard-ebpf");
    let probes_dir = probes_dir
        .to_str()
        .context("the eBPF crate's path is not UTF-8")?;

    // Debian's rustc is a stable compiler and `-Z build-std=core` is unstable; aya-build passes
    // that flag (and the child cargo honours it) only when RUSTC_BOOTSTRAP=1 is in its
    // environment. Setting it here scopes it to the eBPF build instead of the whole workspace.
    // SAFETY: build scripts are single-threaded at this point; nothing reads the environment
    // concurrently.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };

    aya_build::build_ebpf(
        [Package {
            name: "guard-ebpf",
            root_dir: probes_dir,
            ..Default::default()
        }],
        Toolchain::Custom(EBPF_TOOLCHAIN),
    )?;

    // The object's version stamp (names its bpffs pin directory), computed once here rather
    // than by every `guard exec` at start-up.
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = std::fs::read(out_dir.join("guard-probes")).context("reading the probe object")?;
    std::fs::write(out_dir.join("guard-probes.stamp"), stamp::stamp_of(&object))
        .context("writing the probe object's stamp")?;
    Ok(())
}
