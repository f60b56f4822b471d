//! Per-meter detection state, one fixed-size record per meter in flat `Vec`s.
//!
//! [`Pending`] is what `observe` writes on the ingest path: exactly one cache
//! line per meter, so scoring a reading touches one line. [`Verdicts`] is what an
//! evaluation keeps between ticks (vote history, run counters, alert flags).
//! Neither holds a pointer; with `learn::Learned` and the last evaluation
//! time a meter's whole detection state is 196 bytes (12 of them the seasonal rule's), and 64 more with `excursion::Excursion`.

use super::super::event::AnomalyKind;
use super::season::Season;

/// The kinds in the order an evaluation settles them; `index` maps back.
pub(super) const KINDS: [AnomalyKind; 4] =
    [AnomalyKind::Spike, AnomalyKind::Drift, AnomalyKind::Stuck, AnomalyKind::Silent];

/// Position of `kind` in [`KINDS`], also its bit in the alert masks.
#[inline]
pub(super) fn index(kind: AnomalyKind) -> usize {
    match kind {
        AnomalyKind::Spike => 0,
        AnomalyKind::Drift => 1,
        AnomalyKind::Stuck => 2,
        AnomalyKind::Silent => 3,
    }
}

/// What the readings since a meter's last evaluation left for the next one.
///
/// The "peak" fields describe the reading with the largest |z| since the last
/// evaluation, scored against the window as it was just before that reading
/// entered: its deviation from the window mean, the (floored) variance it was
/// divided by, its value, timestamp and that mean. Keeping the deviation and
/// the variance, not z, lets `observe` compare two z-scores by
/// cross-multiplication, without a division or a square root per reading.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
pub(super) struct Pending {
    /// Readings since the last evaluation; non-zero exactly when the meter is
    /// on the dirty list.
    pub new: u32,
    /// Consecutive identical readings, in arrival order, ending with the newest
    /// (0 before the first reading).
    pub run: u32,
    /// The newest reading in arrival order.
    pub last_x: f64,
    /// The largest timestamp received (−∞ before any).
    pub last_ts: f64,
    pub peak_d: f64,
    pub peak_var: f64,
    pub peak_x: f64,
    pub peak_ts: f64,
    pub peak_mean: f64,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            new: 0,
            run: 0,
            last_x: 0.0,
            last_ts: f64::NEG_INFINITY,
            peak_d: 0.0,
            peak_var: 1.0,
            peak_x: 0.0,
            peak_ts: 0.0,
            peak_mean: 0.0,
        }
    }
}

/// What evaluations remember about a meter: one 64-byte cache line (aligned
/// so an evaluation touches one line, not two; about 1% of the tick natively).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(align(64))]
pub(super) struct Verdicts {
    /// Spike vote history: bit 0 is the newest evaluation, a set bit a breach.
    /// Only the low `spike_votes_of` bits are kept.
    pub votes: u32,
    /// Factor the spike threshold is widened by for this meter's tails. Frozen
    /// while a spike vote is open, so a spike's own readings cannot raise the
    /// bar it is judged against.
    pub widen: f32,
    /// Consecutive evaluations whose drift statistic breached (saturating;
    /// `drift_consecutive` is at most 65,535).
    pub drift_run: u16,
    /// Evaluations since the one that received the first reading of the
    /// current run of identical readings.
    pub stuck_evals: u32,
    /// The length of the run of identical readings that was in progress at
    /// the last evaluation, once a different reading ended it (0 while it
    /// has not): written by `observe` at that reading, so the next evaluation
    /// learns the run exactly however many readings it sees at once.
    pub ended_run: u32,
    /// Per kind: evaluations without a breach since the last one (saturating;
    /// `clear_after` is at most 65,535).
    pub calm: [u16; 4],
    /// Per kind (bit [`index`]): an alert is active.
    pub active: u8,
    /// Per kind: the active alert has been raised as critical. Bit 4 is
    /// the spike rule's "incident still in the window" flag
    /// (`evaluate::spike_recent`), not a kind.
    pub critical: u8,
    /// Readings evaluated since a drift alert was last active (saturating):
    /// the drift scale is learned only once this reaches `baselineReadings`.
    pub drift_quiet: u32,
    /// Readings evaluated while the active drift alert has been (0 when none):
    /// the slow baseline is held until `DRIFT_HOLD`·`baselineReadings`.
    pub drift_held: u32,
    /// The evidence behind the meter's score at its latest evaluation or
    /// silence check, squared: the score is `rules::score(score_u2) as f32`
    /// ([`Verdicts::score`]). Kept as the evidence, not the score, so an
    /// evaluation does not divide for a score nobody may read before the
    /// next one: the division is at the end of the evaluation's longest
    /// dependency chain, which stalled it.
    pub score_u2: f64,
    /// The variance rule's scale: EWMA of `q²`, `q` the window variance's
    /// relative excess over the long-run one (`learn::Learned::variance_excess`),
    /// each term capped at the rule's limit.
    pub vscale2: f32,
    /// Readings evaluated while the variance rule has breached in a row (0
    /// when it did not): the long-run variance is held until
    /// `DRIFT_HOLD`·`baselineReadings`, then adopted.
    pub var_held: u32,
    /// The seasonal rule's period and residual scale (`season`).
    pub season: Season,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts {
            votes: 0,
            widen: 1.0,
            drift_run: 0,
            stuck_evals: 0,
            ended_run: 0,
            drift_quiet: u32::MAX,
            drift_held: 0,
            calm: [0; 4],
            active: 0,
            critical: 0,
            score_u2: 0.0,
            vscale2: 0.0,
            var_held: 0,
            season: Season::default(),
        }
    }
}

impl Verdicts {
    /// The meter's score in [0, 1], as an `f32` (the precision kept).
    #[inline]
    pub fn score(&self) -> f32 {
        super::rules::score(self.score_u2) as f32
    }

    /// Whether an alert of kind `i` is active.
    #[inline]
    pub fn is_active(&self, i: usize) -> bool {
        self.active & (1 << i) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stay_small() {
        assert_eq!(std::mem::size_of::<Pending>(), 64);
        // 48: `ended_run` (4 B a meter) made the learned runs exact under bursts.
        // 56: the seasonal rule's period and residual scale (8 B a meter).
        // 60: the seasonal scan's due count, cached (4 B a meter).
        // 64: the score's evidence (f64) instead of the score (f32).
        assert_eq!(std::mem::size_of::<Verdicts>(), 64);
        assert_eq!(std::mem::size_of::<super::super::learn::Learned>(), 64);
        assert_eq!(std::mem::size_of::<super::super::excursion::Excursion>(), 64);
        assert_eq!(std::mem::size_of::<super::super::median::Median>(), 32);
    }

    #[test]
    fn kinds_and_indices_agree() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(index(*k), i);
        }
    }
}
