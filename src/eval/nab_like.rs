//! The second corpus family, `nab-like` (`meterflow eval --corpus nab-like`,
//! `docs/DETECTION.md`, "The NAB-like corpus"): shapes that imitate the
//! Numenta Anomaly Benchmark's series at their native point counts, replayed
//! one reading per 500 ms, labelled NAB-style. It imitates shapes; it is not
//! real data.
//!
//! At 2 Hz a day of 5-minute data (288 points) lasts 144 s, so a 1,200-reading
//! window spans about four "days" and most series (4,032 points, 33.6 minutes)
//! end before a meter has trained (`baselineReadings` = 7,200): only the rules
//! judged from warm-up see them. Labels follow NAB: each anomaly's window is
//! 10% of the series' length divided by its number of anomalies, centred on
//! the anomaly's first point; the first 15% of a series is probationary (no
//! window there, and alerts there are not scored). Every draw comes from the
//! seed, so a seed gives the same corpus bit for bit.

use super::corpus::{CADENCE_MS, START_MS};
use super::rng::Rng;
use super::{Series, Window};

/// Share of a series that is probationary (NAB: 15%).
pub const PROBATION: f64 = 0.15;
/// Share of a series covered by its labelled windows (NAB: 10%).
pub const WINDOW_SHARE: f64 = 0.10;

/// The shapes. Each is one series; the name says which NAB series it imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// `art_daily_small_noise`: a daily trapezoid 20 ↔ 80, noise sd 2. No anomaly.
    DailySmallNoise,
    /// `art_daily_no_noise`: the same trapezoid, exact values. No anomaly.
    DailyNoNoise,
    /// `art_daily_perfect_square_wave`: exactly 20 or 80, half a day each. No anomaly.
    SquareWave,
    /// `art_flatline`: one constant value. No anomaly.
    Flatline,
    /// `art_noisy`: normal noise around a level. No anomaly.
    Noisy,
    /// `art_daily_jumpsup`: one day's high phase 1.3–1.7 times higher.
    JumpsUp,
    /// `art_daily_jumpsdown`: one day's high phase only 30–60% as high.
    JumpsDown,
    /// `art_daily_flatmiddle`: one day flat at the middle level.
    FlatMiddle,
    /// `art_daily_nojump`: one day's high phase does not come.
    NoJump,
    /// `art_increase_spike_density`: rare spikes, then a stretch of dense ones.
    SpikeDensity,
    /// `ec2_cpu_utilization`-like: AR(1) utilisation with bursts; a level
    /// shift up for a while and a short spike.
    CpuShift,
    /// `cpu_utilization_asg_misconfiguration`-like: a level shift that stays.
    CpuStep,
    /// Noisy utilisation with frequent short bursts, normal. No anomaly.
    CpuNoisy,
    /// `ec2_request_latency`-like: steady latency with small bumps; three
    /// spikes of 1–4 points.
    Latency,
    /// `machine_temperature_system_failure`-like: slow wandering, three
    /// failure dips and one slow decline (22,695 points).
    MachineTemp,
    /// `nyc_taxi`-like: half-hourly counts (period 48, weekly 336), four
    /// holiday dips and a New Year surge (10,320 points).
    Taxi,
    /// `elb_request_count`-like: counts with a daily cycle and normal short
    /// bursts; two large bursts.
    Requests,
    /// `ambient_temperature_system_failure`-like: hourly (period 24), 0.1
    /// steps, one drop and one rise (7,267 points).
    AmbientTemp,
    /// `ec2_network_in`-like: heavy-tailed traffic with a daily cycle; a
    /// sustained surge and a sustained drop.
    NetworkIn,
    /// `Twitter_volume`-like: heavy-tailed counts, period 288; four surges
    /// (15,902 points).
    Tweets,
}

use Shape::*;

/// Name, shape, points, anomalies.
const SERIES: &[(&str, Shape, usize, usize)] = &[
    ("art-daily-small-noise", DailySmallNoise, 4_032, 0),
    ("art-daily-no-noise", DailyNoNoise, 4_032, 0),
    ("art-daily-perfect-square-wave", SquareWave, 4_032, 0),
    ("art-flatline", Flatline, 4_032, 0),
    ("art-noisy", Noisy, 4_032, 0),
    ("cpu-noisy", CpuNoisy, 4_032, 0),
    ("art-daily-jumpsup", JumpsUp, 4_032, 1),
    ("art-daily-jumpsdown", JumpsDown, 4_032, 1),
    ("art-daily-flatmiddle", FlatMiddle, 4_032, 1),
    ("art-daily-nojump", NoJump, 4_032, 1),
    ("art-increase-spike-density", SpikeDensity, 4_032, 1),
    ("cpu-level-shift", CpuShift, 4_032, 2),
    ("cpu-asg-step", CpuStep, 18_050, 1),
    ("request-latency", Latency, 4_032, 3),
    ("machine-temperature", MachineTemp, 22_695, 4),
    ("taxi-demand", Taxi, 10_320, 5),
    ("request-count", Requests, 4_032, 2),
    ("ambient-temperature", AmbientTemp, 7_267, 2),
    ("network-in", NetworkIn, 4_032, 2),
    ("tweet-volume", Tweets, 15_902, 4),
];

/// Every series of the NAB-like corpus for `seed`.
pub fn generate(seed: u64) -> Vec<Series> {
    SERIES
        .iter()
        .enumerate()
        .map(|(k, &(name, shape, n, k_anom))| {
            // Streams apart from the first family's (tags 0..52).
            let mut rng = Rng::fork(seed, 1_000 + k as u64);
            series(name, shape, n, k_anom, &mut rng)
        })
        .collect()
}

/// The points at which the anomalies start, NAB-style: each in its own slot
/// after the probationary part, its window (`len` points, centred on it)
/// inside the slot. With `snap = Some((period, phase))` a start is that phase
/// of a cycle, chosen among the cycles whose window and whole next period fit
/// in the slot.
fn place(
    n: usize,
    k: usize,
    len: usize,
    snap: Option<(usize, usize)>,
    rng: &mut Rng,
) -> Vec<usize> {
    let first = (PROBATION * n as f64).ceil() as usize;
    let slot = n.saturating_sub(first) / k.max(1);
    (0..k)
        .map(|j| {
            let lo = first + j * slot + len / 2;
            let hi = (first + (j + 1) * slot).saturating_sub(len / 2 + 1);
            if let Some((p, phase)) = snap {
                let tail = p.max(len / 2 + 1);
                let starts: Vec<usize> = (0..=n / p)
                    .map(|d| d * p + phase)
                    .filter(|&a| a >= lo && a + tail <= first + (j + 1) * slot)
                    .collect();
                if !starts.is_empty() {
                    let pick = (rng.uniform() * starts.len() as f64) as usize;
                    return starts.get(pick).copied().unwrap_or(lo);
                }
            }
            lo + (rng.range(0.1, 0.9) * hi.saturating_sub(lo) as f64) as usize
        })
        .collect()
}

/// Which of the anomalies starting at `at`, lasting `widths`, covers point `i`.
fn covering(i: usize, at: &[usize], widths: &[usize]) -> Option<usize> {
    at.iter().zip(widths).position(|(&a, &w)| i >= a && i < a + w)
}

/// The daily trapezoid of the `art_daily_*` series at phase `f` in [0, 1):
/// low (0) until 0.40, up by 0.50, high (1) until 0.80, down by 0.90.
fn trapezoid(f: f64) -> f64 {
    match f {
        f if f < 0.40 => 0.0,
        f if f < 0.50 => (f - 0.40) / 0.10,
        f if f < 0.80 => 1.0,
        f if f < 0.90 => 1.0 - (f - 0.80) / 0.10,
        _ => 0.0,
    }
}

/// Where the daily trapezoid starts rising, in points of a 288-point day.
const RISE: usize = 115;

fn round_to(x: f64, step: f64) -> f64 {
    ((x / step).round() * step * 1_000.0).round() / 1_000.0
}

/// A smooth daily shape in [0, 1] for period `p`: low at night, peak in the evening.
fn diurnal(i: usize, p: usize) -> f64 {
    let f = (i % p) as f64 / p as f64;
    0.5 - 0.5 * (std::f64::consts::TAU * (f - 0.2)).cos()
}

fn series(name: &str, shape: Shape, n: usize, k: usize, rng: &mut Rng) -> Series {
    let len = if k > 0 { (WINDOW_SHARE * n as f64 / k as f64) as usize } else { 0 };
    let snap = match shape {
        JumpsUp | JumpsDown | NoJump | FlatMiddle => Some((288, RISE)),
        Taxi => Some((48, 0)),
        _ => None,
    };
    let at = place(n, k, len, snap, rng);
    let mut classes: Vec<&'static str> = Vec::with_capacity(k);
    let mut v = vec![0.0f64; n];
    let mut ar = 0.0f64;
    let mut ar_step = |phi: f64, rng: &mut Rng| {
        ar = phi * ar + (1.0 - phi * phi).sqrt() * rng.normal();
        ar
    };
    // Which anomaly (if any) covers point i, and how far into it.
    let inside = |i: usize, dur: usize| at.iter().position(|&a| i >= a && i < a + dur);
    match shape {
        DailySmallNoise | DailyNoNoise | JumpsUp | JumpsDown | FlatMiddle | NoJump => {
            let noise = if shape == DailyNoNoise { 0.0 } else { rng.range(1.5, 3.0) };
            let factor = match shape {
                JumpsUp => rng.range(1.3, 1.7),
                JumpsDown => rng.range(0.3, 0.6),
                NoJump => 0.0,
                _ => 1.0,
            };
            for (i, x) in v.iter_mut().enumerate() {
                let f = (i % 288) as f64 / 288.0;
                let mut y = 20.0 + 60.0 * trapezoid(f);
                // The anomalous day: from the rise to the end of that day's high phase.
                if let Some(_j) = inside(i, 288 - RISE + 30) {
                    y = match shape {
                        FlatMiddle => 50.0,
                        _ => 20.0 + 60.0 * trapezoid(f) * factor,
                    };
                }
                *x = round_to(y + noise * rng.normal(), 0.001);
            }
            classes.extend(std::iter::repeat_n("pattern", k));
        }
        SquareWave => {
            for (i, x) in v.iter_mut().enumerate() {
                *x = if (i % 288) < 144 { 20.0 } else { 80.0 };
            }
        }
        Flatline => v.fill(round_to(rng.range(10.0, 90.0), 0.001)),
        Noisy => {
            let (level, sd) = (rng.range(20.0, 60.0), rng.range(3.0, 8.0));
            for x in v.iter_mut() {
                *x = round_to(level + sd * rng.normal(), 0.001);
            }
        }
        SpikeDensity => {
            // Background 20 ± 1; a spike to 60–90 about every 300 points; in the
            // anomaly one every 4 to 12 points for 150 points.
            for (i, x) in v.iter_mut().enumerate() {
                let dense = inside(i, 150).is_some();
                let p = if dense { 1.0 / 8.0 } else { 1.0 / 300.0 };
                let spike = if rng.uniform() < p { rng.range(40.0, 70.0) } else { 0.0 };
                *x = round_to(20.0 + rng.normal() + spike, 0.001);
            }
            classes.push("spike_density");
        }
        CpuShift | CpuStep | CpuNoisy => {
            let level = rng.range(30.0, 50.0);
            let sd = if shape == CpuNoisy { rng.range(4.0, 7.0) } else { rng.range(1.5, 3.0) };
            let shift = rng.range(4.0, 8.0) * sd;
            let kinds: [&'static str; 2] = ["level_shift", "spike"];
            let widths = [rng.range(150.0, 400.0) as usize, rng.range(1.0, 5.0) as usize];
            for (i, x) in v.iter_mut().enumerate() {
                let burst = if rng.uniform() < if shape == CpuNoisy { 0.02 } else { 0.005 } {
                    rng.range(2.0, 5.0) * sd
                } else {
                    0.0
                };
                let mut y = level + sd * ar_step(0.6, rng) + burst;
                match shape {
                    CpuShift => {
                        if let Some(j) = covering(i, &at, &widths) {
                            y += if j == 0 { shift } else { 2.0 * shift };
                        }
                    }
                    CpuStep if at.first().is_some_and(|&a| i >= a) => y += shift,
                    _ => {}
                }
                *x = round_to(y.clamp(0.0, 100.0), 0.001);
            }
            match shape {
                CpuShift => classes.extend(kinds),
                CpuStep => classes.push("level_shift"),
                _ => {}
            }
        }
        Latency => {
            let level = rng.range(40.0, 60.0);
            let widths: Vec<usize> = (0..k).map(|_| rng.range(1.0, 5.0) as usize).collect();
            let heights: Vec<f64> = (0..k).map(|_| rng.range(1.5, 3.0)).collect();
            for (i, x) in v.iter_mut().enumerate() {
                let bump = if rng.uniform() < 0.01 { rng.range(2.0, 6.0) } else { 0.0 };
                let mut y = level + 0.8 * ar_step(0.3, rng) + bump;
                if let Some(j) = covering(i, &at, &widths) {
                    y *= heights.get(j).copied().unwrap_or(2.0);
                }
                *x = round_to(y, 0.001);
            }
            classes.extend(std::iter::repeat_n("spike", k));
        }
        MachineTemp => {
            // Wanders around 85 (AR φ 0.998, sd 6) plus noise 0.7; anomalies 0..2
            // are dips (down to 20–45 over ~40 points, ~150 low, back over ~80),
            // the last a decline of 20 over 250 points, then a dip.
            let mut wander = 0.0f64;
            let depths: Vec<f64> = (0..k).map(|_| rng.range(40.0, 65.0)).collect();
            for (i, x) in v.iter_mut().enumerate() {
                wander = 0.998 * wander + (1.0f64 - 0.998 * 0.998).sqrt() * rng.normal();
                let mut y = 85.0 + 6.0 * wander + 0.7 * rng.normal();
                for (j, &a) in at.iter().enumerate() {
                    let depth = depths.get(j).copied().unwrap_or(50.0);
                    let last = j + 1 == at.len();
                    let d = i as f64 - a as f64;
                    y -= if last {
                        // A slow decline, then the dip at its end.
                        if (0.0..250.0).contains(&d) {
                            20.0 * d / 250.0
                        } else {
                            dip(d - 250.0, depth)
                                + if (250.0..520.0).contains(&d) { 20.0 } else { 0.0 }
                        }
                    } else {
                        dip(d, depth)
                    };
                }
                *x = round_to(y, 0.001);
            }
            classes.extend(std::iter::repeat_n("dip", k.saturating_sub(1)));
            classes.push("drift");
        }
        Taxi => {
            // Half-hourly passenger counts: a daily shape (period 48) on a
            // weekly one (336, weekends lower by day, busier late night).
            let days: Vec<f64> = (0..k).map(|_| rng.range(0.35, 0.6)).collect();
            for (i, x) in v.iter_mut().enumerate() {
                let day = (i / 48) % 7;
                let weekend = day >= 5;
                let d = diurnal(i, 48);
                let shape_v = if weekend { 0.55 + 0.35 * d } else { 0.2 + 0.8 * d };
                let mut y = 26_000.0 * shape_v * (1.0 + 0.05 * ar_step(0.7, rng));
                if let Some(j) = inside(i, 48) {
                    if j + 1 == at.len() {
                        // New Year: a surge for 4 points.
                        if i < at[j] + 4 {
                            y *= 1.8;
                        }
                    } else {
                        y *= days.get(j).copied().unwrap_or(0.5);
                    }
                }
                *x = y.max(0.0).round();
            }
            classes.extend(std::iter::repeat_n("holiday", k.saturating_sub(1)));
            classes.push("surge");
        }
        Requests | NetworkIn | Tweets => {
            let p = 288;
            let base = match shape {
                Requests => rng.range(40.0, 80.0),
                NetworkIn => rng.range(2e6, 6e6),
                _ => rng.range(20.0, 60.0),
            };
            let widths: Vec<usize> = (0..k)
                .map(|_| match shape {
                    NetworkIn => rng.range(40.0, 120.0) as usize,
                    _ => rng.range(3.0, 12.0) as usize,
                })
                .collect();
            let sizes: Vec<f64> = (0..k)
                .map(|j| match shape {
                    NetworkIn if j % 2 == 1 => rng.range(0.1, 0.3),
                    NetworkIn => rng.range(2.5, 4.0),
                    _ => rng.range(4.0, 8.0),
                })
                .collect();
            for (i, x) in v.iter_mut().enumerate() {
                let cycle = 0.6 + 0.8 * diurnal(i, p);
                // Heavy-tailed multiplicative noise and normal short bursts.
                let noise = (0.25 * rng.normal()).exp();
                let burst = if rng.uniform() < 0.004 { rng.range(1.5, 2.5) } else { 1.0 };
                let mut y = base * cycle * noise * burst;
                if let Some(j) = covering(i, &at, &widths) {
                    y *= sizes.get(j).copied().unwrap_or(1.0);
                }
                *x = if shape == NetworkIn { round_to(y, 1.0) } else { y.round() };
            }
            match shape {
                NetworkIn => classes.extend(["surge", "drop"]),
                _ => classes.extend(std::iter::repeat_n("surge", k)),
            }
        }
        AmbientTemp => {
            // Hourly: a daily swing of ±2 on a wandering level, 0.1 steps;
            // a drop of 6–10 for 30 hours, then a rise of 5–8 for 20 hours.
            let mut wander = 0.0f64;
            let sizes = [-rng.range(6.0, 10.0), rng.range(5.0, 8.0)];
            for (i, x) in v.iter_mut().enumerate() {
                wander = 0.995 * wander + (1.0f64 - 0.995 * 0.995).sqrt() * rng.normal();
                let mut y = 71.0 + 3.0 * wander + 2.0 * (diurnal(i, 24) - 0.5) + 0.4 * rng.normal();
                if let Some(j) = inside(i, if at.len() > 1 { 30 } else { 20 }) {
                    y += sizes.get(j).copied().unwrap_or(0.0);
                }
                *x = round_to(y, 0.1);
            }
            classes.extend(["drop", "rise"]);
        }
    }
    let t_ms: Vec<f64> = (0..n).map(|i| START_MS + i as f64 * CADENCE_MS).collect();
    let half = len as f64 / 2.0 * CADENCE_MS;
    let windows = at
        .iter()
        .zip(classes)
        .map(|(&a, class)| {
            let t = START_MS + a as f64 * CADENCE_MS;
            Window { start_ms: t - half, end_ms: t + half, class: class.to_string() }
        })
        .collect();
    let probation = START_MS + (PROBATION * n as f64).ceil() * CADENCE_MS;
    Series { name: name.to_string(), t_ms, values: v, windows, probation_end_ms: Some(probation) }
}

/// A failure dip `d` points after it starts: down by `depth` over 40 points,
/// low for 150, back over 80; 0 outside.
fn dip(d: f64, depth: f64) -> f64 {
    match d {
        d if d < 0.0 => 0.0,
        d if d < 40.0 => depth * d / 40.0,
        d if d < 190.0 => depth,
        d if d < 270.0 => depth * (1.0 - (d - 190.0) / 80.0),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nab_like_corpus_is_labelled_nab_style() {
        let c = generate(1);
        assert_eq!(c, generate(1));
        assert_ne!(c, generate(2));
        assert!(c.len() >= 20);
        for (s, &(_, _, n, k)) in c.iter().zip(SERIES) {
            assert_eq!(s.values.len(), n, "{}", s.name);
            assert_eq!(s.windows.len(), k, "{}", s.name);
            assert!(s.values.iter().all(|v| v.is_finite()), "{}", s.name);
            let probation = s.probation_end_ms.unwrap_or(f64::INFINITY);
            let last = s.t_ms.last().copied().unwrap_or(0.0);
            let len = WINDOW_SHARE * n as f64 / k.max(1) as f64 * CADENCE_MS;
            for w in &s.windows {
                // Windows: 10% / k long, after the probation, inside the series.
                assert!((w.end_ms - w.start_ms - len).abs() <= CADENCE_MS, "{}", s.name);
                assert!(w.start_ms >= probation && w.end_ms <= last, "{} {w:?}", s.name);
            }
            assert!(s.windows.windows(2).all(|p| p[0].end_ms < p[1].start_ms), "{}", s.name);
        }
        // The anomalies change the data: a labelled series differs from its
        // shape without them where it says (the jump's day is higher).
        let up = c.iter().find(|s| s.name == "art-daily-jumpsup");
        let max_in = up.map(|s| {
            let w = &s.windows[0];
            s.t_ms
                .iter()
                .zip(&s.values)
                .filter(|(t, _)| **t >= w.start_ms && **t <= w.end_ms)
                .map(|(_, v)| *v)
                .fold(0.0, f64::max)
        });
        assert!(max_in.is_some_and(|m| m > 100.0), "{max_in:?}");
    }
}
