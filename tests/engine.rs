#![cfg(not(target_arch = "wasm32"))]
//! Engine-level behaviour: limits, the memory guard, queries, resets, errors.

use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::error::ErrorCode;
use meterflow::core::event::{
    HostStats, Inbound, KeyScope, Outbound, Query, ReadingBatch, ResetScope,
};
use meterflow::core::Engine;

const T0: f64 = 1.7e12;

/// A JSON-style batch: one binding per distinct meter, records in order.
fn batch(records: &[(&str, f64, f64)]) -> Inbound {
    let mut b = ReadingBatch { scope: KeyScope::Batch, ..Default::default() };
    let mut keys = std::collections::HashMap::new();
    for &(meter, ts, value) in records {
        let key = *keys.entry(meter).or_insert_with(|| {
            b.bindings.push((b.bindings.len() as u32, meter.to_string()));
            b.bindings.len() as u32 - 1
        });
        b.keys.push(key);
        b.ts.push(ts);
        b.values.push(value);
    }
    Inbound::Readings(b)
}

fn errors(out: &[Outbound]) -> Vec<(ErrorCode, Option<u32>, String)> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Error(e) => Some((e.code, e.position, e.message.clone())),
            _ => None,
        })
        .collect()
}

fn engine(patch: ConfigPatch) -> Engine {
    Engine::new(Config::default().apply(&patch).unwrap()).unwrap()
}

fn window(e: &mut Engine, meter: &str) -> Vec<f64> {
    let out = e.handle(Inbound::Query(Query::Window { meter: meter.into() }), T0);
    match out.as_slice() {
        [Outbound::Window { values, .. }] => values.clone(),
        other => panic!("expected one window, got {other:?}"),
    }
}

#[test]
fn window_is_oldest_first_and_bounded() {
    let mut e = engine(ConfigPatch {
        window: Some(10),
        reduced_window: Some(8),
        drift_short: Some(4),
        stuck_run: Some(4),
        ..Default::default()
    });
    let recs: Vec<(&str, f64, f64)> = (0..25).map(|i| ("m", T0 + i as f64, i as f64)).collect();
    assert!(errors(&e.handle(batch(&recs), T0)).is_empty());
    assert_eq!(window(&mut e, "m"), (15..25).map(f64::from).collect::<Vec<_>>());
}

#[test]
fn new_meter_past_capacity_is_refused_by_name_and_others_keep_data() {
    let mut e = engine(ConfigPatch { max_meters: Some(2), ..Default::default() });
    let out =
        e.handle(batch(&[("a", T0, 1.0), ("b", T0, 2.0), ("c", T0, 3.0), ("a", T0, 4.0)]), T0);
    let errs = errors(&out);
    // 'c' is refused at its first reading that would have been accepted (a
    // meter is interned at its first accepted reading), with that position.
    assert!(
        errs.iter()
            .any(|(c, p, m)| *c == ErrorCode::MeterCapacity && *p == Some(2) && m.contains("'c'")),
        "{errs:?}"
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(window(&mut e, "a"), vec![1.0, 4.0]);
    assert_eq!(window(&mut e, "b"), vec![2.0]);
    assert_eq!(e.meter_count(), 2);
    assert_eq!(e.counters().readings_ingested, 3.0);
    assert_eq!(e.counters().readings_rejected, 1.0);
}

#[test]
fn implausible_timestamps_and_values_are_errors_with_positions_and_the_rest_applies() {
    let mut e = Engine::default();
    let day = 86_400_000.0;
    let out = e.handle(
        batch(&[
            ("m", T0 - 7.0 * 3_600_000.0, 1.0), // before the window
            ("m", T0 + day, 1.0),               // far in the future
            ("m", T0 - 1_000.0, 2.0),           // older than the last: normal
            ("m", T0, f64::NAN),
            ("m", T0, 1e300),
            ("m", T0, 3.0),
        ]),
        T0,
    );
    let errs = errors(&out);
    let codes: Vec<_> = errs.iter().map(|(c, p, _)| (*c, *p)).collect();
    assert_eq!(
        codes,
        vec![
            (ErrorCode::BadTimestamp, Some(0)),
            (ErrorCode::BadTimestamp, Some(1)),
            (ErrorCode::BadValue, Some(3)),
            (ErrorCode::BadValue, Some(4)),
        ]
    );
    assert_eq!(window(&mut e, "m"), vec![2.0, 3.0]);
}

#[test]
fn error_flood_is_capped_with_a_summary() {
    let mut e = engine(ConfigPatch { max_errors_per_batch: Some(5), ..Default::default() });
    let recs: Vec<(&str, f64, f64)> = (0..50).map(|_| ("m", T0, f64::INFINITY)).collect();
    let errs = errors(&e.handle(batch(&recs), T0));
    assert_eq!(errs.len(), 6);
    assert!(errs[5].2.contains("45 more"), "{:?}", errs[5]);
    assert_eq!(e.counters().readings_rejected, 50.0);
}

#[test]
fn memory_guard_halves_the_window_keeping_newest_samples_and_warns() {
    // 40 meters x 1,200 samples x 8 B = 384 KB of rings: a 300 KB ceiling trips it.
    let mut e = engine(ConfigPatch { memory_ceiling_bytes: Some(300e3), ..Default::default() });
    let mut warned = Vec::new();
    for step in 0..1_200 {
        let names: Vec<String> = (0..40).map(|m| format!("m{m}")).collect();
        let recs: Vec<(&str, f64, f64)> =
            names.iter().map(|n| (n.as_str(), T0 + step as f64, step as f64)).collect();
        for o in e.handle(batch(&recs), T0 + step as f64) {
            if let Outbound::Warning(w) = o {
                warned.push((step, w));
            }
        }
    }
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].1.code.as_str(), "memory_ceiling");
    assert!(warned[0].1.message.contains("1200 to 600"), "{}", warned[0].1.message);
    assert_eq!(e.config().window, 600);
    let w = window(&mut e, "m7");
    assert_eq!(w.len(), 600);
    assert_eq!(w.first(), Some(&600.0));
    assert_eq!(w.last(), Some(&1_199.0));
    let snap = e.handle(Inbound::Query(Query::Meter { meter: "m7".into() }), T0);
    let Outbound::Meter(s) = &snap[0] else { panic!("{snap:?}") };
    assert_eq!(s.count, 600);
    assert!((s.mean - 899.5).abs() < 1e-9);
}

#[test]
fn engine_bytes_per_meter_at_window_1200_stay_under_10_5_kb() {
    let mut e = Engine::default();
    let names: Vec<String> = (0..5_000).map(|m| format!("water-{m:05}")).collect();
    for step in 0..1_200 {
        let recs: Vec<(&str, f64, f64)> =
            names.iter().map(|n| (n.as_str(), T0, (step % 7) as f64)).collect();
        e.handle(batch(&recs), T0);
    }
    let per_meter = e.engine_bytes() as f64 / 5_000.0;
    assert!(per_meter <= 10_500.0, "{per_meter} bytes per meter");
    assert!(per_meter >= 9_600.0, "{per_meter}: the estimate must count the ring");
}

#[test]
fn reset_one_meter_then_all() {
    let mut e = Engine::default();
    e.handle(batch(&[("a", T0, 1.0), ("b", T0, 2.0)]), T0);
    assert!(e.handle(Inbound::Reset(ResetScope::Meter("a".into())), T0).is_empty());
    assert!(window(&mut e, "a").is_empty());
    assert_eq!(window(&mut e, "b"), vec![2.0]);
    let out = e.handle(Inbound::Reset(ResetScope::Meter("zz".into())), T0);
    assert_eq!(errors(&out)[0].0, ErrorCode::UnknownMeter);
    e.handle(Inbound::Reset(ResetScope::All), T0);
    assert_eq!(e.meter_count(), 0);
}

#[test]
fn stats_are_periodic_and_carry_host_measurements() {
    let mut e = Engine::default();
    e.handle(batch(&[("a", T0, 1.0)]), T0);
    let host = HostStats { linear_memory_bytes: 1e6, last_tick_eval_ms: 0.5 };
    let mut stats = Vec::new();
    for i in 0..10 {
        for o in e.handle(Inbound::Tick(host), T0 + 500.0 * i as f64) {
            if let Outbound::Stats(s) = o {
                stats.push(s);
            }
        }
    }
    assert_eq!(stats.len(), 5, "one per statsIntervalMs (1 s) over 5 s of ticks");
    assert_eq!(stats[0].meters, 1);
    assert_eq!(stats[0].readings_ingested, 1.0);
    assert_eq!(stats[0].linear_memory_bytes, 1e6);
    assert_eq!(stats[0].last_tick_eval_ms, 0.5);
}

#[test]
fn bad_config_keeps_the_previous_one() {
    let mut e = Engine::default();
    let out = e.handle(
        Inbound::Config(ConfigPatch { spike_votes_needed: Some(9), ..Default::default() }),
        T0,
    );
    assert_eq!(errors(&out)[0].0, ErrorCode::BadConfig);
    assert_eq!(e.config(), &Config::default());
}

#[test]
fn stream_keys_persist_across_batches() {
    let mut e = Engine::default();
    let first = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: vec![(7, "m".into())],
        keys: vec![7],
        ts: vec![T0],
        values: vec![1.0],
        ..Default::default()
    };
    let second = ReadingBatch { bindings: vec![], values: vec![2.0], ..first.clone() };
    e.handle(Inbound::Readings(first), T0);
    e.handle(Inbound::Readings(second), T0);
    assert_eq!(window(&mut e, "m"), vec![1.0, 2.0]);
    let unbound = ReadingBatch {
        scope: KeyScope::Stream,
        keys: vec![8],
        ts: vec![T0],
        values: vec![1.0],
        ..Default::default()
    };
    assert_eq!(errors(&e.handle(Inbound::Readings(unbound), T0))[0].0, ErrorCode::UnknownKey);
}

#[test]
fn a_binding_refused_for_its_key_does_not_use_up_a_meter_slot() {
    let mut e =
        engine(ConfigPatch { max_meters: Some(1), max_stream_keys: Some(4), ..Default::default() });
    let bad = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: vec![(9, "x".into())],
        ..Default::default()
    };
    assert_eq!(errors(&e.handle(Inbound::Readings(bad), T0))[0].0, ErrorCode::KeyOutOfRange);
    assert_eq!(e.meter_count(), 0);
    let good = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: vec![(1, "y".into())],
        keys: vec![1],
        ts: vec![T0],
        values: vec![5.0],
        ..Default::default()
    };
    assert!(errors(&e.handle(Inbound::Readings(good), T0)).is_empty());
    assert_eq!(window(&mut e, "y"), vec![5.0]);
}
