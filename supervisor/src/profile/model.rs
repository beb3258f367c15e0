//! The profile file as serde reads it: every key of the format, with source spans, unknown keys
//! rejected. Values stay close to their TOML spelling here; [`super::validate`] turns them into
//! typed values and reports every bad one.
//!
//! Keys beyond design.md: `allow_weaker = ["landlock.net", "landlock.scope", "bpf.lsm"]` lists
//! the parts of the policy the profile accepts to have enforced more weakly on hosts whose
//! kernel lacks the feature; everything else is required and `guard exec` fails closed.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type Str = Spanned<String>;
pub type StrList = Option<Spanned<Vec<Str>>>;

/// One profile file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub name: Option<Str>,
    pub description: Option<Str>,
    pub extends: StrList,
    pub allow_weaker: StrList,
    #[serde(default)]
    pub filesystem: RawFilesystem,
    #[serde(default)]
    pub network: RawNetwork,
    #[serde(default)]
    pub process: RawProcess,
    #[serde(default)]
    pub syscalls: RawSyscalls,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub on_violation: RawOnViolation,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    pub read: StrList,
    pub write: StrList,
    pub execute: StrList,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub connect: StrList,
    pub bind: StrList,
    pub unix: StrList,
    pub dns: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProcess {
    pub exec: StrList,
    pub exec_writable: Option<Spanned<bool>>,
    pub user: Option<Str>,
    pub env: Option<RawEnv>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnv {
    pub keep: StrList,
    pub set: Option<BTreeMap<Str, Str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSyscalls {
    pub deny: StrList,
    pub action: Option<Str>,
}

/// Limits accept strings ("512MiB", "5m") or numbers, so they are read as any TOML value and
/// typed by the validator, which can then report every bad limit rather than the first.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub memory: Option<Spanned<toml::Value>>,
    pub pids: Option<Spanned<toml::Value>>,
    pub cpu: Option<Spanned<toml::Value>>,
    pub wall_time: Option<Spanned<toml::Value>>,
    pub cpu_time: Option<Spanned<toml::Value>>,
    pub open_files: Option<Spanned<toml::Value>>,
    pub connects_per_minute: Option<Spanned<toml::Value>>,
    pub execs_per_minute: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOnViolation {
    pub action: Option<Str>,
    pub network: Option<Str>,
    pub exec: Option<Str>,
}
