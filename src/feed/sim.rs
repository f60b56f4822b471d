//! The seeded meter simulator: N meters of water, energy and bandwidth read
//! every [`TICK_MS`] of simulated time, with daily shapes, quantised and noisy
//! meters, and a few labelled incidents. Pure: time is the tick count, amounts
//! are integer units of the resource's resolution (as the ledger counts them),
//! so the same seed gives the same readings whatever the server's speed.

use crate::core::session::rng::SplitMix64;

/// Simulated time between two readings of a meter (2 Hz).
pub const TICK_MS: u64 = 500;
/// The resources, in index order, with their units.
pub const RESOURCES: [(&str, &str); 3] = [("water", "m3"), ("energy", "kWh"), ("bandwidth", "MB")];
/// Decimals of every resource's resolution (the ledger's default config).
pub const DECIMALS: u8 = 3;
/// Simulated time from the start to the first incident, and between the first
/// five: they start within 25 minutes, and the two added later (leak, stuck
/// at zero) sit half-way between them ([`IncidentKind::start_offset_ms`]), so
/// a run at 20× still shows every kind in about 80 s of real time (the
/// dashboard's incident test).
pub const INCIDENT_SPACING_MS: u64 = 5 * 60_000;
/// A leak's offset, in the meter's own standard deviations (its noise at the
/// current daily level): a small persistent change of level. At 2 sd no
/// reading can pass the spike threshold (z = 4: the noise is uniform, at most
/// √3 sd) and the window's variance grows at most 1 + 2²/4 = 2× (the variance
/// rule needs 3×), so only drift could see it, and with the incident test's
/// 5 minutes of training it never did in the leak's whole hour (measured: the
/// learned drift scale is still wide). At 4 sd about half of the leak's
/// readings score z > 4, so the spike rule catches it within a few
/// evaluations, as a *warning* (z stays below 2 × 4, the critical factor),
/// while the 20-30× spike incident is critical. At 10 sd every leak reading
/// was a critical spike.
pub const LEAK_SD: f64 = 4.0;
const DAY_MS: u64 = 86_400_000;
/// How long a drift takes to reach its new level (3×). A drift is a change of
/// level that lasts (DETECTION.md, Drift): at 2 minutes it is caught within
/// about 2 minutes even by a meter trained for only 5 (`baselineReadings`
/// 600, the dashboard's incident test). A ramp over the whole 30 minutes was
/// learned as the meter's normal spread as fast as it grew, and never alerted
/// at that training length.
pub const DRIFT_RAMP_MS: u64 = 2 * 60_000;

/// What kind of incident a meter goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentKind {
    /// A few readings far above the meter's usual amount.
    Spike,
    /// A water meter's flow jumps and stays high.
    BurstPipe,
    /// The meter repeats its last amount exactly.
    Stuck,
    /// The amount creeps upward to 3× over [`DRIFT_RAMP_MS`], then stays there.
    Drift,
    /// No readings at all.
    Dropout,
    /// The meter reads exactly 0, again and again (a frozen register).
    StuckZero,
    /// A small persistent offset ([`LEAK_SD`] of the meter's spread) on top of its usual amount.
    Leak,
}

impl IncidentKind {
    /// The first five kinds, in the order incidents are scheduled; their
    /// meters are drawn from the simulator's seed as they always were, so a
    /// seed's readings did not change when [`ADDED`](Self::ADDED) came.
    pub const ALL: [IncidentKind; 5] = [
        IncidentKind::Spike,
        IncidentKind::BurstPipe,
        IncidentKind::Stuck,
        IncidentKind::Drift,
        IncidentKind::Dropout,
    ];
    /// The kinds added later: their meters come from a second generator
    /// (seed-derived) and never one another incident already took.
    pub const ADDED: [IncidentKind; 2] = [IncidentKind::Leak, IncidentKind::StuckZero];

    /// When the incident starts, after the simulator's start: spike, burst
    /// pipe, stuck, drift and dropout 5, 10, 15, 20 and 25 minutes in; leak
    /// at 12.5 (drift needs the meter trained: 5 simulated minutes in the
    /// incident test) and stuck at zero at 17.5.
    pub fn start_offset_ms(self) -> u64 {
        let slot = |k: u64| k * INCIDENT_SPACING_MS;
        match self {
            IncidentKind::Spike => slot(1),
            IncidentKind::BurstPipe => slot(2),
            IncidentKind::Stuck => slot(3),
            IncidentKind::Drift => slot(4),
            IncidentKind::Dropout => slot(5),
            IncidentKind::Leak => slot(2) + INCIDENT_SPACING_MS / 2,
            IncidentKind::StuckZero => slot(3) + INCIDENT_SPACING_MS / 2,
        }
    }

    /// The label in `/truth`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Spike => "spike",
            IncidentKind::BurstPipe => "burst_pipe",
            IncidentKind::Stuck => "stuck",
            IncidentKind::Drift => "drift",
            IncidentKind::Dropout => "dropout",
            IncidentKind::StuckZero => "stuck_zero",
            IncidentKind::Leak => "leak",
        }
    }

    /// Whether `spec` shows this incident as the detector is specified to see it.
    fn fits(self, spec: &MeterSpec) -> bool {
        match self {
            IncidentKind::BurstPipe => spec.resource == 0,
            // Hundreds of units a reading, every unit counted, mild noise.
            IncidentKind::Spike
            | IncidentKind::Stuck
            | IncidentKind::Drift
            | IncidentKind::StuckZero
            | IncidentKind::Leak => spec.resource == 2 && spec.quantum == 1 && spec.noise < 0.5,
            IncidentKind::Dropout => true,
        }
    }

    fn duration_ms(self) -> u64 {
        match self {
            IncidentKind::Spike => 5_000,
            IncidentKind::BurstPipe => 15 * 60_000,
            IncidentKind::Stuck => 10 * 60_000,
            IncidentKind::Drift => 30 * 60_000,
            IncidentKind::Dropout => 5 * 60_000,
            IncidentKind::StuckZero => 10 * 60_000,
            IncidentKind::Leak => 60 * 60_000,
        }
    }
}

/// A labelled incident: readings with `ts` in `start_ms..end_ms` are affected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incident {
    pub kind: IncidentKind,
    pub meter: u32,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// Mixed into the seed of the generator that places the [`IncidentKind::ADDED`] incidents.
const ADDED_SEED: u64 = 0x6c65_616b_7a65_726f;

impl Incident {
    /// `kind` on `meter`, at its scheduled offset from the simulator's `start_ms`.
    fn at(kind: IncidentKind, meter: u32, start_ms: u64) -> Incident {
        let start = start_ms + kind.start_offset_ms();
        Incident { kind, meter, start_ms: start, end_ms: start + kind.duration_ms() }
    }

    fn active(&self, ts: u64) -> bool {
        (self.start_ms..self.end_ms).contains(&ts)
    }
}

/// A meter's fixed description.
#[derive(Clone, Debug, PartialEq)]
pub struct MeterSpec {
    /// Its id on the wire: `w-00001`, `e-00002`, `b-00003`.
    pub id: String,
    /// Index into [`RESOURCES`].
    pub resource: usize,
    /// Mean units per reading at a daily shape of 1.
    pub base_units: f64,
    /// Amounts are multiples of this many units (1, 10 or 100).
    pub quantum: i64,
    /// Relative noise amplitude (a noisy meter's is larger).
    pub noise: f64,
}

/// One reading: `units` of the meter's resource over the tick ending at `ts_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub meter: u32,
    /// Per-meter counter, from 1; skipped ticks (dropout) take no id.
    pub id: u64,
    pub ts_ms: u64,
    pub units: i64,
}

/// The simulator.
#[derive(Clone, Debug)]
pub struct Simulator {
    meters: Vec<MeterSpec>,
    incidents: Vec<Incident>,
    rng: SplitMix64,
    start_ms: u64,
    tick: u64,
    next_id: Vec<u64>,
    last_units: Vec<i64>,
}

/// The daily shape of a resource at `ms` (time of day), about 0.3..1.7.
pub fn daily_shape(resource: usize, ms: u64) -> f64 {
    let x = (ms % DAY_MS) as f64 / DAY_MS as f64 * std::f64::consts::TAU;
    match resource {
        // Water: morning and evening peaks.
        0 => 1.0 + 0.4 * (2.0 * x - 2.4).cos() - 0.3 * x.cos(),
        // Energy: a day hump.
        1 => 1.0 - 0.5 * x.cos(),
        // Bandwidth: an evening peak.
        _ => 1.0 + 0.6 * (x - 5.2).cos(),
    }
    .max(0.05)
}

impl Simulator {
    /// `meters` meters drawn from `seed`; the first tick ends at `start_ms` rounded
    /// up to a whole tick plus one tick.
    pub fn new(meters: u32, seed: u64, start_ms: u64) -> Simulator {
        let mut rng = SplitMix64::new(seed);
        let start_ms = start_ms.div_ceil(TICK_MS) * TICK_MS;
        let specs: Vec<MeterSpec> = (0..meters)
            .map(|i| {
                let resource = (rng.next_u64() % 3) as usize;
                let (prefix, lo, hi) = match resource {
                    0 => ("w", 2.0, 20.0),
                    1 => ("e", 1.0, 12.0),
                    _ => ("b", 50.0, 5_000.0),
                };
                let quantum = match rng.next_u64() % 8 {
                    0 => 100,
                    1 | 2 => 10,
                    _ => 1,
                };
                let noise = if rng.next_u64() % 4 == 0 { 0.6 } else { 0.1 };
                MeterSpec {
                    id: format!("{prefix}-{i:05}"),
                    resource,
                    base_units: lo + (hi - lo) * rng.unit(),
                    quantum,
                    noise,
                }
            })
            .collect();
        let mut incidents = Vec::new();
        if meters > 0 {
            for kind in IncidentKind::ALL {
                let mut meter = (rng.next_u64() % u64::from(meters)) as u32;
                // A burst pipe needs a water meter. A spike, a stuck value and a
                // drift need a meter whose readings vary from one to the next
                // (DETECTION.md: stuck is a run far longer than the meter's
                // normal runs; drift and spike are measured in the meter's own
                // spread): a water or energy meter reads a few units, so its
                // rounded readings repeat for minutes and a "stuck" one is
                // normal for it. None among the first tries: any meter.
                for _ in 0..64 {
                    if kind.fits(&specs[meter as usize]) {
                        break;
                    }
                    meter = (rng.next_u64() % u64::from(meters)) as u32;
                }
                incidents.push(Incident::at(kind, meter, start_ms));
            }
            // A generator of its own, so the draws above and every reading
            // after them stay what they were for each seed.
            let mut added = SplitMix64::new(seed ^ ADDED_SEED);
            for kind in IncidentKind::ADDED {
                let taken = |m: u32| incidents.iter().any(|i| i.meter == m);
                let mut meter = (added.next_u64() % u64::from(meters)) as u32;
                for _ in 0..64 {
                    if kind.fits(&specs[meter as usize]) && !taken(meter) {
                        break;
                    }
                    meter = (added.next_u64() % u64::from(meters)) as u32;
                }
                incidents.push(Incident::at(kind, meter, start_ms));
            }
        }
        let n = specs.len();
        Simulator {
            meters: specs,
            incidents,
            rng,
            start_ms,
            tick: 0,
            next_id: vec![1; n],
            last_units: vec![0; n],
        }
    }

    /// The meters.
    pub fn meters(&self) -> &[MeterSpec] {
        &self.meters
    }

    /// The labelled incidents.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// The simulated start (ms); the first tick ends one tick later.
    pub fn start_ms(&self) -> u64 {
        self.start_ms
    }

    /// The end of the next tick [`step`](Self::step) will produce.
    pub fn next_ts(&self) -> u64 {
        self.start_ms + (self.tick + 1) * TICK_MS
    }

    fn incident_at(&self, meter: u32, ts: u64) -> Option<&Incident> {
        self.incidents.iter().find(|i| i.meter == meter && i.active(ts))
    }

    /// Produces the next tick's readings into `out` (cleared first); returns its `ts`.
    pub fn step(&mut self, out: &mut Vec<Reading>) -> u64 {
        out.clear();
        let ts = self.next_ts();
        self.tick += 1;
        for m in 0..self.meters.len() {
            let u = self.rng.unit();
            let v = self.rng.unit();
            let spec = &self.meters[m];
            let incident = self.incident_at(m as u32, ts).copied();
            let mut x = spec.base_units
                * daily_shape(spec.resource, ts)
                * (1.0 + spec.noise * (2.0 * u - 1.0));
            let units = match incident.map(|i| (i.kind, i)) {
                Some((IncidentKind::Dropout, _)) => continue,
                Some((IncidentKind::Stuck, _)) => self.last_units[m],
                Some((IncidentKind::StuckZero, _)) => 0,
                Some((IncidentKind::Leak, _)) => {
                    // The meter's own spread now: uniform noise of ±noise × level.
                    let spread =
                        spec.base_units * daily_shape(spec.resource, ts) * spec.noise / 3f64.sqrt();
                    quantise(x + LEAK_SD * spread, spec.quantum)
                }
                Some((kind, i)) => {
                    match kind {
                        IncidentKind::Spike => x *= 20.0 + 10.0 * v,
                        IncidentKind::BurstPipe => x += 50.0 * spec.base_units,
                        _ => {
                            let f = ((ts - i.start_ms) as f64 / DRIFT_RAMP_MS as f64).min(1.0);
                            x *= 1.0 + 2.0 * f;
                        }
                    }
                    quantise(x, spec.quantum)
                }
                None => quantise(x, spec.quantum),
            };
            self.last_units[m] = units;
            out.push(Reading { meter: m as u32, id: self.next_id[m], ts_ms: ts, units });
            self.next_id[m] += 1;
        }
        ts
    }
}

/// `x` units rounded to a multiple of `q`, never negative.
fn quantise(x: f64, q: i64) -> i64 {
    let n = (x.max(0.0) / q as f64).round();
    // Bounded by the specs (base ≤ 5,000 × shape × 30 + burst): far below i64.
    (n as i64).saturating_mul(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, ticks: usize) -> Vec<Reading> {
        let mut sim = Simulator::new(50, seed, 1_764_000_000_000);
        let mut all = Vec::new();
        let mut out = Vec::new();
        for _ in 0..ticks {
            sim.step(&mut out);
            all.extend_from_slice(&out);
        }
        all
    }

    #[test]
    fn same_seed_same_readings_other_seed_other_readings() {
        assert_eq!(run(7, 200), run(7, 200));
        assert_ne!(run(7, 200), run(8, 200));
    }

    #[test]
    fn amounts_are_quantised_and_ids_count_per_meter() {
        let mut sim = Simulator::new(100, 3, 1_764_000_000_000);
        let specs = sim.meters().to_vec();
        let mut out = Vec::new();
        let mut last_id = vec![0u64; 100];
        for _ in 0..100 {
            let ts = sim.step(&mut out);
            for r in &out {
                assert_eq!(r.ts_ms, ts);
                assert!(r.units >= 0);
                assert_eq!(r.units % specs[r.meter as usize].quantum, 0);
                assert_eq!(r.id, last_id[r.meter as usize] + 1);
                last_id[r.meter as usize] = r.id;
            }
        }
        assert!(specs.iter().any(|s| s.quantum == 100) && specs.iter().any(|s| s.quantum == 1));
    }

    #[test]
    fn incidents_do_what_their_label_says() {
        let start = 1_764_000_000_000;
        let mut sim = Simulator::new(200, 11, start);
        let incidents = sim.incidents().to_vec();
        assert_eq!(incidents.len(), 7);
        // The two added kinds never share a meter with another incident.
        for a in incidents.iter().filter(|i| IncidentKind::ADDED.contains(&i.kind)) {
            assert_eq!(incidents.iter().filter(|i| i.meter == a.meter).count(), 1, "{incidents:?}");
        }
        let burst = incidents.iter().find(|i| i.kind == IncidentKind::BurstPipe).copied();
        assert_eq!(burst.map(|b| sim.meters()[b.meter as usize].resource), Some(0));
        for i in &incidents {
            assert!(i.kind.fits(&sim.meters()[i.meter as usize]), "{i:?}");
        }
        let mut out = Vec::new();
        let mut seen: Vec<Vec<Reading>> = vec![Vec::new(); 200];
        let end = incidents.iter().map(|i| i.end_ms).max().unwrap_or(0) + 60_000;
        while sim.next_ts() < end {
            sim.step(&mut out);
            for r in &out {
                seen[r.meter as usize].push(*r);
            }
        }
        for i in &incidents {
            let rs = &seen[i.meter as usize];
            let inside: Vec<&Reading> = rs.iter().filter(|r| i.active(r.ts_ms)).collect();
            match i.kind {
                IncidentKind::Dropout => assert!(inside.is_empty()),
                IncidentKind::Stuck => {
                    assert!(inside.len() > 100);
                    assert!(inside.iter().all(|r| r.units == inside[0].units));
                    // Before it, the meter never repeated a reading: its stuck
                    // run is what the detector calls stuck (DETECTION.md, Stuck).
                    let before: Vec<i64> =
                        rs.iter().filter(|r| r.ts_ms < i.start_ms).map(|r| r.units).collect();
                    assert!(before.len() > 100);
                    let repeats = before.windows(2).filter(|w| w[0] == w[1]).count();
                    assert!(repeats * 20 < before.len(), "{i:?}: {repeats} repeats");
                }
                IncidentKind::StuckZero => {
                    assert!(inside.len() > 100);
                    assert!(inside.iter().all(|r| r.units == 0));
                }
                IncidentKind::Leak => {
                    // Higher by about LEAK_SD of the meter's spread, each
                    // reading measured against the meter's level at its time
                    // (base × daily shape), and no reading past LEAK_SD + √3
                    // (the uniform noise's edge; half a unit of rounding):
                    // below the spike threshold.
                    let spec = &sim.meters()[i.meter as usize];
                    let level = |r: &Reading| spec.base_units * daily_shape(spec.resource, r.ts_ms);
                    let sd = |r: &Reading| level(r) * spec.noise / 3f64.sqrt();
                    let before: Vec<f64> = rs
                        .iter()
                        .filter(|r| r.ts_ms < i.start_ms)
                        .map(|r| (r.units as f64 - level(r)) / sd(r))
                        .collect();
                    let during: Vec<f64> =
                        inside.iter().map(|&r| (r.units as f64 - level(r)) / sd(r)).collect();
                    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
                    assert!(before.len() > 100 && during.len() > 100);
                    let shift = mean(&during) - mean(&before);
                    assert!((LEAK_SD - 0.3..LEAK_SD + 0.3).contains(&shift), "{i:?}: {shift}");
                    let edge = |r: &Reading| (r.units as f64 - 0.5 - level(r)) / sd(r);
                    assert!(
                        inside.iter().all(|&r| edge(r) <= LEAK_SD + 3f64.sqrt() + 1e-9),
                        "{i:?}"
                    );
                }
                IncidentKind::Spike | IncidentKind::BurstPipe => {
                    let before: Vec<i64> =
                        rs.iter().filter(|r| r.ts_ms < i.start_ms).map(|r| r.units).collect();
                    let mean_before = before.iter().sum::<i64>() as f64 / before.len() as f64;
                    let mean_in =
                        inside.iter().map(|r| r.units).sum::<i64>() as f64 / inside.len() as f64;
                    assert!(mean_in > 5.0 * mean_before, "{i:?}: {mean_in} vs {mean_before}");
                }
                IncidentKind::Drift => {
                    // Its level after the ramp: about 3× the level before.
                    let before: Vec<i64> =
                        rs.iter().filter(|r| r.ts_ms < i.start_ms).map(|r| r.units).collect();
                    let mean_before = before.iter().sum::<i64>() as f64 / before.len() as f64;
                    let held: Vec<i64> = inside
                        .iter()
                        .filter(|r| r.ts_ms >= i.start_ms + DRIFT_RAMP_MS)
                        .map(|r| r.units)
                        .collect();
                    let mean_held = held.iter().sum::<i64>() as f64 / held.len() as f64;
                    assert!(held.len() > 100);
                    assert!((2.0..4.0).contains(&(mean_held / mean_before)), "{i:?}");
                }
            }
        }
    }
}
