//! Builds the eBPF probes from `ebpf-probes/guard-ebpf` and places the object in OUT_DIR.

fn main() -> anyhow::Result<()> {
    Ok(())
}
