//! The evaluation harness behind `meterflow eval` (`docs/DETECTION.md`,
//! "Evaluation"): labelled series replayed one meter each through a detector,
//! scored per series and overall. Native only, like [`crate::replay`].
//!
//! Modules: [`corpus`] (the seeded generator), [`files`] (the on-disk corpus
//! format: one CSV per series plus `labels.json`), [`arms`] (the detectors: the
//! engine through the wire and replay, and the plain z-score reference),
//! [`score`] (the per-series figures and the windowed score), [`report`]
//! (aggregation, the table and the baseline check). Everything is pure but
//! [`files`]; the binary only parses arguments and prints.

pub mod arms;
pub mod corpus;
pub mod files;
pub mod nab_like;
pub mod report;
mod rng;
pub mod score;

/// A labelled anomaly window: `[start_ms, end_ms]`, both inclusive.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub start_ms: f64,
    pub end_ms: f64,
    /// The incident class (`spike`, `leak`, ...).
    pub class: String,
}

/// One labelled series, replayed as one meter. No windows: a negative control.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// Arrival (and reading) times, ms since the epoch, strictly increasing.
    pub t_ms: Vec<f64>,
    pub values: Vec<f64>,
    pub windows: Vec<Window>,
    /// Alerts before this time are not scored (NAB's probationary period,
    /// the `nab-like` family); `None`: every alert is.
    pub probation_end_ms: Option<f64>,
}

/// An alert raise: the engine time it was raised at and its kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alert {
    pub t_ms: f64,
    pub kind: &'static str,
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A corpus file is missing, unreadable or malformed.
    #[error("corpus: {0}")]
    Corpus(String),
    /// The engine reported an error while replaying a series (a harness bug).
    #[error("series {series}: the engine reported {message}")]
    Engine { series: String, message: String },
}
