#![cfg(not(target_arch = "wasm32"))]
//! Engine memory and key tables, through the wire: every payload is encoded
//! (`src/wire/binary/encode.rs` or JSON text), decoded as the worker does and
//! handed to `Engine::handle`.
//!
//! A counting global allocator measures the peak bytes live while the engine
//! handles a payload, so "allocates nothing big" is a measured claim. The
//! measurements share one allocator, so every test here takes `SERIAL`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::decimal::Decimal;
use meterflow::core::error::ErrorCode;
use meterflow::core::event::{
    Catchup, Inbound, KeyScope, LiveBinding, LiveFrame, Outbound, Query, ReadingBatch, StreamHello,
    TotalsEvent,
};
use meterflow::core::hlc::Hlc;
use meterflow::core::Engine;
use meterflow::wire::binary::{encode_live, encode_readings, TsLayout};
use meterflow::wire::{decode_binary, decode_text, Arrival, Envelope};

#[path = "common/counting.rs"]
mod counting;
use counting::{Counting, LIVE, PEAK};

#[global_allocator]
static ALLOC: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Peak bytes allocated above the level at entry while `f` runs.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    f();
    PEAK.load(Relaxed).saturating_sub(base)
}

/// 10:30 on an hour boundary day.
const NOW: f64 = 1_764_064_800_000.0 + 1_800_000.0;

fn stamp(ms: f64) -> Hlc {
    Hlc { wall_ms: ms as u64, counter: 0 }
}

fn errors(out: &[Outbound]) -> Vec<(ErrorCode, String)> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Error(e) => Some((e.code, e.message.clone())),
            _ => None,
        })
        .collect()
}

fn codes(out: &[Outbound]) -> Vec<ErrorCode> {
    errors(out).into_iter().map(|e| e.0).collect()
}

fn engine(patch: ConfigPatch) -> Engine {
    Engine::new(Config::default().apply(&patch).unwrap()).unwrap()
}

/// An engine whose stream is greeted and whose clock is synced at `NOW`.
fn greeted(patch: ConfigPatch) -> Engine {
    let mut e = engine(patch);
    let hello = StreamHello {
        epoch: 1,
        next_seq: Some(0),
        stamp: Some(stamp(NOW - 1.0)),
        server_time_ms: Some(NOW),
        ..Default::default()
    };
    e.handle(Inbound::Hello(hello), NOW);
    let rest = Catchup {
        as_of: stamp(NOW),
        server_time_ms: Some(NOW),
        from_hour_ms: Some(NOW - 1_800_000.0 - 6.0 * 3_600_000.0),
        to_hour_ms: Some(NOW - 1_800_000.0),
        ..Default::default()
    };
    let out = e.handle(Inbound::Catchup(rest), NOW);
    assert!(errors(&out).is_empty(), "{out:?}");
    e
}

fn totals(e: &mut Engine, at: f64) -> TotalsEvent {
    match e.handle(Inbound::Query(Query::Totals), at).pop() {
        Some(Outbound::Totals(t)) => t,
        other => panic!("expected totals, got {other:?}"),
    }
}

/// A binary (kind 2) live frame: `bindings` as (key, meter), water; records as
/// (key, id, ts, amount).
fn live(
    channel: &str,
    seq: u64,
    at: f64,
    bindings: &[(u32, &str)],
    records: &[(u32, u64, f64, &str)],
) -> LiveFrame {
    let mut f = LiveFrame {
        channel: channel.into(),
        epoch: 1,
        seq,
        stamp: stamp(at),
        scope: KeyScope::Stream,
        ..Default::default()
    };
    for &(key, meter) in bindings {
        f.bindings.push(LiveBinding { key, meter: meter.into(), resource: "water".into() });
    }
    for &(key, id, ts, amount) in records {
        f.keys.push(key);
        f.ids.push(id);
        f.ts.push(ts);
        f.amounts.push(Decimal::parse(amount).unwrap());
    }
    f
}

/// `f` through the wire: encoded, decoded as the worker does.
fn wire_live(e: &Engine, f: &LiveFrame) -> (Inbound, usize) {
    let bytes = encode_live(f, 3, TsLayout::PerRecord).unwrap();
    (decode_binary(Envelope::Live, &bytes, e.config()), bytes.len())
}

fn wire_readings(e: &Engine, b: &ReadingBatch) -> (Inbound, usize) {
    let bytes = encode_readings(b, TsLayout::PerRecord).unwrap();
    (decode_binary(Envelope::Readings, &bytes, e.config()), bytes.len())
}

fn json(e: &Engine, envelope: Envelope, text: &str) -> Inbound {
    decode_text(envelope, text, Arrival::default(), e.config())
}

#[test]
fn sixty_four_channels_binding_the_top_key_stay_within_a_constant_times_the_bytes() {
    let _s = serial();
    // 64 channels: past the default `maxChannels` (48), so raised here.
    let mut e = greeted(ConfigPatch { max_channels: Some(64), ..Default::default() });
    let top = (1u32 << 20) - 1;
    let meters: Vec<String> = (0..64).map(|i| format!("m{i:02}")).collect();
    // The first frame tracks all 64 meters: a meter's ring is the configured
    // window's cost, not the payload's doing (rings are reserved a page at a
    // time). Measure the 63 frames after it, each binding the top key anew.
    let keys: Vec<u32> = (0..64).collect();
    let bind: Vec<(u32, &str)> = keys.iter().map(|&k| (k, meters[k as usize].as_str())).collect();
    let recs: Vec<(u32, u64, f64, &str)> =
        keys.iter().map(|&k| (k, u64::from(k) + 1, NOW, "1")).collect();
    let first = live("", 0, NOW + 10.0, &bind, &recs);
    let (inb, _) = wire_live(&e, &first);
    assert!(errors(&e.handle(inb, NOW + 20.0)).is_empty());
    let before = e.engine_bytes();
    let mut received = 0;
    let mut outs = Vec::new();
    let peak = peak_during(|| {
        for (i, m) in meters.iter().enumerate().skip(1) {
            let f = live(&format!("c{i:02}"), 0, NOW + 10.0, &[(top, m)], &[(top, 1, NOW, "1")]);
            let (inb, n) = wire_live(&e, &f);
            received += n;
            outs.extend(e.handle(inb, NOW + 20.0));
        }
    });
    assert!(errors(&outs).is_empty(), "{:?}", errors(&outs));
    assert!(!outs.iter().any(|o| matches!(o, Outbound::Warning(_))), "memory guard fired");
    assert!(received < 63 * 110, "frames of about 100 bytes: {received}");
    let grown = e.engine_bytes() - before;
    eprintln!("63 frames, {received} bytes: engine +{grown} bytes, peak +{peak} bytes");
    assert!(grown <= 64 * received, "engine grew {grown} bytes for {received} bytes received");
    assert!(peak <= 64 * received, "peak {peak} bytes for {received} bytes received");
    assert_eq!(totals(&mut e, NOW + 30.0).resources[0].current_hour, 127_000);
}

#[test]
fn a_forty_byte_frame_binding_the_largest_key_allocates_nothing_big() {
    let _s = serial();
    let max = Config::default().max_stream_keys_limit();
    let mut e = greeted(ConfigPatch { max_stream_keys: Some(max), ..Default::default() });
    let key = max - 1;
    // The key of the report, 4,294,967,294, is past every maxStreamKeys the
    // validator allows now: refused, nothing allocated for it.
    let far = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: vec![(4_294_967_294, "far".into())],
        ..Default::default()
    };
    let (inb, _) = wire_readings(&e, &far);
    let mut out = Vec::new();
    let peak = peak_during(|| out = e.handle(inb, NOW));
    assert_eq!(codes(&out), vec![ErrorCode::KeyOutOfRange]);
    assert!(peak < 4_096, "key 4,294,967,294: peak {peak} bytes");
    // Kind 1: one binding, no records.
    let b = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: vec![(key, "m".into())],
        ..Default::default()
    };
    let (inb, n) = wire_readings(&e, &b);
    assert!(n <= 48, "{n} bytes");
    let peak = peak_during(|| assert!(errors(&e.handle(inb, NOW)).is_empty()));
    eprintln!("kind 1 ({n} bytes) binding key {key}: peak +{peak} bytes");
    assert!(peak < 4_096, "kind 1: peak {peak} bytes");
    // Kind 2, on a fresh channel.
    let f = live("", 0, NOW + 10.0, &[(key, "m")], &[]);
    let (inb, _) = wire_live(&e, &f);
    let peak = peak_during(|| assert!(errors(&e.handle(inb, NOW + 20.0)).is_empty()));
    eprintln!("kind 2 binding key {key}: peak +{peak} bytes");
    assert!(peak < 16_384, "kind 2: peak {peak} bytes");
    assert!(e.engine_bytes() < 64 << 10, "{} engine bytes", e.engine_bytes());
    // The bindings work.
    let rec = ReadingBatch {
        scope: KeyScope::Stream,
        keys: vec![key],
        ts: vec![NOW],
        values: vec![2.5],
        ..Default::default()
    };
    let (inb, _) = wire_readings(&e, &rec);
    assert!(errors(&e.handle(inb, NOW)).is_empty());
    assert_eq!(e.meter_count(), 1);
}

#[test]
fn a_binary_frame_refused_for_its_clock_keeps_its_bindings() {
    let _s = serial();
    let mut e = greeted(ConfigPatch::default());
    // Stamped a minute ahead: refused as clock_ahead, readings left to a catch-up.
    let ahead = live("", 0, NOW + 60_000.0, &[(3, "m")], &[(3, 1, NOW, "1")]);
    let (inb, _) = wire_live(&e, &ahead);
    let out = e.handle(inb, NOW + 10.0);
    assert_eq!(codes(&out), vec![ErrorCode::ClockAhead]);
    // The next frame names key 3 without binding it again.
    let next = live("", 1, NOW + 100.0, &[], &[(3, 2, NOW, "2")]);
    let (inb, _) = wire_live(&e, &next);
    let out = e.handle(inb, NOW + 110.0);
    assert!(errors(&out).is_empty(), "{:?}", errors(&out));
    let t = totals(&mut e, NOW + 120.0);
    assert_eq!(t.resources[0].current_hour, 2_000, "the second frame's reading counts");
}

#[test]
fn json_readings_all_refused_use_no_meter_slot() {
    let _s = serial();
    let mut e = engine(ConfigPatch { max_meters: Some(5_000), ..Default::default() });
    let mut text = String::from(r#"{"type":"readings","readings":["#);
    for i in 0..5_000 {
        let (ts, v) = if i % 2 == 0 { (NOW, 1e300) } else { (1.0, 1.0) };
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(r#"{{"meter":"bad-{i}","ts":{ts},"value":{v}}}"#));
    }
    text.push_str("]}");
    let out = e.handle(json(&e, Envelope::Readings, &text), NOW);
    assert!(codes(&out).iter().all(|c| matches!(
        c,
        ErrorCode::BadValue | ErrorCode::BadTimestamp | ErrorCode::ErrorsSuppressed
    )));
    assert_eq!(e.meter_count(), 0);
    let ok =
        format!(r#"{{"type":"readings","readings":[{{"meter":"good","ts":{NOW},"value":1}}]}}"#);
    let out = e.handle(json(&e, Envelope::Readings, &ok), NOW);
    assert!(errors(&out).is_empty(), "{:?}", errors(&out));
    assert_eq!(e.meter_count(), 1);
}

#[test]
fn binary_bindings_whose_readings_are_refused_use_no_meter_slot() {
    let _s = serial();
    let mut e = engine(ConfigPatch { max_meters: Some(100), ..Default::default() });
    let mut b = ReadingBatch { scope: KeyScope::Stream, ..Default::default() };
    for k in 0..100u32 {
        b.bindings.push((k, format!("bad-{k}")));
        b.keys.push(k);
        b.ts.push(NOW);
        b.values.push(1e300);
    }
    let (inb, _) = wire_readings(&e, &b);
    e.handle(inb, NOW);
    assert_eq!(e.meter_count(), 0);
    // A key bound in an earlier frame still resolves once a reading is valid.
    let later = ReadingBatch {
        scope: KeyScope::Stream,
        keys: vec![7],
        ts: vec![NOW],
        values: vec![4.0],
        ..Default::default()
    };
    let (inb, _) = wire_readings(&e, &later);
    assert!(errors(&e.handle(inb, NOW)).is_empty());
    assert_eq!(e.meter_index("bad-7"), Some(0));
    let fresh = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: vec![(500, "good".into())],
        keys: vec![500],
        ts: vec![NOW],
        values: vec![1.0],
        ..Default::default()
    };
    let (inb, _) = wire_readings(&e, &fresh);
    assert!(errors(&e.handle(inb, NOW)).is_empty());
    assert_eq!(e.meter_count(), 2);
}

#[test]
fn live_readings_all_refused_use_no_meter_slot() {
    let _s = serial();
    let mut e = greeted(ConfigPatch { max_meters: Some(50), ..Default::default() });
    // JSON frame: 50 meters, every amount negative.
    let mut text = format!(
        r#"{{"type":"frame","epoch":1,"seq":0,"hlc":{{"wallMs":{},"counter":0}},"readings":["#,
        NOW + 10.0
    );
    for i in 0..50 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#"{{"meter":"bad-{i}","resource":"water","id":1,"ts":{NOW},"amount":"-1"}}"#
        ));
    }
    text.push_str("]}");
    let out = e.handle(json(&e, Envelope::Live, &text), NOW + 20.0);
    assert!(!codes(&out).is_empty());
    // Binary frame: 50 bindings, amounts too fine for the resolution.
    let bindings: Vec<(u32, String)> = (0..50).map(|k| (k, format!("bin-{k}"))).collect();
    let refs: Vec<(u32, &str)> = bindings.iter().map(|(k, m)| (*k, m.as_str())).collect();
    let recs: Vec<(u32, u64, f64, &str)> = (0..50).map(|k| (k, 1, f64::NAN, "1")).collect();
    let (inb, _) = wire_live(&e, &live("", 1, NOW + 30.0, &refs, &recs));
    e.handle(inb, NOW + 40.0);
    assert_eq!(e.meter_count(), 0);
    let (inb, _) = wire_live(&e, &live("", 2, NOW + 50.0, &[(900, "good")], &[(900, 1, NOW, "1")]));
    let out = e.handle(inb, NOW + 60.0);
    assert!(errors(&out).is_empty(), "{:?}", errors(&out));
    assert_eq!(e.meter_count(), 1);
}

#[test]
fn live_readings_outside_the_reading_bounds_count_but_stay_out_of_the_window() {
    let _s = serial();
    let mut e = greeted(ConfigPatch::default());
    // JSON: a binary mantissa stops at 2^53.
    let text = format!(
        r#"{{"type":"frame","epoch":1,"seq":0,"hlc":{{"wallMs":{},"counter":0}},"readings":[
            {{"meter":"m","resource":"water","id":1,"ts":{NOW},"amount":"9220000000000000"}},
            {{"meter":"m","resource":"water","id":2,"ts":1e20,"amount":1}},
            {{"meter":"m","resource":"water","id":3,"ts":{NOW},"amount":2}}]}}"#,
        NOW + 10.0
    );
    let out = e.handle(json(&e, Envelope::Live, &text), NOW + 20.0);
    // The first reading (9.22e18 units) counts in the totals but passes a
    // series bucket's 48-bit sum: named in a `series_limit` error.
    assert_eq!(
        codes(&out),
        vec![ErrorCode::BadValue, ErrorCode::BadTimestamp, ErrorCode::SeriesLimit]
    );
    let t = totals(&mut e, NOW + 30.0);
    assert_eq!(t.resources[0].current_hour, 9_220_000_000_000_003_000);
    let out = e.handle(Inbound::Query(Query::Window { meter: "m".into() }), NOW + 40.0);
    assert!(
        matches!(out.as_slice(), [Outbound::Window { values, .. }] if values == &[2.0]),
        "{out:?}"
    );
    let out = e.handle(Inbound::Query(Query::Meter { meter: "m".into() }), NOW + 40.0);
    assert!(matches!(out.as_slice(), [Outbound::Meter(s)] if s.last_ts == NOW), "{out:?}");
    assert_eq!(e.counters().readings_rejected, 2.0);
}

#[test]
fn extreme_numbers_through_the_wire_are_refused_or_applied_without_overflow() {
    let _s = serial();
    let mut e = greeted(ConfigPatch::default());
    let max_abs = e.config().max_abs_value;
    let p53 = 2f64.powi(53);
    // Kind 1: timestamps at ±2^53 and far beyond, values at and just past maxAbsValue.
    let cases = [
        (p53, 1.0, Some(ErrorCode::BadTimestamp)),
        (-p53, 1.0, Some(ErrorCode::BadTimestamp)),
        (1e300, 1.0, Some(ErrorCode::BadTimestamp)),
        (-1e300, 1.0, Some(ErrorCode::BadTimestamp)),
        (NOW, max_abs, None),
        (NOW, -max_abs, None),
        (NOW, max_abs * (1.0 + f64::EPSILON), Some(ErrorCode::BadValue)),
        (NOW, f64::MAX, Some(ErrorCode::BadValue)),
    ];
    for (i, &(ts, value, want)) in cases.iter().enumerate() {
        let b = ReadingBatch {
            scope: KeyScope::Stream,
            bindings: vec![(u32::try_from(i).unwrap(), format!("x{i}"))],
            keys: vec![u32::try_from(i).unwrap()],
            ts: vec![ts],
            values: vec![value],
            ..Default::default()
        };
        let (inb, _) = wire_readings(&e, &b);
        let got = codes(&e.handle(inb, NOW));
        assert_eq!(got.first().copied(), want, "case {i}: {got:?}");
    }
    assert_eq!(e.meter_count(), 2, "only the accepted readings' meters are tracked");
    // Kind 2: seq jumps to 2^53 (holes fold, no walk over the gap), then repeats.
    let f = live("", 0, NOW + 10.0, &[(u32::MAX - 1, "k")], &[]);
    let (inb, _) = wire_live(&e, &f);
    assert_eq!(codes(&e.handle(inb, NOW + 20.0)), vec![ErrorCode::KeyOutOfRange]);
    for seq in [p53 as u64, p53 as u64, 1] {
        let f = live("", seq, NOW + 30.0, &[(5, "k")], &[(5, seq, NOW, "1")]);
        let (inb, _) = wire_live(&e, &f);
        let out = e.handle(inb, NOW + 40.0);
        assert!(errors(&out).is_empty(), "seq {seq}: {:?}", errors(&out));
    }
    // Reading timestamps far outside any hour, and a stamp near 2^53.
    for ts in [1e300, -1e300, -p53] {
        let f = live("", 2, NOW + 50.0, &[(6, "k")], &[(6, 99, ts, "1")]);
        let (inb, _) = wire_live(&e, &f);
        let got = codes(&e.handle(inb, NOW + 60.0));
        assert!(!got.is_empty(), "ts {ts}");
    }
    // A stamp at 2^53 − 1 is refused by the decoder; a year ahead by the clock.
    let f = live("", 3, p53 - 1.0, &[], &[(5, 7, NOW, "1")]);
    let (inb, _) = wire_live(&e, &f);
    assert_eq!(codes(&e.handle(inb, NOW + 70.0)), vec![ErrorCode::BadTimestamp]);
    let f = live("", 3, NOW + 3.2e10, &[], &[(5, 7, NOW, "1")]);
    let (inb, _) = wire_live(&e, &f);
    assert_eq!(codes(&e.handle(inb, NOW + 70.0)), vec![ErrorCode::ClockAhead]);
    let t = totals(&mut e, NOW + 80.0);
    assert!(t.incomplete);
    assert_eq!(e.meter_count(), 3);
}

#[test]
fn a_window_the_validator_cannot_fit_leaves_the_old_one_working() {
    let _s = serial();
    let mut e = engine(ConfigPatch::default());
    let mut text = String::from(r#"{"type":"readings","readings":["#);
    for i in 0..5_000 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(r#"{{"meter":"m{i}","ts":{NOW},"value":{i}}}"#));
    }
    text.push_str("]}");
    assert!(errors(&e.handle(json(&e, Envelope::Readings, &text), NOW)).is_empty());
    // 5,000 meters × 1,048,576 samples: 42 GB of rings. This aborted the engine
    // with "memory allocation failed" in `Windows::set_window`.
    let patch = meterflow::wire::decode_config(&serde_json::json!({"window": 1_048_576}))
        .expect("a well-formed patch");
    let out = e.handle(Inbound::Config(patch), NOW);
    assert_eq!(codes(&out), vec![ErrorCode::BadConfig]);
    assert_eq!(e.config().window, 1_200);
    assert_eq!(e.windows().window(), 1_200);
    let more =
        format!(r#"{{"type":"readings","readings":[{{"meter":"m7","ts":{NOW},"value":-1}}]}}"#);
    assert!(errors(&e.handle(json(&e, Envelope::Readings, &more), NOW)).is_empty());
    let out = e.handle(Inbound::Query(Query::Window { meter: "m7".into() }), NOW);
    assert!(matches!(out.as_slice(), [Outbound::Window { values, .. }] if values == &[7.0, -1.0]));
}
