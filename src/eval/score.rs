//! Per-series figures and the windowed early-detection score
//! (`docs/DETECTION.md`, "Evaluation: the score").
//!
//! An alert raise at `t` is *inside* a labelled window when `start ≤ t ≤ end`
//! (the first such window in label order), otherwise *outside* (false). Each
//! window earns the reward [`reward`] of its first alert, by the alert's
//! relative position in the window; later alerts in it earn nothing and cost
//! nothing. Each outside alert costs [`FALSE_ALERT_PENALTY`]. The score is
//! `100 · (Σ rewards − penalty · outside) / windows`: 0 for a detector that
//! never alerts, 100 for one alerting at the first reading of every window
//! and nowhere else, negative when false alerts outweigh detections.

use super::corpus::CADENCE_MS;
use super::{Alert, Series};

/// Cost of one alert raise outside every window, in windows' worth of reward
/// (NAB's "standard" profile weight, 0.11).
pub const FALSE_ALERT_PENALTY: f64 = 0.11;
/// Steepness of the reward sigmoid.
const STEEPNESS: f64 = 5.0;
const MS_PER_DAY: f64 = 86_400_000.0;

/// The reward for a window's first alert at relative position `p` in it
/// (0 = its start, 1 = its end): `σ(−5·(2p − 1)) / σ(5)` with σ the logistic
/// function, so 1 at the start, 0.5 / 0.9933 ≈ 0.503 at the middle,
/// 0.0068 at the end, strictly decreasing.
pub fn reward(p: f64) -> f64 {
    let p = p.clamp(0.0, 1.0);
    let sigma = |y: f64| 1.0 / (1.0 + (-y).exp());
    sigma(-STEEPNESS * (2.0 * p - 1.0)) / sigma(STEEPNESS)
}

/// How a detector did on one labelled window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowResult {
    pub class: String,
    /// Time of the first alert inside the window, if any.
    pub first_alert_ms: Option<f64>,
    /// Readings (at the 2 Hz cadence) from the window's start to that alert.
    pub delay_readings: Option<f64>,
    pub reward: f64,
}

/// How a detector did on one series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesScore {
    pub name: String,
    /// Meter-days the series spans (first to last reading, plus one interval).
    pub days: f64,
    /// Alert raises scored: all of them but those in the probationary period.
    pub alerts: usize,
    pub inside: usize,
    pub outside: usize,
    /// Per alert kind: (kind, inside, outside).
    pub by_kind: Vec<(&'static str, usize, usize)>,
    pub windows: Vec<WindowResult>,
}

impl SeriesScore {
    /// A negative control: no labelled window.
    pub fn negative(&self) -> bool {
        self.windows.is_empty()
    }

    /// `Σ rewards − penalty · outside`, the numerator of the score.
    pub fn raw(&self) -> f64 {
        self.windows.iter().map(|w| w.reward).sum::<f64>()
            - FALSE_ALERT_PENALTY * self.outside as f64
    }
}

/// Scores `alerts` (raises in time order) against the windows of `s`.
pub fn score_series(s: &Series, alerts: &[Alert]) -> SeriesScore {
    let days = match (s.t_ms.first(), s.t_ms.last()) {
        (Some(a), Some(b)) => (b - a + CADENCE_MS) / MS_PER_DAY,
        _ => 0.0,
    };
    let mut windows: Vec<WindowResult> = s
        .windows
        .iter()
        .map(|w| WindowResult {
            class: w.class.clone(),
            first_alert_ms: None,
            delay_readings: None,
            reward: 0.0,
        })
        .collect();
    let mut out = SeriesScore {
        name: s.name.clone(),
        days,
        alerts: 0,
        inside: 0,
        outside: 0,
        by_kind: Vec::new(),
        windows: Vec::new(),
    };
    let scored_from = s.probation_end_ms.unwrap_or(f64::NEG_INFINITY);
    for a in alerts.iter().filter(|a| a.t_ms >= scored_from) {
        out.alerts += 1;
        let hit = s.windows.iter().position(|w| w.start_ms <= a.t_ms && a.t_ms <= w.end_ms);
        let slot = match out.by_kind.iter().position(|(k, _, _)| *k == a.kind) {
            Some(i) => i,
            None => {
                out.by_kind.push((a.kind, 0, 0));
                out.by_kind.len() - 1
            }
        };
        let Some(entry) = out.by_kind.get_mut(slot) else { continue };
        match hit.and_then(|i| Some((s.windows.get(i)?, windows.get_mut(i)?))) {
            Some((w, r)) => {
                out.inside += 1;
                entry.1 += 1;
                if r.first_alert_ms.is_none() {
                    let len = w.end_ms - w.start_ms;
                    let p = if len > 0.0 { (a.t_ms - w.start_ms) / len } else { 0.0 };
                    r.first_alert_ms = Some(a.t_ms);
                    r.delay_readings = Some(((a.t_ms - w.start_ms) / CADENCE_MS).floor());
                    r.reward = reward(p);
                }
            }
            None => {
                out.outside += 1;
                entry.2 += 1;
            }
        }
    }
    out.windows = windows;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Window;

    fn series(windows: &[(f64, f64)]) -> Series {
        let t_ms: Vec<f64> = (0..10_000).map(|i| i as f64 * CADENCE_MS).collect();
        let values = vec![1.0; t_ms.len()];
        let windows = windows
            .iter()
            .map(|&(a, b)| Window { start_ms: a, end_ms: b, class: "spike".into() })
            .collect();
        Series { name: "s".into(), t_ms, values, windows, probation_end_ms: None }
    }

    fn score(s: &Series, alerts: &[f64]) -> f64 {
        let alerts: Vec<Alert> = alerts.iter().map(|&t| Alert { t_ms: t, kind: "spike" }).collect();
        let r = score_series(s, &alerts);
        100.0 * r.raw() / s.windows.len() as f64
    }

    #[test]
    fn never_alerting_scores_zero_and_perfect_scores_hundred() {
        let s = series(&[(1_000.0, 61_000.0), (200_000.0, 300_000.0)]);
        assert_eq!(score(&s, &[]), 0.0);
        assert!((score(&s, &[1_000.0, 200_000.0]) - 100.0).abs() < 1e-9);
        // Later alerts in a detected window neither earn nor cost.
        assert!((score(&s, &[1_000.0, 2_000.0, 200_000.0, 250_000.0]) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_false_alert_lowers_the_score() {
        let s = series(&[(1_000.0, 61_000.0)]);
        let perfect = score(&s, &[1_000.0]);
        let with_false = score(&s, &[1_000.0, 500_000.0]);
        assert!((perfect - with_false - 100.0 * FALSE_ALERT_PENALTY).abs() < 1e-9);
        assert!(score(&s, &[500_000.0]) < 0.0);
        let r = score_series(&s, &[Alert { t_ms: 500_000.0, kind: "spike" }]);
        assert_eq!((r.inside, r.outside), (0, 1));
    }

    #[test]
    fn an_earlier_alert_scores_higher() {
        let s = series(&[(1_000.0, 101_000.0)]);
        let mut last = f64::INFINITY;
        for t in [1_000.0, 10_000.0, 30_000.0, 51_000.0, 80_000.0, 101_000.0] {
            let sc = score(&s, &[t]);
            assert!(sc < last && sc > 0.0, "{t}: {sc} !< {last}");
            last = sc;
        }
        assert!((reward(0.5) - 0.5 / (1.0 / (1.0 + (-5f64).exp()))).abs() < 1e-12);
    }

    #[test]
    fn alerts_in_the_probationary_period_are_not_scored() {
        let mut s = series(&[(100_000.0, 200_000.0)]);
        s.probation_end_ms = Some(50_000.0);
        let at = |t: &[f64]| -> Vec<Alert> {
            t.iter().map(|&t| Alert { t_ms: t, kind: "spike" }).collect()
        };
        let r = score_series(&s, &at(&[10_000.0, 49_999.0, 100_000.0]));
        assert_eq!((r.alerts, r.inside, r.outside), (1, 1, 0));
        let r = score_series(&s, &at(&[50_000.0, 100_000.0]));
        assert_eq!((r.alerts, r.inside, r.outside), (2, 1, 1));
    }

    #[test]
    fn delay_counts_readings_from_the_window_start() {
        let s = series(&[(1_000.0, 101_000.0)]);
        let r = score_series(&s, &[Alert { t_ms: 2_500.0, kind: "drift" }]);
        assert_eq!(r.windows[0].delay_readings, Some(3.0));
        assert_eq!(r.by_kind, vec![("drift", 1, 0)]);
        assert!((r.days - 10_000.0 * CADENCE_MS / MS_PER_DAY).abs() < 1e-12);
    }
}
