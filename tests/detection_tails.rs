#![cfg(not(target_arch = "wasm32"))]
//! The kurtosis the spike threshold widens for (`rules::tails`,
//! docs/DETECTION.md "Spike"): an incident must not raise the threshold it is
//! judged against, neither through its own first readings in the window nor
//! through the memory of earlier incidents in the meter's long-run moments.
//!
//! A slowly wandering temperature (AR(1) φ 0.998, sd 6, plus reading noise
//! 0.7, at 2 Hz through `Engine::handle`, default config) with a failure dip
//! (down 50 over 40 readings, low for 150, back over 80) after 5,000 normal
//! readings: the dip must raise a spike alert within its first 60 readings.
//! With the larger of the window's and the long-run kurtosis (the rule before
//! 2026-12-04) the dip's ramp widened the threshold from 4 to 8 as it entered
//! the window, and the dip went unseen. A second dip 5,000 readings later must
//! be found too: until 2026-12-05 the long-run variance and 4th moment learned
//! the first dip as normal (its readings stay in the window for 1,200 readings
//! after its alert clears), which widened the threshold 4 → 8 and doubled the
//! variance z divides by (docs/DETECTION.md, "Spike incidents are not learned").

#[path = "common/rng.rs"]
mod rng;
use meterflow::core::config::Config;
use meterflow::core::event::{AnomalyKind, HostStats, Inbound, KeyScope, Outbound, ReadingBatch};
use meterflow::core::Engine;
use rng::Rng;

const T0: f64 = 1.7e12;
const STEP_MS: f64 = 500.0;
const DIPS: [usize; 1] = [5_000];
const LEN: usize = 8_000;

fn dip(d: f64) -> f64 {
    match d {
        d if d < 0.0 => 0.0,
        d if d < 40.0 => 50.0 * d / 40.0,
        d if d < 190.0 => 50.0,
        d if d < 270.0 => 50.0 * (1.0 - (d - 190.0) / 80.0),
        _ => 0.0,
    }
}

fn temperature(seed: u64) -> Vec<f64> {
    temperature_with(seed, &DIPS, LEN)
}

fn temperature_with(seed: u64, dips: &[usize], len: usize) -> Vec<f64> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut wander = 0.0f64;
    (0..len)
        .map(|i| {
            wander = 0.998 * wander + (1.0f64 - 0.998 * 0.998).sqrt() * rng.normal();
            let y = 85.0 + 6.0 * wander + 0.7 * rng.normal();
            let down: f64 = dips.iter().map(|&a| dip(i as f64 - a as f64)).sum();
            ((y - down) * 1_000.0).round() / 1_000.0
        })
        .collect()
}

/// The steps at which spike alerts were raised.
fn spike_alerts(xs: &[f64]) -> Vec<usize> {
    let mut e = Engine::new(Config::default()).unwrap();
    let mut at = Vec::new();
    for (step, &x) in xs.iter().enumerate() {
        let now = T0 + STEP_MS * step as f64;
        let b = ReadingBatch {
            scope: KeyScope::Batch,
            keys: vec![0],
            bindings: vec![(0, "temp".to_string())],
            ts: vec![now],
            values: vec![x],
            ..Default::default()
        };
        let mut out = e.handle(Inbound::Readings(b), now);
        out.extend(e.handle(Inbound::Tick(HostStats::default()), now));
        for o in out {
            match o {
                Outbound::Anomaly(a) if a.kind == AnomalyKind::Spike => at.push(step),
                Outbound::Error(err) => panic!("step {step}: {err:?}"),
                _ => {}
            }
        }
    }
    at
}

#[test]
fn a_wandering_meters_dip_is_found_and_its_wander_is_not() {
    let mut missed = Vec::new();
    let mut outside = 0;
    for seed in 1..=6u64 {
        let alerts = spike_alerts(&temperature(seed));
        for &a in &DIPS {
            if !alerts.iter().any(|&s| s >= a && s < a + 60) {
                missed.push((seed, a));
            }
        }
        // Outside the dips and the window that still holds them.
        outside +=
            alerts.iter().filter(|&&s| !DIPS.iter().any(|&a| s >= a && s < a + 1_500)).count();
    }
    assert!(missed.is_empty(), "dips missed (seed, onset): {missed:?}");
    assert!(outside <= 1, "{outside} spike alerts on the wander in 6 × 8,000 readings");
}

#[test]
fn a_second_dip_is_found_as_the_first() {
    const TWO: [usize; 2] = [5_000, 10_000];
    let mut missed = Vec::new();
    let mut outside = 0;
    for seed in 1..=6u64 {
        let alerts = spike_alerts(&temperature_with(seed, &TWO, 13_000));
        for &a in &TWO {
            if !alerts.iter().any(|&s| s >= a && s < a + 60) {
                missed.push((seed, a));
            }
        }
        outside +=
            alerts.iter().filter(|&&s| !TWO.iter().any(|&a| s >= a && s < a + 1_500)).count();
    }
    // Measured: every second dip missed (6 of 6) when the first was learned,
    // one (seed 3) since it is not.
    assert!(
        missed.iter().filter(|m| m.1 == TWO[1]).count() <= 1
            && missed.iter().all(|m| m.1 != TWO[0]),
        "dips missed (seed, onset): {missed:?}"
    );
    assert!(outside <= 1, "{outside} spike alerts on the wander in 6 × 13,000 readings");
}
