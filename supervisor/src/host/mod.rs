//! Detection of what this host's kernel offers (Landlock ABI, loadable BPF program types, cgroup
//! mode and controllers, BTF), by probing rather than by reading configuration.
