//! The learned profile as TOML text, with comments that say where each rule came from and what
//! the run did that the profile does not grant.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use super::observe::Observed;
use super::paths::{Places, Rule, Rules};

/// Everything the learned profile is made of.
pub struct Learned<'a> {
    /// The profile's name.
    pub name: &'a str,
    /// The command that was observed.
    pub command: &'a [String],
    /// The profile the run started from (`extends`), `base` by default.
    pub from: &'a str,
    pub places: &'a Places,
    pub rules: &'a Rules,
    pub observed: &'a Observed,
    /// `process.env.keep` of the learning run, kept the same.
    pub env_keep: &'a [String],
    /// The name servers of `/etc/resolv.conf`: UDP/TCP port 53 to them becomes `dns = true`.
    pub resolvers: &'a [IpAddr],
    /// Whether this kernel checks unix socket paths (Linux 6.7+): elsewhere a profile listing
    /// them is refused, so the paths seen become comments.
    pub unix_checked: bool,
}

/// The commented TOML of `learned`.
pub fn render(learned: &Learned<'_>) -> String {
    let places = learned.places;
    let mut o = String::new();
    let _ = writeln!(o, "# Learned by `guard learn` from one run of:");
    let _ = writeln!(o, "#   {}", learned.command.join(" "));
    let _ = writeln!(
        o,
        "# in {} (${{CWD}}); ${{HOME}} was {}, ${{TMPDIR}} {}.",
        places.cwd.display(),
        places
            .home
            .as_deref()
            .map_or("unset".into(), |h| h.display().to_string()),
        places.tmpdir.display()
    );
    match learned.observed.status {
        Some(0) => {}
        Some(code) => {
            let _ = writeln!(
                o,
                "# The command exited with status {code}: what it would have done after the \
                 failure was not seen."
            );
        }
        None => {
            let _ = writeln!(o, "# The command did not exit normally.");
        }
    }
    if learned.observed.lost > 0 {
        let _ = writeln!(
            o,
            "# WARNING: {} records were lost during the run; the profile may miss what they held.",
            learned.observed.lost
        );
    }
    let _ = writeln!(
        o,
        "# Only what the run did beyond `{}` is granted; a directory stands for a tree the\n\
         # command read (or wrote into), never for anything above it. Check it with\n\
         # `guard check`, see it with `guard explain`.",
        learned.from
    );
    if learned.rules.missing_reads > 0 {
        let _ = writeln!(
            o,
            "# {} paths the command looked for did not exist; they are not listed.",
            learned.rules.missing_reads
        );
    }
    let _ = writeln!(o, "name = {}", quote(learned.name));
    let _ = writeln!(o, "extends = [{}]", quote(learned.from));

    let rules = learned.rules;
    let _ = writeln!(o, "\n[filesystem]");
    list(&mut o, "read", &rules.read, places);
    list(&mut o, "write", &rules.write, places);
    list(&mut o, "execute", &rules.execute, places);

    let (dns, connect): (Vec<&String>, Vec<&String>) = learned
        .observed
        .connects
        .iter()
        .partition(|dst| is_resolver(dst, learned.resolvers));
    let connect: BTreeSet<String> = connect
        .iter()
        .map(|dst| learned.observed.named(dst))
        .collect();
    let _ = writeln!(o, "\n[network]");
    let _ = writeln!(
        o,
        "# Names where the run looked them up (guard's DNS gate then answers only these), else \
         addresses as reached."
    );
    strings(&mut o, "connect", connect.iter().map(|s| s.as_str()));
    strings(
        &mut o,
        "bind",
        learned.observed.binds.iter().map(String::as_str),
    );
    if !learned.observed.unix.is_empty() {
        if learned.unix_checked {
            strings(
                &mut o,
                "unix",
                learned.observed.unix.iter().map(String::as_str),
            );
        } else {
            let _ = writeln!(
                o,
                "# unix socket paths the run reached, not listed: this kernel cannot check them \
                 by path (Linux 6.7+), so a profile listing them is refused here:"
            );
            for path in &learned.observed.unix {
                let _ = writeln!(o, "#   {path}");
            }
        }
    }
    // Names in `connect` already open the gate; lookups with nothing named keep it open.
    if (!dns.is_empty() || learned.observed.looked_up) && learned.observed.names.is_empty() {
        let _ = writeln!(o, "dns = true");
    }

    let _ = writeln!(o, "\n[process]");
    list(&mut o, "exec", &rules.exec, places);
    let keep: Vec<String> = learned.env_keep.iter().map(|k| quote(k)).collect();
    let _ = writeln!(o, "env = {{ keep = [{}] }}", keep.join(", "));

    if !rules.not_granted.is_empty() || !learned.observed.refused_syscalls.is_empty() {
        let _ = writeln!(
            o,
            "\n# Seen in the run and NOT granted (the profile would refuse these):"
        );
        for (what, path, why) in &rules.not_granted {
            let _ = writeln!(o, "#   {what} {}: {why}", path.display());
        }
        for (syscall, times) in &learned.observed.refused_syscalls {
            let _ = writeln!(
                o,
                "#   syscall {syscall} ({times}x): refused by guard's baseline or `{}`",
                learned.from
            );
        }
    }
    o
}

/// `key = [ ... ]` with one path per line and its note, or `key = []`.
fn list(o: &mut String, key: &str, rules: &[Rule], places: &Places) {
    if rules.is_empty() {
        let _ = writeln!(o, "{key} = []");
        return;
    }
    let _ = writeln!(o, "{key} = [");
    for rule in rules {
        let _ = write!(o, "  {},", quote(&shown(&rule.path, places)));
        if let Some(note) = &rule.note {
            let _ = write!(o, "  # {note}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "]");
}

fn strings<'a>(o: &mut String, key: &str, items: impl Iterator<Item = &'a str>) {
    let items: Vec<String> = items.map(quote).collect();
    let _ = writeln!(o, "{key} = [{}]", items.join(", "));
}

/// `path` with `${CWD}`, `${TMPDIR}` or `${HOME}` for the longest of them it lies beneath.
pub fn shown(path: &Path, places: &Places) -> String {
    let mut best: Option<(&str, &Path)> = None;
    for (var, root) in [
        ("${CWD}", Some(places.cwd.as_path())),
        ("${TMPDIR}", Some(places.tmpdir.as_path())),
        ("${HOME}", places.home.as_deref()),
    ] {
        let Some(root) = root else { continue };
        if root == Path::new("/") || !path.starts_with(root) {
            continue;
        }
        if best.is_none_or(|(_, b)| root.components().count() > b.components().count()) {
            best = Some((var, root));
        }
    }
    match best {
        Some((var, root)) => {
            let rest = path.strip_prefix(root).unwrap_or(path);
            if rest.as_os_str().is_empty() {
                var.to_owned()
            } else {
                format!("{var}/{}", rest.display())
            }
        }
        None => path.display().to_string(),
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Whether `dst` (`addr:port`) is port 53 of one of `resolvers`.
fn is_resolver(dst: &str, resolvers: &[IpAddr]) -> bool {
    let Some((addr, port)) = dst.rsplit_once(':') else {
        return false;
    };
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    port == "53" && addr.parse::<IpAddr>().is_ok_and(|a| resolvers.contains(&a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn places() -> Places {
        Places {
            cwd: "/home/ann/proj".into(),
            home: Some("/home/ann".into()),
            tmpdir: "/tmp".into(),
        }
    }

    #[test]
    fn paths_show_the_deepest_variable() {
        let p = places();
        assert_eq!(shown(Path::new("/home/ann/proj/src"), &p), "${CWD}/src");
        assert_eq!(shown(Path::new("/home/ann/proj"), &p), "${CWD}");
        assert_eq!(
            shown(Path::new("/home/ann/.gitconfig"), &p),
            "${HOME}/.gitconfig"
        );
        assert_eq!(shown(Path::new("/tmp/x"), &p), "${TMPDIR}/x");
        assert_eq!(shown(Path::new("/usr/bin/git"), &p), "/usr/bin/git");
    }

    #[test]
    fn the_profile_parses_and_says_what_it_did_not_grant() {
        let p = places();
        let rules = Rules {
            read: vec![Rule {
                path: "/usr/lib/python3.11".into(),
                note: Some("40 paths seen beneath".into()),
            }],
            write: vec![Rule {
                path: "/home/ann/proj".into(),
                note: None,
            }],
            execute: vec![Rule {
                path: "/usr/bin/python3".into(),
                note: None,
            }],
            exec: vec![Rule {
                path: "/usr/bin/python3".into(),
                note: None,
            }],
            not_granted: vec![(
                "read",
                PathBuf::from("/proc/self/status"),
                "a /proc/<pid> path".into(),
            )],
            missing_reads: 0,
        };
        let mut observed = Observed::default();
        observed.connects.insert("127.0.0.1:8080".into());
        observed.connects.insert("10.0.0.2:53".into());
        observed.refused_syscalls.insert("ptrace".into(), 2);
        observed.status = Some(0);
        let text = render(&Learned {
            name: "learned-python3",
            command: &["python3".into(), "x.py".into()],
            from: "base",
            places: &p,
            rules: &rules,
            observed: &observed,
            env_keep: &["PATH".into()],
            resolvers: &["10.0.0.2".parse().unwrap()],
            unix_checked: true,
        });
        let value: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(value["filesystem"]["write"][0].as_str(), Some("${CWD}"));
        assert_eq!(
            value["network"]["connect"].as_array().unwrap().len(),
            1,
            "{text}"
        );
        assert_eq!(value["network"]["dns"].as_bool(), Some(true));
        assert!(text.contains("#   read /proc/self/status"), "{text}");
        assert!(text.contains("#   syscall ptrace (2x)"), "{text}");
    }
}
