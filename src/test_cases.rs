//! How many cases a unit test's property runs: its own count unless
//! `PROPTEST_CASES` says otherwise (a developer, or a longer CI run, running the
//! properties longer). proptest reads `PROPTEST_CASES` only into
//! `ProptestConfig::default()`, so a block that names its `cases` would not see
//! it. The test crates have the same rule in `tests/common/cases.rs`, which a
//! unit test cannot include.

/// `PROPTEST_CASES` if it is set to a number, else `default` (the block's own).
pub(crate) fn cases_or(default: u32) -> u32 {
    parsed_or(std::env::var("PROPTEST_CASES").ok().as_deref(), default)
}

/// `value` read as a count, else `default`: a value that is not a number is
/// no count (as in `tests/common/cases.rs`).
fn parsed_or(value: Option<&str>, default: u32) -> u32 {
    value.and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_set_number_wins_and_anything_else_keeps_the_default() {
        assert_eq!(super::parsed_or(Some("300"), 20_000), 300);
        assert_eq!(super::parsed_or(Some("0"), 20_000), 0);
        assert_eq!(super::parsed_or(None, 20_000), 20_000);
        assert_eq!(super::parsed_or(Some(""), 20_000), 20_000);
        assert_eq!(super::parsed_or(Some("many"), 7), 7);
    }
}
