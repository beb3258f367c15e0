//! `extends`: loading the fragments a profile names, depth first and in order, detecting cycles,
//! and merging them under the profile (see [`Profile::merge`]).
//!
//! Problems in any file of the chain are collected, each reported in its own file; a missing
//! fragment or a cycle is reported at the `extends` entry that names it.

use super::lookup::{Lookup, Source};
use super::parse::{Diagnostic, Reporter};
use super::typed::Profile;
use super::validate::parse_file;

/// The outcome of resolving one profile file.
#[derive(Debug)]
pub struct Resolved {
    /// The merged profile (meaningful only when `diagnostics` is empty).
    pub profile: Profile,
    /// The files merged, parents first, the profile itself last.
    pub layers: Vec<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads `top` and everything it extends.
pub fn resolve(top: &Source, lookup: &Lookup) -> Resolved {
    let mut r = Resolver {
        lookup,
        stack: Vec::new(),
        layers: Vec::new(),
        diagnostics: Vec::new(),
    };
    let profile = r.load(top).unwrap_or_default();
    Resolved {
        profile,
        layers: r.layers,
        diagnostics: r.diagnostics,
    }
}

struct Resolver<'a> {
    lookup: &'a Lookup,
    /// (id, display) of the files being loaded, outermost first: a cycle is an id seen twice.
    stack: Vec<(String, String)>,
    layers: Vec<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Resolver<'_> {
    fn load(&mut self, src: &Source) -> Option<Profile> {
        let parsed = match parse_file(&src.display, &src.text) {
            Ok(p) => p,
            Err(d) => {
                self.diagnostics.extend(d);
                return None;
            }
        };
        self.stack.push((src.id.clone(), src.display.clone()));
        let mut merged = Profile::default();
        let mut ok = true;
        for (i, entry) in parsed.extends.iter().enumerate() {
            let report = |message: String| {
                let mut rep = Reporter::new(&src.display, &src.text);
                rep.error(entry.span(), format!("extends[{i}]"), message);
                rep.found
            };
            let name = entry.get_ref();
            let found = match Source::fragment(name) {
                Some(f) => Ok(f),
                None => self.lookup.find(name, src.dir.as_deref()),
            };
            let parent = match found {
                Ok(p) => p,
                Err(e) => {
                    self.diagnostics
                        .extend(report(format!("cannot load `{name}`: {e}")));
                    ok = false;
                    continue;
                }
            };
            if let Some(at) = self.stack.iter().position(|(id, _)| *id == parent.id) {
                let mut cycle: Vec<&str> =
                    self.stack[at..].iter().map(|(_, d)| d.as_str()).collect();
                cycle.push(&parent.display);
                self.diagnostics
                    .extend(report(format!("extends cycle: {}", cycle.join(" -> "))));
                ok = false;
                continue;
            }
            match self.load(&parent) {
                Some(p) => merged.merge(&p),
                None => ok = false,
            }
        }
        merged.merge(&parsed.profile);
        // A profile's name and description describe that file only; they are not inherited.
        merged.name = parsed.profile.name;
        merged.description = parsed.profile.description;
        self.stack.pop();
        self.layers.push(src.display.clone());
        ok.then_some(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(display: &str, text: &str) -> Source {
        Source {
            display: display.into(),
            id: display.into(),
            dir: None,
            text: text.into(),
        }
    }

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("guard-extends-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn base_is_merged_under_the_profile() {
        let lookup = Lookup::new(None);
        let r = resolve(
            &src(
                "p.toml",
                "name = \"p\"\nextends = [\"base\"]\n[filesystem]\nread = [\"/data\"]\n",
            ),
            &lookup,
        );
        assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
        assert_eq!(r.layers, vec!["<builtin>/base.toml", "p.toml"]);
        let read: Vec<&str> = r
            .profile
            .filesystem
            .read
            .iter()
            .map(|t| t.as_str())
            .collect();
        assert!(read.contains(&"/etc/ld.so.cache"));
        assert_eq!(read.last(), Some(&"/data"));
        assert!(r.profile.syscalls.deny.iter().any(|s| s == "ptrace"));
        assert_eq!(r.profile.name.as_deref(), Some("p"));
    }

    #[test]
    fn cycles_are_reported_at_the_extends_entry() {
        let dir = tempdir("cycle");
        std::fs::write(dir.join("a.toml"), "name = \"a\"\nextends = [\"b\"]\n").unwrap();
        std::fs::write(
            dir.join("b.toml"),
            "name = \"b\"\nextends = [\"base\", \"a\"]\n",
        )
        .unwrap();
        let lookup = Lookup::new(Some(dir.as_os_str()));
        let top = lookup.find("a", None).unwrap();
        let r = resolve(&top, &lookup);
        assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
        let d = &r.diagnostics[0];
        assert!(d.file.ends_with("b.toml"), "{d}");
        assert_eq!((d.line, d.col, d.key.as_str()), (2, 20, "extends[1]"));
        assert!(d.message.contains("extends cycle"), "{d}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_fragments_and_errors_in_parents_are_all_reported() {
        let dir = tempdir("missing");
        std::fs::write(dir.join("bad.toml"), "name = \"bad\"\n[limits]\npids = 0\n").unwrap();
        let lookup = Lookup::new(Some(dir.as_os_str()));
        let r = resolve(
            &src("top.toml", "name = \"t\"\nextends = [\"nope\", \"bad\"]\n"),
            &lookup,
        );
        let keys: Vec<(&str, &str)> = r
            .diagnostics
            .iter()
            .map(|d| (d.key.as_str(), d.file.rsplit('/').next().unwrap_or("")))
            .collect();
        assert_eq!(
            keys,
            vec![("extends[0]", "top.toml"), ("limits.pids", "bad.toml")]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
