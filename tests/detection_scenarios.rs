#![cfg(not(target_arch = "wasm32"))]
//! Detection scenarios on generated data at 2 Hz: one reading per meter every
//! 500 ms, then a tick, all through `Engine::handle`.
//!
//! Each scenario runs 2,400 normal readings first (the 1,200-sample window full
//! twice over), then the anomaly. Events are written as lines relative to the
//! anomaly's first step: `+k` is the k-th evaluation from the onset, so
//! `+3 anomaly spike critical 3` is a spike alert raised by the third evaluation
//! of the anomaly, reporting 3 evaluations from first breach to alert. The
//! expected lines are derived in comments from the rules in `docs/DETECTION.md`
//! with the default configuration; where a step depends on the noise drawn,
//! the line gives the range the rules allow (`+53..=81`).

#[path = "common/rng.rs"]
mod rng;
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::event::{
    AnomalyEvent, AnomalyKind, HostStats, Inbound, KeyScope, Outbound, ReadingBatch,
};
use meterflow::core::Engine;
use rng::Rng;

const T0: f64 = 1.7e12;
const STEP_MS: f64 = 500.0;
/// Normal readings before every anomaly.
const HISTORY: usize = 8_000;

/// `n` readings of `level` plus normal noise of standard deviation `sd`.
fn normal(rng: &mut Rng, n: usize, level: f64, sd: f64) -> Vec<Option<f64>> {
    (0..n).map(|_| Some(level + sd * rng.normal())).collect()
}

/// What the engine said, with the step (reading index) it said it at.
struct Said {
    step: usize,
    out: Outbound,
}

/// Drives one engine at 2 Hz: at step i every meter with a value gets one
/// reading stamped `T0 + 500·i`, then the tick of that time runs.
fn drive(meters: &[(&str, &[Option<f64>])], patch: ConfigPatch) -> (Engine, Vec<Said>) {
    let mut e = Engine::new(Config::default().apply(&patch).unwrap()).unwrap();
    let steps = meters.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    let mut said = Vec::new();
    for step in 0..steps {
        let now = T0 + STEP_MS * step as f64;
        let mut b = ReadingBatch { scope: KeyScope::Batch, ..Default::default() };
        for (name, series) in meters {
            if let Some(Some(x)) = series.get(step) {
                b.keys.push(b.bindings.len() as u32);
                b.bindings.push((b.bindings.len() as u32, name.to_string()));
                b.ts.push(now);
                b.values.push(*x);
            }
        }
        let mut out = e.handle(Inbound::Readings(b), now);
        out.extend(e.handle(Inbound::Tick(HostStats::default()), now));
        for o in out {
            match o {
                Outbound::Anomaly(_) | Outbound::Cleared(_) => said.push(Said { step, out: o }),
                Outbound::Error(e) => panic!("step {step}: unexpected error {e:?}"),
                _ => {}
            }
        }
    }
    (e, said)
}

/// Events about `meter` as lines relative to `onset` (`+1` is the onset step).
fn lines(said: &[Said], meter: &str, onset: usize) -> Vec<String> {
    let rel = |step: usize| step as i64 - onset as i64 + 1;
    said.iter()
        .filter_map(|s| match &s.out {
            Outbound::Anomaly(a) if a.meter == meter => Some(format!(
                "{:+} anomaly {} {} {}",
                rel(s.step),
                a.kind.as_str(),
                a.severity.as_str(),
                a.evaluations
            )),
            Outbound::Cleared(c) if c.meter == meter => {
                Some(format!("{:+} cleared {}", rel(s.step), c.kind.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// Asserts that `meter`'s events, relative to `onset`, are exactly `expected`.
/// An expected step may be a range, `+53..=81`; since a range can straddle
/// other events, each expected line is matched to a distinct event, not by
/// position.
fn check(said: &[Said], meter: &str, onset: usize, expected: &[&str]) {
    let got = lines(said, meter, onset);
    let fits = |g: &str, x: &str| {
        let (gs, grest) = g.split_once(' ').unwrap();
        let (xs, xrest) = x.split_once(' ').unwrap();
        let g: i64 = gs.parse().unwrap();
        let in_range = match xs.split_once("..=") {
            Some((lo, hi)) => (lo.parse::<i64>().unwrap()..=hi.parse().unwrap()).contains(&g),
            None => xs.parse::<i64>().unwrap() == g,
        };
        in_range && grest == xrest
    };
    let mut used = vec![false; got.len()];
    let all_found = expected.iter().all(|x| {
        let hit = (0..got.len()).find(|&i| !used[i] && fits(&got[i], x));
        hit.map(|i| used[i] = true).is_some()
    });
    let ok = all_found && got.len() == expected.len();
    assert!(ok, "meter {meter}:\n got      {got:#?}\n expected {expected:#?}");
}

fn anomalies(said: &[Said], kind: AnomalyKind) -> Vec<&AnomalyEvent> {
    said.iter()
        .filter_map(|s| match &s.out {
            Outbound::Anomaly(a) if a.kind == kind => Some(a),
            _ => None,
        })
        .collect()
}

fn with_history(rng: &mut Rng, level: f64, sd: f64, anomaly: Vec<Option<f64>>) -> Vec<Option<f64>> {
    let mut s = normal(rng, HISTORY, level, sd);
    s.extend(anomaly);
    s
}

#[test]
fn spike_of_three_frames_alerts_on_the_third_and_clears() {
    // Level 100, sd 1; three readings at +20 sd, then normal again. Before the
    // onset the window is normal: excess kurtosis within ±0.6 of 0, so the
    // threshold is 4·(1 + 13/24·g2) ≤ 5.3 and critical needs |z| ≥ 10.6. The
    // frames score about 20/1, 20/1.15 and 20/1.29 = 15.5 (the window's sd grows
    // as each enters), ±4 for the noise: all breach, the third critical. 3 of 5
    // breached at +3, first breach at +1: 3 evaluations. After it, normal
    // readings score |z| < 4 against an sd of 1.3, but the first of them, +4,
    // is where the excursion rule finds the three readings returned (a
    // breach, docs/DETECTION.md "Excursion"), and at +5 the median rule's
    // vote closes (the medians of the three readings before +3, +4 and +5
    // are spike readings: "Median"), so +6 is the first calm evaluation and
    // the 10th, +15, clears. Drift: k readings of any height
    // move the window mean by at most about √k of its own standard error
    // √(var/n) (they inflate var as much), √3 = 1.7, short of 5.
    let mut rng = Rng(1);
    let mut anomaly: Vec<Option<f64>> = (0..3).map(|_| Some(120.0 + rng.normal())).collect();
    anomaly.extend(normal(&mut rng, 600, 100.0, 1.0));
    let series = with_history(&mut rng, 100.0, 1.0, anomaly);
    let (_, said) = drive(&[("pump-1", &series)], ConfigPatch::default());
    check(&said, "pump-1", HISTORY, &["+3 anomaly spike critical 3", "+15 cleared spike"]);
    let a = anomalies(&said, AnomalyKind::Spike)[0];
    let x = series[HISTORY + 2].unwrap();
    assert_eq!((a.value, a.ts), (x, T0 + STEP_MS * (HISTORY + 2) as f64));
    assert!((a.z - (x - a.mean) / a.std).abs() < 1e-9 * a.z.abs(), "{a:?}");
    assert!(a.z > 10.6 && a.mean > 100.0 && a.std > 1.0, "{a:?}");
}

#[test]
fn lone_blips_and_a_two_frame_spike_never_alert() {
    // One reading at +1e6 sd, later two at +40 sd, later one at −1e9: each far
    // beyond the threshold, but no more than 2 breaches in any 5 evaluations, and
    // at most about √2 = 1.4 standard errors of the window mean in the drift
    // statistic (each inflates the window's variance as much as its mean).
    // They are 1,300 readings apart, so each meets a window without the last.
    let mut rng = Rng(2);
    let mut s = normal(&mut rng, HISTORY, 100.0, 1.0);
    s.push(Some(100.0 + 1e6));
    s.extend(normal(&mut rng, 1_300, 100.0, 1.0));
    s.extend([Some(140.0), Some(140.0 + rng.normal())]);
    s.extend(normal(&mut rng, 1_300, 100.0, 1.0));
    s.push(Some(-1e9));
    s.extend(normal(&mut rng, 1_300, 100.0, 1.0));
    let (e, said) = drive(&[("blip", &s)], ConfigPatch::default());
    check(&said, "blip", HISTORY, &[]);
    assert_eq!(e.counters().evaluations, s.len() as f64);
}

#[test]
fn burst_pipe_is_a_spike_then_a_drift() {
    // Flow 100 with sd 0.01 steps to 200 and stays: 10,000 sd. With k step
    // readings in the window (p = k/1200) the sd is 100·√(p(1−p)) and the noise
    // no longer matters at the precision below.
    //
    // Spike: reading k scores √((1−p')/p'), p' = (k−1)/1200: ∞ (floored sd),
    // 34.6, 24.5 ≥ 2·5.3: critical at +3, 3 evaluations. (The meter's long-run
    // window variance, 1e-4, is far below the window's.) It breaches while that
    // exceeds the frozen threshold t ∈ [4, 5.3] (see the spike scenario), i.e.
    // up to k = 43..71; cleared 10 calm evaluations later: +53..=81.
    //
    // Drift: the window mean moves 100/1200 per reading away from the slow
    // baseline (100), d = k/12, while the floor of the scale, the standard
    // error of the window mean √(var/n) = 100·√(p(1−p))/√1200 ≈ √k/12, grows
    // too: d > 5·√k/12 from k = 26, so the 5th breach in a row is +30 (the
    // learned scale, from a meter of sd 0.01, is far smaller). The exact lines
    // come from the reference; the baseline is held while the alert is active,
    // so the alert lasts as long as the new level does (up to 4 hours).
    let mut rng = Rng(3);
    let step = normal(&mut rng, 1_300, 200.0, 0.01);
    let series = with_history(&mut rng, 100.0, 0.01, step);
    let xs: Vec<f64> = series.iter().map(|x| x.unwrap()).collect();
    let mut expected =
        vec!["+3 anomaly spike critical 3".to_string(), "+53..=81 cleared spike".into()];
    let drift = drift_lines(&xs, HISTORY);
    assert!(drift[0].starts_with("+2") && drift[0].ends_with("drift warning 5"), "{drift:?}");
    expected.extend(drift);
    let (_, said) = drive(&[("main-7", &series)], ConfigPatch::default());
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    check(&said, "main-7", HISTORY, &expected);
    let d = anomalies(&said, AnomalyKind::Drift);
    assert!(d[0].value > d[0].mean, "window mean above the slow baseline: {:?}", d[0]);
    assert!((d[0].mean - 100.0).abs() < 0.01, "the baseline is the old level: {:?}", d[0]);
}

#[test]
fn stuck_at_zero_is_a_spike_a_drift_then_stuck() {
    // Level 1000, sd 0.1, then exactly 0 for good: the burst pipe mirrored
    // (same spike and drift steps, z negative), plus the flat run. The meter
    // never repeated a reading in its history (longest run 1, so the stuck
    // limit is max(stuckRun, 3·1) = 30): 30 identical readings at +30 while the
    // window still varies (warning, 30 evaluations since the run began),
    // 60 = 2·30 at +60 (critical). Stuck never clears: the run goes on after
    // the window is all zeros.
    let mut rng = Rng(4);
    let series = with_history(&mut rng, 1_000.0, 0.1, vec![Some(0.0); 1_300]);
    let xs: Vec<f64> = series.iter().map(|x| x.unwrap()).collect();
    let mut expected: Vec<String> = [
        "+3 anomaly spike critical 3",
        "+30 anomaly stuck warning 30",
        "+53..=81 cleared spike",
        "+60 anomaly stuck critical 60",
    ]
    .map(String::from)
    .to_vec();
    expected.extend(drift_lines(&xs, HISTORY));
    let (mut e, said) = drive(&[("well-3", &series)], ConfigPatch::default());
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    check(&said, "well-3", HISTORY, &expected);
    let s = anomalies(&said, AnomalyKind::Stuck);
    assert_eq!((s[0].value, s[0].z.is_sign_negative()), (0.0, true), "{s:?}");
    assert!(s.iter().all(|a| a.z.is_finite() && a.std > 0.0));
    let m = e.meter_index("well-3").unwrap() as usize;
    let snap = e.handle(
        Inbound::Query(meterflow::core::event::Query::Meter { meter: "well-3".into() }),
        T0,
    );
    match snap.as_slice() {
        [Outbound::Meter(s)] => {
            assert_eq!(s.alerts, vec![AnomalyKind::Drift, AnomalyKind::Stuck]);
            assert_eq!(s.variance, 0.0, "the window is all zeros by now");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.stats().active_alerts, 2, "stuck and drift, meter {m}");
}

/// The drift rule of `docs/DETECTION.md`, written independently of the
/// engine: window moments two-pass from the newest 1,200 readings, the slow
/// baseline and the learned scale as the documented recurrences (running means
/// until `baselineReadings` = 7,200 readings are learned, then EWMAs with time
/// constants 7,200 and 28,800; both paused by a drift alert), one evaluation
/// per reading. Returns the drift
/// lines the engine must produce, relative to `from`, and each evaluation's z.
fn reference_drift(xs: &[f64], from: usize) -> (Vec<String>, Vec<f64>) {
    let (mut slow, mut dev2, mut learned) = (0.0f64, 0.0f64, 0u32);
    let (mut run, mut calm, mut active, mut critical) = (0u32, 0u32, false, false);
    let (mut held, mut quiet) = (0u32, u32::MAX);
    let (mut out, mut zs) = (Vec::new(), vec![0.0; xs.len()]);
    for i in 0..xs.len() {
        let w = &xs[(i + 1).saturating_sub(1_200)..=i];
        let n = w.len() as f64;
        if n < 60.0 {
            continue;
        }
        let mean = w.iter().sum::<f64>() / n;
        let var = w.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let fvar = var.max((1e-6 * mean.abs()).powi(2)).max(1e-12);
        let d = mean - slow;
        let scale2 = dev2.max(fvar / n);
        let limit2 = 25.0 * scale2;
        let ratio = d * d / limit2;
        let trained = learned >= 7_200;
        assert!(
            !trained || (ratio - 1.0).abs() > 1e-6,
            "{i}: d²/limit² = {ratio} too close to call"
        );
        let breach = trained && ratio > 1.0;
        zs[i] = d / scale2.sqrt();
        // The life cycle: 5 breaches in a row raise, 10 calm evaluations clear,
        // |z| ≥ 2·5 is critical.
        run = if breach { run + 1 } else { 0 };
        calm = if breach { 0 } else { calm + 1 };
        let severe = breach && ratio >= 4.0;
        let k = i as i64 - from as i64 + 1;
        if !active && run >= 5 {
            (active, critical) = (true, severe);
            let severity = if severe { "critical" } else { "warning" };
            out.push(format!("{k:+} anomaly drift {severity} {run}"));
        } else if active && calm >= 10 {
            (active, critical) = (false, false);
            out.push(format!("{k:+} cleared drift"));
        } else if active && severe && !critical {
            critical = true;
            out.push(format!("{k:+} anomaly drift critical {run}"));
        }
        // While a drift alert is active the slow baseline holds (adopting the
        // window mean once the alert is 4 · 7,200 readings old) and the scale
        // is not learned, nor for 7,200 readings after the alert.
        if active {
            (held, quiet) = (held + 1, 0);
        } else {
            (held, quiet) = (0, quiet.saturating_add(1));
        }
        let seen = f64::from(learned + 1).min(7_200.0);
        if !active {
            slow += d / seen;
        } else if held >= 4 * 7_200 {
            slow = mean;
        }
        if learned > 0 && !active && quiet >= 7_200 {
            // Each term capped at (3·scale)² = limit2 · 9/25: these readings
            // are normal, light-tailed (the cap of heavy-tailed meters is limit2).
            let cap = limit2 * 9.0 / 25.0;
            dev2 += ((d * d).min(cap) - dev2) / f64::from(learned + 1).min(28_800.0);
        }
        learned += 1;
    }
    (out, zs)
}

/// Every drift line of `reference_drift` must come after `from` (the normal
/// history raises nothing), and there must be one.
fn drift_lines(xs: &[f64], from: usize) -> Vec<String> {
    let (lines, _) = reference_drift(xs, from);
    assert!(
        !lines.is_empty() && lines.iter().all(|l| !l.starts_with('-') && !l.starts_with("+0 "))
    );
    lines
}

#[test]
fn slow_drift_alerts_after_five_breaching_evaluations() {
    // Level 100, sd 1, rising 0.025 sd per reading for 60 readings (30 s), then
    // holding at +1.5 sd. No single reading stands out (|z| ≈ 1.5 ± noise), but
    // the window mean leaves the slow baseline: its learned distance from it on
    // this meter is about the standard error of a window mean, 1/√1200 = 0.03,
    // so a shift of 1.5 breaches 5 of those once the window holds about a tenth
    // of the new level. A two-pass reference of the documented statistic and
    // life cycle says which evaluations alert and clear; the engine must agree
    // to the evaluation.
    let mut rng = Rng(5);
    let mut anomaly: Vec<Option<f64>> =
        (1..=60).map(|k| Some(100.0 + 0.025 * k as f64 + rng.normal())).collect();
    anomaly.extend(normal(&mut rng, 1_400, 101.5, 1.0));
    let series = with_history(&mut rng, 100.0, 1.0, anomaly);
    let xs: Vec<f64> = series.iter().map(|x| x.unwrap()).collect();
    let expected = drift_lines(&xs, HISTORY);
    let first: i64 = expected[0].split_once(' ').unwrap().0.parse().unwrap();
    assert!(expected[0].ends_with("anomaly drift warning 5") && (60..=400).contains(&first));

    let (_, said) = drive(&[("feeder", &series)], ConfigPatch::default());
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    check(&said, "feeder", HISTORY, &expected);
    let d = anomalies(&said, AnomalyKind::Drift)[0];
    let (_, zs) = reference_drift(&xs, HISTORY);
    let z = zs[HISTORY + first as usize - 1];
    assert!((d.z - z).abs() < 1e-6 * z.abs(), "engine {} vs reference {z}", d.z);
    assert!(anomalies(&said, AnomalyKind::Spike).is_empty());
}

#[test]
fn dropout_is_silent_then_critical_then_cleared() {
    // The meter stops after its last reading at step L (+0) while ticks go on;
    // another meter keeps reporting. Its last evaluation was at L, so it is
    // silent once now − L·500 > 60,000 ms: the first tick past that is +121
    // (warning; silence has no evaluations). Critical once the silence reaches
    // 2·60 s: +240. Readings resume at +400; the 10th evaluation, +409, clears.
    let mut rng = Rng(6);
    let mut drop = normal(&mut rng, HISTORY, 5.0, 0.2);
    drop.extend(vec![None; 399]);
    drop.extend(normal(&mut rng, 100, 5.0, 0.2));
    let steady = normal(&mut rng, drop.len(), 7.0, 0.2);
    let last = HISTORY - 1;
    let (e, said) = drive(&[("gate-2", &drop), ("gate-9", &steady)], ConfigPatch::default());
    check(
        &said,
        "gate-2",
        last + 1,
        &["+121 anomaly silent warning 0", "+240 anomaly silent critical 0", "+409 cleared silent"],
    );
    check(&said, "gate-9", 0, &[]);
    let s = anomalies(&said, AnomalyKind::Silent);
    assert_eq!((s[0].value, s[0].ts), (drop[last].unwrap(), T0 + STEP_MS * last as f64));
    assert_eq!(s[0].z, 0.0);
    // Evaluations count meters with readings only: the dropped meter is skipped.
    let expected = (drop.iter().filter(|x| x.is_some()).count() + steady.len()) as f64;
    assert_eq!(e.counters().evaluations, expected);
}

#[test]
fn six_hours_of_noisy_but_normal_meters_raise_nothing() {
    // 43,200 readings each. "office": level 50, a slow ±1 sd swing over the six
    // hours, normal noise, and 0.5% mild outliers (an extra sd-3 draw, so now and
    // then 5–10 sd), quantised to the meter's 0.001 resolution. "mains": Laplace
    // noise (excess kurtosis 3), whose 4-sd readings come 50 times as often as
    // a normal meter's: the threshold widens to 8 for it.
    //
    // Why nothing may fire: a spike needs 3 breaches in 5 evaluations; the
    // outliers breach at a rate of about 0.2% and Laplace beyond 8 sd 1e-5, so
    // 3-in-5 has odds below 1e-7 per evaluation. The drift statistic is
    // scaled by the meter's own learned spread of it (the slow swing is in
    // that spread), and needs > 5 five times in a row. No two readings of a
    // 1-sd meter at 0.001 resolution repeat 30 times.
    let mut rng = Rng(7);
    let n = 6 * 3_600 * 2;
    let office: Vec<Option<f64>> = (0..n)
        .map(|i| {
            let swing = (std::f64::consts::TAU * i as f64 / n as f64).sin();
            let outlier = if rng.unit() < 0.005 { 3.0 * rng.normal() } else { 0.0 };
            let x = 50.0 + swing + rng.normal() + outlier;
            Some((x * 1e3).round() / 1e3)
        })
        .collect();
    let mains: Vec<Option<f64>> = (0..n).map(|_| Some(230.0 + 2.0 * rng.laplace())).collect();
    let (e, said) = drive(&[("office", &office), ("mains", &mains)], ConfigPatch::default());
    check(&said, "office", 0, &[]);
    check(&said, "mains", 0, &[]);
    assert_eq!(e.counters().evaluations, 2.0 * n as f64);
}
