//! Every page → worker JSON example in docs/PROTOCOL.md (the json blocks under
//! a "Page → worker" heading) is accepted by the worker's decoder,
//! `wire::decode_message`, with the default config. The TypeScript side of the
//! same examples is `www/tests/protocol-types.test.mjs`.
#![cfg(not(target_arch = "wasm32"))]

use meterflow::core::config::Config;
use meterflow::core::event::Inbound;
use meterflow::wire::decode_message;
use serde_json::Value;

/// The top-level `{...}` objects of a code block (strings respected), with their 1-based lines.
fn objects(block: &str, first_line: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let (mut depth, mut start, mut in_string, mut escaped) = (0usize, None, false, false);
    for (i, c) in block.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => {
                if depth == 0 {
                    start = Some(i);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if let (0, Some(s)) = (depth, start) {
                    let line = first_line + block[..s].matches('\n').count();
                    out.push((line, block[s..=i].to_string()));
                }
            }
            _ => {}
        }
    }
    out
}

/// The page → worker examples: json blocks whose nearest `###` (else `##`) heading says "Page → worker".
fn page_examples(doc: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = doc.lines().collect();
    let direction = |h: &str| {
        let h = h.to_lowercase();
        if h.contains("page → worker") {
            Some(true)
        } else if h.contains("worker → page") {
            Some(false)
        } else {
            None
        }
    };
    let (mut h2, mut h3) = ("", "");
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.starts_with("## ") {
            (h2, h3) = (l, "");
        } else if l.starts_with("### ") {
            h3 = l;
        } else if l.starts_with("```json") {
            let end =
                lines[i + 1..].iter().position(|x| *x == "```").map_or(lines.len(), |p| i + 1 + p);
            if direction(h3).or_else(|| direction(h2)) == Some(true) {
                out.extend(objects(&lines[i + 1..end].join("\n"), i + 2));
            }
            i = end;
        }
        i += 1;
    }
    out
}

#[test]
fn every_page_to_worker_example_in_protocol_md_decodes() -> Result<(), String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md"))
        .map_err(|e| e.to_string())?;
    let examples = page_examples(&doc);
    assert!(examples.len() >= 5, "only {} page → worker examples found", examples.len());
    let cfg = Config::default();
    for (line, text) in &examples {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("PROTOCOL.md line {line}: not JSON ({e}): {text}"))?;
        if let Inbound::Rejected(e) = decode_message(&v, &cfg) {
            return Err(format!("PROTOCOL.md line {line}: refused ({e:?}): {text}"));
        }
    }
    Ok(())
}

#[test]
fn the_decoder_check_can_fail() {
    let cfg = Config::default();
    let bad = objects(
        r#"{ "type": "rendered", "channel": "totals", "frames": -1 } { "type": "session", "op": "jump" }"#,
        1,
    );
    assert_eq!(bad.len(), 2);
    for (_, text) in bad {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(matches!(decode_message(&v, &cfg), Inbound::Rejected(_)), "accepted: {text}");
    }
}
