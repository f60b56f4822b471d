//! Aggregation of per-series scores into a detector's figures, the printed
//! table, and the baseline check of the smoke run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::arms::Detector;
use super::score::{score_series, SeriesScore};
use super::{EvalError, Series};
use crate::core::config::Config;

/// Per incident class: windows, windows detected, and the mean detection
/// delay (readings) over those detected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassFigures {
    pub windows: usize,
    pub detected: usize,
    pub recall: f64,
    pub mean_delay_readings: Option<f64>,
}

/// One detector's figures over a corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub detector: String,
    pub series: usize,
    pub windows: usize,
    pub alerts: usize,
    pub inside: usize,
    pub outside: usize,
    /// The windowed early-detection score (0 = never alert, 100 = perfect).
    pub score: f64,
    pub classes: BTreeMap<String, ClassFigures>,
    /// False alerts per meter-day on the negative controls.
    pub false_per_day_negative: f64,
    /// False alerts per meter-day over every series.
    pub false_per_day_all: f64,
    /// Per alert kind: [inside, outside].
    pub kinds: BTreeMap<String, [usize; 2]>,
}

/// Runs `detector` on every series and scores it.
pub fn evaluate(
    detector: Detector,
    corpus: &[Series],
    cfg: &Config,
) -> Result<(Vec<SeriesScore>, Figures), EvalError> {
    let mut scores = Vec::with_capacity(corpus.len());
    for s in corpus {
        let alerts = detector.run(s, cfg)?;
        scores.push(score_series(s, &alerts));
    }
    let figures = aggregate(detector.as_str(), &scores);
    Ok((scores, figures))
}

/// The figures of a set of series scores.
pub fn aggregate(detector: &str, scores: &[SeriesScore]) -> Figures {
    let mut f = Figures {
        detector: detector.to_string(),
        series: scores.len(),
        windows: 0,
        alerts: 0,
        inside: 0,
        outside: 0,
        score: 0.0,
        classes: BTreeMap::new(),
        false_per_day_negative: 0.0,
        false_per_day_all: 0.0,
        kinds: BTreeMap::new(),
    };
    let (mut raw, mut neg_false, mut neg_days, mut days) = (0.0, 0usize, 0.0, 0.0);
    let mut delays: BTreeMap<String, f64> = BTreeMap::new();
    for s in scores {
        f.windows += s.windows.len();
        f.alerts += s.alerts;
        f.inside += s.inside;
        f.outside += s.outside;
        raw += s.raw();
        days += s.days;
        if s.negative() {
            neg_false += s.outside;
            neg_days += s.days;
        }
        for &(kind, i, o) in &s.by_kind {
            let e = f.kinds.entry(kind.to_string()).or_default();
            e[0] += i;
            e[1] += o;
        }
        for w in &s.windows {
            let c = f.classes.entry(w.class.clone()).or_default();
            c.windows += 1;
            if let Some(d) = w.delay_readings {
                c.detected += 1;
                *delays.entry(w.class.clone()).or_default() += d;
            }
        }
    }
    for (name, c) in f.classes.iter_mut() {
        c.recall = c.detected as f64 / c.windows.max(1) as f64;
        if c.detected > 0 {
            c.mean_delay_readings = delays.get(name).map(|d| d / c.detected as f64);
        }
    }
    f.score = if f.windows > 0 { 100.0 * raw / f.windows as f64 } else { 0.0 };
    f.false_per_day_negative = if neg_days > 0.0 { neg_false as f64 / neg_days } else { 0.0 };
    f.false_per_day_all = if days > 0.0 { f.outside as f64 / days } else { 0.0 };
    f
}

/// The per-series table of one detector.
pub fn series_table(detector: &str, scores: &[SeriesScore]) -> String {
    let mut t = format!(
        "{detector}: per series\n{:<24} {:<12} {:>7} {:>6} {:>7} {:>11} {:>8}  {}\n",
        "series", "class", "alerts", "in", "out", "delay", "reward", "by kind (in/out)"
    );
    for s in scores {
        // Several windows: how many were found, their mean delay, total reward.
        let found: Vec<f64> = s.windows.iter().filter_map(|w| w.delay_readings).collect();
        let (class, delay, reward) = match s.windows.first() {
            Some(w) if s.windows.len() == 1 => (
                w.class.as_str(),
                w.delay_readings.map_or("missed".to_string(), |d| format!("{d:.0}")),
                format!("{:.3}", w.reward),
            ),
            Some(w) => (
                w.class.as_str(),
                format!(
                    "{}/{} {}",
                    found.len(),
                    s.windows.len(),
                    if found.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{:.0}", found.iter().sum::<f64>() / found.len() as f64)
                    }
                ),
                format!("{:.3}", s.windows.iter().map(|w| w.reward).sum::<f64>()),
            ),
            None => ("(none)", "-".to_string(), "-".to_string()),
        };
        let mut kinds: Vec<String> =
            s.by_kind.iter().map(|(k, i, o)| format!("{k} {i}/{o}")).collect();
        if s.windows.len() > 1 {
            // Each window's delay in time order, `-` for a miss.
            let each: Vec<String> = s
                .windows
                .iter()
                .map(|w| w.delay_readings.map_or("-".to_string(), |d| format!("{d:.0}")))
                .collect();
            kinds.push(format!("delays [{}]", each.join(" ")));
        }
        let _ = writeln!(
            t,
            "{:<24} {:<12} {:>7} {:>6} {:>7} {:>11} {:>8}  {}",
            s.name,
            class,
            s.alerts,
            s.inside,
            s.outside,
            delay,
            reward,
            kinds.join(", ")
        );
    }
    t
}

/// The side-by-side summary of several detectors.
pub fn summary_table(figs: &[Figures]) -> String {
    let mut t = format!("{:<42}", "overall");
    for f in figs {
        let _ = write!(t, " {:>20}", f.detector);
    }
    t.push('\n');
    let mut row = |label: &str, cell: &dyn Fn(&Figures) -> String| {
        let _ = write!(t, "{label:<42}");
        for f in figs {
            let _ = write!(t, " {:>20}", cell(f));
        }
        t.push('\n');
    };
    row("score (0 never, 100 perfect)", &|f| format!("{:.1}", f.score));
    row("alerts (inside / outside)", &|f| format!("{} ({} / {})", f.alerts, f.inside, f.outside));
    row("false alerts / meter-day, neg.", &|f| format!("{:.1}", f.false_per_day_negative));
    row("false alerts / meter-day, all", &|f| format!("{:.1}", f.false_per_day_all));
    let classes: Vec<String> = figs
        .iter()
        .flat_map(|f| f.classes.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for c in &classes {
        row(&format!("recall {c} (mean delay, readings)"), &|f| match f.classes.get(c) {
            Some(x) => format!(
                "{}/{} ({})",
                x.detected,
                x.windows,
                x.mean_delay_readings.map_or("-".to_string(), |d| format!("{d:.0}"))
            ),
            None => "-".to_string(),
        });
    }
    let kinds: Vec<String> = figs
        .iter()
        .flat_map(|f| f.kinds.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for k in &kinds {
        row(&format!("{k} alerts (inside / outside)"), &|f| match f.kinds.get(k) {
            Some([i, o]) => format!("{i} / {o}"),
            None => "-".to_string(),
        });
    }
    t
}

/// Committed figures a run must not fall below by more than the margins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub seed: u64,
    pub short: bool,
    /// The built-in family (`meters` or `nab-like`; older baselines: `meters`).
    #[serde(default = "meters")]
    pub corpus: String,
    /// Largest allowed drop of the score, in points.
    pub score_margin: f64,
    /// Largest allowed drop of any class's recall (0..=1).
    pub recall_margin: f64,
    pub detectors: Vec<Figures>,
}

fn meters() -> String {
    "meters".to_string()
}

/// The regressions of `figs` against `base`: a detector's score more than
/// `score_margin` below its baseline, or a class's recall more than
/// `recall_margin` below. Empty: no regression. Improvements never fail.
pub fn check_baseline(base: &Baseline, figs: &[Figures]) -> Vec<String> {
    let mut problems = Vec::new();
    for b in &base.detectors {
        let Some(f) = figs.iter().find(|f| f.detector == b.detector) else { continue };
        if f.score < b.score - base.score_margin {
            problems.push(format!(
                "{}: score {:.1} is more than {} points below the baseline {:.1}",
                f.detector, f.score, base.score_margin, b.score
            ));
        }
        for (class, bc) in &b.classes {
            let recall = f.classes.get(class).map_or(0.0, |c| c.recall);
            if recall < bc.recall - base.recall_margin {
                problems.push(format!(
                    "{}: recall of {class} {:.2} is more than {} below the baseline {:.2}",
                    f.detector, recall, base.recall_margin, bc.recall
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::score::WindowResult;

    fn scores(detected: bool, outside: usize) -> Vec<SeriesScore> {
        let w = WindowResult {
            class: "spike".into(),
            first_alert_ms: detected.then_some(0.0),
            delay_readings: detected.then_some(3.0),
            reward: if detected { 1.0 } else { 0.0 },
        };
        vec![
            SeriesScore {
                name: "a".into(),
                days: 1.0,
                alerts: outside + usize::from(detected),
                inside: usize::from(detected),
                outside: 0,
                by_kind: Vec::new(),
                windows: vec![w],
            },
            SeriesScore {
                name: "neg".into(),
                days: 0.5,
                alerts: outside,
                inside: 0,
                outside,
                by_kind: vec![("spike", 0, outside)],
                windows: Vec::new(),
            },
        ]
    }

    #[test]
    fn aggregate_counts_recall_and_false_alerts_per_meter_day() {
        let f = aggregate("m", &scores(true, 2));
        assert_eq!(f.classes.get("spike").map(|c| (c.detected, c.recall)), Some((1, 1.0)));
        assert!((f.false_per_day_negative - 4.0).abs() < 1e-12);
        assert!(
            (f.score - 100.0 * (1.0 - 2.0 * crate::eval::score::FALSE_ALERT_PENALTY)).abs() < 1e-9
        );
    }

    #[test]
    fn the_baseline_check_fails_only_on_a_drop_past_the_margin() {
        let good = aggregate("m", &scores(true, 0));
        let base = Baseline {
            seed: 1,
            short: true,
            corpus: meters(),
            score_margin: 5.0,
            recall_margin: 0.1,
            detectors: vec![good.clone()],
        };
        assert!(check_baseline(&base, &[good]).is_empty());
        // Two false alerts cost 22 points: past the margin.
        assert_eq!(check_baseline(&base, &[aggregate("m", &scores(true, 2))]).len(), 1);
        // A missed window: both the score and the recall fall.
        assert_eq!(check_baseline(&base, &[aggregate("m", &scores(false, 0))]).len(), 2);
        // An improvement never fails.
        let worse = Baseline { detectors: vec![aggregate("m", &scores(false, 3))], ..base };
        assert!(check_baseline(&worse, &[aggregate("m", &scores(true, 0))]).is_empty());
    }
}
