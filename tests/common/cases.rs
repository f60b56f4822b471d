//! How many cases a property runs: its own count unless `PROPTEST_CASES` says
//! otherwise (a developer, or a longer CI run, running the properties longer).
//! proptest reads `PROPTEST_CASES` only into `ProptestConfig::default()`, so a
//! block that names its `cases` would not see it; each block names its count
//! through these instead.
// Each test crate uses one or both.
#![allow(dead_code)]

/// `PROPTEST_CASES` if it is set to a number, else `default` (the block's own).
pub fn cases_or(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// `var` (a suite's own knob, e.g. `METERFLOW_FUZZ_CASES`) if it is set to a
/// number, else as [`cases_or`].
pub fn cases_from(var: &str, default: u32) -> u32 {
    std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| cases_or(default))
}
