#![cfg(not(target_arch = "wasm32"))]
//! Binary frames v1: encode -> decode round trips, every error code reachable
//! from a frame, positions, and frames driven through the engine.

use base64::Engine as _;
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::decimal::Decimal;
use meterflow::core::error::{CoreError, ErrorCode};
use meterflow::core::event::{
    Inbound, KeyScope, LiveBinding, LiveFrame, Outbound, Query, ReadingBatch,
};
use meterflow::core::hlc::Hlc;
use meterflow::core::Engine;
use meterflow::wire::binary::{self, encode_live, encode_readings, TsLayout};
use meterflow::wire::{decode_binary, decode_message, Envelope};

const T0: f64 = 1.7e12;

fn cfg() -> Config {
    Config::default()
}

fn kind1() -> ReadingBatch {
    ReadingBatch {
        scope: KeyScope::Stream,
        bindings: vec![(0, "pump-17".into()), (5, "m\u{e9}ter".into())],
        keys: vec![0, 5, 0],
        ts: vec![T0, T0 + 1.0, T0 + 2.0],
        values: vec![1.5, -2.0, 1e300],
        ..Default::default()
    }
}

fn kind2() -> LiveFrame {
    LiveFrame {
        channel: "eu-1".into(),
        epoch: 7,
        seq: 1042,
        stamp: Hlc { wall_ms: 1764064800123, counter: 4 },
        scope: KeyScope::Stream,
        bindings: vec![
            LiveBinding { key: 1, meter: "m-1".into(), resource: "water".into() },
            LiveBinding { key: 2, meter: "m-1".into(), resource: "energy".into() },
        ],
        keys: vec![1, 2, 1],
        ids: vec![881, 882, 1 << 53],
        ts: vec![T0; 3],
        amounts: vec![Decimal::new(125, 3), Decimal::new(5, 0), Decimal::new(0, 0)],
        ..Default::default()
    }
}

fn rejected(i: Inbound) -> CoreError {
    match i {
        Inbound::Rejected(e) => e,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn check(env: Envelope, bytes: &[u8], code: ErrorCode, needle: &str) {
    let e = rejected(decode_binary(env, bytes, &cfg()));
    assert_eq!(e.code, code, "{e}");
    assert!(e.message.contains(needle), "{e:?} lacks {needle:?}");
}

/// Decoded amounts come back at the frame's scale; compare them as values.
fn normalised(mut f: LiveFrame) -> LiveFrame {
    for a in &mut f.amounts {
        *a = Decimal::parse(&meterflow::core::decimal::format_units(a.mantissa, a.scale)).unwrap();
    }
    f
}

#[test]
fn kind1_round_trips_in_both_layouts() {
    let b = kind1();
    let bytes = encode_readings(&b, TsLayout::PerRecord).unwrap();
    assert_eq!(bytes.len() % 8, 0);
    assert_eq!(decode_binary(Envelope::Readings, &bytes, &cfg()), Inbound::Readings(b.clone()));

    let shared = ReadingBatch { ts: vec![T0; 3], ..b };
    let bytes = encode_readings(&shared, TsLayout::Shared).unwrap();
    assert_eq!(
        decode_binary(Envelope::Readings, &bytes, &cfg()),
        Inbound::Readings(shared.clone())
    );
    assert!(encode_readings(&kind1(), TsLayout::Shared).is_err(), "ts differ");

    let empty = ReadingBatch { scope: KeyScope::Stream, ..Default::default() };
    let bytes = encode_readings(&empty, TsLayout::PerRecord).unwrap();
    assert_eq!(bytes.len(), 16);
    assert_eq!(decode_binary(Envelope::Readings, &bytes, &cfg()), Inbound::Readings(empty));
}

#[test]
fn kind2_round_trips_in_both_layouts_at_any_scale() {
    let f = kind2();
    for scale in [3u8, 4, 9] {
        let bytes = encode_live(&f, scale, TsLayout::PerRecord).unwrap();
        match decode_binary(Envelope::Live, &bytes, &cfg()) {
            Inbound::Live(d) => {
                assert!(d.amounts.iter().all(|a| a.scale == scale));
                assert_eq!(normalised(d), f);
            }
            other => panic!("{other:?}"),
        }
        let bytes = encode_live(&f, scale, TsLayout::Shared).unwrap();
        assert!(
            matches!(decode_binary(Envelope::Live, &bytes, &cfg()), Inbound::Live(d) if normalised(d.clone()) == f)
        );
    }
    assert!(encode_live(&f, 2, TsLayout::PerRecord).is_err(), "0.125 needs scale 3");
}

#[test]
fn data_base64_page_messages_carry_binary_frames() {
    let bytes = encode_readings(&kind1(), TsLayout::PerRecord).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let msg = serde_json::json!({"type":"readings","dataBase64":b64});
    assert_eq!(decode_message(&msg, &cfg()), Inbound::Readings(kind1()));
}

/// The header of a valid frame with one byte changed.
fn patched(bytes: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] = value;
    b
}

#[test]
fn header_errors() {
    let k1 = encode_readings(&kind1(), TsLayout::PerRecord).unwrap();
    let k2 = encode_live(&kind2(), 3, TsLayout::PerRecord).unwrap();
    use Envelope::*;
    check(Readings, &[], ErrorCode::TruncatedFrame, "header");
    check(Readings, &k1[..15], ErrorCode::TruncatedFrame, "header");
    check(Readings, &patched(&k1, 0, b'X'), ErrorCode::BadFrame, "magic");
    check(Readings, &patched(&k1, 4, 2), ErrorCode::BadFrame, "version 2");
    check(Readings, &patched(&k1, 5, 5), ErrorCode::BadFrame, "kind 5");
    // Kind 4 is the `meters.<group>` DELTA: known, but not a `readings` payload.
    check(Readings, &patched(&k1, 5, 4), ErrorCode::UnknownType, "kind 4");
    check(Readings, &patched(&k1, 6, 2), ErrorCode::BadFrame, "flags");
    check(Live, &k1, ErrorCode::UnknownType, "kind 1");
    check(Readings, &k2, ErrorCode::UnknownType, "kind 2");
    check(Catchup, &k1, ErrorCode::UnknownType, "catchup");
    let small = Config::default()
        .apply(&ConfigPatch {
            max_payload_bytes: Some(64),
            max_batch: Some(2),
            ..Default::default()
        })
        .unwrap();
    let e = rejected(decode_binary(Readings, &k1, &small));
    assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    assert!(e.message.contains("maxPayloadBytes"), "{e}");
    let three = encode_readings(
        &ReadingBatch {
            keys: vec![0; 3],
            ts: vec![T0; 3],
            values: vec![0.0; 3],
            ..Default::default()
        },
        TsLayout::Shared,
    )
    .unwrap();
    let e = rejected(decode_binary(Readings, &three, &small));
    assert_eq!(e.code, ErrorCode::PayloadTooLarge);
    assert!(e.message.contains("maxBatch"), "{e}");
}

#[test]
fn length_errors_are_exact() {
    let k1 = encode_readings(&kind1(), TsLayout::PerRecord).unwrap();
    let k2 = encode_live(&kind2(), 3, TsLayout::PerRecord).unwrap();
    for (env, frame) in [(Envelope::Readings, &k1), (Envelope::Live, &k2)] {
        for cut in 16..frame.len() {
            let e = rejected(decode_binary(env, &frame[..cut], &cfg()));
            assert_eq!(e.code, ErrorCode::TruncatedFrame, "cut at {cut}: {e}");
        }
        let mut long = frame.clone();
        long.push(0);
        check(env, &long, ErrorCode::BadFrame, "1 trailing bytes");
        // N one larger than the contents: truncated; one smaller: trailing bytes.
        let n = u32::from_le_bytes(frame[12..16].try_into().unwrap());
        let mut more = frame.clone();
        more[12..16].copy_from_slice(&(n + 1).to_le_bytes());
        check(env, &more, ErrorCode::TruncatedFrame, "column");
        let mut fewer = frame.clone();
        fewer[12..16].copy_from_slice(&(n - 1).to_le_bytes());
        check(env, &fewer, ErrorCode::BadFrame, "trailing");
        // A binding count far beyond the bytes: truncated, no huge allocation.
        let mut bindings = frame.clone();
        bindings[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        check(env, &bindings, ErrorCode::TruncatedFrame, "bindings");
        let mut records = frame.clone();
        records[12..16].copy_from_slice(&999_999u32.to_le_bytes());
        check(env, &records, ErrorCode::TruncatedFrame, "column");
    }
}

#[test]
fn padding_bindings_and_kind2_header_errors() {
    // Non-zero padding after the bindings (kind 1: 16 + 13 + 12 = 41, padded to 48).
    let k1 = encode_readings(&kind1(), TsLayout::PerRecord).unwrap();
    check(Envelope::Readings, &patched(&k1, 44, 1), ErrorCode::BadFrame, "padding");
    // A meter id that is not UTF-8 (first id byte at 16 + 6).
    check(Envelope::Readings, &patched(&k1, 22, 0xff), ErrorCode::BadMeterId, "key 0");

    let k2 = encode_live(&kind2(), 3, TsLayout::PerRecord).unwrap();
    let f64_at = |b: &[u8], at: usize, x: f64| {
        let mut b = b.to_vec();
        b[at..at + 8].copy_from_slice(&x.to_le_bytes());
        b
    };
    use Envelope::Live;
    check(Live, &f64_at(&k2, 16, 1.5), ErrorCode::BadValue, "epoch");
    check(Live, &f64_at(&k2, 24, -1.0), ErrorCode::BadValue, "seq");
    check(Live, &f64_at(&k2, 24, 2f64.powi(54)), ErrorCode::BadValue, "seq");
    check(Live, &f64_at(&k2, 32, f64::NAN), ErrorCode::BadTimestamp, "stamp");
    check(Live, &patched(&k2, 42, 1), ErrorCode::BadTimestamp, "stamp"); // counter > 65535
    check(Live, &patched(&k2, 44, 19), ErrorCode::BadFrame, "scale");
    check(Live, &patched(&k2, 46, 1), ErrorCode::BadFrame, "reserved");
    check(Live, &patched(&k2, 48, 0xff), ErrorCode::BadFrame, "channel");
    // Bindings start at 48 + 4 ("eu-1"): key, u16, u8, then "m-1", "water".
    check(Live, &patched(&k2, 59, 0xc0), ErrorCode::BadMeterId, "key 1");
    check(Live, &patched(&k2, 62, 0xc0), ErrorCode::UnknownResource, "key 1");
}

#[test]
fn bad_kind2_records_are_dropped_with_positions() {
    let mut f = kind2();
    f.keys = vec![1; 5];
    f.ids = vec![1, 2, 3, 4, 5];
    f.ts = vec![T0; 5];
    f.amounts = vec![Decimal::new(1, 0); 5];
    let mut bytes = encode_live(&f, 0, TsLayout::PerRecord).unwrap();
    let n = 5;
    let cols = bytes.len() - 3 * 8 * n;
    let set = |b: &mut Vec<u8>, col: usize, i: usize, x: f64| {
        let at = cols + col * 8 * n + 8 * i;
        b[at..at + 8].copy_from_slice(&x.to_le_bytes());
    };
    set(&mut bytes, 0, 1, -1.0); // id
    set(&mut bytes, 1, 2, f64::INFINITY); // ts
    set(&mut bytes, 2, 3, 0.5); // amount mantissa
    match decode_binary(Envelope::Live, &bytes, &cfg()) {
        Inbound::Live(d) => {
            let codes: Vec<_> = d.errors.iter().map(|e| (e.code, e.position)).collect();
            assert_eq!(
                codes,
                vec![
                    (ErrorCode::BadValue, Some(1)),
                    (ErrorCode::BadTimestamp, Some(2)),
                    (ErrorCode::BadValue, Some(3))
                ]
            );
            assert_eq!(d.ids, vec![1, 5]);
            assert_eq!(d.positions, vec![0, 4]);
            assert_eq!(d.keys.len(), 2);
            assert_eq!(d.amounts.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}

fn errors(out: &[Outbound]) -> Vec<(ErrorCode, Option<u32>)> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Error(e) => Some((e.code, e.position)),
            _ => None,
        })
        .collect()
}

#[test]
fn kind1_frames_drive_the_engine_with_persistent_keys() {
    let c = Config::default()
        .apply(&ConfigPatch { max_stream_keys: Some(100), ..Default::default() })
        .unwrap();
    let mut engine = Engine::new(c.clone()).unwrap();
    let first = encode_readings(
        &ReadingBatch {
            bindings: vec![(3, "a".into()), (500, "b".into())],
            keys: vec![3, 3],
            ts: vec![T0, T0],
            values: vec![1.0, 2.0],
            ..Default::default()
        },
        TsLayout::Shared,
    )
    .unwrap();
    let out = engine.handle(decode_binary(Envelope::Readings, &first, &c), T0);
    assert_eq!(errors(&out), vec![(ErrorCode::KeyOutOfRange, None)]);
    // Key 3 stays bound; key 7 never was; NaN and out-of-window values are per record.
    let second = encode_readings(
        &ReadingBatch {
            keys: vec![3, 7, 3, 3, 3],
            ts: vec![T0, T0, T0, f64::NAN, T0 + 1.0],
            values: vec![3.0, 1.0, f64::NAN, 1.0, 4.0],
            ..Default::default()
        },
        TsLayout::PerRecord,
    )
    .unwrap();
    let out = engine.handle(decode_binary(Envelope::Readings, &second, &c), T0);
    assert_eq!(
        errors(&out),
        vec![
            (ErrorCode::UnknownKey, Some(1)),
            (ErrorCode::BadValue, Some(2)),
            (ErrorCode::BadTimestamp, Some(3))
        ]
    );
    match engine.handle(Inbound::Query(Query::Window { meter: "a".into() }), T0).as_slice() {
        [Outbound::Window { values, .. }] => assert_eq!(values, &vec![1.0, 2.0, 3.0, 4.0]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn frame_constants_match_the_protocol() {
    assert_eq!(&binary::MAGIC, b"MFLW");
    assert_eq!(
        (binary::VERSION, binary::KIND_READINGS, binary::KIND_LIVE, binary::KIND_CATCHUP),
        (1, 1, 2, 3)
    );
    assert_eq!(
        (binary::HEADER_BYTES, binary::LIVE_HEADER_BYTES, binary::CATCHUP_HEADER_BYTES),
        (16, 32, 40)
    );
}

fn kind3() -> meterflow::core::event::Catchup {
    use meterflow::core::event::{Catchup, CatchupBucket};
    let h10 = 1_764_064_800_000.0;
    let bucket =
        |i: u32, meter: Option<&str>, resource: &str, hour_ms: f64, total: &str| CatchupBucket {
            meter: meter.map(str::to_owned),
            resource: resource.into(),
            hour_ms,
            total: Decimal::parse(total).unwrap(),
            position: i,
        };
    Catchup {
        as_of: Hlc { wall_ms: 1_764_064_860_000, counter: 12 },
        from_hour_ms: Some(h10 - 6.0 * 3_600_000.0),
        to_hour_ms: Some(h10),
        buckets: vec![
            bucket(0, Some("pump-17"), "water", h10, "1.25"),
            bucket(1, Some("pump-18"), "water", h10, "2"),
            bucket(2, None, "energy", h10 - 3_600_000.0, "7.125"),
            bucket(3, Some("pump-17"), "water", h10 - 3_600_000.0, "0.5"),
        ],
        server_time_ms: Some(1_764_064_860_004.0),
        ..Default::default()
    }
}

/// Decoded totals come back at the frame's scale; compare them as values.
fn normalised_catchup(mut c: meterflow::core::event::Catchup) -> meterflow::core::event::Catchup {
    for b in &mut c.buckets {
        b.total = Decimal::parse(&meterflow::core::decimal::format_units(
            b.total.mantissa,
            b.total.scale,
        ))
        .unwrap();
    }
    c
}

#[test]
fn kind3_catchups_round_trip_with_arrival_times() {
    use meterflow::wire::{decode_binary_at, Arrival};
    let c = kind3();
    let bytes = binary::encode_catchup(&c, 3).unwrap();
    let arrival = Arrival { sent_at_ms: Some(1.0), received_at_ms: Some(2.0) };
    let Inbound::Catchup(d) = decode_binary_at(Envelope::Catchup, &bytes, arrival, &cfg()) else {
        panic!("not a catch-up")
    };
    let want = meterflow::core::event::Catchup {
        sent_at_ms: Some(1.0),
        received_at_ms: Some(2.0),
        ..c.clone()
    };
    assert_eq!(normalised_catchup(d), want);
    // Absent range and server time travel as NaN and come back absent.
    let bare = meterflow::core::event::Catchup {
        from_hour_ms: None,
        to_hour_ms: None,
        server_time_ms: None,
        ..c
    };
    let Inbound::Catchup(d) =
        decode_binary(Envelope::Catchup, &binary::encode_catchup(&bare, 3).unwrap(), &cfg())
    else {
        panic!("not a catch-up")
    };
    assert_eq!((d.from_hour_ms, d.to_hour_ms, d.server_time_ms), (None, None, None));
}

#[test]
fn kind3_errors() {
    let c = kind3();
    let bytes = binary::encode_catchup(&c, 3).unwrap();
    check(
        Envelope::Live,
        &bytes,
        ErrorCode::UnknownType,
        "does not carry a binary frame of kind 3",
    );
    check(Envelope::Catchup, &bytes[..bytes.len() - 1], ErrorCode::TruncatedFrame, "totals column");
    check(Envelope::Catchup, &patched(&bytes, 6, 1), ErrorCode::BadFrame, "SHARED_TS");
    check(Envelope::Catchup, &patched(&bytes, 29, 1), ErrorCode::BadFrame, "reserved");
    // asOf counter above 65535.
    check(Envelope::Catchup, &patched(&bytes, 26, 1), ErrorCode::BadTimestamp, "asOf");
    // A bucket hour that is not an hour start, and a total finer than the resolution.
    let mut odd = kind3();
    odd.buckets[1].hour_ms += 1.0;
    let Inbound::Catchup(d) =
        decode_binary(Envelope::Catchup, &binary::encode_catchup(&odd, 3).unwrap(), &cfg())
    else {
        panic!("not a catch-up")
    };
    assert_eq!(
        d.errors.iter().map(|e| (e.code, e.position)).collect::<Vec<_>>(),
        vec![(ErrorCode::BadTimestamp, Some(1))]
    );
    assert_eq!(d.buckets.len(), 3);
    let Inbound::Catchup(d) =
        decode_binary(Envelope::Catchup, &binary::encode_catchup(&kind3(), 4).unwrap(), &cfg())
    else {
        panic!("not a catch-up")
    };
    assert!(d.errors.is_empty(), "a coarser total at a finer scale is fine: {:?}", d.errors);
}

#[test]
fn a_binary_catchup_gives_the_totals_of_its_json_twin() {
    let c = kind3();
    let json = serde_json::json!({
        "type": "catchup",
        "asOf": {"wallMs": c.as_of.wall_ms, "counter": c.as_of.counter},
        "serverTime": c.server_time_ms,
        "from": c.from_hour_ms, "to": c.to_hour_ms,
        "buckets": c.buckets.iter().map(|b| {
            let mut o = serde_json::json!({"resource": b.resource, "hour": b.hour_ms,
                "total": meterflow::core::decimal::format_units(b.total.mantissa, b.total.scale)});
            if let Some(m) = &b.meter { o["meter"] = m.clone().into(); }
            o
        }).collect::<Vec<_>>(),
    })
    .to_string();
    let totals = |input: Inbound| {
        let mut e = Engine::default();
        e.handle(input, 1_764_064_860_010.0);
        match e.handle(Inbound::Query(Query::Totals), 1_764_064_860_020.0).pop() {
            Some(Outbound::Totals(t)) => t.resources,
            other => panic!("{other:?}"),
        }
    };
    let from_json =
        totals(meterflow::wire::decode_text(Envelope::Catchup, &json, Default::default(), &cfg()));
    let from_binary =
        totals(decode_binary(Envelope::Catchup, &binary::encode_catchup(&c, 3).unwrap(), &cfg()));
    assert_eq!(from_binary, from_json);
    assert_eq!((from_binary[0].current_hour, from_binary[0].total), (3_250, 3_750));
}

/// A kind-3 key bound more than once names what its last binding in the frame
/// names (PROTOCOL.md 3.8), whatever order the keys come in: bindings key 0 ->
/// a, key 1 -> b, key 0 -> c give c for key 0 and b for key 1. The writer
/// binds each key once, so the third binding's key is patched from 2 to 0.
#[test]
fn kind3_a_key_bound_twice_names_its_last_binding() {
    use binary::{encode_catchup_columns, CatchupHead};
    let h10 = 1_764_064_800_000.0;
    let head = CatchupHead {
        as_of: Hlc { wall_ms: 1_764_064_860_000, counter: 1 },
        scale: 0,
        from_hour_ms: None,
        to_hour_ms: None,
        server_time_ms: None,
    };
    let bindings = [("m-a", "water"), ("m-b", "water"), ("m-c", "water")];
    let records = [(0, h10, 1), (1, h10, 2), (0, h10 - 3_600_000.0, 3)];
    let mut bytes = encode_catchup_columns(&head, &bindings, records.len(), records).unwrap();
    let third = binary::HEADER_BYTES + binary::CATCHUP_HEADER_BYTES + 2 * (7 + 3 + 5);
    assert_eq!(&bytes[third..third + 4], &2u32.to_le_bytes());
    bytes[third..third + 4].copy_from_slice(&0u32.to_le_bytes());
    let Inbound::Catchup(c) = decode_binary(Envelope::Catchup, &bytes, &cfg()) else {
        panic!("not a catch-up")
    };
    let meters: Vec<_> = c.buckets.iter().map(|b| b.meter.as_deref()).collect();
    assert_eq!(meters, [Some("m-c"), Some("m-b"), Some("m-c")]);
}
