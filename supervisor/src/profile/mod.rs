//! Profiles: the TOML model, parsing with source spans, validation, `extends`, variable expansion
//! and lookup by name.
