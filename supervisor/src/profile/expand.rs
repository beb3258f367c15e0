//! `${CWD}`, `${HOME}` and `${TMPDIR}` in profile paths and environment values.
//!
//! A [`Template`] is checked when the profile is validated (unknown variables, relative paths),
//! and expanded later against an explicit [`ExpandContext`], so the values come from the caller
//! and tests need no environment.

use std::path::PathBuf;

/// The variables a profile may use.
pub const VARIABLES: [&str; 3] = ["CWD", "HOME", "TMPDIR"];

/// Values of the profile variables for one sandbox start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandContext {
    /// `${CWD}`: the command's working directory (`--workdir` or guard's own).
    pub cwd: PathBuf,
    /// `${HOME}`; `None` when the caller has no home, so a profile using it fails to compile.
    pub home: Option<PathBuf>,
    /// `${TMPDIR}`: `$TMPDIR` of the caller, `/tmp` when unset.
    pub tmpdir: PathBuf,
}

impl ExpandContext {
    /// The context of the calling process: its cwd, `$HOME`, `$TMPDIR` (or `/tmp`).
    pub fn from_process() -> std::io::Result<Self> {
        let non_empty = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Ok(ExpandContext {
            cwd: std::env::current_dir()?,
            home: non_empty("HOME"),
            tmpdir: non_empty("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp")),
        })
    }

    fn value(&self, var: &str) -> Result<&std::path::Path, ExpandError> {
        let v = match var {
            "CWD" => Some(&self.cwd),
            "HOME" => self.home.as_ref(),
            "TMPDIR" => Some(&self.tmpdir),
            _ => None,
        }
        .ok_or_else(|| ExpandError::Unset(var.to_owned()))?;
        if !v.is_absolute() {
            return Err(ExpandError::NotAbsolute {
                var: var.to_owned(),
                value: v.clone(),
            });
        }
        // A rule on `${CWD}` or `${HOME}` means "this project" or "this user's files"; when
        // either is the root directory (a tool started from `/`, a service user whose home is
        // `/`), the same rule would grant the whole file system. Symlinks resolving to `/`
        // count too: Landlock follows them when the rule is opened.
        let named = match var {
            "CWD" => Some("CWD"),
            "HOME" => Some("HOME"),
            _ => None,
        };
        if let Some(named) = named
            && is_root_dir(v)
        {
            return Err(ExpandError::RootDir {
                var: named,
                value: v.clone(),
            });
        }
        Ok(v)
    }
}

/// Why a template could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("${{{0}}} has no value here")]
    Unset(String),
    #[error("${{{var}}} is `{}`, not an absolute path", value.display())]
    NotAbsolute { var: String, value: PathBuf },
    #[error("`{}` contains `..` after expansion", .0.display())]
    ParentDir(PathBuf),
    #[error(
        "${{{var}}} is `{}`, the root directory: a rule on it would cover the whole file system; \
         run guard from (or with --workdir / HOME set to) a directory below `/`",
        value.display()
    )]
    RootDir { var: &'static str, value: PathBuf },
}

/// Whether `path` is `/` (spelled `//`, `/.`, ... or through a symlink).
fn is_root_dir(path: &std::path::Path) -> bool {
    use std::path::Component;
    path.components()
        .all(|c| matches!(c, Component::RootDir | Component::CurDir))
        || std::fs::canonicalize(path).is_ok_and(|p| p == std::path::Path::new("/"))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Piece {
    Text(String),
    Var(String),
}

/// A string with `${VAR}` references, checked for syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    raw: String,
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses `s`; `$` must start a `${VAR}` with a known VAR.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            if i > 0 {
                pieces.push(Piece::Text(rest[..i].to_owned()));
            }
            let after = &rest[i + 1..];
            let inner = after
                .strip_prefix('{')
                .and_then(|a| a.split_once('}'))
                .ok_or_else(|| {
                    format!("`{s}`: `$` must start `${{CWD}}`, `${{HOME}}` or `${{TMPDIR}}`")
                })?;
            if !VARIABLES.contains(&inner.0) {
                return Err(format!(
                    "unknown variable `${{{}}}` (known: ${{CWD}}, ${{HOME}}, ${{TMPDIR}})",
                    inner.0
                ));
            }
            pieces.push(Piece::Var(inner.0.to_owned()));
            rest = inner.1;
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template {
            raw: s.to_owned(),
            pieces,
        })
    }

    /// Parses a path: as [`Template::parse`], and it must be absolute once expanded (it starts
    /// with `/` or with a variable, whose values are checked absolute at expansion).
    pub fn parse_path(s: &str) -> Result<Self, String> {
        let t = Self::parse(s)?;
        // `..` would let a path be beneath a write path without saying so, which the check
        // for links planted in write paths (sandbox::rule_paths) compares by components.
        if s.split('/').any(|component| component == "..") {
            return Err(format!("`{s}` contains `..`: write the path without it"));
        }
        // A rule is opened by the supervisor, so `/proc/<pid>` names a process that is never
        // the tool (issue 11): granting it would open another process's files to the sandbox.
        let mut components = s.split('/').filter(|c| !c.is_empty());
        let first = components.next();
        let second = components.clone().next();
        if first == Some("proc") && matches!(second, Some("self" | "thread-self")) {
            return Err(format!(
                "`{s}`: a rule path is opened by the supervisor, so /proc/self would be guard's own process, never the tool: refusing it"
            ));
        }
        if first == Some("proc")
            && components
                .next()
                .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "`{s}` names a fixed process id under /proc, which is never the sandboxed tool: \
                 refusing it"
            ));
        }
        match t.pieces.first() {
            Some(Piece::Var(_)) => Ok(t),
            Some(Piece::Text(x)) if x.starts_with('/') => Ok(t),
            _ => Err(format!("`{s}` is not an absolute path")),
        }
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The variables the template uses.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Substitutes the variables.
    pub fn expand(&self, ctx: &ExpandContext) -> Result<String, ExpandError> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(&ctx.value(v)?.to_string_lossy()),
            }
        }
        Ok(out)
    }

    /// Substitutes the variables and returns the path.
    pub fn expand_path(&self, ctx: &ExpandContext) -> Result<PathBuf, ExpandError> {
        let path = PathBuf::from(self.expand(ctx)?);
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(ExpandError::ParentDir(path));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ExpandContext {
        ExpandContext {
            cwd: "/work/p".into(),
            home: Some("/home/u".into()),
            tmpdir: "/tmp".into(),
        }
    }

    #[test]
    fn variables_expand_from_the_context() {
        let t = Template::parse_path("${HOME}/.cargo").unwrap();
        assert_eq!(
            t.expand_path(&ctx()).unwrap(),
            PathBuf::from("/home/u/.cargo")
        );
        let t = Template::parse_path("${CWD}").unwrap();
        assert_eq!(t.expand_path(&ctx()).unwrap(), PathBuf::from("/work/p"));
        let t = Template::parse_path("/x/${TMPDIR}y").unwrap();
        assert_eq!(t.expand(&ctx()).unwrap(), "/x//tmpy");
    }

    #[test]
    fn unknown_variables_and_relative_paths_are_errors() {
        assert!(
            Template::parse_path("${USER}/x")
                .unwrap_err()
                .contains("unknown variable `${USER}`")
        );
        assert!(Template::parse_path("$HOME/x").is_err());
        assert!(Template::parse_path("${HOME").is_err());
        assert!(
            Template::parse_path("tmp")
                .unwrap_err()
                .contains("not an absolute path")
        );
        assert!(Template::parse_path("").is_err());
        assert!(
            Template::parse_path("/proc/1234/environ")
                .unwrap_err()
                .contains("fixed process id")
        );
        assert!(Template::parse_path("//proc/1").is_err());
        assert!(Template::parse_path("/proc/sysvipc").is_ok());
        assert!(Template::parse_path("/proc/self").is_err());
        assert!(Template::parse_path("/proc/self/status").is_err());
        assert!(Template::parse_path("/proc/thread-self/x").is_err());
        assert!(Template::parse_path("/proc/selfish").is_ok());
    }

    #[test]
    fn missing_or_relative_values_fail_expansion() {
        let mut c = ctx();
        c.home = None;
        let t = Template::parse_path("${HOME}").unwrap();
        assert_eq!(t.expand(&c), Err(ExpandError::Unset("HOME".into())));
        c.tmpdir = "rel".into();
        let t = Template::parse_path("${TMPDIR}").unwrap();
        assert!(matches!(t.expand(&c), Err(ExpandError::NotAbsolute { .. })));
    }

    #[test]
    fn parent_components_are_refused() {
        assert!(Template::parse_path("/tmp/x/../etc").is_err());
        assert!(Template::parse_path("${CWD}/..").is_err());
        assert!(Template::parse_path("/tmp/..x/y").is_ok());
        let mut c = ctx();
        c.home = Some("/home/u/../root".into());
        let t = Template::parse_path("${HOME}/.cargo").unwrap();
        assert!(matches!(t.expand_path(&c), Err(ExpandError::ParentDir(_))));
    }

    #[test]
    fn cwd_or_home_at_the_root_directory_is_refused() {
        let t = Template::parse_path("${CWD}/x").unwrap();
        for root in ["/", "//", "/.", "/./"] {
            let mut c = ctx();
            c.cwd = root.into();
            assert!(
                matches!(
                    t.expand_path(&c),
                    Err(ExpandError::RootDir { var: "CWD", .. })
                ),
                "{root}"
            );
        }
        let link = std::env::temp_dir().join(format!("guard-root-link-{}", std::process::id()));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/", &link).unwrap();
        let mut c = ctx();
        c.home = Some(link.clone());
        let home = Template::parse_path("${HOME}").unwrap();
        let refused = home.expand_path(&c);
        std::fs::remove_file(&link).unwrap();
        assert!(matches!(
            refused,
            Err(ExpandError::RootDir { var: "HOME", .. })
        ));
        // TMPDIR=/ is odd but grants nothing beyond what a profile names; only CWD and HOME
        // stand for "this project" / "this user".
        let mut c = ctx();
        c.tmpdir = "/".into();
        assert!(
            Template::parse_path("${TMPDIR}")
                .unwrap()
                .expand(&c)
                .is_ok()
        );
    }
}
