#![cfg(not(target_arch = "wasm32"))]
//! Invariants of detection under arbitrary input (proptest):
//!
//! - no alert of any kind while a meter has fewer than `warmup` readings;
//! - a lone blip never alerts, whatever its height or sign;
//! - every event field is finite, events name tracked meters only, and the
//!   alert life cycle holds: raised once, re-raised only to escalate to
//!   critical, cleared only when active; the engine's active count agrees;
//!   every anomaly's score is in [0.5, 1] (a raise is at or past a threshold);
//! - a tick evaluates exactly the meters that received readings since the last.

#[path = "common/cases.rs"]
mod cases;
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::event::{
    AnomalyKind, HostStats, Inbound, KeyScope, Outbound, ReadingBatch, Severity,
};
use meterflow::core::Engine;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const T0: f64 = 1.7e12;

fn batch(records: &[(String, f64, f64)]) -> Inbound {
    let mut b = ReadingBatch { scope: KeyScope::Batch, ..Default::default() };
    for (i, (meter, ts, x)) in records.iter().enumerate() {
        b.bindings.push((i as u32, meter.clone()));
        b.keys.push(i as u32);
        b.ts.push(*ts);
        b.values.push(*x);
    }
    Inbound::Readings(b)
}

fn tick(e: &mut Engine, now: f64) -> Vec<Outbound> {
    e.handle(Inbound::Tick(HostStats::default()), now)
}

/// A value from one of several regimes that stress the arithmetic: zeros,
/// constants, huge and tiny magnitudes, ordinary noise.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(5.0),
        -1e15..1e15f64,
        -1e3..1e3f64,
        (-1.0..1.0f64).prop_map(|x| x * 1e-300),
        (0u32..4).prop_map(f64::from),
    ]
}

/// A step of a stream: which meter (0..6) reads what, how much time passes
/// before it, and whether a tick follows.
#[derive(Clone, Debug)]
struct Step {
    meter: usize,
    x: f64,
    gap_ms: f64,
    tick: bool,
}

fn steps(max: usize) -> impl Strategy<Value = Vec<Step>> {
    let gap = prop_oneof![4 => Just(0.0), 4 => Just(500.0), 1 => 0.0..200_000.0f64];
    let step = (0usize..6, value(), gap, prop::bool::weighted(0.7))
        .prop_map(|(meter, x, gap_ms, tick)| Step { meter, x, gap_ms, tick });
    prop::collection::vec(step, 1..max)
}

/// How a stretch of a stream's values behaves, so that flat runs, level
/// changes and noise persist long enough to raise (and clear) every kind.
#[derive(Clone, Copy, Debug)]
enum Regime {
    /// The same value each step.
    Flat(f64),
    /// `level` plus uniform noise of standard deviation `sd`.
    Noise { level: f64, sd: f64 },
    /// The step's own arbitrary value.
    Wild,
}

fn regimes() -> impl Strategy<Value = Vec<(Regime, usize)>> {
    let regime = prop_oneof![
        value().prop_map(Regime::Flat),
        (-1e6..1e6f64, -3.0..3.0f64)
            .prop_map(|(level, log_sd)| Regime::Noise { level, sd: 10f64.powf(log_sd) }),
        Just(Regime::Wild),
    ];
    prop::collection::vec((regime, 1usize..300), 1..12)
}

/// Replaces each step's value by its regime's (regimes repeat to the end).
fn apply(stream: &mut [Step], regimes: &[(Regime, usize)], seed: u64) {
    let mut state = seed;
    let mut unit = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let mut spans = regimes.iter().cycle().flat_map(|&(r, n)| std::iter::repeat_n(r, n));
    for s in stream {
        match spans.next() {
            Some(Regime::Flat(v)) => s.x = v,
            Some(Regime::Noise { level, sd }) => s.x = level + unit() * 12f64.sqrt() * sd,
            Some(Regime::Wild) | None => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::cases_or(128), ..ProptestConfig::default() })]

    #[test]
    fn no_alert_during_warm_up(stream in steps(400), warmup in 2u32..80) {
        let patch = ConfigPatch { warmup: Some(warmup), ..Default::default() };
        let mut e = Engine::new(Config::default().apply(&patch).unwrap()).unwrap();
        let mut count: HashMap<usize, u32> = HashMap::new();
        let mut now = T0;
        for s in &stream {
            now += s.gap_ms;
            let c = count.entry(s.meter).or_default();
            // Feed each meter at most warmup − 1 readings.
            if *c + 1 < warmup {
                *c += 1;
                e.handle(batch(&[(format!("m{}", s.meter), now, s.x)]), now);
            }
            if s.tick {
                let out = tick(&mut e, now);
                prop_assert!(!out.iter().any(|o| matches!(o, Outbound::Anomaly(_))), "{out:?}");
            }
        }
        // Even after a long silence.
        let out = tick(&mut e, now + 1e7);
        prop_assert!(!out.iter().any(|o| matches!(o, Outbound::Anomaly(_))), "{out:?}");
    }

    #[test]
    fn a_lone_blip_never_alerts(
        level in -1e3..1e3f64,
        log_sd in -3.0..3.0f64,
        before in 60usize..1_500,
        after in 0usize..1_300,
        log_height in -3.0..14.0f64,
        up in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Uniform noise: never beyond √3 sd, so only the blip can breach the
        // spike threshold, and the drift statistic of the noise alone stays far
        // below 5 standard errors five times running.
        let sd = 10f64.powf(log_sd);
        let mut state = seed;
        let mut noise = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 12f64.sqrt() * sd
        };
        let height = 10f64.powf(log_height) * if up { 1.0 } else { -1.0 };
        let mut e = Engine::default();
        let mut said = Vec::new();
        for i in 0..before + 1 + after {
            let now = T0 + 500.0 * i as f64;
            let x = if i == before { level + height } else { level + noise() };
            said.extend(e.handle(batch(&[("m".to_string(), now, x)]), now));
            said.extend(tick(&mut e, now));
        }
        let events: Vec<_> =
            said.iter().filter(|o| matches!(o, Outbound::Anomaly(_) | Outbound::Cleared(_))).collect();
        prop_assert!(events.is_empty(), "blip {height} at {before}: {events:?}");
    }

    #[test]
    fn events_are_finite_tracked_and_follow_the_life_cycle(
        mut stream in steps(1_500),
        regimes in regimes(),
        seed in any::<u64>(),
        warmup in 2u32..40,
        stuck_run in 2u32..12,
    ) {
        apply(&mut stream, &regimes, seed);
        // A small window and short runs so alerts of every kind happen often.
        let patch = ConfigPatch {
            window: Some(64),
            reduced_window: Some(32),
            max_meters: Some(4),
            warmup: Some(warmup),
            drift_short: Some(8),
            stuck_run: Some(stuck_run),
            // Short training, so drift and stuck are judged within the stream.
            baseline_readings: Some(50),
            silent_after_ms: Some(20_000.0),
            clear_after: Some(3),
            ..Default::default()
        };
        let mut e = Engine::new(Config::default().apply(&patch).unwrap()).unwrap();
        let mut active: HashMap<(String, AnomalyKind), Severity> = HashMap::new();
        let mut dirty: HashSet<String> = HashSet::new();
        let mut now = T0;
        for s in &stream {
            now += s.gap_ms;
            let name = format!("m{}", s.meter);
            let before = e.counters().readings_ingested;
            e.handle(batch(&[(name.clone(), now, s.x)]), now);
            if e.counters().readings_ingested > before {
                dirty.insert(name);
            }
            if !s.tick {
                continue;
            }
            let evaluations = e.counters().evaluations;
            for o in tick(&mut e, now) {
                match o {
                    Outbound::Anomaly(a) => {
                        for (field, v) in [("z", a.z), ("value", a.value), ("mean", a.mean), ("std", a.std), ("ts", a.ts)] {
                            prop_assert!(v.is_finite(), "{field} of {a:?}");
                        }
                        prop_assert!(a.std > 0.0, "{a:?}");
                        // A raise is at or past the kind's threshold: score ≥ 0.5.
                        prop_assert!((0.5..=1.0).contains(&a.score), "score of {a:?}");
                        prop_assert!(e.meter_index(&a.meter).is_some(), "untracked {a:?}");
                        let key = (a.meter.clone(), a.kind);
                        match active.get(&key) {
                            None => {}
                            Some(Severity::Warning) => prop_assert_eq!(a.severity, Severity::Critical, "re-raised {:?}", a),
                            Some(Severity::Critical) => prop_assert!(false, "re-raised {a:?}"),
                        }
                        active.insert(key, a.severity);
                    }
                    Outbound::Cleared(c) => {
                        prop_assert!(c.at.is_finite() && e.meter_index(&c.meter).is_some(), "{c:?}");
                        prop_assert!(active.remove(&(c.meter.clone(), c.kind)).is_some(), "cleared inactive {c:?}");
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(e.counters().evaluations - evaluations, dirty.len() as f64);
            dirty.clear();
            prop_assert_eq!(e.stats().active_alerts as usize, active.len());
        }
    }
}
