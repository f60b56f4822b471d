#![cfg(not(target_arch = "wasm32"))]
//! Fuzzing of the decoders and the engine behind them, with proptest (cargo-fuzz
//! needs a nightly toolchain). Inputs: random bytes, valid binary frames with
//! bit flips, truncations, length-field corruption and overwrites, structured
//! JSON payloads built from hostile snippets, and mutated JSON text. Every
//! input goes through every decoder and the result through `Engine::handle`.
//!
//! Asserted: nothing panics; every rejection and every reported error carries a
//! stable code and a message, and encodes to an `error` message; decoded
//! batches are internally consistent (column lengths, positions, bindings).
//!
//! Cases per target: `METERFLOW_FUZZ_CASES` (default 2,000). A long run:
//! `METERFLOW_FUZZ_CASES=200000 cargo test --release --test fuzz_decoders`.

#[path = "common/cases.rs"]
mod cases;
use std::sync::OnceLock;

#[path = "common/meter_rows.rs"]
mod meter_rows;

use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::decimal::Decimal;
use meterflow::core::error::CoreError;
use meterflow::core::event::{
    Catchup, CatchupBucket, Inbound, KeyScope, LiveBinding, LiveFrame, Outbound, ReadingBatch,
};
use meterflow::core::hlc::Hlc;
use meterflow::core::session::{Payload, ServerOp, SessionInput};
use meterflow::core::stream::MeterRowRef;
use meterflow::core::Engine;
use meterflow::wire::binary::{
    encode_catchup, encode_live, encode_meters_delta, encode_readings, TsLayout,
};
use meterflow::wire::{
    decode_binary, decode_message, decode_socket_binary, decode_text, encode, Arrival, Envelope,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

const T0: f64 = 1764064800000.0;
const ENVELOPES: [Envelope; 3] = [Envelope::Readings, Envelope::Live, Envelope::Catchup];

fn cases() -> u32 {
    cases::cases_from("METERFLOW_FUZZ_CASES", 2_000)
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() }
}

/// Small limits so that limits are hit and engines stay cheap.
fn cfg() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        let p = ConfigPatch {
            window: Some(16),
            reduced_window: Some(16),
            drift_short: Some(4),
            stuck_run: Some(4),
            max_meters: Some(64),
            max_stream_keys: Some(256),
            max_payload_bytes: Some(4096),
            max_batch: Some(200),
            max_errors_per_batch: Some(8),
            ..Default::default()
        };
        Config::default().apply(&p).unwrap()
    })
}

fn check_error(e: &CoreError) {
    assert!(!e.code.as_str().is_empty());
    assert!(!e.message.is_empty(), "{e:?}");
    let text = serde_json::to_string(&encode(&Outbound::Error(e.clone()))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["code"], e.code.as_str());
}

fn check_positions(positions: &[u32], records: usize, errors: &[CoreError]) {
    assert!(positions.is_empty() || positions.len() == records);
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    // A refused record's text is made only under `maxErrorsPerBatch` (the
    // engine shows no more, and `check` below sees that every error it shows
    // has its text); past it, code and position only.
    let max = cfg().max_errors_per_batch as usize;
    for (i, e) in errors.iter().enumerate() {
        if i < max {
            check_error(e);
        } else {
            assert!(e.message.is_empty(), "a text past the cap: {e:?}");
        }
        assert!(e.position.is_some(), "an item error without a position: {e:?}");
        assert!(!positions.contains(&e.position.unwrap_or(u32::MAX)), "{e:?} also kept");
    }
}

fn check_batch(b: &ReadingBatch) {
    assert_eq!(b.keys.len(), b.ts.len());
    assert_eq!(b.keys.len(), b.values.len());
    check_positions(&b.positions, b.keys.len(), &b.errors);
    if b.scope == KeyScope::Batch {
        assert!(b.keys.iter().all(|&k| (k as usize) < b.bindings.len()));
    }
}

fn check_frame(f: &LiveFrame) {
    let n = f.keys.len();
    assert!(f.ids.len() == n && f.ts.len() == n && f.amounts.len() == n);
    check_positions(&f.positions, n, &f.errors);
    if f.scope == KeyScope::Batch {
        assert!(f.keys.iter().all(|&k| (k as usize) < f.bindings.len()));
    }
}

/// Checks a decoded input, feeds it to a fresh engine, checks its outputs.
fn check(input: Inbound) {
    match &input {
        Inbound::Rejected(e) => check_error(e),
        Inbound::Readings(b) => check_batch(b),
        Inbound::Live(f) => check_frame(f),
        Inbound::Catchup(c) => check_positions(&[], 0, &c.errors),
        _ => {}
    }
    let mut engine = Engine::new(cfg().clone()).unwrap();
    for o in engine.handle(input, T0) {
        if let Outbound::Error(e) = &o {
            check_error(e);
        }
        serde_json::to_string(&encode(&o)).unwrap();
    }
}

/// A socket binary message (kind 2, or a kind-4 DELTA): a decoded DELTA's
/// columns are consistent and hold at most a small multiple of its bytes
/// (allocation follows the payload).
fn check_socket(bytes: &[u8]) {
    let input = decode_socket_binary(bytes, Arrival::default(), cfg());
    if let Inbound::Stream(SessionInput::Server(ServerOp::Delta { body, wire_bytes, .. })) = &input
    {
        assert_eq!(*wire_bytes, bytes.len());
        if let Payload::MeterColumns(c) = body {
            let n = c.rows();
            for len in
                [c.value.len(), c.status.len(), c.count.len(), c.total.len(), c.resource.len()]
            {
                assert_eq!(len, n);
            }
            assert!(c.ends.len() >= n && c.ends.windows(2).all(|w| w[0] <= w[1]));
            assert_eq!(c.ends.last().map_or(0, |&e| e as usize), c.ids.len());
            assert!(c.resource.iter().all(|&r| usize::from(r) < c.resources.len()));
            assert_eq!(c.upserts().count(), n);
            let held = body.held_bytes();
            assert!(
                held <= 4 * bytes.len() + 1024,
                "{held} bytes held for {} received",
                bytes.len()
            );
        }
    }
    check(input);
}

/// Every decoder on `bytes`.
fn decode_all(bytes: &[u8]) {
    check_socket(bytes);
    for env in ENVELOPES {
        check(decode_binary(env, bytes, cfg()));
        let text = String::from_utf8_lossy(bytes);
        check(decode_text(env, &text, Arrival::default(), cfg()));
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        check(decode_message(&v, cfg()));
    }
}

fn kind1() -> impl Strategy<Value = Vec<u8>> {
    let binding = (0u32..300, "[a-z0-9-]{1,10}");
    let record = (0u32..300, prop_oneof![Just(T0), any::<f64>()], any::<f64>());
    (prop::collection::vec(binding, 0..5), prop::collection::vec(record, 0..30), any::<bool>())
        .prop_map(|(bindings, records, shared)| {
            let b = ReadingBatch {
                bindings,
                keys: records.iter().map(|r| r.0).collect(),
                ts: records.iter().map(|r| if shared { T0 } else { r.1 }).collect(),
                values: records.iter().map(|r| r.2).collect(),
                ..Default::default()
            };
            let layout = if shared { TsLayout::Shared } else { TsLayout::PerRecord };
            encode_readings(&b, layout).unwrap()
        })
}

fn kind2() -> impl Strategy<Value = Vec<u8>> {
    let binding = (0u32..300, "[a-z0-9-]{1,10}", prop_oneof!["water", "energy", "gas", ""]);
    let record = (0u32..300, 0u64..1 << 53, 0i64..1_000_000);
    (
        "[a-z]{0,6}",
        (0u64..10, 0u64..100, 0u64..1 << 47, 0u32..=65_535),
        prop::collection::vec(binding, 0..5),
        prop::collection::vec(record, 0..30),
        0u8..=9,
    )
        .prop_map(|(channel, (epoch, seq, wall_ms, counter), bindings, records, scale)| {
            let f = LiveFrame {
                channel,
                epoch,
                seq,
                stamp: Hlc { wall_ms, counter },
                scope: KeyScope::Stream,
                bindings: bindings
                    .into_iter()
                    .map(|(key, meter, resource)| LiveBinding { key, meter, resource })
                    .collect(),
                keys: records.iter().map(|r| r.0).collect(),
                ids: records.iter().map(|r| r.1).collect(),
                ts: vec![T0; records.len()],
                amounts: records.iter().map(|r| Decimal::new(r.2, scale)).collect(),
                ..Default::default()
            };
            encode_live(&f, scale, TsLayout::PerRecord).unwrap()
        })
}

fn kind3() -> impl Strategy<Value = Vec<u8>> {
    let hour = prop_oneof![
        (0i64..10).prop_map(|h| (T0 / 3.6e6).floor() * 3.6e6 - h as f64 * 3.6e6),
        any::<f64>()
    ];
    let bucket = (
        prop::option::of("[a-z0-9-]{0,6}"),
        prop_oneof!["water", "energy", "gas"],
        hour,
        0i64..1_000_000,
    );
    (
        (0u64..1 << 47, 0u32..=65_535),
        // A valid frame has a valid range; the mutations break it.
        prop::option::of(Just((T0 / 3.6e6).floor() * 3.6e6 - 6.0 * 3.6e6)),
        prop::option::of(Just((T0 / 3.6e6).floor() * 3.6e6)),
        prop::collection::vec(bucket, 0..30),
        0u8..=9,
    )
        .prop_map(|((wall_ms, counter), from, to, buckets, scale)| {
            let c = Catchup {
                as_of: Hlc { wall_ms, counter },
                from_hour_ms: from,
                to_hour_ms: to,
                server_time_ms: Some(T0),
                buckets: buckets
                    .into_iter()
                    .enumerate()
                    .map(|(i, (meter, resource, hour_ms, m))| CatchupBucket {
                        meter,
                        resource,
                        hour_ms,
                        total: Decimal::new(m, scale),
                        position: i as u32,
                    })
                    .collect(),
                ..Default::default()
            };
            encode_catchup(&c, scale).unwrap()
        })
}

fn kind4() -> impl Strategy<Value = Vec<u8>> {
    let row = (
        "[a-z0-9-]{1,10}",
        prop_oneof!["water", "energy", ""].prop_map(String::from),
        prop_oneof![Just(T0), any::<f64>()],
        any::<f64>(),
        0usize..3,
        0u64..1 << 53,
        (any::<i64>(), 0u8..=18),
    );
    (
        prop_oneof![Just("meters.north"), Just("meters.a-b_c")],
        (0u64..1 << 53, 0u64..1 << 53),
        prop::collection::vec(row, 0..30),
        prop::collection::vec("[a-z0-9-]{1,10}", 0..10),
    )
        .prop_map(|(channel, (epoch, seq), rows, remove)| {
            let rows: Vec<MeterRowRef<'_>> = rows.iter().map(meter_rows::row_ref).collect();
            let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
            encode_meters_delta(channel, epoch, seq, &rows, &remove).unwrap()
        })
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    /// Overwrite the u32 at header offset 8 (B) or 12 (N).
    LengthField(bool, u32),
    Overwrite(usize, u8),
    Append(Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<bool>(), prop_oneof![0u32..64, any::<u32>()]).prop_map(|(b, v)| Mutation::LengthField(b, v)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Overwrite(i, v)),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Append),
        1 => (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match m {
        Mutation::FlipBit(i, b) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x ^= 1 << b;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::LengthField(bindings, v) => {
            let at = if *bindings { 8 } else { 12 };
            if bytes.len() >= at + 4 {
                bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
        }
        Mutation::Overwrite(i, v) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x = *v;
            }
        }
        Mutation::Append(extra) => bytes.extend_from_slice(extra),
        Mutation::Remove(i, n) => {
            let start = i % len;
            let end = (start + n).min(bytes.len());
            if start < end {
                bytes.drain(start..end);
            }
        }
    }
}

/// Hostile JSON value texts.
fn snippet() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("0.125".to_string()),
        Just("1e999".to_string()),
        Just("-1e999".to_string()),
        Just("9007199254740993".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1764064800000".to_string()),
        Just("3600000".to_string()),
        Just("1.5".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[1,2]".to_string()),
        Just("\"\"".to_string()),
        Just("\"water\"".to_string()),
        Just("\"0.0001\"".to_string()),
        Just("\"1e400\"".to_string()),
        Just("\"\\u0000\\ud800\"".to_string()),
        Just(format!("\"{}\"", "m".repeat(300))),
        Just("{\"wallMs\":1764064800000,\"counter\":0}".to_string()),
        Just("{\"wallMs\":1e300,\"counter\":-1}".to_string()),
        (-1e20f64..1e20).prop_map(|x| x.to_string()),
        "\"[a-z0-9 .-]{0,8}\"",
        // Amount grammar edges (PROTOCOL.md 3.9): extreme exponents, huge digit
        // strings, lenient forms, as numbers and as strings.
        prop_oneof![
            Just("1e-2147483648".to_string()),
            Just("1e2147483647".to_string()),
            Just("1e-99999999999999999999".to_string()),
            Just("9".repeat(10_000)),
            Just(format!("0.{}1", "0".repeat(5_000))),
            Just("1.000000000000000000000000000000000000000".to_string()),
            Just("9223372036854775807".to_string()),
            Just("9007199254740992.5".to_string()),
            (any::<i64>(), -30i32..30).prop_map(|(m, e)| format!("{m}e{e}")),
        ]
        .prop_flat_map(|n| prop_oneof![Just(n.clone()), Just(format!("\"{n}\""))]),
        prop_oneof![
            Just("\" 5 \"".to_string()),
            Just("\"+5\"".to_string()),
            Just("\"5.\"".to_string()),
            Just("\".5\"".to_string()),
            Just("\"05\"".to_string()),
            Just("\"0x10\"".to_string()),
            Just("\"1_000\"".to_string()),
            Just("\"\\u0661\"".to_string()),
            Just("\"m\\u0000\"".to_string()),
            Just(format!("\"{}\"", "m".repeat(257))),
        ],
    ]
}

const FIELDS: [&str; 20] = [
    "type",
    "v",
    "meter",
    "ts",
    "value",
    "resource",
    "id",
    "amount",
    "epoch",
    "seq",
    "hlc",
    "channel",
    "nextSeq",
    "serverTime",
    "asOf",
    "from",
    "to",
    "hour",
    "total",
    "x",
];

const TYPES: [&str; 7] = ["readings", "frame", "hello", "catchup", "config", "bogus", ""];

fn object(depth: u32) -> BoxedStrategy<String> {
    let value = if depth == 0 {
        snippet().boxed()
    } else {
        prop_oneof![4 => snippet(), 1 => object(depth - 1)].boxed()
    };
    prop::collection::vec((prop::sample::select(&FIELDS[..]), value), 0..7)
        .prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        })
        .boxed()
}

/// A payload: a top-level object with a type, scalar fields and lists of items.
fn json_payload() -> impl Strategy<Value = String> {
    (
        prop::sample::select(&TYPES[..]),
        object(1),
        prop::sample::select(&["readings", "buckets"][..]),
        prop::collection::vec(object(1), 0..12),
    )
        .prop_map(|(ty, top, list, items)| {
            let inner = top.trim_start_matches('{').trim_end_matches('}');
            let sep = if inner.is_empty() { "" } else { "," };
            format!("{{\"type\":\"{ty}\",\"{list}\":[{}]{sep}{inner}}}", items.join(","))
        })
}

fn text_edit() -> impl Strategy<Value = (usize, usize, String)> {
    (any::<usize>(), 0usize..4, "[{}\\[\\]\",:0-9a-z.\\\\e-]{0,3}")
}

fn splice(text: &str, edits: &[(usize, usize, String)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for (at, del, ins) in edits {
        let start = at % (bytes.len() + 1);
        let end = (start + del).min(bytes.len());
        bytes.splice(start..end, ins.bytes());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes);
        // Random bytes behind a valid header reach the frame bodies.
        for kind in [1u8, 2, 3, 4] {
            let mut framed = b"MFLW".to_vec();
            framed.extend_from_slice(&[1, kind]);
            framed.extend_from_slice(&bytes);
            decode_all(&framed);
        }
    }

    #[test]
    fn mutated_binary_frames(
        frame in prop_oneof![kind1(), kind2(), kind3(), kind4()],
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let env = match frame[5] {
            1 => Envelope::Readings,
            2 => Envelope::Live,
            _ => Envelope::Catchup,
        };
        let decoded = if frame[5] == 4 {
            decode_socket_binary(&frame, Arrival::default(), cfg())
        } else {
            decode_binary(env, &frame, cfg())
        };
        // The unmutated frame decodes (or is refused only for a limit, or a
        // kind-4 row's non-finite ts/value, as the JSON path refuses it).
        match decoded {
            Inbound::Rejected(e) if frame[5] == 4 => prop_assert!(
                matches!(e.code.as_str(), "payload_too_large" | "bad_timestamp" | "bad_value"),
                "a valid frame was refused: {e}"
            ),
            Inbound::Rejected(e) => prop_assert!(
                e.code.as_str() == "payload_too_large",
                "a valid frame was refused: {e}"
            ),
            decoded => check(decoded),
        }
        let mut bytes = frame.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        decode_all(&bytes);
    }

    #[test]
    fn structured_json(payload in json_payload(), arrival in (any::<f64>(), any::<f64>())) {
        let arrival = Arrival { sent_at_ms: Some(arrival.0), received_at_ms: Some(arrival.1) };
        for env in ENVELOPES {
            check(decode_text(env, &payload, arrival, cfg()));
        }
        let page = format!("{{\"type\":\"readings\",\"data\":{payload}}}");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&page) {
            check(decode_message(&v, cfg()));
        }
        let config = format!("{{\"type\":\"config\",\"config\":{payload}}}");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&config) {
            check(decode_message(&v, cfg()));
        }
    }

    #[test]
    fn mutated_json(payload in json_payload(), edits in prop::collection::vec(text_edit(), 1..5)) {
        let text = splice(&payload, &edits);
        decode_all(text.as_bytes());
    }
}
