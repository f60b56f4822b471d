//! The seeded corpus generator (`docs/DETECTION.md`, "Evaluation: the corpus").
//!
//! [`generate`] builds [`SERIES`]: each entry is a normal behaviour ([`Base`])
//! with at most one labelled [`Incident`]. Real time is kept: readings every
//! [`CADENCE_MS`] from Friday 2026-01-09 00:00 UTC for two days (Friday and
//! Saturday, so the weekly series shows a weekday and a weekend day), or four
//! hours from 04:00 in the short corpus. The same seed gives the same corpus,
//! bit for bit, on every platform (own RNG, no float formatting in between).

use super::rng::Rng;
use super::{Series, Window};

/// Reading interval: the default 2 Hz cadence.
pub const CADENCE_MS: f64 = 500.0;
/// Friday 2026-01-09 00:00:00 UTC, in ms since the epoch.
pub const START_MS: f64 = 1_767_916_800_000.0;
const HOUR: f64 = 3_600_000.0;
const DAY: f64 = 24.0 * HOUR;
/// How long after an incident's last reading its labelled window still runs:
/// time for a detector to report it, and for alerts its end causes.
pub const AFTER_MS: f64 = 120_000.0;

/// Which corpus: two days per series, or four hours (the smoke run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    Full,
    Short,
}

impl Length {
    fn readings(self) -> usize {
        match self {
            Length::Full => 2 * 86_400 * 2,
            Length::Short => 4 * 3_600 * 2,
        }
    }

    fn start_ms(self) -> f64 {
        match self {
            Length::Full => START_MS,
            Length::Short => START_MS + 4.0 * HOUR,
        }
    }

    /// Readings in `minutes` of the longer incidents, halved in the short corpus.
    fn span(self, minutes: f64) -> usize {
        let m = if self == Length::Short { minutes / 2.0 } else { minutes };
        (m * 120.0) as usize
    }
}

/// A corpus family of `meterflow eval --corpus`: the meters generated here,
/// or the NAB-like shapes of [`super::nab_like`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Meters,
    NabLike,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Meters => "meters",
            Family::NabLike => "nab-like",
        }
    }

    pub fn parse(s: &str) -> Option<Family> {
        [Family::Meters, Family::NabLike].into_iter().find(|f| f.as_str() == s)
    }
}

/// What a meter does normally.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Base {
    /// Level 50, AR(1) noise of marginal sd 2 with this φ.
    Ar1(f64),
    /// A daily cycle (low at 03:00, high at 15:00) plus AR(1) noise, φ 0.8.
    Daily,
    /// The daily cycle, at 40% on Saturday and Sunday.
    Weekly,
    /// Level 30, Student-t (3 df) noise of sd 1.5.
    HeavyTail,
    /// Quantised to this step: 1 (counts around 5), 0.5 or 0.1 (slow sensors with plateaus).
    Quantised(f64),
    /// A pump's duty cycle: exactly 12.0 for 6 minutes, exactly 0 for 14.
    Square,
    /// A tap: 0 most of the time, bursts of 10 to 90 s at about 6.
    Sparse,
    /// A scheduled shift plan: 25 at night, 40 from 06:00, 70 from 14:00 to 22:00.
    Shift,
    /// Level 50 drifting up 2 sd a day (sensor ageing), AR(1) φ 0.3.
    SensorDrift,
    /// AR(1) φ 0.5 with a one-reading glitch of +10 sd every 20 minutes on
    /// average: single-frame anomalies, which the detector must ignore.
    Blips,
}

/// A labelled incident (its class is the window's class).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incident {
    /// Three readings (1.5 s) at +8 to +14 sd.
    Spike,
    /// Five such spikes, 20 s apart.
    SpikeTrain,
    /// Burst pipe: +6 sd for 30 minutes.
    Burst,
    /// Leak: +1 sd for 2 hours.
    Leak,
    /// The value at the start repeated for 10 minutes.
    StuckValue,
    /// Exactly 0 for 10 minutes.
    StuckZero,
    /// No readings for 5 minutes.
    Dropout,
    /// A ramp to +4 sd over an hour, held for 30 minutes.
    Drift,
    /// Noise sd times 5 for 10 minutes.
    Variance,
}

impl Incident {
    /// The class name in `labels.json`.
    pub fn class(self) -> &'static str {
        match self {
            Incident::Spike => "spike",
            Incident::SpikeTrain => "spike_train",
            Incident::Burst => "burst",
            Incident::Leak => "leak",
            Incident::StuckValue => "stuck_value",
            Incident::StuckZero => "stuck_zero",
            Incident::Dropout => "dropout",
            Incident::Drift => "drift",
            Incident::Variance => "variance",
        }
    }
}

use Base::*;
use Incident::*;

/// The corpus: 52 series, 16 of them negative controls (no incident), and
/// 4 series per incident class with several incidents each in the full corpus
/// ([`INCIDENTS_FULL`]), so a class's recall is measured on at least 20
/// windows. The short corpus has one incident per series.
pub const SERIES: &[(&str, Base, Option<Incident>)] = &[
    ("ar1-0.00", Ar1(0.0), None),
    ("ar1-0.50", Ar1(0.5), None),
    ("ar1-0.90", Ar1(0.9), None),
    ("ar1-0.99", Ar1(0.99), None),
    ("daily", Daily, None),
    ("weekly", Weekly, None),
    ("heavy-tail", HeavyTail, None),
    ("counts", Quantised(1.0), None),
    ("step-0.5", Quantised(0.5), None),
    ("step-0.1", Quantised(0.1), None),
    ("square", Square, None),
    ("sparse", Sparse, None),
    ("shift", Shift, None),
    ("sensor-drift", SensorDrift, None),
    ("blips", Blips, None),
    ("ar1-0.95", Ar1(0.95), None),
    ("ar1-0.00-spike", Ar1(0.0), Some(Spike)),
    ("daily-spike", Daily, Some(Spike)),
    ("counts-spike", Quantised(1.0), Some(Spike)),
    ("ar1-0.90-spike", Ar1(0.9), Some(Spike)),
    ("ar1-0.90-spike-train", Ar1(0.9), Some(SpikeTrain)),
    ("heavy-tail-spike-train", HeavyTail, Some(SpikeTrain)),
    ("square-spike-train", Square, Some(SpikeTrain)),
    ("weekly-spike-train", Weekly, Some(SpikeTrain)),
    ("daily-burst", Daily, Some(Burst)),
    ("step-0.1-burst", Quantised(0.1), Some(Burst)),
    ("sparse-burst", Sparse, Some(Burst)),
    ("ar1-0.99-burst", Ar1(0.99), Some(Burst)),
    ("ar1-0.50-leak", Ar1(0.5), Some(Leak)),
    ("sparse-leak", Sparse, Some(Leak)),
    ("counts-leak", Quantised(1.0), Some(Leak)),
    ("ar1-0.90-leak", Ar1(0.9), Some(Leak)),
    ("ar1-0.50-stuck", Ar1(0.5), Some(StuckValue)),
    ("daily-stuck", Daily, Some(StuckValue)),
    ("step-0.5-stuck", Quantised(0.5), Some(StuckValue)),
    ("heavy-tail-stuck", HeavyTail, Some(StuckValue)),
    ("weekly-stuck-zero", Weekly, Some(StuckZero)),
    ("heavy-tail-stuck-zero", HeavyTail, Some(StuckZero)),
    ("ar1-0.99-stuck-zero", Ar1(0.99), Some(StuckZero)),
    ("counts-stuck-zero", Quantised(1.0), Some(StuckZero)),
    ("ar1-0.00-dropout", Ar1(0.0), Some(Dropout)),
    ("square-dropout", Square, Some(Dropout)),
    ("daily-dropout", Daily, Some(Dropout)),
    ("sparse-dropout", Sparse, Some(Dropout)),
    ("ar1-0.90-drift", Ar1(0.9), Some(Drift)),
    ("weekly-drift", Weekly, Some(Drift)),
    ("shift-drift", Shift, Some(Drift)),
    ("ar1-0.50-drift", Ar1(0.5), Some(Drift)),
    ("ar1-0.00-variance", Ar1(0.0), Some(Variance)),
    ("step-0.1-variance", Quantised(0.1), Some(Variance)),
    ("daily-variance", Daily, Some(Variance)),
    ("heavy-tail-variance", HeavyTail, Some(Variance)),
];

/// Incidents per incident series in the full corpus: 4 series × 6 = 24
/// windows per class. Each sits at a random point of its own slot of the
/// series after the first two hours, so incidents fall at every time of day
/// and on both days, at least about 3.8 hours apart.
pub const INCIDENTS_FULL: usize = 6;
/// Readings before the first incident's slot in the full corpus (2 hours:
/// the meter's training, `baselineReadings` = 1 hour, and as much again).
const LEAD_FULL: usize = 2 * 3_600 * 2;

/// Every series of the corpus for `seed`.
pub fn generate(seed: u64, len: Length) -> Vec<Series> {
    SERIES
        .iter()
        .enumerate()
        .map(|(k, &(name, base, incident))| {
            series(name, base, incident, &mut Rng::fork(seed, k as u64), len)
        })
        .collect()
}

/// 0 at 03:00, 1 at 15:00, smooth.
fn daily_profile(t_ms: f64) -> f64 {
    let h = t_ms.rem_euclid(DAY) / HOUR;
    0.5 - 0.5 * (std::f64::consts::TAU * (h - 3.0) / 24.0).cos()
}

/// Saturday or Sunday (the epoch was a Thursday).
fn weekend(t_ms: f64) -> bool {
    let day = (t_ms / DAY).floor() as i64;
    matches!((day + 4).rem_euclid(7), 0 | 6)
}

/// The noise scale ("sd") of a base, the unit of incident sizes.
fn scale(base: Base) -> f64 {
    match base {
        Ar1(_) | SensorDrift | Blips | Shift => 2.0,
        Daily => 4.0,
        Weekly => 3.0,
        HeavyTail => 1.5,
        Quantised(step) if step >= 1.0 => 2.2,
        Quantised(step) if step >= 0.5 => 0.4,
        Quantised(_) => 0.08,
        Square => 2.0,
        Sparse => 1.0,
    }
}

fn ar1_phi(base: Base) -> f64 {
    match base {
        Ar1(phi) => phi,
        Daily => 0.8,
        Weekly => 0.7,
        Shift | Blips => 0.5,
        SensorDrift => 0.3,
        Quantised(step) if step >= 1.0 => 0.0,
        Quantised(step) if step >= 0.5 => 0.9,
        Quantised(_) => 0.95,
        HeavyTail | Square | Sparse => 0.0,
    }
}

/// State carried from reading to reading by a base.
#[derive(Default)]
struct BaseState {
    ar: f64,
    burst_left: u32,
}

/// A base's value at `t_ms` (before incidents and quantisation).
fn base_value(base: Base, t_ms: f64, rng: &mut Rng, st: &mut BaseState) -> f64 {
    let sd = scale(base);
    let phi = ar1_phi(base);
    st.ar = phi * st.ar + (1.0 - phi * phi).sqrt() * rng.normal();
    let noise = sd * st.ar;
    let h = t_ms.rem_euclid(DAY) / HOUR;
    match base {
        Ar1(_) => 50.0 + noise,
        Daily => 100.0 + 40.0 * daily_profile(t_ms) + noise,
        Weekly => {
            let wk = if weekend(t_ms) { 0.4 } else { 1.0 };
            20.0 + 60.0 * daily_profile(t_ms) * wk + noise
        }
        HeavyTail => 30.0 + sd * rng.student_t(3),
        Quantised(_) => 5.0 + noise + if sd > 1.0 { 0.0 } else { 10.0 },
        Square => {
            let phase = (t_ms - START_MS).rem_euclid(20.0 * 60_000.0);
            if phase < 6.0 * 60_000.0 {
                12.0
            } else {
                0.0
            }
        }
        Sparse => {
            if st.burst_left == 0 && rng.uniform() < 1.0 / 1_800.0 {
                st.burst_left = rng.range(20.0, 180.0) as u32;
            }
            if st.burst_left > 0 {
                st.burst_left -= 1;
                6.0 + 0.3 * rng.normal()
            } else {
                0.0
            }
        }
        Shift => {
            let level = match h {
                h if (6.0..14.0).contains(&h) => 40.0,
                h if (14.0..22.0).contains(&h) => 70.0,
                _ => 25.0,
            };
            level + noise
        }
        SensorDrift => 50.0 + 2.0 * sd * (t_ms - START_MS) / DAY + noise,
        Blips => {
            let blip = if rng.uniform() < 1.0 / 2_400.0 { 10.0 * sd } else { 0.0 };
            50.0 + noise + blip
        }
    }
}

/// The meter's own resolution: its quantisation step, or 0.001.
fn quantise(base: Base, x: f64) -> f64 {
    let step = match base {
        Quantised(step) => step,
        Square => return x,
        _ => 0.001,
    };
    let q = (x / step).round() * step;
    // Counts and flows are not negative; round the step's float error away.
    (q.max(0.0) * 1_000.0).round() / 1_000.0
}

fn series(
    name: &str,
    base: Base,
    incident: Option<Incident>,
    rng: &mut Rng,
    len: Length,
) -> Series {
    let n = len.readings();
    let start = len.start_ms();
    let sd = scale(base);
    let ramp = len.span(60.0) as f64;
    // The incidents: readings [at, end) each, with their own size `k` (in sd).
    let slots = match (incident, len) {
        (None, _) => Vec::new(),
        (Some(_), Length::Short) => vec![(0, n)],
        (Some(_), Length::Full) => {
            let slot = (n - LEAD_FULL) / INCIDENTS_FULL;
            (0..INCIDENTS_FULL).map(|j| (LEAD_FULL + j * slot, slot)).collect()
        }
    };
    let mut incidents: Vec<(usize, usize, f64)> = Vec::with_capacity(slots.len());
    for (from, slot) in slots {
        let at = match len {
            Length::Short => (rng.range(0.30, 0.55) * n as f64) as usize,
            Length::Full => from + (rng.range(0.05, 0.45) * slot as f64) as usize,
        };
        let k = match incident {
            Some(Spike | SpikeTrain) => rng.range(8.0, 14.0),
            Some(Burst) => rng.range(4.0, 8.0),
            Some(Leak) => rng.range(1.0, 1.5),
            Some(Drift) => rng.range(3.0, 5.0),
            Some(Variance) => rng.range(4.0, 6.0),
            _ => 0.0,
        };
        let end = at
            + match incident {
                None => 0,
                Some(Spike) => 3,
                Some(SpikeTrain) => 4 * 40 + 3,
                Some(Burst) => len.span(30.0),
                Some(Leak) => len.span(120.0),
                Some(StuckValue | StuckZero) => 1_200,
                Some(Dropout) => 600,
                Some(Drift) => len.span(90.0),
                Some(Variance) => 1_200,
            };
        incidents.push((at, end, k));
    }
    let mut st = BaseState::default();
    let (mut t_ms, mut values) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut stuck_at = 0.0;
    for i in 0..n {
        let t = start + i as f64 * CADENCE_MS;
        let mut x = base_value(base, t, rng, &mut st);
        let current = incidents.iter().find(|(at, end, _)| (*at..*end).contains(&i));
        let extra_noise = rng.normal();
        if let Some(&(at, _, k)) = current {
            x += match incident {
                Some(Spike) => k * sd,
                Some(SpikeTrain) if (i - at) % 40 < 3 => k * sd,
                Some(Burst | Leak) => k * sd,
                Some(Drift) => k * sd * ((i - at) as f64 / ramp).min(1.0),
                Some(Variance) => (k * k - 1.0).sqrt() * sd * extra_noise,
                _ => 0.0,
            };
        }
        let mut x = quantise(base, x);
        if let Some(&(at, _, _)) = current {
            match incident {
                Some(StuckValue) if i == at => stuck_at = values.last().copied().unwrap_or(x),
                Some(Dropout) => continue,
                _ => {}
            }
            match incident {
                Some(StuckValue) => x = stuck_at,
                Some(StuckZero) => x = 0.0,
                _ => {}
            }
        }
        t_ms.push(t);
        values.push(x);
    }
    let windows = match incident {
        None => Vec::new(),
        Some(inc) => incidents
            .iter()
            .map(|&(at, end, _)| Window {
                start_ms: start + at as f64 * CADENCE_MS,
                end_ms: start + (end - 1) as f64 * CADENCE_MS + AFTER_MS,
                class: inc.class().to_string(),
            })
            .collect(),
    };
    Series { name: name.to_string(), t_ms, values, windows, probation_end_ms: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_deterministic_per_seed() {
        let a = generate(3, Length::Short);
        assert_eq!(a, generate(3, Length::Short));
        let b = generate(4, Length::Short);
        assert_ne!(a, b);
        // Same names and labels classes whatever the seed; only the draws differ.
        let names = |c: &[Series]| c.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b));
    }

    #[test]
    fn the_corpus_covers_what_the_issue_asks() {
        let c = generate(1, Length::Short);
        assert!(c.len() >= 40);
        let negatives = c.iter().filter(|s| s.windows.is_empty()).count();
        assert!(4 * negatives >= c.len(), "{negatives} negative controls of {}", c.len());
        for class in [
            "spike",
            "spike_train",
            "burst",
            "leak",
            "stuck_value",
            "stuck_zero",
            "dropout",
            "drift",
            "variance",
        ] {
            assert!(c.iter().any(|s| s.windows.iter().any(|w| w.class == class)), "{class}");
        }
        for s in &c {
            assert!(s.t_ms.windows(2).all(|w| w[1] > w[0]), "{}", s.name);
            assert!(s.values.iter().all(|v| v.is_finite()), "{}", s.name);
            for w in &s.windows {
                assert!(s.t_ms.first().is_some_and(|&t| t < w.start_ms), "{}", s.name);
                assert!(s.t_ms.last().is_some_and(|&t| w.end_ms < t), "{}", s.name);
            }
        }
        let by_name = |n: &str| c.iter().find(|s| s.name == n);
        // A dropout is a gap of 5 minutes; a stuck incident repeats one value.
        let d = by_name("ar1-0.00-dropout").map(|s| s.t_ms.len());
        assert_eq!(d, Some(Length::Short.readings() - 600));
        let z =
            by_name("weekly-stuck-zero").map(|s| s.values.iter().filter(|&&v| v == 0.0).count());
        assert!(z.is_some_and(|z| z >= 1_200));
        // Quantised meters are on their step.
        let q = by_name("step-0.5").map(|s| s.values.iter().all(|v| (v * 2.0).fract() == 0.0));
        assert_eq!(q, Some(true));
    }

    #[test]
    fn the_full_corpus_measures_each_class_on_at_least_20_windows() {
        let c = generate(5, Length::Full);
        let mut per_class = std::collections::BTreeMap::new();
        for s in &c {
            for w in &s.windows {
                *per_class.entry(w.class.clone()).or_insert(0usize) += 1;
            }
            // Windows are in time order, apart, and after the meter's training.
            let lead = s.t_ms.first().map_or(0.0, |t| t + 7_200.0 * CADENCE_MS);
            assert!(s.windows.first().is_none_or(|w| w.start_ms > lead), "{}", s.name);
            assert!(s.windows.windows(2).all(|p| p[0].end_ms < p[1].start_ms), "{}", s.name);
        }
        assert_eq!(per_class.len(), 9);
        assert!(per_class.values().all(|&n| n >= 20), "{per_class:?}");
    }

    #[test]
    fn the_corpus_survives_its_file_format() -> Result<(), crate::eval::EvalError> {
        let c = generate(2, Length::Short);
        let dir = std::env::temp_dir().join(format!("meterflow-eval-{}", std::process::id()));
        let sub: Vec<Series> = c.into_iter().filter(|s| s.name.contains("stuck")).collect();
        super::super::files::write_dir(&dir, &sub)?;
        let back = super::super::files::read_dir(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(back?, sub);
        Ok(())
    }
}
