#![cfg(not(target_arch = "wasm32"))]
//! The one grammar for amounts and meter ids (PROTOCOL.md, "Amounts and meter
//! ids"), tested through every path a user's payload takes: JSON readings, JSON
//! live frames, JSON catch-ups, and binary kinds 1, 2 and 3. Also exact floats
//! and the extremes of every untrusted number the decoders read.

use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::error::{CoreError, ErrorCode};
use meterflow::core::event::{
    Catchup, CatchupBucket, Inbound, KeyScope, LiveBinding, LiveFrame, ReadingBatch,
};
use meterflow::core::hlc::Hlc;
use meterflow::wire::binary::{encode_catchup, encode_live, encode_readings, TsLayout};
use meterflow::wire::{decode_binary, decode_text, Arrival, Envelope};

const HOUR: f64 = 3_600_000.0;
const H10: f64 = 1_764_064_800_000.0;

fn cfg() -> Config {
    Config::default()
}

fn text(env: Envelope, t: &str) -> Inbound {
    decode_text(env, t, Arrival::default(), &cfg())
}

/// A JSON string literal of `s` (escapes quotes, backslashes and controls).
fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A JSON live frame with one reading whose amount is the JSON text `amount`.
fn live_json(meter: &str, amount: &str) -> String {
    format!(
        r#"{{"type":"frame","epoch":1,"seq":0,"hlc":{{"wallMs":1,"counter":0}},"readings":[
        {{"meter":{},"resource":"water","id":1,"ts":1,"amount":{amount}}}]}}"#,
        lit(meter)
    )
}

/// A JSON catch-up with one bucket whose total is the JSON text `total`.
fn catchup_json(meter: Option<&str>, total: &str) -> String {
    let meter = meter.map(|m| format!(r#""meter":{},"#, lit(m))).unwrap_or_default();
    format!(
        r#"{{"asOf":{{"wallMs":{H10},"counter":0}},"buckets":[
        {{{meter}"resource":"water","hour":{H10},"total":{total}}}]}}"#
    )
}

/// The one item's outcome: its amount or its error code.
fn live_amount(t: &str) -> Result<Decimal, ErrorCode> {
    match text(Envelope::Live, t) {
        Inbound::Live(f) => match (f.amounts.as_slice(), f.errors.as_slice()) {
            ([a], []) => Ok(*a),
            ([], [e]) => Err(e.code),
            other => panic!("{t}: {other:?}"),
        },
        Inbound::Rejected(e) => Err(e.code),
        other => panic!("{t}: {other:?}"),
    }
}

fn catchup_total(t: &str) -> Result<Decimal, ErrorCode> {
    match text(Envelope::Catchup, t) {
        Inbound::Catchup(c) => match (c.buckets.as_slice(), c.errors.as_slice()) {
            ([b], []) => Ok(b.total),
            ([], [e]) => Err(e.code),
            other => panic!("{t}: {other:?}"),
        },
        Inbound::Rejected(e) => Err(e.code),
        other => panic!("{t}: {other:?}"),
    }
}

/// Checks an amount through a live frame and a catch-up, as a decimal string
/// and (where JSON allows it) as a bare JSON number.
fn check_amount(amount: &str, as_number: bool, expected: Result<Decimal, ErrorCode>) {
    let mut forms = vec![lit(amount)];
    if as_number {
        forms.push(amount.to_string());
    }
    for form in forms {
        let shown = &form[..form.len().min(60)];
        assert_eq!(live_amount(&live_json("m", &form)), expected, "live amount {shown}");
        assert_eq!(catchup_total(&catchup_json(None, &form)), expected, "catch-up total {shown}");
        let per_meter = catchup_total(&catchup_json(Some("m"), &form));
        assert_eq!(per_meter, expected, "per-meter total {shown}");
    }
}

#[test]
fn grammatical_amounts_are_read_exactly_on_every_json_path() {
    let d = |m, s| Ok(Decimal::new(m, s));
    for (amount, expected) in [
        ("0", d(0, 0)),
        ("-0", d(0, 0)),
        ("5", d(5, 0)),
        ("0.125", d(125, 3)),
        ("12.500", d(125, 1)),
        ("1.5e3", d(1500, 0)),
        ("1E+2", d(100, 0)),
        ("125e-3", d(125, 3)),
        ("0.000", d(0, 0)),
        ("0e-9999", d(0, 0)),
        ("1.000000000000000000000000000000000000000", d(1, 0)),
        ("9007199254740.993", d(9_007_199_254_740_993, 3)),
    ] {
        check_amount(amount, true, expected);
    }
}

#[test]
fn ungrammatical_amounts_are_bad_field_on_every_json_path() {
    let ten_thousand = "1".repeat(10_000);
    let mut bad: Vec<&str> = vec![
        " 5 ",
        " 5",
        "5 ",
        "+5",
        "5.",
        ".5",
        "05",
        "00",
        "-05",
        "0x10",
        "1_000",
        "1,5",
        "1e",
        "1e+",
        "e5",
        "--5",
        "-",
        "",
        "Infinity",
        "NaN",
        "1.2.3",
        "5e1.5",
        "\u{661}",
        "\u{ff15}",
        "5\u{0}",
        "1e-2147483648",
        "1e2147483647",
        "1e-99999999999999999999",
        "1e10000",
    ];
    bad.push(&ten_thousand);
    for amount in bad {
        check_amount(amount, false, Err(ErrorCode::BadField));
    }
    // The same refusal for JSON number text that serde_json itself accepts.
    for number in ["1e-2147483648", "1e2147483647", "1e-99999999999999999999", &ten_thousand] {
        check_amount(number, true, Err(ErrorCode::BadField));
    }
}

#[test]
fn grammatical_amounts_out_of_range_are_bad_value() {
    for amount in [
        "-5",
        "-0.001",
        "1e999",
        "0.0001",
        "1e-19",
        "1e-9999",
        "99999999999999999999",
        "9223372036854775807",
    ] {
        check_amount(amount, true, Err(ErrorCode::BadValue));
    }
}

fn frame_with_amount(scale: u8, mantissa: f64) -> Vec<u8> {
    let f = LiveFrame {
        epoch: 1,
        scope: KeyScope::Stream,
        stamp: Hlc { wall_ms: 1, counter: 0 },
        bindings: vec![LiveBinding { key: 0, meter: "m".into(), resource: "water".into() }],
        keys: vec![0],
        ids: vec![1],
        ts: vec![1.0],
        amounts: vec![Decimal::new(0, 0)],
        ..Default::default()
    };
    let mut bytes = encode_live(&f, 0, TsLayout::PerRecord).unwrap();
    bytes[44] = scale;
    let n = bytes.len();
    bytes[n - 8..].copy_from_slice(&mantissa.to_le_bytes());
    bytes
}

fn catchup_with_total(scale: u8, mantissa: f64) -> Vec<u8> {
    let c = Catchup {
        as_of: Hlc { wall_ms: H10 as u64, counter: 0 },
        buckets: vec![CatchupBucket {
            meter: None,
            resource: "water".into(),
            hour_ms: H10,
            total: Decimal::new(0, 0),
            position: 0,
        }],
        ..Default::default()
    };
    let mut bytes = encode_catchup(&c, 0).unwrap();
    bytes[28] = scale;
    let n = bytes.len();
    bytes[n - 8..].copy_from_slice(&mantissa.to_le_bytes());
    bytes
}

fn binary_amount(env: Envelope, bytes: &[u8]) -> Result<i64, ErrorCode> {
    let units = |d: Decimal| d.to_units(3).map_err(|_| ErrorCode::BadValue);
    match decode_binary(env, bytes, &cfg()) {
        Inbound::Live(f) => match (f.amounts.as_slice(), f.errors.as_slice()) {
            ([a], []) => units(*a),
            ([], [e]) => Err(e.code),
            other => panic!("{other:?}"),
        },
        Inbound::Catchup(c) => match (c.buckets.as_slice(), c.errors.as_slice()) {
            ([b], []) => units(b.total),
            ([], [e]) => Err(e.code),
            other => panic!("{other:?}"),
        },
        Inbound::Rejected(e) => Err(e.code),
        other => panic!("{other:?}"),
    }
}

#[test]
fn binary_amounts_follow_the_same_grammar_as_json() {
    let two53 = 2f64.powi(53);
    // (scale, mantissa, the same amount as JSON text, the outcome in units of 10^-3)
    let cases: [(u8, f64, &str, Result<i64, ErrorCode>); 10] = [
        (3, 125.0, "0.125", Ok(125)),
        (0, 0.0, "0", Ok(0)),
        (18, 1e15, "0.001", Ok(1)),
        (0, two53, "9007199254740992", Ok(9_007_199_254_740_992_000)),
        (4, 1.0, "0.0001", Err(ErrorCode::BadValue)),
        (0, -1.0, "-1", Err(ErrorCode::BadValue)),
        (0, 0.5, "0.5", Ok(500)),
        (0, two53 + 2.0, "9007199254740994", Ok(9_007_199_254_740_994_000)),
        (0, f64::NAN, "NaN", Err(ErrorCode::BadField)),
        (19, 1.0, "1e-19", Err(ErrorCode::BadValue)),
    ];
    for (scale, mantissa, json, expected) in cases {
        let from_json = live_amount(&live_json("m", &lit(json))).map(|d| d.to_units(3).unwrap());
        assert_eq!(from_json, expected, "JSON {json}");
        // A binary mantissa must be whole in 0..=2^53 and the scale at most 18: the
        // binary form cannot express what JSON refuses, and refuses the rest
        // with the codes of PROTOCOL.md 3.7.
        let binary_expected = match (scale, mantissa) {
            (19, _) => Err(ErrorCode::BadFrame),
            (_, m) if !(m.fract() == 0.0 && (0.0..=two53).contains(&m)) => Err(ErrorCode::BadValue),
            _ => expected,
        };
        let live = binary_amount(Envelope::Live, &frame_with_amount(scale, mantissa));
        assert_eq!(live, binary_expected, "kind 2 {scale} {mantissa}");
        let catchup = binary_amount(Envelope::Catchup, &catchup_with_total(scale, mantissa));
        assert_eq!(catchup, binary_expected, "kind 3 {scale} {mantissa}");
    }
}

fn readings_json(meter: &str) -> String {
    format!(r#"{{"readings":[{{"meter":{},"ts":1,"value":1}}]}}"#, lit(meter))
}

/// The outcome of one meter id on one path: `Ok` or the error code.
fn id_outcomes(meter: &str) -> Vec<(&'static str, Result<(), ErrorCode>)> {
    fn item(errors: &[CoreError], n: usize) -> Result<(), ErrorCode> {
        match (n, errors) {
            (1, []) => Ok(()),
            (0, [e]) => Err(e.code),
            other => panic!("{other:?}"),
        }
    }
    fn whole(i: Inbound) -> Result<(), ErrorCode> {
        match i {
            Inbound::Rejected(e) => Err(e.code),
            Inbound::Readings(b) => item(&b.errors, b.keys.len()),
            Inbound::Live(f) => item(&f.errors, f.keys.len()),
            Inbound::Catchup(c) => item(&c.errors, c.buckets.len()),
            other => panic!("{other:?}"),
        }
    }
    let k1 = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: vec![(3, meter.to_string())],
        keys: vec![3],
        ts: vec![1.0],
        values: vec![1.0],
        ..Default::default()
    };
    let k2 = LiveFrame {
        epoch: 1,
        scope: KeyScope::Stream,
        stamp: Hlc { wall_ms: 1, counter: 0 },
        bindings: vec![LiveBinding { key: 3, meter: meter.into(), resource: "water".into() }],
        keys: vec![3],
        ids: vec![1],
        ts: vec![1.0],
        amounts: vec![Decimal::new(1, 0)],
        ..Default::default()
    };
    let k3 = Catchup {
        as_of: Hlc { wall_ms: H10 as u64, counter: 0 },
        buckets: vec![CatchupBucket {
            meter: Some(meter.into()),
            resource: "water".into(),
            hour_ms: H10,
            total: Decimal::new(1, 0),
            position: 0,
        }],
        ..Default::default()
    };
    let bin = |env, bytes: Vec<u8>| whole(decode_binary(env, &bytes, &cfg()));
    vec![
        ("json readings", whole(text(Envelope::Readings, &readings_json(meter)))),
        ("json live", whole(text(Envelope::Live, &live_json(meter, "1")))),
        ("json catch-up", whole(text(Envelope::Catchup, &catchup_json(Some(meter), "1")))),
        ("kind 1", bin(Envelope::Readings, encode_readings(&k1, TsLayout::PerRecord).unwrap())),
        ("kind 2", bin(Envelope::Live, encode_live(&k2, 0, TsLayout::PerRecord).unwrap())),
        ("kind 3", bin(Envelope::Catchup, encode_catchup(&k3, 0).unwrap())),
    ]
}

#[test]
fn one_meter_id_rule_on_every_path() {
    let longest_multibyte = "\u{e9}".repeat(128); // 256 bytes
    for ok in ["m", "pump-17", "m\u{e9}ter \u{1f4a7}", &"m".repeat(256), &longest_multibyte] {
        for (path, outcome) in id_outcomes(ok) {
            assert_eq!(outcome, Ok(()), "{path}: {ok:?}");
        }
    }
    let too_long_multibyte = format!("{longest_multibyte}x");
    for bad in [
        "m".repeat(257),
        "m".repeat(65_535),
        too_long_multibyte,
        "a\u{0}b".into(),
        "a\nb".into(),
        "\t".into(),
        "a\u{7f}".into(),
        "a\u{85}b".into(),
        "\u{9f}".into(),
    ] {
        for (path, outcome) in id_outcomes(&bad) {
            assert_eq!(
                outcome,
                Err(ErrorCode::BadMeterId),
                "{path}: {:?}",
                &bad[..bad.len().min(9)]
            );
        }
    }
    // Empty: a bad id everywhere except in a kind-3 binding, where the empty
    // meter names a resource total (PROTOCOL.md 3.8).
    for (path, outcome) in id_outcomes("") {
        let expected = if path == "kind 3" { Ok(()) } else { Err(ErrorCode::BadMeterId) };
        assert_eq!(outcome, expected, "{path}: empty id");
    }
}

#[path = "common/rng.rs"]
mod rng;

/// The values of a JSON readings payload, in order.
fn values_of(t: &str) -> Vec<f64> {
    match text(Envelope::Readings, t) {
        Inbound::Readings(b) if b.errors.is_empty() => b.values,
        other => panic!("{t}: {other:?}"),
    }
}

#[test]
fn json_floats_are_read_bit_exactly() {
    let mut r = rng::Rng(6);
    let mut xs = vec![62.484097008199996, 0.1, 5e-324, f64::MAX, f64::MIN_POSITIVE, 1.7e12 + 0.5];
    while xs.len() < 20_000 {
        let x = f64::from_bits(r.next_u64());
        if x.is_finite() {
            xs.push(x);
        }
    }
    for chunk in xs.chunks(500) {
        for print in [|x: f64| format!("{x}"), |x: f64| format!("{x:e}"), |x: f64| format!("{x:?}")]
        {
            let items: Vec<String> = chunk
                .iter()
                .map(|&x| format!(r#"{{"meter":"m","ts":{},"value":{}}}"#, print(x), print(x)))
                .collect();
            let got = values_of(&format!(r#"{{"readings":[{}]}}"#, items.join(",")));
            for (&x, y) in chunk.iter().zip(got) {
                assert_eq!(x.to_bits(), y.to_bits(), "{} read as {y:?}", print(x));
            }
        }
    }
}

/// Checks a JSON live frame's header field `field` set to `value` (JSON text).
fn live_header(field: &str, value: &str) -> Result<(u64, u64, Hlc), ErrorCode> {
    let mut v: serde_json::Value = serde_json::from_str(&live_json("m", "1")).unwrap();
    v[field] = serde_json::Value::Null;
    let t = serde_json::to_string(&v).unwrap().replace("null", value);
    match text(Envelope::Live, &t) {
        Inbound::Live(f) => Ok((f.epoch, f.seq, f.stamp)),
        Inbound::Rejected(e) => Err(e.code),
        other => panic!("{other:?}"),
    }
}

#[test]
fn untrusted_numbers_at_their_extremes_are_exact_or_refused() {
    use ErrorCode::*;
    let two53 = 9_007_199_254_740_992u64;
    let hlc = |w, c| Hlc { wall_ms: w, counter: c };
    let ok = |epoch, seq, w, c| Ok((epoch, seq, hlc(w, c)));
    // Whole numbers: exact up to 2^53, never rounded into range.
    assert_eq!(live_header("epoch", "9007199254740992"), ok(two53, 0, 1, 0));
    assert_eq!(live_header("seq", "9007199254740992"), ok(1, two53, 1, 0));
    assert_eq!(live_header("seq", "0"), ok(1, 0, 1, 0));
    for bad in [
        "9007199254740993",
        "9007199254740992.5",
        "18446744073709551615",
        "18446744073709551616",
        "1e16",
        "1e400",
        "-1",
        "-9223372036854775808",
        "0.5",
    ] {
        assert_eq!(live_header("seq", bad), Err(BadValue), "seq {bad}");
        assert_eq!(live_header("epoch", bad), Err(BadValue), "epoch {bad}");
    }
    // HLC parts: wallMs <= 2^47, counter <= 65535, whole; beyond is bad_timestamp.
    assert_eq!(
        live_header("hlc", r#"{"wallMs":140737488355328,"counter":65535}"#),
        ok(1, 0, 1 << 47, 65_535)
    );
    for bad in [
        r#"{"wallMs":140737488355329,"counter":0}"#,
        r#"{"wallMs":9007199254740993,"counter":0}"#,
        r#"{"wallMs":1e300,"counter":0}"#,
        r#"{"wallMs":1e400,"counter":0}"#,
        r#"{"wallMs":-1,"counter":0}"#,
        r#"{"wallMs":1,"counter":65536}"#,
        r#"{"wallMs":1,"counter":4294967296}"#,
        r#"{"wallMs":1,"counter":-1e400}"#,
        r#"{"wallMs":1.5,"counter":0}"#,
    ] {
        assert_eq!(live_header("hlc", bad), Err(BadTimestamp), "hlc {bad}");
    }
    assert_eq!(live_header("hlc", r#"{"wallMs":"1","counter":0}"#), Err(BadField));
    // Reading ids: whole in 0..=2^53.
    let id = |id: &str| {
        let t = live_json("m", "1").replace(r#""id":1"#, &format!(r#""id":{id}"#));
        match text(Envelope::Live, &t) {
            Inbound::Live(f) => match (f.ids.as_slice(), f.errors.as_slice()) {
                ([i], []) => Ok(*i),
                (_, [e]) => Err(e.code),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(id("9007199254740992"), Ok(two53));
    for bad in ["9007199254740993", "1e16", "1e400", "-1", "0.5", "18446744073709551616"] {
        assert_eq!(id(bad), Err(BadValue), "id {bad}");
    }
    // Timestamps: any finite double passes the decoder (the engine judges it);
    // beyond the double range is bad_timestamp.
    for (ts, expected) in [
        ("9007199254740993", Ok(9_007_199_254_740_992.0)),
        ("-9007199254740993", Ok(-9_007_199_254_740_992.0)),
        ("1e308", Ok(1e308)),
        ("1e400", Err(BadTimestamp)),
        ("-1e400", Err(BadTimestamp)),
    ] {
        let t = format!(r#"{{"readings":[{{"meter":"m","ts":{ts},"value":1}}]}}"#);
        let got = match text(Envelope::Readings, &t) {
            Inbound::Readings(b) => match (b.ts.as_slice(), b.errors.as_slice()) {
                ([x], []) => Ok(*x),
                (_, [e]) => Err(e.code),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        assert_eq!(got, expected, "ts {ts}");
    }
    // Hour keys: hour starts in 0..=2^53 only.
    let hour = |h: &str| {
        let t =
            catchup_json(None, "1").replace(&format!(r#""hour":{H10}"#), &format!(r#""hour":{h}"#));
        catchup_total(&t).map(|_| ())
    };
    assert_eq!(hour("0"), Ok(()));
    assert_eq!(hour(&format!("{}", 2_501_999_792.0 * HOUR)), Ok(())); // the last hour start <= 2^53
    for bad in ["-3600000", "3600001", "9007203600000000", "1e300", "1e400", "1.5"] {
        assert_eq!(hour(bad), Err(BadTimestamp), "hour {bad}");
    }
}

#[test]
fn binary_header_numbers_at_their_extremes_are_exact_or_refused() {
    use ErrorCode::*;
    let bytes = frame_with_amount(0, 1.0);
    let decode = |patch: &dyn Fn(&mut Vec<u8>)| {
        let mut b = bytes.clone();
        patch(&mut b);
        match decode_binary(Envelope::Live, &b, &cfg()) {
            Inbound::Live(f) => Ok((f.epoch, f.seq, f.stamp)),
            Inbound::Rejected(e) => Err(e.code),
            other => panic!("{other:?}"),
        }
    };
    let f64_at =
        |at: usize, x: f64| move |b: &mut Vec<u8>| b[at..at + 8].copy_from_slice(&x.to_le_bytes());
    let two53 = 2f64.powi(53);
    assert_eq!(decode(&f64_at(16, two53)).map(|h| h.0), Ok(1 << 53));
    assert_eq!(decode(&f64_at(24, two53)).map(|h| h.1), Ok(1 << 53));
    assert_eq!(decode(&f64_at(32, 2f64.powi(47))).map(|h| h.2.wall_ms), Ok(1 << 47));
    for x in [two53 + 2.0, 2f64.powi(64), f64::MAX, f64::INFINITY, f64::NAN, -1.0, -0.5, 0.5] {
        assert_eq!(decode(&f64_at(16, x)), Err(BadValue), "epoch {x}");
        assert_eq!(decode(&f64_at(24, x)), Err(BadValue), "seq {x}");
    }
    for x in [2f64.powi(47) + 1.0, two53, f64::INFINITY, f64::NAN, -1.0, 0.5] {
        assert_eq!(decode(&f64_at(32, x)), Err(BadTimestamp), "wallMs {x}");
    }
    let counter = |c: u32| move |b: &mut Vec<u8>| b[40..44].copy_from_slice(&c.to_le_bytes());
    assert_eq!(decode(&counter(65_535)).map(|h| h.2.counter), Ok(65_535));
    for c in [65_536, u32::MAX] {
        assert_eq!(decode(&counter(c)), Err(BadTimestamp), "counter {c}");
    }
    // Counts past what the frame holds: `count × width` cannot overflow (a
    // 32-bit usize on wasm32) and is truncated_frame, not an allocation.
    let counts = |b: u32, n: u32| {
        move |v: &mut Vec<u8>| {
            v[8..12].copy_from_slice(&b.to_le_bytes());
            v[12..16].copy_from_slice(&n.to_le_bytes());
        }
    };
    for (b, n, code) in [
        (u32::MAX, 1, TruncatedFrame),
        (1, 1_000_000, TruncatedFrame),
        (u32::MAX, 1_000_000, TruncatedFrame),
        (1, u32::MAX, PayloadTooLarge),
        (0, 0, BadFrame),
    ] {
        assert_eq!(decode(&counts(b, n)), Err(code), "B={b} N={n}");
    }
}

#[test]
fn binary_record_numbers_at_their_extremes_are_exact_or_refused() {
    use ErrorCode::*;
    let two53 = 2f64.powi(53);
    let put = |bytes: &mut Vec<u8>, at: usize, x: f64| {
        bytes[at..at + 8].copy_from_slice(&x.to_le_bytes());
    };
    // Kind 2 (frame_with_amount): ids at 72, ts at 80.
    let live = |at: usize, x: f64| {
        let mut b = frame_with_amount(0, 1.0);
        put(&mut b, at, x);
        match decode_binary(Envelope::Live, &b, &cfg()) {
            Inbound::Live(f) => match (f.ids.as_slice(), f.ts.as_slice(), f.errors.as_slice()) {
                ([id], [ts], []) => Ok((*id, *ts)),
                ([], [], [e]) => Err(e.code),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(live(72, two53), Ok((1 << 53, 1.0)));
    assert_eq!(live(72, 0.0), Ok((0, 1.0)));
    for id in [two53 + 2.0, 2f64.powi(64), f64::INFINITY, f64::NAN, -1.0, 0.5] {
        assert_eq!(live(72, id), Err(BadValue), "id {id}");
    }
    for ts in [-two53 - 2.0, 1e300, -1e300, f64::MIN_POSITIVE] {
        assert_eq!(live(80, ts), Ok((1, ts)), "ts {ts}");
    }
    for ts in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        assert_eq!(live(80, ts), Err(BadTimestamp), "ts {ts}");
    }
    // Kind 3 (catchup_with_total): from 32, to 40, serverTime 48, the hour at 80.
    let catchup = |at: usize, x: f64| {
        let mut b = catchup_with_total(3, 1.0);
        put(&mut b, at, x);
        match decode_binary(Envelope::Catchup, &b, &cfg()) {
            Inbound::Catchup(c) => match (c.buckets.as_slice(), c.errors.as_slice()) {
                ([b], []) => Ok((b.hour_ms, c.from_hour_ms, c.to_hour_ms, c.server_time_ms)),
                ([], [e]) => Err(e.code),
                other => panic!("{other:?}"),
            },
            Inbound::Rejected(e) => Err(e.code),
            other => panic!("{other:?}"),
        }
    };
    let last_hour = (two53 / HOUR).floor() * HOUR;
    assert_eq!(catchup(80, 0.0), Ok((0.0, None, None, None)));
    assert_eq!(catchup(80, last_hour), Ok((last_hour, None, None, None)));
    assert_eq!(catchup(32, last_hour), Ok((H10, Some(last_hour), None, None)));
    assert_eq!(catchup(48, -1e300), Ok((H10, None, None, Some(-1e300))));
    for hour in [last_hour + HOUR, -HOUR, 3_600_001.0, f64::NAN, f64::INFINITY, 1e300] {
        assert_eq!(catchup(80, hour), Err(BadTimestamp), "hour {hour}");
    }
    for (at, x) in [(32, -HOUR), (40, 1.5), (32, f64::INFINITY), (40, last_hour + HOUR)] {
        assert_eq!(catchup(at, x), Err(BadTimestamp), "from/to at {at}: {x}");
    }
    assert_eq!(catchup(48, f64::INFINITY), Err(BadTimestamp));
    let mut b = catchup_with_total(3, 1.0);
    put(&mut b, 32, H10 + HOUR);
    put(&mut b, 40, H10);
    assert_eq!(binary_amount(Envelope::Catchup, &b), Err(BadTimestamp), "from after to");
}
