#![cfg(not(target_arch = "wasm32"))]
//! The protocol's public descriptions stay in step with the code: the error and
//! warning codes are the enums `ErrorCode` and `WarningCode` (their variants
//! are the list), and PROTOCOL.md section 6 and the shipped TypeScript types
//! list exactly those codes, checked both ways. Fetch reasons are documented
//! and typed.

use std::collections::BTreeSet;

use meterflow::core::error::{ErrorCode, WarningCode};
use meterflow::core::event::FetchReason;

fn read(path: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text of `doc` from the line starting with `from` to the next line
/// starting with `until` (or the end).
fn section<'a>(doc: &'a str, from: &str, until: &str) -> &'a str {
    let start = doc.find(&format!("\n{from}")).unwrap_or_else(|| panic!("no '{from}'")) + 1;
    let rest = &doc[start..];
    let end = rest[from.len()..].find(&format!("\n{until}")).map_or(rest.len(), |i| i + from.len());
    &rest[..end]
}

/// The codes in the first column of a markdown table: rows "| `code` | ...".
fn table_codes(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(code, _)| code.to_owned()))
        .collect()
}

/// The string literals of a TypeScript union `export type NAME = "a" | "b";`.
fn ts_union(types: &str, name: &str) -> BTreeSet<String> {
    let decl = format!("export type {name} =");
    let start = types.find(&decl).unwrap_or_else(|| panic!("protocol.d.ts lacks {name}"));
    // Comments inside the union may hold ';' and quotes: drop them first.
    let mut body = String::new();
    let mut rest = &types[start + decl.len()..];
    while let Some(open) = rest.find("/*") {
        body.push_str(&rest[..open]);
        rest = rest[open..].split_once("*/").map_or("", |(_, after)| after);
    }
    body.push_str(rest);
    let body = &body[..body.find(';').expect("union ends with ';'")];
    body.split('"').skip(1).step_by(2).map(str::to_owned).collect()
}

fn errors() -> BTreeSet<String> {
    ErrorCode::iter().map(|c| c.as_str().to_owned()).collect()
}

fn warnings() -> BTreeSet<String> {
    WarningCode::iter().map(|c| c.as_str().to_owned()).collect()
}

#[test]
fn protocol_md_lists_exactly_the_error_and_warning_codes() {
    let doc = read("docs/PROTOCOL.md");
    let sixth = section(&doc, "## 6. Error codes", "## ");
    let (error_table, warning_table) =
        sixth.split_once("\n### Warning codes").expect("PROTOCOL.md 6 has '### Warning codes'");
    assert_eq!(table_codes(error_table), errors(), "PROTOCOL.md 6 error table vs ErrorCode");
    assert_eq!(
        table_codes(warning_table),
        warnings(),
        "PROTOCOL.md 6 warning table vs WarningCode"
    );
}

#[test]
fn protocol_d_ts_types_exactly_the_error_and_warning_codes() {
    let types = read("src/wasm/protocol.d.ts");
    assert_eq!(ts_union(&types, "ErrorCode"), errors(), "protocol.d.ts ErrorCode vs the enum");
    assert_eq!(
        ts_union(&types, "WarningCode"),
        warnings(),
        "protocol.d.ts WarningCode vs the enum"
    );
    assert!(types.contains("code: WarningCode;"), "WarningMessage.code is typed");
}

#[test]
fn every_fetch_reason_is_documented_and_typed() {
    let (doc, types) = (read("docs/PROTOCOL.md"), read("src/wasm/protocol.d.ts"));
    let reasons = [
        FetchReason::Scheduled,
        FetchReason::Startup,
        FetchReason::Gap,
        FetchReason::Epoch,
        FetchReason::Clock,
        FetchReason::PendingLimit,
        FetchReason::Dedup,
        FetchReason::Refused,
    ];
    for r in reasons {
        let s = r.as_str();
        assert!(doc.contains(&format!("`{s}`")), "PROTOCOL.md lacks fetch reason {s}");
        assert!(types.contains(&format!("\"{s}\"")), "protocol.d.ts lacks fetch reason {s}");
    }
}
