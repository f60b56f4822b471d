//! The on-disk corpus: a directory with `labels.json` and one `NAME.csv` per
//! series listed in it.
//!
//! `NAME.csv`: a header line `t_ms,value`, then one reading per line, `t_ms`
//! in ms since the epoch (strictly increasing), `value` a finite number.
//! `labels.json`: `{"series": [{"name": "NAME", "windows": [{"start_ms": ..,
//! "end_ms": .., "class": ".."}]}]}`; an empty `windows` is a negative control.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{EvalError, Series, Window};

#[derive(Serialize, Deserialize)]
struct Labels {
    series: Vec<LabelEntry>,
}

#[derive(Serialize, Deserialize)]
struct LabelEntry {
    name: String,
    windows: Vec<LabelWindow>,
    /// Alerts before this time are not scored (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probation_end_ms: Option<f64>,
}

#[derive(Serialize, Deserialize)]
struct LabelWindow {
    start_ms: f64,
    end_ms: f64,
    class: String,
}

fn corpus_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::Corpus(format!("{}: {e}", path.display()))
}

/// Writes `corpus` to `dir` (created if missing).
pub fn write_dir(dir: &Path, corpus: &[Series]) -> Result<(), EvalError> {
    std::fs::create_dir_all(dir).map_err(|e| corpus_err(dir, e))?;
    let mut entries = Vec::with_capacity(corpus.len());
    for s in corpus {
        let mut csv = String::from("t_ms,value\n");
        for (t, v) in s.t_ms.iter().zip(&s.values) {
            let _ = writeln!(csv, "{t},{v}");
        }
        let path = dir.join(format!("{}.csv", s.name));
        std::fs::write(&path, csv).map_err(|e| corpus_err(&path, e))?;
        let windows = s
            .windows
            .iter()
            .map(|w| LabelWindow { start_ms: w.start_ms, end_ms: w.end_ms, class: w.class.clone() })
            .collect();
        entries.push(LabelEntry {
            name: s.name.clone(),
            windows,
            probation_end_ms: s.probation_end_ms,
        });
    }
    let path = dir.join("labels.json");
    let text = serde_json::to_string_pretty(&Labels { series: entries })
        .map_err(|e| corpus_err(&path, e))?;
    std::fs::write(&path, text + "\n").map_err(|e| corpus_err(&path, e))
}

/// Reads the corpus in `dir`, series in `labels.json` order.
pub fn read_dir(dir: &Path) -> Result<Vec<Series>, EvalError> {
    let path = dir.join("labels.json");
    let text = std::fs::read_to_string(&path).map_err(|e| corpus_err(&path, e))?;
    let labels: Labels = serde_json::from_str(&text).map_err(|e| corpus_err(&path, e))?;
    let mut out = Vec::with_capacity(labels.series.len());
    for entry in labels.series {
        if entry.name.is_empty() || entry.name.contains(['/', '\\']) || entry.name.starts_with('.')
        {
            return Err(corpus_err(&path, format!("bad series name '{}'", entry.name)));
        }
        let mut windows = Vec::with_capacity(entry.windows.len());
        for w in entry.windows {
            if !(w.start_ms.is_finite() && w.end_ms.is_finite() && w.start_ms <= w.end_ms) {
                return Err(corpus_err(&path, format!("{}: bad window", entry.name)));
            }
            windows.push(Window { start_ms: w.start_ms, end_ms: w.end_ms, class: w.class });
        }
        let csv_path = dir.join(format!("{}.csv", entry.name));
        let csv = std::fs::read_to_string(&csv_path).map_err(|e| corpus_err(&csv_path, e))?;
        let (t_ms, values) = parse_csv(&csv).map_err(|e| corpus_err(&csv_path, e))?;
        let probation_end_ms = entry.probation_end_ms.filter(|t| t.is_finite());
        out.push(Series { name: entry.name, t_ms, values, windows, probation_end_ms });
    }
    Ok(out)
}

/// The columns of a series CSV, or the first problem (with its line number).
pub fn parse_csv(text: &str) -> Result<(Vec<f64>, Vec<f64>), String> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == "t_ms,value" => {}
        _ => return Err("line 1: the header must be t_ms,value".into()),
    }
    let (mut t_ms, mut values) = (Vec::new(), Vec::new());
    for (i, line) in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let (t, v) = line.split_once(',').ok_or(format!("line {n}: expected t_ms,value"))?;
        let t: f64 = t.trim().parse().map_err(|_| format!("line {n}: bad t_ms"))?;
        let v: f64 = v.trim().parse().map_err(|_| format!("line {n}: bad value"))?;
        if !t.is_finite() || !v.is_finite() {
            return Err(format!("line {n}: not a finite number"));
        }
        if t_ms.last().is_some_and(|&last| t <= last) {
            return Err(format!("line {n}: t_ms must increase"));
        }
        t_ms.push(t);
        values.push(v);
    }
    Ok((t_ms, values))
}
