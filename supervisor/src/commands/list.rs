//! `guard list`: every profile guard can find, where it comes from and which one a NAME means.

use std::process::ExitCode;

use crate::profile::Lookup;
use crate::profile::catalog::{self, Origin};

pub fn run() -> ExitCode {
    let lookup = Lookup::from_env();
    let entries = catalog::catalog(&lookup);
    let width = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:width$}  SOURCE", "NAME");
    for e in &entries {
        let mut line = format!("{:width$}  {}", e.name, e.origin.display(&e.name));
        if e.origin == Origin::Fragment {
            line.push_str("  (fragment: for extends; `guard explain` takes it too)");
        }
        if let Some(winner) = &e.shadowed_by {
            line.push_str(&format!("  (shadowed by {winner})"));
        }
        println!("{line}");
    }
    let searched: Vec<String> = lookup
        .dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    println!(
        "\nsearched, in order: {} (from $GUARD_PROFILE_PATH and /etc/guard/profiles), then the shipped profiles; a NAME means the first listed, and `extends` looks next to the extending file before all of these",
        searched.join(", ")
    );
    ExitCode::SUCCESS
}
