//! The detectors `meterflow eval` compares ("arms"), each turning a series into
//! its alert raises.
//!
//! - [`Detector::Meterflow`]: the engine itself. The series becomes a recording
//!   of `readings` page messages, one reading each at its own time, and runs
//!   through [`crate::replay`]: the wire decoder, `Engine::handle` and the
//!   worker's timers (a tick every `tickMs`), with the given config.
//! - [`Detector::Zscore`]: the reference arm, a plain sliding-window Gaussian
//!   z-score ([`ZScore`]).

use serde_json::Value;

use super::{Alert, EvalError, Series};
use crate::core::config::Config;
use crate::replay::{replay_with, OutType, ReplayOptions};

/// The meter id every series is replayed as.
pub const METER: &str = "eval";

/// Which detector an evaluation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detector {
    Meterflow,
    Zscore,
}

impl Detector {
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Meterflow => "meterflow",
            Detector::Zscore => "zscore",
        }
    }

    pub fn parse(s: &str) -> Option<Detector> {
        match s {
            "meterflow" => Some(Detector::Meterflow),
            "zscore" => Some(Detector::Zscore),
            _ => None,
        }
    }

    /// The alert raises of this detector on `s`, in time order.
    pub fn run(self, s: &Series, cfg: &Config) -> Result<Vec<Alert>, EvalError> {
        match self {
            Detector::Meterflow => run_engine(s, cfg),
            Detector::Zscore => Ok(ZScore::new(ZSCORE_WINDOW, ZSCORE_Z, cfg.warmup).alerts(s)),
        }
    }
}

/// The engine's wire name of an anomaly kind, as a static string.
fn kind_of(name: &str) -> Option<&'static str> {
    ["spike", "drift", "stuck", "silent"].into_iter().find(|k| *k == name)
}

/// Replays `s` through the engine and keeps its alert raises: an `anomaly`
/// event of a kind not already active for the meter (an escalation of an
/// active alert to critical is not a new raise); `cleared` ends it.
fn run_engine(s: &Series, cfg: &Config) -> Result<Vec<Alert>, EvalError> {
    let mut input = Vec::with_capacity(s.t_ms.len() * 110);
    for (t, v) in s.t_ms.iter().zip(&s.values) {
        use std::io::Write as _;
        let _ = writeln!(
            input,
            r#"{{"t":{t},"type":"readings","data":{{"readings":[{{"meter":"{METER}","ts":{t},"value":{v}}}]}}}}"#
        );
    }
    let mut out = Vec::new();
    let opts = ReplayOptions {
        only: Some(vec![OutType::Anomaly, OutType::Cleared, OutType::Error]),
        ..ReplayOptions::default()
    };
    let engine_err = |message: String| EvalError::Engine { series: s.name.clone(), message };
    replay_with(&input[..], &mut out, cfg.clone(), opts).map_err(|e| engine_err(e.to_string()))?;
    let mut active: Vec<&'static str> = Vec::new();
    let mut alerts = Vec::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let msg: Value = serde_json::from_slice(line).map_err(|e| engine_err(e.to_string()))?;
        let field = |name: &str| msg.get(name).and_then(Value::as_str).unwrap_or("");
        let kind = kind_of(field("kind"));
        match (field("type"), kind) {
            ("anomaly", Some(kind)) => {
                if !active.contains(&kind) {
                    active.push(kind);
                    let t_ms = msg.get("t").and_then(Value::as_f64);
                    let t_ms =
                        t_ms.ok_or_else(|| engine_err("an anomaly line without t".into()))?;
                    alerts.push(Alert { t_ms, kind });
                }
            }
            ("cleared", Some(kind)) => active.retain(|k| *k != kind),
            _ => return Err(engine_err(String::from_utf8_lossy(line).into_owned())),
        }
    }
    Ok(alerts)
}

/// Window of the reference arm, in readings (10 minutes at 2 Hz).
pub const ZSCORE_WINDOW: usize = 1_200;
/// Threshold of the reference arm, in standard deviations.
pub const ZSCORE_Z: f64 = 3.0;

/// The reference arm: each reading's z against the mean and (population)
/// standard deviation of the previous `window` readings, floored as the
/// engine floors it (`max(std, 1e-6·|mean|, 1e-6)`). Once at least `warmup`
/// readings are in the window, |z| > `z` raises an alert at the reading's
/// time, one per excursion: an excursion is a run of consecutive readings
/// with |z| > `z`. It has no notion of time, so it never sees a dropout.
#[derive(Clone, Debug)]
pub struct ZScore {
    window: usize,
    z: f64,
    warmup: usize,
}

impl ZScore {
    pub fn new(window: usize, z: f64, warmup: u32) -> ZScore {
        ZScore { window: window.max(1), z, warmup: warmup as usize }
    }

    /// The alert raises on `s`.
    pub fn alerts(&self, s: &Series) -> Vec<Alert> {
        let xs = &s.values;
        let (mut sum, mut sum2) = (0.0f64, 0.0f64);
        let mut in_excursion = false;
        let mut alerts = Vec::new();
        for (i, (&x, &t)) in xs.iter().zip(&s.t_ms).enumerate() {
            let lo = i.saturating_sub(self.window);
            let n = i - lo;
            if n >= self.warmup.max(1) {
                let mean = sum / n as f64;
                let var = (sum2 / n as f64 - mean * mean).max(0.0);
                let sd = var.sqrt().max(1e-6 * mean.abs()).max(1e-6);
                let breach = ((x - mean) / sd).abs() > self.z;
                if breach && !in_excursion {
                    alerts.push(Alert { t_ms: t, kind: "zscore" });
                }
                in_excursion = breach;
            }
            // Slide: add x, drop the reading that leaves; recompute exactly
            // once per window length so rounding cannot accumulate.
            if i + 1 >= self.window && (i + 1) % self.window == 0 {
                let from = (i + 1).saturating_sub(self.window);
                let w = xs.get(from..=i).unwrap_or(&[]);
                sum = w.iter().sum();
                sum2 = w.iter().map(|v| v * v).sum();
            } else {
                sum += x;
                sum2 += x * x;
                if i >= self.window {
                    let old = xs.get(i - self.window).copied().unwrap_or(0.0);
                    sum -= old;
                    sum2 -= old * old;
                }
            }
        }
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::corpus::{CADENCE_MS, START_MS};

    fn series(values: Vec<f64>) -> Series {
        let t_ms = (0..values.len()).map(|i| START_MS + i as f64 * CADENCE_MS).collect();
        Series { name: "t".into(), t_ms, values, windows: Vec::new(), probation_end_ms: None }
    }

    /// Alternating 9, 11 (mean 10, sd 1), with the readings in `high` set to `v`.
    fn square_noise(n: usize, high: &[usize], v: f64) -> Series {
        let mut xs: Vec<f64> = (0..n).map(|i| if i % 2 == 0 { 9.0 } else { 11.0 }).collect();
        for &i in high {
            xs[i] = v;
        }
        series(xs)
    }

    #[test]
    fn zscore_alerts_once_per_excursion_after_warm_up() {
        let z = ZScore::new(ZSCORE_WINDOW, ZSCORE_Z, 60);
        assert!(z.alerts(&square_noise(3_000, &[], 0.0)).is_empty());
        // One excursion of three readings: one alert, at its first reading.
        let s = square_noise(3_000, &[2_000, 2_001, 2_002], 20.0);
        let a = z.alerts(&s);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].t_ms, s.t_ms[2_000]);
        // Two excursions: two alerts. Within |z| ≤ 3 (13 = +3 sd): none.
        assert_eq!(z.alerts(&square_noise(3_000, &[1_500, 2_500], 20.0)).len(), 2);
        assert!(z.alerts(&square_noise(3_000, &[2_000], 12.9)).is_empty());
        // During warm-up nothing alerts.
        assert!(z.alerts(&square_noise(3_000, &[30], 100.0)).is_empty());
    }

    #[test]
    fn zscore_matches_a_two_pass_window() {
        // A drifting series: the running sums must agree with the window's own.
        let xs: Vec<f64> =
            (0..5_000).map(|i| 1e3 + (i as f64 * 0.37).sin() * 5.0 + i as f64 * 0.01).collect();
        let s = series(xs.clone());
        let fast = ZScore::new(1_200, 2.0, 60).alerts(&s);
        let mut slow = Vec::new();
        let mut inside = false;
        for i in 60..xs.len() {
            let w = &xs[i.saturating_sub(1_200)..i];
            let n = w.len() as f64;
            let mean = w.iter().sum::<f64>() / n;
            let sd = (w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let breach = ((xs[i] - mean) / sd).abs() > 2.0;
            if breach && !inside {
                slow.push(s.t_ms[i]);
            }
            inside = breach;
        }
        let fast: Vec<f64> = fast.iter().map(|a| a.t_ms).collect();
        assert_eq!(fast, slow);
    }

    #[test]
    fn an_escalation_is_not_a_new_alert() -> Result<(), Box<dyn std::error::Error>> {
        // The level doubles for 400 readings (a burst pipe), then returns, once
        // the meter has learned its baseline (7,200 readings).
        let high: Vec<usize> = (9_000..9_400).collect();
        let mut s = square_noise(12_000, &[], 0.0);
        for &i in &high {
            s.values[i] += 10.0;
        }
        let mut raw = Vec::new();
        let input: String = s
            .t_ms
            .iter()
            .zip(&s.values)
            .map(|(t, v)| format!("{{\"t\":{t},\"type\":\"readings\",\"data\":{{\"readings\":[{{\"meter\":\"m\",\"ts\":{t},\"value\":{v}}}]}}}}\n"))
            .collect();
        let opts = ReplayOptions { only: Some(vec![OutType::Anomaly]), ..ReplayOptions::default() };
        replay_with(input.as_bytes(), &mut raw, Config::default(), opts)?;
        let raw = String::from_utf8(raw)?;
        let drift_events = raw.lines().filter(|l| l.contains(r#""kind":"drift""#)).count();
        // The engine escalates drift (warning, then critical) ...
        assert_eq!(drift_events, 2, "{raw}");
        let a = Detector::Meterflow.run(&s, &Config::default())?;
        let drifts: Vec<&Alert> = a.iter().filter(|a| a.kind == "drift").collect();
        // ... which is one raise, at the first (warning) event.
        assert_eq!(drifts.len(), 1, "{a:?}");
        let warning = raw.lines().find(|l| l.contains(r#""kind":"drift""#)).unwrap_or("");
        assert!(warning.contains(&format!(r#""t":{:.1}"#, drifts[0].t_ms)), "{warning}");
        Ok(())
    }

    #[test]
    fn the_engine_arm_sees_a_spike_through_the_wire() -> Result<(), crate::eval::EvalError> {
        let s = square_noise(3_000, &[2_000, 2_001, 2_002], 40.0);
        let a = Detector::Meterflow.run(&s, &Config::default())?;
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, "spike");
        // Raised at the tick after the third spike reading.
        assert!(a[0].t_ms > s.t_ms[2_002] && a[0].t_ms <= s.t_ms[2_002] + 500.0, "{a:?}");
        Ok(())
    }
}
