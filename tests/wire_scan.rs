#![cfg(not(target_arch = "wasm32"))]
//! The JSON readings scanner (src/wire/scan.rs) against the general serde-based
//! decoder it sits in front of (`json::decode_general`, the oracle): for every
//! payload, random valid ones and hostile ones, `decode_text` (scanner first)
//! and `decode_bytes` (the page's bytes path) give exactly what the general
//! decoder gives: the same batch, bit for bit, or the same error.
//!
//! Cases: `METERFLOW_FUZZ_CASES` (default 2,000) per property.

#[path = "common/cases.rs"]
mod cases;
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::event::{Inbound, ReadingBatch};
use meterflow::wire::json::decode_general;
use meterflow::wire::{decode_bytes, decode_text, Arrival, Envelope};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn cases() -> u32 {
    cases::cases_from("METERFLOW_FUZZ_CASES", 2_000)
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() }
}

/// A small `maxBatch` and `maxPayloadBytes`, so both limits are reached.
fn cfg() -> Config {
    let p =
        ConfigPatch { max_batch: Some(40), max_payload_bytes: Some(8192), ..Default::default() };
    Config::default().apply(&p).unwrap_or_default()
}

/// Batches compared with f64 bits (so `-0` and `0` differ).
fn same_batch(a: &ReadingBatch, b: &ReadingBatch) -> bool {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    a.scope == b.scope
        && a.bindings == b.bindings
        && a.keys == b.keys
        && bits(&a.ts) == bits(&b.ts)
        && bits(&a.values) == bits(&b.values)
        && a.positions == b.positions
        && a.errors == b.errors
}

fn same(a: &Inbound, b: &Inbound) -> bool {
    match (a, b) {
        (Inbound::Readings(x), Inbound::Readings(y)) => same_batch(x, y),
        _ => a == b,
    }
}

/// Checks one payload on every path; returns whether the oracle accepted a batch.
fn check(text: &str) -> Result<(), TestCaseError> {
    let cfg = cfg();
    let oracle = decode_general(Envelope::Readings, text, Arrival::default(), &cfg);
    let scanned = decode_text(Envelope::Readings, text, Arrival::default(), &cfg);
    prop_assert!(same(&scanned, &oracle), "text {text:?}\nscanned {scanned:?}\noracle {oracle:?}");
    let bytes = decode_bytes(Envelope::Readings, text.as_bytes(), Arrival::default(), &cfg);
    // A payload that does not start with `{` is a binary frame on the bytes path.
    if text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        prop_assert!(same(&bytes, &oracle), "bytes {text:?}\nbytes {bytes:?}\noracle {oracle:?}");
    }
    Ok(())
}

fn ws() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(String::new()),
        1 => proptest::collection::vec(prop_oneof![Just(' '), Just('\t'), Just('\n'), Just('\r')], 1..3)
            .prop_map(|v| v.into_iter().collect()),
    ]
}

/// Meter ids: mostly plain, sometimes with what the scanner leaves to the oracle.
fn meter() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z]{1,3}-[0-9]{1,3}".prop_map(|s| format!("\"{s}\"")),
        1 => Just("\"\"".to_string()),
        1 => Just(format!("\"{}\"", "x".repeat(257))),
        1 => Just(format!("\"{}\"", "y".repeat(256))),
        1 => Just("\"m\\u0041\"".to_string()),
        1 => Just("\"m\\n\"".to_string()),
        1 => Just("\"mé\"".to_string()),
        1 => Just("\"m\u{7f}\"".to_string()),
        1 => Just("\"m\u{85}\"".to_string()),
        1 => Just("17".to_string()),
        1 => Just("null".to_string()),
    ]
}

/// Numbers in many spellings, and some that are not numbers.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (1.0e12f64..2.0e12).prop_map(|x| format!("{}", x.round())),
        4 => (-1.0e6f64..1.0e6).prop_map(|x| format!("{x}")),
        2 => (-1.0e6f64..1.0e6, -30i32..30).prop_map(|(x, e)| format!("{x}e{e}")),
        1 => any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:e}")),
        1 => any::<u64>().prop_map(|x| x.to_string()),
        1 => any::<i64>().prop_map(|x| x.to_string()),
        1 => "-?[0-9]{1,30}(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?",
        1 => prop_oneof![
            Just("-0"), Just("0"), Just("-0.0"), Just("1E400"), Just("-1e400"), Just("1e-400"),
            Just("01"), Just("1."), Just(".5"), Just("+1"), Just("1e"), Just("-"), Just("NaN"),
            Just("Infinity"), Just("\"5\""), Just("true"), Just("null"), Just("[1]"), Just("{}"),
            Just("9007199254740993"), Just("18446744073709551616"), Just("123456789012345678901234567890"),
            Just("2.2250738585072011e-308"), Just("1.7976931348623157e308"), Just("1.7976931348623159e308"),
        ].prop_map(str::to_string),
    ]
}

/// One reading object: the three fields in any order, sometimes one missing,
/// repeated or extra.
fn item() -> impl Strategy<Value = String> {
    (meter(), number(), number(), 0usize..6, 0u8..12, ws(), ws()).prop_map(
        |(m, ts, v, order, twist, w1, w2)| {
            let mut fields = vec![
                format!("\"meter\"{w1}:{w2}{m}"),
                format!("\"ts\":{ts}"),
                format!("\"value\"{w2}:{v}"),
            ];
            fields.rotate_left(order % 3);
            if order >= 3 {
                fields.swap(0, 1);
            }
            match twist {
                0 => {
                    fields.pop();
                }
                1 => fields.push("\"ts\":1".to_string()),
                2 => fields.push("\"extra\":[1,{\"a\":2}]".to_string()),
                3 => return format!("[{}]", fields.join(",")),
                4 => return "null".to_string(),
                _ => {}
            }
            format!("{{{w1}{}{w2}}}", fields.join(&format!("{w1},{w2}")))
        },
    )
}

/// A readings payload: sometimes with `type`/`v`, odd top-level fields,
/// trailing bytes, or too many items.
fn payload() -> impl Strategy<Value = String> {
    (proptest::collection::vec(item(), 0..45), 0u8..16, ws(), ws()).prop_map(
        |(items, top, w1, w2)| {
            let list = format!("[{w1}{}{w2}]", items.join(&format!("{w2},{w1}")));
            match top {
                0 => format!("{{\"type\":\"readings\",\"readings\":{list}}}"),
                1 => format!("{{{w1}\"readings\"{w2}:{w1}{list}{w2},\"v\":1}}"),
                2 => format!("{{\"v\":1,\"type\":\"readings\",\"readings\":{list}}}"),
                3 => format!("{{\"type\":\"frame\",\"readings\":{list}}}"),
                4 => format!("{{\"v\":2,\"readings\":{list}}}"),
                5 => format!("{{\"v\":1.0,\"readings\":{list}}}"),
                6 => format!("{{\"readings\":{list},\"readings\":[]}}"),
                7 => format!("{{\"readings\":{list}}} x"),
                8 => format!("{{\"other\":{{\"readings\":1}},\"readings\":{list}}}"),
                9 => format!("{{\"type\":null,\"readings\":{list}}}"),
                10 => format!("{{\"readings\":{list}"),
                11 => format!("{w1}{{\"readings\":{list}}}{w2}"),
                12 => format!("{{\"v\":10,\"readings\":{list}}}"),
                _ => format!("{{\"readings\":{list}}}"),
            }
        },
    )
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn the_scanner_agrees_with_the_general_decoder(text in payload()) {
        check(&text)?;
    }

    #[test]
    fn mutated_payloads_agree_too(
        text in payload(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..4),
    ) {
        let mut bytes = text.into_bytes();
        for (at, op, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            let b = b"{}[]\",:0-.e \\a"[usize::from(byte) % 14];
            match op {
                0 => bytes[i] = b,
                1 => bytes.insert(i, b),
                2 => { bytes.remove(i); }
                _ => bytes.truncate(i),
            }
        }
        // Edits with ASCII bytes on UTF-8 text can split a multi-byte char.
        if let Ok(text) = String::from_utf8(bytes) {
            check(&text)?;
        }
    }
}

#[test]
fn the_common_shape_takes_the_fast_path_and_equals_the_oracle() -> Result<(), TestCaseError> {
    let items: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "{{\"meter\":\"m-{}\",\"ts\":{},\"value\":{}.25}}",
                i % 7,
                1_764_064_800_000u64 + i,
                i
            )
        })
        .collect();
    let text = format!("{{\"type\":\"readings\",\"readings\":[{}]}}", items.join(","));
    check(&text)?;
    match decode_text(Envelope::Readings, &text, Arrival::default(), &cfg()) {
        Inbound::Readings(b) => {
            prop_assert_eq!(b.bindings.len(), 7);
            prop_assert_eq!(b.keys.len(), 40);
            prop_assert!(b.errors.is_empty());
        }
        other => prop_assert!(false, "{other:?}"),
    }
    Ok(())
}

/// The path benchmark's payload (`www/bench/path.js` `jsonText`: ids
/// `meter-000123`, one 13-digit `ts`, values with up to 3 decimals printed
/// shortest) takes the scanner's path, never the fallback, and its batch
/// equals the general decoder's.
#[test]
fn the_path_benchmark_payload_takes_the_scanner() {
    let cfg = Config::default();
    let items: Vec<String> = (0..10_000)
        .map(|i| {
            let v = (50_000 + (i * 7_919) % 100_000) as f64 / 1_000.0;
            format!(r#"{{"meter":"meter-{:06}","ts":1764859999000,"value":{v}}}"#, i % 5_000)
        })
        .collect();
    let text = format!(r#"{{"type":"readings","readings":[{}]}}"#, items.join(","));
    let scanned = meterflow::wire::scan_readings(text.as_bytes(), &cfg);
    let Some(batch) = scanned else { panic!("the scanner refused the benchmark's payload") };
    assert_eq!((batch.keys.len(), batch.bindings.len()), (10_000, 5_000));
    let oracle = decode_general(Envelope::Readings, &text, Arrival::default(), &cfg);
    assert!(same(&Inbound::Readings(batch), &oracle));
}

#[test]
fn json_bytes_that_are_not_utf8_are_malformed_json() {
    let cfg = cfg();
    let bytes = b"{\"readings\":[{\"meter\":\"m\xff\",\"ts\":1,\"value\":1}]}";
    match decode_bytes(Envelope::Readings, bytes, Arrival::default(), &cfg) {
        Inbound::Rejected(e) => {
            assert_eq!(e.code, meterflow::core::error::ErrorCode::MalformedJson, "{e:?}")
        }
        other => panic!("expected malformed_json, got {other:?}"),
    }
}
