//! Every profile guard can find, in lookup order: the search path's directories, then the
//! profiles shipped in the binary, then the built-in fragments. The first of a name wins; the
//! others are listed as shadowed by it, so `guard list` answers "which `build` will I get?".

use std::path::PathBuf;

use super::lookup::{FRAGMENTS, Lookup, SHIPPED};

/// Where a listed profile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file in a search directory.
    File(PathBuf),
    /// Shipped inside the binary.
    Shipped,
    /// A built-in fragment (`extends = ["base"]`); `guard explain` explains it on its own.
    Fragment,
}

/// One profile found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub origin: Origin,
    /// The entry of the same name that wins, when this one is shadowed.
    pub shadowed_by: Option<String>,
}

impl Origin {
    /// How the origin is shown.
    pub fn display(&self, name: &str) -> String {
        match self {
            Origin::File(path) => path.display().to_string(),
            Origin::Shipped => format!("<shipped>/{name}.toml"),
            Origin::Fragment => format!("<builtin>/{name}.toml"),
        }
    }
}

/// Every profile `lookup` can find, in the order a NAME is looked up.
pub fn catalog(lookup: &Lookup) -> Vec<Entry> {
    let mut found: Vec<(String, Origin)> = Vec::new();
    for dir in &lookup.dirs {
        let Ok(read) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<(String, PathBuf)> = read
            .filter_map(Result::ok)
            .filter_map(|e| {
                let path = e.path();
                let name = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".toml")?
                    .to_owned();
                path.is_file().then_some((name, path))
            })
            .collect();
        names.sort();
        found.extend(names.into_iter().map(|(n, p)| (n, Origin::File(p))));
    }
    if lookup.shipped {
        found.extend(
            SHIPPED
                .iter()
                .map(|(n, _)| ((*n).to_owned(), Origin::Shipped)),
        );
    }
    found.extend(
        FRAGMENTS
            .iter()
            .map(|(n, _)| ((*n).to_owned(), Origin::Fragment)),
    );

    let mut winners: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    found
        .into_iter()
        .map(|(name, origin)| {
            let shown = origin.display(&name);
            let shadowed_by = match winners.get(&name) {
                Some(winner) => Some(winner.clone()),
                None => {
                    winners.insert(name.clone(), shown);
                    None
                }
            };
            Entry {
                name,
                origin,
                shadowed_by,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_a_name_wins_and_the_rest_are_shadowed() {
        let dir = std::env::temp_dir().join(format!("guard-catalog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("build.toml"), "name = \"build\"\n").unwrap();
        std::fs::write(dir.join("mine.toml"), "name = \"mine\"\n").unwrap();
        let lookup = Lookup {
            dirs: vec![dir.clone()],
            shipped: true,
        };
        let entries = catalog(&lookup);
        let _ = std::fs::remove_dir_all(&dir);
        let build: Vec<&Entry> = entries.iter().filter(|e| e.name == "build").collect();
        assert_eq!(build.len(), 2);
        assert_eq!(build[0].shadowed_by, None);
        assert_eq!(build[0].origin, Origin::File(dir.join("build.toml")));
        assert_eq!(
            build[1].shadowed_by.as_deref(),
            Some(dir.join("build.toml").to_str().unwrap())
        );
        assert!(entries.iter().any(|e| e.name == "mine"));
        assert!(
            entries
                .iter()
                .any(|e| e.name == "base" && e.origin == Origin::Fragment)
        );
    }
}
