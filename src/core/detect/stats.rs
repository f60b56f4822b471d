//! Pass 1 of a tick: each dirty meter's rule statistics, computed from the
//! state as it was before the evaluation, into a small scratch.
//!
//! A tick evaluates its dirty meters a chunk of [`CHUNK`] at a time in two
//! passes (`Detector::tick`): first [`RuleStats::of`] for every meter of the
//! chunk, a short loop body with no branch on a verdict and no event, whose
//! divisions are independent from one meter to the next and so overlap; then
//! `Judge::evaluate` for each, which settles the verdicts and learns from
//! them. A statistic belongs here when it reads only the window's moments,
//! what the meter has learned and what `observe` collected (nothing an
//! earlier verdict of the same evaluation writes); it is then the same value
//! computed in the same order as if it were computed in pass 2, so moving it
//! changes no result, bit for bit.
//!
//! A new rule plugs in the same way: its statistic (and the state it needs)
//! as a field computed in [`RuleStats::of`]; its verdict, settling and
//! learning in `Judge::evaluate`, after the rules it must follow.

use super::super::config::Config;
use super::super::moments::Moments;
use super::learn::Learned;
use super::rules;
use super::state::Pending;

/// Meters a tick evaluates per chunk: the scratch is this many [`RuleStats`]
/// on the stack (a few KB), reused for every chunk, so its memory does not
/// grow with the meters and stays in the L1 cache between the two passes.
pub(super) const CHUNK: usize = 64;

/// One meter's rule statistics for one evaluation (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct RuleStats {
    /// The window holds at least `warmup` readings: rules may breach.
    pub warm: bool,
    /// The meter has learned for `baselineReadings` readings.
    pub trained: bool,
    /// The window's mean and (population) variance.
    pub mean: f64,
    pub var: f64,
    /// The variance floored as a z-score divides by it.
    pub fvar: f64,
    /// Drift: the window mean's distance from the slow baseline, the scale²
    /// it is measured in, the threshold² (`driftZ²·scale2`) and the evidence
    /// over it, squared (0 before training).
    pub d: f64,
    pub scale2: f64,
    pub limit2: f64,
    pub drift_u2: f64,
    /// Spike: the threshold in force (`spikeZ` times the meter's widening),
    /// the variance the peak reading is divided by and the peak's evidence,
    /// squared.
    pub threshold: f64,
    pub spike_var: f64,
    pub peak_u2: f64,
    /// The excess kurtosis the widening follows if the vote history is clear:
    /// the larger of the window's and the meter's long-run one.
    pub g2: f64,
}

impl RuleStats {
    /// The statistics of meter state `mo` (its window), `l` (what it learned),
    /// `r` (what `observe` collected) and `widen` (its spike widening).
    #[inline]
    pub fn of(mo: &Moments, l: &Learned, r: &Pending, widen: f32, cfg: &Config) -> RuleStats {
        let warm = mo.n >= f64::from(cfg.warmup);
        let mean = mo.mean();
        let var = mo.variance();
        let fvar = rules::floored_variance(var, mean, cfg);

        // Drift's statistic first (settled after spike): a level shift also
        // inflates the window variance, and is drift's to report.
        let trained = l.trained(cfg);
        let d = mean - l.slow;
        let scale2 = l.drift_scale2(fvar, mo.n);
        let limit2 = cfg.drift_z * cfg.drift_z * scale2;
        let drift_u2 = if trained { d * d / limit2 } else { 0.0 };

        // Spike: the largest |z| since the last evaluation, its variance
        // floored by the meter's long-run window variance, against the
        // threshold in force. |z| > t is tested as d² > t²·s², without a
        // square root.
        let threshold = cfg.spike_z * f64::from(widen);
        let spike_var = l.spike_var(r.peak_var);
        let peak_u2 = r.peak_d * r.peak_d / (threshold * threshold * spike_var);
        let g2 = mo.excess_kurtosis().max(l.excess_kurtosis());
        RuleStats {
            warm,
            trained,
            mean,
            var,
            fvar,
            d,
            scale2,
            limit2,
            drift_u2,
            threshold,
            spike_var,
            peak_u2,
            g2,
        }
    }
}
