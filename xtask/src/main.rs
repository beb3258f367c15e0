//! Project tasks: `cargo xtask setup | test`.

fn main() -> anyhow::Result<()> {
    Ok(())
}
