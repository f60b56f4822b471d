#![cfg(not(target_arch = "wasm32"))]
//! Properties of the rules that learn each meter's normal (docs/DETECTION.md,
//! issue 8), one meter at 2 Hz with the default configuration, through
//! `Engine::handle`:
//!
//! - no stuck alert on any square wave (any two levels, any on/off durations
//!   up to the window) nor on any quantised random walk (any step);
//! - a run `stuckFactor`·k times longer than the meter's longest normal run k
//!   (after training) does alert stuck, at the documented reading;
//! - on AR(1) noise with φ from 0 to 0.99, drift (and every other kind) stays
//!   under one false alert per meter-day over many seeds;
//! - every level incident on an AR(1) meter raises drift, however many came
//!   before it, and its end raises none;
//! - every `anomaly` carries a score in [0.5, 1], and `query: "meter"`
//!   returns the meter's current score in [0, 1].

#[path = "common/cases.rs"]
mod cases;
#[path = "common/rng.rs"]
mod rng;
use meterflow::core::config::Config;
use meterflow::core::event::{
    AnomalyEvent, AnomalyKind, HostStats, Inbound, KeyScope, Outbound, Query, ReadingBatch,
};
use meterflow::core::Engine;
use proptest::prelude::*;
use rng::Rng;

const T0: f64 = 1.7e12;
const STEP_MS: f64 = 500.0;
/// Readings of training (`baselineReadings`) plus the warm-up.
const TRAINED: usize = 7_200 + 60;

/// Feeds `xs` to meter "m" at 2 Hz, a tick after each reading; returns the
/// engine and every anomaly raised with the index of the reading it followed.
fn drive(xs: &[f64]) -> (Engine, Vec<(usize, AnomalyEvent)>) {
    let mut e = Engine::new(Config::default()).unwrap();
    let mut out = Vec::new();
    for (i, &x) in xs.iter().enumerate() {
        let now = T0 + STEP_MS * i as f64;
        let b = ReadingBatch {
            scope: KeyScope::Batch,
            bindings: vec![(0, "m".into())],
            keys: vec![0],
            ts: vec![now],
            values: vec![x],
            ..Default::default()
        };
        let mut said = e.handle(Inbound::Readings(b), now);
        said.extend(e.handle(Inbound::Tick(HostStats::default()), now));
        for o in said {
            match o {
                Outbound::Anomaly(a) => out.push((i, a)),
                Outbound::Error(err) => panic!("{i}: {err:?}"),
                _ => {}
            }
        }
    }
    (e, out)
}

fn of_kind(alerts: &[(usize, AnomalyEvent)], kind: AnomalyKind) -> Vec<usize> {
    alerts.iter().filter(|(_, a)| a.kind == kind).map(|(i, _)| *i).collect()
}

/// A square wave: `lo` for `off` readings, `hi` for `on`, from phase `phase`.
fn square(n: usize, lo: f64, hi: f64, on: usize, off: usize, phase: usize) -> Vec<f64> {
    (0..n).map(|i| if (i + phase) % (on + off) < on { hi } else { lo }).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::cases_or(24), ..ProptestConfig::default() })]

    /// A pump's duty cycle is its normal: whatever its levels and durations
    /// (each up to the 1,200-reading window), three hours of it never alert stuck.
    #[test]
    fn no_stuck_alert_on_any_square_wave(
        lo in -100.0..100.0f64,
        jump in 0.01..1_000.0f64,
        on in 2usize..1_200,
        off in 2usize..1_200,
        phase in 0usize..2_400,
    ) {
        let xs = square(21_600, lo, lo + jump, on, off, phase);
        let (_, alerts) = drive(&xs);
        prop_assert!(of_kind(&alerts, AnomalyKind::Stuck).is_empty(), "{alerts:?}");
    }

    /// A slow sensor quantised to its step sits on plateaus as a matter of
    /// course: a random walk of any step (innovations 0.05 to 2 steps, with a
    /// pull back to its level) never alerts stuck in three hours.
    #[test]
    fn no_stuck_alert_on_any_quantised_random_walk(
        step in prop_oneof![Just(1.0), Just(0.5), Just(0.1), 0.001..10.0f64],
        spread in 0.05..2.0f64,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng(seed);
        let mut level = 0.0f64;
        let xs: Vec<f64> = (0..21_600)
            .map(|_| {
                level = 0.999 * level + spread * step * rng.normal();
                (level / step).round() * step
            })
            .collect();
        let (_, alerts) = drive(&xs);
        prop_assert!(of_kind(&alerts, AnomalyKind::Stuck).is_empty(), "{alerts:?}");
    }

    /// After training on a square wave whose longest run is k readings, a
    /// meter stuck at a new value is stuck after stuckFactor·k = 3k readings
    /// (the other-value limit: the wave's shorter state), not before; stuck at
    /// its plateau value, after 3 times the plateau's longest run.
    #[test]
    fn a_run_three_times_the_learned_one_alerts(
        on in 20usize..400,
        off in 20usize..400,
        at_plateau in any::<bool>(),
    ) {
        let mut xs = square(TRAINED + 2 * (on + off), 0.0, 10.0, on, off, 0);
        // End the training cleanly at the start of an "on" stretch.
        let cut = xs.len() - xs.len() % (on + off);
        xs.truncate(cut);
        let (value, normal) = match (at_plateau, on >= off) {
            // The plateau is the longer state (its runs are 'on' or 'off' long).
            (true, true) => (10.0, on),
            (true, false) => (0.0, off),
            (false, true) => (5.0, off),
            (false, false) => (5.0, on),
        };
        let onset = xs.len();
        xs.extend(std::iter::repeat_n(value, 3 * normal.max(on.min(off)) + 50));
        let (_, alerts) = drive(&xs);
        let stuck = of_kind(&alerts, AnomalyKind::Stuck);
        // The value's own limit: 3× the longest run there, at least stuckRun
        // (30). The wave ends on its low stretch, so a run at 0 began `off`
        // readings before the onset.
        let limit = (3 * normal).max(30);
        let start = if value == 0.0 { onset - off } else { onset };
        prop_assert_eq!(stuck.first().copied(), Some(start + limit - 1), "{:?}", alerts);
    }
}

/// AR(1) of marginal sd 2 around 50, quantised to 0.001: `n` readings.
fn ar1(phi: f64, n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut a = 0.0;
    (0..n)
        .map(|_| {
            a = phi * a + (1.0 - phi * phi).sqrt() * rng.normal();
            ((50.0 + 2.0 * a) * 1e3).round() / 1e3
        })
        .collect()
}

#[test]
fn ar1_noise_stays_under_one_false_alert_per_meter_day() {
    // 6 seeds × 5 values of φ, 12 hours each after training: 15 meter-days.
    let n = TRAINED + 12 * 7_200;
    let mut total = 0usize;
    let mut worst = (0usize, 0.0, 0u64);
    for phi in [0.0, 0.5, 0.9, 0.97, 0.99] {
        for seed in 0..6u64 {
            let xs = ar1(phi, n, &mut Rng(seed * 7 + 1));
            let (_, alerts) = drive(&xs);
            if alerts.len() > worst.0 {
                worst = (alerts.len(), phi, seed);
            }
            total += alerts.len();
        }
    }
    let meter_days = 30.0 * 0.5;
    assert!(
        total as f64 / meter_days <= 1.0,
        "{total} alerts in {meter_days} meter-days; worst {worst:?}"
    );
}

#[test]
fn every_level_incident_alerts_drift_and_its_end_does_not() {
    // Four level shifts (2 to 3 sd, 20 minutes to 2 hours) on one AR(1) meter,
    // 2 to 3 hours apart, after training: each must raise drift while it lasts
    // (or within 2 minutes of its end), and no drift may be raised anywhere
    // else: an incident must not teach the meter that incidents are normal
    // (later ones still alert), and a level that returns must not alert as the
    // baseline closes in on it again. 9 meters: φ 0, 0.5, 0.9 × 3 seeds.
    let mut missed = Vec::new();
    let mut outside = Vec::new();
    for phi in [0.0, 0.5, 0.9] {
        for seed in 0..3u64 {
            let mut rng = Rng(seed * 13 + 5);
            let mut incidents = Vec::new();
            let mut at = TRAINED + 7_200;
            for _ in 0..4 {
                let len = rng.range(2_400.0, 14_400.0) as usize;
                let k = rng.range(2.0, 3.0) * if rng.chance(0.5) { 1.0 } else { -1.0 };
                incidents.push((at, at + len, k));
                at += len + rng.range(14_400.0, 21_600.0) as usize;
            }
            let mut xs = ar1(phi, at, &mut rng);
            for &(from, to, k) in &incidents {
                for x in &mut xs[from..to] {
                    *x += 2.0 * k;
                }
            }
            let (_, alerts) = drive(&xs);
            let drifts = of_kind(&alerts, AnomalyKind::Drift);
            for &(from, to, _) in &incidents {
                if !drifts.iter().any(|&i| from <= i && i <= to + 240) {
                    missed.push((phi, seed, from));
                }
            }
            for &i in &drifts {
                if !incidents.iter().any(|&(from, to, _)| from <= i && i <= to + 240) {
                    outside.push((phi, seed, i));
                }
            }
        }
    }
    assert!(missed.is_empty() && outside.is_empty(), "missed {missed:?}; outside {outside:?}");
}

#[test]
fn scores_are_graded_and_the_meter_query_returns_the_current_one() {
    // Noise, then a spike of 3 readings at +6 sd and later +30 sd.
    let mut rng = Rng(11);
    let mut xs: Vec<f64> = (0..3_000).map(|_| 100.0 + rng.normal()).collect();
    for (at, h) in [(1_500, 6.0), (2_500, 30.0)] {
        for x in &mut xs[at..at + 3] {
            *x += h;
        }
    }
    let (mut e, alerts) = drive(&xs);
    let spikes: Vec<&AnomalyEvent> =
        alerts.iter().filter(|(_, a)| a.kind == AnomalyKind::Spike).map(|(_, a)| a).collect();
    assert!(spikes.len() >= 2, "{alerts:?}");
    for a in &spikes {
        assert!((0.5..=1.0).contains(&a.score), "{a:?}");
        // score = u²/(1+u²) with u = |z|/threshold: recover u from the event.
        let u2 = a.score / (1.0 - a.score);
        assert!(u2 >= 1.0 && u2.is_finite(), "{a:?}");
        // Critical is |z| ≥ 2·threshold (criticalFactor 2), i.e. a score ≥ 0.8.
        let critical = a.severity == meterflow::core::event::Severity::Critical;
        assert_eq!(critical, a.score >= 0.8 - 1e-12, "{a:?}");
    }
    let higher = spikes.iter().map(|a| (a.z.abs(), a.score)).fold((0.0, 0.0), |m, x| {
        assert!(x.0 < m.0 || x.1 >= m.1, "score not monotone in |z|: {spikes:?}");
        if x.0 > m.0 {
            x
        } else {
            m
        }
    });
    assert!(higher.1 >= 0.8, "{spikes:?}");
    let now = T0 + STEP_MS * xs.len() as f64;
    // The last evaluation was of ordinary noise: a low score, not the spike's.
    match e.handle(Inbound::Query(Query::Meter { meter: "m".into() }), now).as_slice() {
        [Outbound::Meter(s)] => assert!((0.0..0.5).contains(&s.score), "{s:?}"),
        other => panic!("{other:?}"),
    }
    // A reading at +20 sd lifts the meter's current score above 0.5 at once.
    let b = ReadingBatch {
        scope: KeyScope::Batch,
        bindings: vec![(0, "m".into())],
        keys: vec![0],
        ts: vec![now],
        values: vec![120.0],
        ..Default::default()
    };
    e.handle(Inbound::Readings(b), now);
    e.handle(Inbound::Tick(HostStats::default()), now);
    match e.handle(Inbound::Query(Query::Meter { meter: "m".into() }), now).as_slice() {
        [Outbound::Meter(s)] => assert!(s.score > 0.5 && s.score <= 1.0, "{s:?}"),
        other => panic!("{other:?}"),
    }
}

/// Student-t noise with 3 degrees of freedom (infinite kurtosis).
fn student_t3(rng: &mut Rng) -> f64 {
    let chi2: f64 = (0..3).map(|_| rng.normal().powi(2)).sum();
    rng.normal() / (chi2 / 3.0).sqrt()
}

/// AR(1) noise of sd 2 about 50 (coefficient `phi`, seeded by `seed`) with
/// the sd × `factor` for 1,200 readings from `onset`, 1,200 readings after
/// it, rounded to 0.001.
fn variance_explosion(phi: f64, factor: f64, seed: u64, onset: usize) -> Vec<f64> {
    let mut rng = Rng(seed);
    let end = onset + 1_200;
    let mut a = 0.0;
    (0..end + 1_200)
        .map(|i| {
            a = phi * a + (1.0 - phi * phi).sqrt() * rng.normal();
            let sd = if (onset..end).contains(&i) { 2.0 * factor } else { 2.0 };
            ((50.0 + sd * a) * 1e3).round() / 1e3
        })
        .collect()
}

/// The case `a_variance_explosion_alerts_at_every_phi` once failed on (φ
/// 0.99, sd × 4, seed 14754109832867180636; about 6 in 800 seeds failed at
/// φ 0.99 and × 4). The wander kept the explosion's window variance at 21
/// (a third of 64), 5.9 times the long-run variance learned at its onset
/// (3.6), but while it built up, under the breach, the meter learned it:
/// the long-run variance rose to 5.4 and the limit² from 11 to 25, and the
/// rule never breached. Held from half the limit on
/// (`VARIANCE_HOLD_U2`), it breaches as the window fills.
#[test]
fn a_variance_explosion_that_builds_up_is_not_learned_before_it_breaches() {
    let onset = TRAINED + 3_600;
    let xs = variance_explosion(0.99, 4.0, 14_754_109_832_867_180_636, onset);
    let (_, alerts) = drive(&xs);
    let inside = alerts.iter().any(|(i, _)| (onset..=onset + 1_200 + 240).contains(i));
    assert!(inside, "{alerts:?}");
}

proptest! {
    // `PROPTEST_CASES` runs more (the variance explosion's rare failure was
    // found at about 1 case in 500).
    #![proptest_config(ProptestConfig {
        cases: cases::cases_or(16),
        ..ProptestConfig::default()
    })]

    /// A variance explosion (the noise's sd × 4..6 for 10 minutes, level
    /// unchanged) on a trained AR(1) meter of any φ up to 0.99 raises an alert
    /// (kind `spike`: the variance rule votes with it) while it lasts or
    /// within 2 minutes of its end.
    #[test]
    fn a_variance_explosion_alerts_at_every_phi(
        phi in prop_oneof![Just(0.0), Just(0.99), 0.0..0.99f64],
        factor in 4.0..6.0f64,
        seed in any::<u64>(),
    ) {
        let onset = TRAINED + 3_600;
        let end = onset + 1_200;
        let xs = variance_explosion(phi, factor, seed, onset);
        let (_, alerts) = drive(&xs);
        let inside = alerts.iter().any(|(i, _)| (onset..=end + 240).contains(i));
        prop_assert!(inside, "phi {phi}, factor {factor}: {alerts:?}");
    }
}

#[test]
fn stationary_heavy_tailed_quantised_and_square_meters_stay_under_one_alert_per_meter_day() {
    // 12 hours after training per meter, 4 seeds of each: Student-t (3 df),
    // Laplace, a quantised AR(1) random walk (step 0.5, φ 0.95) and square
    // waves with a little noise. The variance rule compares the window's
    // variance with the long-run one; on these its ratio wanders widely,
    // and must not alert more than once per meter-day in all.
    let n = TRAINED + 12 * 7_200;
    let mut total = 0usize;
    let mut worst = (0usize, "", 0u64);
    for seed in 0..4u64 {
        let mut rng = Rng(seed * 31 + 3);
        let mut a = 0.0;
        let (on, off) = (rng.range(60.0, 1_000.0) as usize, rng.range(60.0, 1_000.0) as usize);
        let series: [(&str, Vec<f64>); 4] = [
            ("student-t", (0..n).map(|_| 30.0 + 1.5 * student_t3(&mut rng)).collect()),
            ("laplace", (0..n).map(|_| 30.0 + 1.5 * rng.laplace()).collect()),
            (
                "quantised",
                (0..n)
                    .map(|_| {
                        a = 0.95 * a + (1.0 - 0.95f64 * 0.95).sqrt() * rng.normal();
                        ((15.0 + 0.4 * a) / 0.5).round() * 0.5
                    })
                    .collect(),
            ),
            (
                "square",
                square(n, 0.0, 12.0, on, off, seed as usize)
                    .into_iter()
                    .map(|x| ((x + 0.05 * rng.normal()) * 1e3).round() / 1e3)
                    .collect(),
            ),
        ];
        for (name, xs) in series {
            let (_, alerts) = drive(&xs);
            if alerts.len() > worst.0 {
                worst = (alerts.len(), name, seed);
            }
            total += alerts.len();
        }
    }
    let meter_days = 16.0 * 0.5;
    assert!(
        total as f64 / meter_days <= 1.0,
        "{total} alerts in {meter_days} meter-days; worst {worst:?}"
    );
}
