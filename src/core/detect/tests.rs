//! Unit tests of the `Detector` bookkeeping; the rules are tested in `rules`,
//! behaviour end to end in `tests/detection_*.rs`.

use super::*;

fn moments(xs: &[f64]) -> Moments {
    Moments::recompute(xs, &[])
}

/// `n` meters named m0.. with empty windows of 64.
fn setup(n: usize) -> (Detector, Windows, MeterTable) {
    setup_windows(n, 64)
}

/// `n` meters named m0.. with empty windows of `window`.
fn setup_windows(n: usize, window: usize) -> (Detector, Windows, MeterTable) {
    let mut d = Detector::default();
    let mut w = Windows::new(window, 100);
    let mut names = MeterTable::default();
    for m in 0..n {
        assert!(names.intern(&format!("m{m}"), n as u32).is_ok());
        w.add_meter(n);
        d.add_meter(n);
    }
    (d, w, names)
}

#[test]
fn observe_keeps_the_reading_with_the_largest_abs_z() {
    let cfg = Config::default();
    let (mut d, _, _) = setup(1);
    let narrow = moments(&[8.0, 12.0]); // mean 10, sd 2
    let wide = moments(&[0.0, 20.0]); // mean 10, sd 10
    d.observe(0, 16.0, 1.0, &narrow, &cfg); // z = 3
    d.observe(0, 30.0, 2.0, &wide, &cfg); // z = 2
    d.observe(0, 2.0, 3.0, &narrow, &cfg); // z = −4
    d.observe(0, 9.0, 0.5, &narrow, &cfg); // z = −0.5, and older
    let p = d.pending[0];
    assert_eq!((p.new, p.peak_x, p.peak_ts, p.peak_mean), (4, 2.0, 3.0, 10.0));
    assert_eq!(p.peak_d / p.peak_var.sqrt(), -4.0);
    assert_eq!((p.last_x, p.last_ts, p.run), (9.0, 3.0, 1), "newest value, newest ts");
    assert_eq!(d.last_ts(0), 3.0);
    assert!(d.last_ts(7).is_nan());
}

#[test]
fn identical_readings_extend_the_run() {
    let cfg = Config::default();
    let (mut d, _, _) = setup(1);
    let mo = Moments::default();
    for x in [1.0, 0.0, 0.0, 0.0] {
        d.observe(0, x, 1.0, &mo, &cfg);
    }
    assert_eq!(d.pending[0].run, 3);
}

#[test]
fn dirty_list_holds_each_meter_once_and_reset_removes_it() {
    let cfg = Config::default();
    let (mut d, w, names) = setup(3);
    let mo = Moments::default();
    for m in [2, 0, 2, 2, 0] {
        d.observe(m, 1.0, 1.0, &mo, &cfg);
    }
    assert_eq!(d.dirty, vec![2, 0]);
    d.reset_meter(2);
    assert_eq!(d.dirty, vec![0]);
    d.observe(2, 1.0, 1.0, &mo, &cfg);
    assert_eq!(d.dirty, vec![0, 2]);
    let mut out = Vec::new();
    assert_eq!(d.tick(1_000.0, &w, &names, &cfg, &mut out), 2);
    assert!(d.dirty.is_empty());
    assert_eq!(d.tick(1_500.0, &w, &names, &cfg, &mut out), 0, "nothing new");
    d.reset_meter(99);
}

#[test]
fn a_non_finite_now_evaluates_nothing_and_keeps_the_readings() {
    let cfg = Config::default();
    let (mut d, w, names) = setup(1);
    d.observe(0, 1.0, 1.0, &Moments::default(), &cfg);
    let mut out = Vec::new();
    assert_eq!(d.tick(f64::NAN, &w, &names, &cfg, &mut out), 0);
    assert_eq!(d.tick(f64::INFINITY, &w, &names, &cfg, &mut out), 0);
    assert_eq!(d.tick(1_000.0, &w, &names, &cfg, &mut out), 1);
    assert!(out.is_empty());
}

#[test]
fn silence_is_checked_only_when_due() {
    let cfg = Config { warmup: 2, ..Config::default() };
    let (mut d, mut w, names) = setup(2);
    w.push(0, 1.0);
    w.push(0, 2.0);
    let mut out = Vec::new();
    d.observe(0, 1.0, 1.0, &Moments::default(), &cfg);
    d.tick(1_000.0, &w, &names, &cfg, &mut out);
    // The first tick checks (new basis) and finds meter 0 due at 1 000 + 60 000;
    // meter 1 never reported, so it is never due.
    assert_eq!(d.silence.due, 61_000.0);
    d.observe(0, 1.0, 1.0, &Moments::default(), &cfg);
    d.tick(1_500.0, &w, &names, &cfg, &mut out);
    assert_eq!(d.silence.due, 61_000.0, "a stale lower bound is fine until it passes");
    d.tick(61_000.0, &w, &names, &cfg, &mut out);
    assert_eq!(d.silence.due, 61_500.0, "recomputed exactly when it passes");
    assert!(out.is_empty(), "59.5 s of silence is not yet silent: {out:?}");
    // A config change forces a check: 59.5 s is past 2 x 10 s, so critical at once.
    let other = Config { silent_after_ms: 10_000.0, ..cfg.clone() };
    d.tick(61_000.0, &w, &names, &other, &mut out);
    let silent: Vec<_> = out
        .iter()
        .map(|o| match o {
            Outbound::Anomaly(a) => {
                Some((a.kind, a.severity, a.meter.as_str(), a.value, a.ts, a.evaluations))
            }
            _ => None,
        })
        .collect();
    let critical = super::super::event::Severity::Critical;
    assert_eq!(silent, vec![Some((AnomalyKind::Silent, critical, "m0", 1.0, 1.0, 0))]);
    assert_eq!(d.silence.due, f64::INFINITY, "nothing left to change without a reading");
    assert_eq!(d.alerts(0), vec![AnomalyKind::Silent]);
    assert_eq!(d.active_alerts(), 1);
}

#[test]
fn detection_state_stays_under_304_bytes_per_meter() {
    let (d, _, _) = setup(5_000);
    let per_meter = d.bytes() as f64 / 5_000.0;
    // The records (native sizes; 12 B of them the seasonal rule's, 64 the
    // excursion rule's, 32 the median rule's), and no
    // growth headroom past the cap (`setup` passes its meter count): before
    // the cap, the eighths reached 5,378 meters' room (about 14 B a meter more).
    let records = (std::mem::size_of::<Verdicts>()
        + std::mem::size_of::<Pending>()
        + std::mem::size_of::<Learned>()
        + std::mem::size_of::<super::excursion::Excursion>()
        + std::mem::size_of::<super::median::Median>()
        + std::mem::size_of::<f64>()
        + std::mem::size_of::<u32>()) as f64;
    assert!(per_meter <= records + 1.0, "{per_meter} bytes per meter, records {records}");
    assert!(per_meter <= 304.0, "{per_meter} bytes per meter");
    assert_eq!(d.alerts(0), Vec::new());
    assert_eq!(d.active_alerts(), 0);
}

/// Past the first room the tables double: a join of 50,000 meters moves them
/// three times (8,192 → 16,384 → 32,768 → 50,000), where growth by eighths
/// moved them 16 times; and the room never passes twice the meters or the cap.
#[test]
fn growth_past_the_first_room_doubles_up_to_the_cap() {
    let cap = 50_000;
    let mut d = Detector::default();
    let mut capacities = vec![];
    for m in 0..cap {
        d.add_meter(cap);
        let c = d.pending.capacity();
        if capacities.last() != Some(&c) {
            capacities.push(c);
        }
        assert!(c <= cap && c <= 2 * (m + 1).max(FIRST_ROOM), "meter {m}: room {c}");
        assert_eq!(d.seen.capacity(), c, "meter {m}");
    }
    assert_eq!(capacities, vec![FIRST_ROOM, 2 * FIRST_ROOM, 4 * FIRST_ROOM, cap]);
}

#[test]
fn growth_reserves_no_room_past_the_cap() {
    for cap in [1usize, 63, 64, 65, 600, 5_000] {
        let mut d = Detector::default();
        for m in 0..cap {
            d.add_meter(cap);
            assert!(d.pending.capacity() <= cap, "cap {cap}, meter {m}");
        }
        for t in [
            &d.pending.capacity(),
            &d.verdicts.capacity(),
            &d.learned.capacity(),
            &d.excursions.capacity(),
            &d.medians.capacity(),
        ] {
            assert_eq!(*t, cap, "cap {cap}");
        }
        assert_eq!((d.seen.capacity(), d.dirty.capacity()), (cap, cap));
        // A cap raised later (a config change) still adds meters, one at a time at worst.
        d.add_meter(cap);
        assert_eq!(d.pending.len(), cap + 1);
    }
}

/// Reading `k` (at ts 10¹² + k) of each of the first `meters` meters: a
/// triangle wave of 24 readings, meter `m` at level 10·m, a cycle every
/// meter's seasonal scan finds once its window is full.
fn add_triangles(w: &mut Windows, d: &mut Detector, meters: usize, k: usize, cfg: &Config) {
    for m in 0..meters {
        let x = 10.0 * m as f64 + (12.0 - (k % 24) as f64).abs();
        crate::core::add_reading(w, d, m, x, 1e12 + k as f64, cfg);
    }
}

/// A burst that makes every meter's seasonal scan due at once runs at most
/// `maxScansPerTick` scans in its tick; the rest are owed and run at the
/// meters' next evaluations, a budget a tick, owed scans before newly due
/// ones, until every meter has found a period, as an unbounded tick makes
/// them all at once.
#[test]
fn a_burst_owes_the_scans_past_max_scans_per_tick() {
    let periods_found = |budget: u32, ticks: usize, bursts: bool| -> Vec<usize> {
        let cfg = Config { max_scans_per_tick: budget, ..Config::default() };
        let (meters, window) = (40, 240);
        let (mut d, mut w, names) = setup_windows(meters, window);
        let mut out = Vec::new();
        let mut found = Vec::new();
        let mut k = 0;
        for t in 0..ticks {
            let burst = if t == 0 || bursts { window } else { 1 };
            for _ in 0..burst {
                add_triangles(&mut w, &mut d, meters, k, &cfg);
                k += 1;
            }
            d.tick(1e12 + k as f64, &w, &names, &cfg, &mut out);
            found.push(d.verdicts.iter().filter(|v| v.season.period != 0).count());
        }
        found
    };
    assert_eq!(periods_found(1_024, 3, false), vec![40, 40, 40], "an unbounded tick scans all");
    assert_eq!(periods_found(5, 10, false), vec![5, 10, 15, 20, 25, 30, 35, 40, 40, 40]);
    assert_eq!(periods_found(16, 4, false), vec![16, 32, 40, 40]);
    // A window's readings every tick: every meter is due at every tick, more
    // than the budget, for ever. Owed scans go first, so the meters take
    // turns instead of the first five in order rescanning each tick.
    assert_eq!(periods_found(5, 10, true), vec![5, 10, 15, 20, 25, 30, 35, 40, 40, 40]);
}

/// A reset meter leaves the owed queue with its state; the others stay owed.
#[test]
fn a_reset_meter_owes_no_scan() {
    let cfg = Config { max_scans_per_tick: 5, ..Config::default() };
    let (meters, window) = (12, 240);
    let (mut d, mut w, names) = setup_windows(meters, window);
    for k in 0..window {
        add_triangles(&mut w, &mut d, meters, k, &cfg);
    }
    d.tick(1e12 + 1e3, &w, &names, &cfg, &mut Vec::new());
    assert_eq!(d.owed.len(), 7);
    assert!(d.owes_scan(9));
    d.reset_meter(9);
    assert_eq!(d.owed.len(), 6);
    assert!(!d.owes_scan(9));
    assert!(d.owed.iter().all(|&m| d.owes_scan(m as usize)));
}
