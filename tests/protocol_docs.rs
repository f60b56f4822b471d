#![cfg(not(target_arch = "wasm32"))]
//! The protocol's public descriptions stay in step with the code: every error
//! code and fetch reason is documented in PROTOCOL.md and typed in the shipped
//! TypeScript definitions.

use meterflow::core::error::ErrorCode;
use meterflow::core::event::FetchReason;

fn read(path: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_error_code_is_documented_and_typed() {
    let (doc, types) = (read("docs/PROTOCOL.md"), read("src/wasm/protocol.d.ts"));
    for code in ErrorCode::ALL {
        let s = code.as_str();
        assert!(doc.contains(&format!("| `{s}` |")), "PROTOCOL.md section 6 lacks {s}");
        assert!(types.contains(&format!("\"{s}\"")), "protocol.d.ts ErrorCode lacks {s}");
    }
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
