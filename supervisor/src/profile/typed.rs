//! The validated profile: typed values, one struct for a single file and for the result of
//! `extends`, and the merge rule between them (lists union in order, the child's scalars win).

use std::collections::BTreeMap;
use std::time::Duration;

use super::expand::Template;
use super::values::Endpoint;
use crate::policy::SeccompAction;
use crate::policy::{ViolationAction, Weakening};

/// A profile after validation. `None` means "not set here" so that merging can tell an unset
/// scalar from one set to the default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    pub name: Option<String>,
    pub description: Option<String>,
    pub allow_weaker: Vec<Weakening>,
    pub filesystem: Filesystem,
    pub network: Network,
    pub process: Process,
    pub syscalls: Syscalls,
    pub limits: Limits,
    pub on_violation: OnViolation,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filesystem {
    pub read: Vec<Template>,
    pub write: Vec<Template>,
    pub execute: Vec<Template>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Network {
    pub connect: Vec<Endpoint>,
    pub bind: Vec<Endpoint>,
    pub unix: Vec<Template>,
    pub dns: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Process {
    /// `None`: the exec allowlist defaults to `filesystem.execute`.
    pub exec: Option<Vec<Template>>,
    /// `process.exec_writable`: accept exec entries that overlap a write path (the tool can
    /// then replace what it may run; see `plan::exec_writable`).
    pub exec_writable: Option<bool>,
    pub user: Option<String>,
    pub env_keep: Vec<String>,
    pub env_set: BTreeMap<String, Template>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Syscalls {
    /// Names and `@groups` as written.
    pub deny: Vec<String>,
    pub action: Option<SeccompAction>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Limits {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub cpu: Option<f64>,
    pub wall_time: Option<Duration>,
    pub cpu_time: Option<Duration>,
    pub open_files: Option<u64>,
    pub connects_per_minute: Option<u32>,
    pub execs_per_minute: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct OnViolation {
    pub action: Option<ViolationAction>,
    pub network: Option<ViolationAction>,
    pub exec: Option<ViolationAction>,
}

/// Appends the items of `child` that `base` lacks, keeping first-seen order, in linear time
/// (a list of 400,000 paths must not take minutes).
fn union<T: Eq + std::hash::Hash + Clone>(base: &mut Vec<T>, child: &[T]) {
    let mut seen: std::collections::HashSet<T> = base.iter().cloned().collect();
    for x in child {
        if seen.insert(x.clone()) {
            base.push(x.clone());
        }
    }
}

fn over<T: Clone>(base: &mut Option<T>, child: &Option<T>) {
    if child.is_some() {
        base.clone_from(child);
    }
}

impl Profile {
    /// Layers `child` over `self` (the parent): lists are united, scalars and map entries set
    /// in the child override the parent's.
    pub fn merge(&mut self, child: &Profile) {
        over(&mut self.name, &child.name);
        over(&mut self.description, &child.description);
        union(&mut self.allow_weaker, &child.allow_weaker);

        union(&mut self.filesystem.read, &child.filesystem.read);
        union(&mut self.filesystem.write, &child.filesystem.write);
        union(&mut self.filesystem.execute, &child.filesystem.execute);

        union(&mut self.network.connect, &child.network.connect);
        union(&mut self.network.bind, &child.network.bind);
        union(&mut self.network.unix, &child.network.unix);
        over(&mut self.network.dns, &child.network.dns);

        match (&mut self.process.exec, &child.process.exec) {
            (Some(base), Some(c)) => union(base, c),
            (base @ None, Some(c)) => *base = Some(c.clone()),
            (_, None) => {}
        }
        over(&mut self.process.user, &child.process.user);
        over(
            &mut self.process.exec_writable,
            &child.process.exec_writable,
        );
        union(&mut self.process.env_keep, &child.process.env_keep);
        for (k, v) in &child.process.env_set {
            self.process.env_set.insert(k.clone(), v.clone());
        }

        union(&mut self.syscalls.deny, &child.syscalls.deny);
        over(&mut self.syscalls.action, &child.syscalls.action);

        let (l, c) = (&mut self.limits, &child.limits);
        over(&mut l.memory, &c.memory);
        over(&mut l.pids, &c.pids);
        over(&mut l.cpu, &c.cpu);
        over(&mut l.wall_time, &c.wall_time);
        over(&mut l.cpu_time, &c.cpu_time);
        over(&mut l.open_files, &c.open_files);
        over(&mut l.connects_per_minute, &c.connects_per_minute);
        over(&mut l.execs_per_minute, &c.execs_per_minute);

        over(&mut self.on_violation.action, &child.on_violation.action);
        over(&mut self.on_violation.network, &child.on_violation.network);
        over(&mut self.on_violation.exec, &child.on_violation.exec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_keeps_order_drops_duplicates_and_is_linear() {
        // Quadratic merging took minutes at this size; linear takes milliseconds.
        let mut base: Vec<String> = (0..400_000).map(|i| format!("/a/{i}")).collect();
        let child: Vec<String> = (200_000..600_000).map(|i| format!("/a/{i}")).collect();
        union(&mut base, &child);
        assert_eq!(base.len(), 600_000);
        assert_eq!(base[400_000], "/a/400000");
    }

    fn t(s: &str) -> Template {
        Template::parse_path(s).unwrap()
    }

    #[test]
    fn lists_union_and_child_scalars_override() {
        let mut parent = Profile {
            name: Some("base".into()),
            filesystem: Filesystem {
                read: vec![t("/a"), t("/b")],
                ..Default::default()
            },
            limits: Limits {
                pids: Some(10),
                memory: Some(1),
                ..Default::default()
            },
            syscalls: Syscalls {
                deny: vec!["ptrace".into()],
                action: Some(SeccompAction::Kill),
            },
            ..Default::default()
        };
        let child = Profile {
            name: Some("child".into()),
            filesystem: Filesystem {
                read: vec![t("/b"), t("/c")],
                ..Default::default()
            },
            limits: Limits {
                pids: Some(20),
                ..Default::default()
            },
            syscalls: Syscalls {
                deny: vec!["@mount".into(), "ptrace".into()],
                action: None,
            },
            process: Process {
                exec: Some(vec![t("/bin/x")]),
                ..Default::default()
            },
            ..Default::default()
        };
        parent.merge(&child);
        assert_eq!(parent.name.as_deref(), Some("child"));
        assert_eq!(parent.filesystem.read, vec![t("/a"), t("/b"), t("/c")]);
        assert_eq!(parent.limits.pids, Some(20));
        assert_eq!(parent.limits.memory, Some(1));
        assert_eq!(parent.syscalls.deny, vec!["ptrace", "@mount"]);
        assert_eq!(parent.syscalls.action, Some(SeccompAction::Kill));
        assert_eq!(parent.process.exec, Some(vec![t("/bin/x")]));
    }
}
