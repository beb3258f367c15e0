//! Loading the embedded eBPF object, attaching the probes and reading their events.
