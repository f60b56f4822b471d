#![cfg(not(target_arch = "wasm32"))]
//! Golden wire payloads: one source for the frame layouts across languages.
//!
//! `tests/data/wire/` holds, for each case `NAME`:
//! - a binary frame `NAME.bin` with `NAME.json` = `{kind, envelope, input,
//!   decoded}`: `input` is what the encoders take (in the JS encoders' shape:
//!   `www/frames.js`, `www/live-frames.js`), `decoded` what `wire::decode_binary`
//!   makes of the bytes;
//! - or a JSON body `NAME.body.json` (the exact text a server sends) with
//!   `NAME.json` = `{envelope, decoded}`.
//!
//! This test checks that the crate's encoders (`wire::binary::encode`) write
//! every `.bin` byte for byte from its `input`, and that the decoders read every
//! payload into its `decoded` meaning. `www/tests/golden.test.mjs` checks that
//! the JS encoders write the same bytes from the same `input`. The crate has no
//! JSON body encoder, so JSON bodies are checked one way (decoding).
//!
//! `METERFLOW_BLESS=1 cargo test --test wire_golden` rewrites every `.bin`
//! from its `input` and every `decoded` from the decoders; review the diff.

use std::path::{Path, PathBuf};

use meterflow::core::config::Config;
use meterflow::core::decimal::{format_units, Decimal};
use meterflow::core::event::{
    Catchup, CatchupBucket, Inbound, KeyScope, LiveBinding, LiveFrame, ReadingBatch,
};
use meterflow::core::hlc::Hlc;
use meterflow::wire::binary::{encode_catchup, encode_live, encode_readings, TsLayout};
use meterflow::wire::{decode_binary, decode_text, Arrival, Envelope};
use serde_json::{json, Value};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wire")
}

fn bless() -> bool {
    std::env::var("METERFLOW_BLESS").is_ok_and(|v| v == "1")
}

/// Every case name: each `NAME.json` that is not a `.body.json`.
fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("tests/data/wire")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| !f.ends_with(".body.json"))
        .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn envelope(meaning: &Value) -> Envelope {
    match meaning["envelope"].as_str() {
        Some("readings") => Envelope::Readings,
        Some("live") => Envelope::Live,
        Some("catchup") => Envelope::Catchup,
        other => panic!("envelope {other:?}"),
    }
}

// ---- input (the JS encoders' shape) into the crate's encoder types ----

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("u32") as u32).collect()
}

fn str_of(v: &Value) -> String {
    v.as_str().expect("string").to_owned()
}

fn hlc(v: &Value) -> Hlc {
    Hlc {
        wall_ms: v["wallMs"].as_u64().expect("wallMs"),
        counter: v["counter"].as_u64().expect("counter") as u32,
    }
}

/// `ts`: one number shared by every record (SHARED_TS), or one per record.
fn ts_of(v: &Value, n: usize) -> (Vec<f64>, TsLayout) {
    match v.as_f64() {
        Some(t) => (vec![t; n], TsLayout::Shared),
        None => (f64s(v), TsLayout::PerRecord),
    }
}

fn scale_of(input: &Value) -> u8 {
    input["scale"].as_u64().expect("scale") as u8
}

fn mantissa(v: &Value, scale: u8) -> Decimal {
    Decimal::new(v.as_f64().expect("mantissa") as i64, scale)
}

fn opt_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn encode(kind: u64, input: &Value) -> Vec<u8> {
    match kind {
        1 => {
            let keys = u32s(&input["keys"]);
            let (ts, layout) = ts_of(&input["ts"], keys.len());
            let batch = ReadingBatch {
                scope: KeyScope::Stream,
                bindings: input["bindings"]
                    .as_array()
                    .expect("bindings")
                    .iter()
                    .map(|b| (b[0].as_u64().expect("key") as u32, str_of(&b[1])))
                    .collect(),
                keys,
                ts,
                values: f64s(&input["values"]),
                ..Default::default()
            };
            encode_readings(&batch, layout).expect("encodes")
        }
        2 => {
            let scale = scale_of(input);
            let keys = u32s(&input["keys"]);
            let (ts, layout) = ts_of(&input["ts"], keys.len());
            let frame = LiveFrame {
                channel: input["channel"].as_str().unwrap_or("").to_owned(),
                epoch: input["epoch"].as_u64().expect("epoch"),
                seq: input["seq"].as_u64().expect("seq"),
                stamp: hlc(&input["stamp"]),
                scope: KeyScope::Stream,
                bindings: input["bindings"]
                    .as_array()
                    .expect("bindings")
                    .iter()
                    .map(|b| LiveBinding {
                        key: b[0].as_u64().expect("key") as u32,
                        meter: str_of(&b[1]),
                        resource: str_of(&b[2]),
                    })
                    .collect(),
                keys,
                ids: input["ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|x| x.as_u64().expect("id"))
                    .collect(),
                ts,
                amounts: input["amounts"]
                    .as_array()
                    .expect("amounts")
                    .iter()
                    .map(|m| mantissa(m, scale))
                    .collect(),
                ..Default::default()
            };
            encode_live(&frame, scale, layout).expect("encodes")
        }
        3 => {
            let scale = scale_of(input);
            let c = Catchup {
                as_of: hlc(&input["asOf"]),
                from_hour_ms: opt_f64(&input["from"]),
                to_hour_ms: opt_f64(&input["to"]),
                server_time_ms: opt_f64(&input["serverTime"]),
                buckets: input["buckets"]
                    .as_array()
                    .expect("buckets")
                    .iter()
                    .enumerate()
                    .map(|(i, b)| CatchupBucket {
                        meter: b["meter"].as_str().map(str::to_owned),
                        resource: str_of(&b["resource"]),
                        hour_ms: b["hour"].as_f64().expect("hour"),
                        total: mantissa(&b["mantissa"], scale),
                        position: i as u32,
                    })
                    .collect(),
                ..Default::default()
            };
            encode_catchup(&c, scale).expect("encodes")
        }
        k => panic!("kind {k}"),
    }
}

// ---- a decoded input as readable JSON ----

fn hlc_json(h: Hlc) -> Value {
    json!({"wallMs": h.wall_ms, "counter": h.counter})
}

fn amount(d: Decimal) -> String {
    format_units(d.mantissa, d.scale)
}

fn scope(s: KeyScope) -> &'static str {
    match s {
        KeyScope::Batch => "batch",
        KeyScope::Stream => "stream",
    }
}

fn describe(inbound: &Inbound) -> Value {
    let errors = |es: &[meterflow::core::error::CoreError]| -> Value {
        es.iter().map(|e| json!([e.code.as_str(), e.position])).collect()
    };
    match inbound {
        Inbound::Readings(b) => json!({
            "type": "readings",
            "scope": scope(b.scope),
            "bindings": b.bindings.iter().map(|(k, m)| json!([k, m])).collect::<Value>(),
            "keys": b.keys,
            "ts": b.ts,
            "values": b.values,
            "errors": errors(&b.errors),
        }),
        Inbound::Live(f) => json!({
            "type": "live",
            "channel": f.channel,
            "epoch": f.epoch,
            "seq": f.seq,
            "stamp": hlc_json(f.stamp),
            "scope": scope(f.scope),
            "bindings": f.bindings.iter().map(|b| json!([b.key, b.meter, b.resource])).collect::<Value>(),
            "keys": f.keys,
            "ids": f.ids,
            "ts": f.ts,
            "amounts": f.amounts.iter().map(|&a| amount(a)).collect::<Value>(),
            "errors": errors(&f.errors),
        }),
        Inbound::Hello(h) => json!({
            "type": "hello",
            "channel": h.channel,
            "epoch": h.epoch,
            "nextSeq": h.next_seq,
            "stamp": h.stamp.map(hlc_json),
            "serverTime": h.server_time_ms,
        }),
        Inbound::Catchup(c) => json!({
            "type": "catchup",
            "asOf": hlc_json(c.as_of),
            "from": c.from_hour_ms,
            "to": c.to_hour_ms,
            "serverTime": c.server_time_ms,
            "buckets": c.buckets.iter().map(|b| json!({
                "meter": b.meter,
                "resource": b.resource,
                "hour": b.hour_ms,
                "total": amount(b.total),
            })).collect::<Value>(),
            "errors": errors(&c.errors),
        }),
        Inbound::Rejected(e) => {
            json!({"type": "rejected", "code": e.code.as_str(), "message": e.message})
        }
        other => json!({"type": "other", "debug": format!("{other:?}")}),
    }
}

/// `v` with the keys of the first two object levels one per line and
/// everything deeper on one line: readable, and a few KB for the whole set.
fn layout(v: &Value, depth: usize, out: &mut String) {
    match v {
        Value::Object(map) if depth < 2 && !map.is_empty() => {
            let indent = "  ".repeat(depth + 1);
            out.push('{');
            for (i, (k, x)) in map.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                out.push_str(&indent);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                layout(x, depth + 1, out);
            }
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
            out.push('}');
        }
        _ => out.push_str(&v.to_string()),
    }
}

fn write_pretty(path: &Path, v: &Value) {
    let mut text = String::new();
    layout(v, 0, &mut text);
    text.push('\n');
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn golden_payloads_encode_and_decode_as_committed() {
    let cfg = Config::default();
    let names = cases();
    assert!(names.len() >= 8, "the golden set is in tests/data/wire: {names:?}");
    let mut kinds = Vec::new();
    for name in &names {
        let meaning_path = dir().join(format!("{name}.json"));
        let mut meaning = read_json(&meaning_path);
        let env = envelope(&meaning);
        let decoded = match meaning["kind"].as_u64() {
            Some(kind) => {
                kinds.push(kind);
                let bin_path = dir().join(format!("{name}.bin"));
                let bytes = encode(kind, &meaning["input"]);
                if bless() {
                    std::fs::write(&bin_path, &bytes).expect("write .bin");
                }
                let golden = std::fs::read(&bin_path).unwrap_or_else(|e| panic!("{name}.bin: {e}"));
                assert_eq!(
                    bytes, golden,
                    "{name}: the Rust encoder's bytes differ from {name}.bin"
                );
                assert_eq!(golden[5] as u64, kind, "{name}: kind byte");
                describe(&decode_binary(env, &golden, &cfg))
            }
            None => {
                let body_path = dir().join(format!("{name}.body.json"));
                let body =
                    std::fs::read_to_string(&body_path).unwrap_or_else(|e| panic!("{name}: {e}"));
                describe(&decode_text(env, &body, Arrival::default(), &cfg))
            }
        };
        if bless() {
            meaning["decoded"] = decoded.clone();
            write_pretty(&meaning_path, &meaning);
        }
        assert_eq!(decoded, meaning["decoded"], "{name}: decoded meaning differs from {name}.json");
        assert!(
            decoded["errors"].as_array().is_none_or(Vec::is_empty),
            "{name}: a golden payload is valid"
        );
        assert_ne!(decoded["type"], "rejected", "{name}: a golden payload is valid");
    }
    for kind in [1, 2, 3] {
        assert!(kinds.contains(&kind), "no golden frame of kind {kind}");
    }
}
