//! The detection rules as pure functions of numbers: no state, no meters.
//!
//! Each function is the formula documented in `docs/DETECTION.md`; keep the two
//! in step. None of them can return NaN or ±∞ for finite inputs and a valid
//! [`Config`] (`std_floor >= 1e-12`, `spike_widen_max` in 1..=100).

use super::super::config::Config;

/// The variance a z-score divides by: the window's variance, but never below
/// `(std_floor_rel·|mean|)²` nor `std_floor²`.
///
/// A flat window (variance exactly 0) or one whose spread is only rounding of a
/// large level would otherwise give z = ±∞ or absurd values. `f64::max` also
/// replaces a NaN variance by the floor.
#[inline]
pub(super) fn floored_variance(var: f64, mean: f64, cfg: &Config) -> f64 {
    let rel = cfg.std_floor_rel * mean.abs();
    var.max(rel * rel).max(cfg.std_floor * cfg.std_floor)
}

/// The factor the spike threshold is widened by for a window with excess
/// kurtosis `g2`: `1 + max(0, (z² − 3) / 24) · max(0, g2)`, capped at
/// `spike_widen_max`, where z is `spike_z`.
///
/// This is the kurtosis term of the Cornish–Fisher expansion of a quantile,
/// `z + (z³ − 3z)·g2/24`, divided by z: for a normal window (g2 = 0) the
/// threshold is `spike_z`; for heavier tails it moves out roughly as far as the
/// matching quantile does. Light tails (g2 < 0) never narrow it. The cap stops a
/// few extreme readings (which dominate the sample kurtosis) from pushing it
/// out of reach.
#[inline]
pub(super) fn widen(g2: f64, cfg: &Config) -> f64 {
    let z = cfg.spike_z;
    let slope = ((z * z - 3.0) / 24.0).max(0.0);
    // `max`/`min` also map a NaN kurtosis to 0 and ∞ to the cap.
    (1.0 + slope * g2.max(0.0)).min(cfg.spike_widen_max).max(1.0)
}

/// The low `spike_votes_of` bits: the spike vote history kept.
#[inline]
pub(super) fn vote_mask(cfg: &Config) -> u32 {
    u32::MAX >> 32u32.saturating_sub(cfg.spike_votes_of).min(31)
}

/// Evaluations from the oldest breach still in the vote history to the newest
/// evaluation, inclusive (0 for no breach).
#[inline]
pub(super) fn vote_span(votes: u32) -> u32 {
    32 - votes.leading_zeros()
}

/// The sum behind the drift statistic: `Σ (clip(x) − mean)` over the newest
/// samples `newest` (two slices), each clipped to `[lo, hi]`, which the caller
/// sets to `mean ± spike_z·std`. The statistic itself is
/// `z = sum / (std·√k)` (the clipped short-term mean's distance from the
/// window mean in standard errors `std/√k`) and the short-term mean is
/// `mean + sum/k`; the caller tests `|sum| > drift_z·√k·std` and divides only
/// for an event.
///
/// Clipping at the spike threshold leaves normal readings untouched but limits
/// what any one reading can add to `spike_z/√k` standard errors (0.89 with the
/// defaults), so a lone blip of any height cannot look like a level change.
#[inline]
pub(super) fn drift_sum(newest: (&[f64], &[f64]), mean: f64, lo: f64, hi: f64) -> f64 {
    // A comparison clamp compiles to plain min/max; `f64::clamp` adds NaN
    // handling (and can panic), and the samples are finite. Four accumulators,
    // because one chain of k dependent additions would dominate the cost.
    let clipped = |x: f64| {
        let x = if x < lo { lo } else { x };
        (if x > hi { hi } else { x }) - mean
    };
    let mut acc = [0.0f64; 4];
    let (a, b) = newest;
    for part in [a, b] {
        let mut chunks = part.chunks_exact(4);
        for c in &mut chunks {
            for (s, &x) in acc.iter_mut().zip(c) {
                *s += clipped(x);
            }
        }
        for (s, &x) in acc.iter_mut().zip(chunks.remainder()) {
            *s += clipped(x);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

/// Whether a run of `run` identical readings is long enough to be critical:
/// `run ≥ critical_factor · stuck_run`.
#[inline]
pub(super) fn stuck_is_critical(run: u32, cfg: &Config) -> bool {
    f64::from(run) >= cfg.critical_factor * f64::from(cfg.stuck_run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::default()
    }

    #[test]
    fn flat_window_is_floored_relative_and_absolute() {
        let c = cfg();
        assert_eq!(floored_variance(0.0, 0.0, &c), 1e-12);
        assert_eq!(floored_variance(0.0, 1e6, &c), 1.0);
        assert_eq!(floored_variance(4.0, 1e6, &c), 4.0);
        assert_eq!(floored_variance(f64::NAN, 0.0, &c), 1e-12);
        // A jump of 0.001 over a flat window is a large but finite z.
        let z = 0.001 / floored_variance(0.0, 5.0, &c).sqrt();
        assert!(z.is_finite() && (z - 200.0).abs() < 1e-9, "{z}");
    }

    #[test]
    fn widening_follows_cornish_fisher_then_caps() {
        let c = cfg();
        assert_eq!(widen(0.0, &c), 1.0);
        assert_eq!(widen(-1.2, &c), 1.0, "light tails never narrow the threshold");
        // spike_z = 4: slope (16 − 3)/24 = 13/24; Laplace tails (g2 = 3) give 2.625 → cap 2.
        assert!((widen(1.0, &c) - (1.0 + 13.0 / 24.0)).abs() < 1e-12);
        assert_eq!(widen(3.0, &c), 2.0);
        assert_eq!(widen(f64::INFINITY, &c), 2.0);
        assert_eq!(widen(f64::NAN, &c), 1.0);
        let low = Config { spike_z: 1.5, ..cfg() };
        assert_eq!(widen(10.0, &low), 1.0, "below sqrt(3) the expansion has no widening term");
    }

    #[test]
    fn vote_mask_and_span() {
        let c = cfg();
        assert_eq!(vote_mask(&c), 0b11111);
        assert_eq!(vote_mask(&Config { spike_votes_of: 32, ..cfg() }), u32::MAX);
        assert_eq!(vote_mask(&Config { spike_votes_of: 1, ..cfg() }), 1);
        assert_eq!(vote_span(0), 0);
        assert_eq!(vote_span(0b111), 3);
        assert_eq!(vote_span(0b1101), 4);
    }

    #[test]
    fn drift_clips_each_reading_to_the_spike_threshold() {
        // 19 readings at the mean and one huge one: the huge one counts as 4 std.
        let mut xs = vec![10.0; 19];
        xs.push(1e12);
        let sum = drift_sum((&xs, &[]), 10.0, 6.0, 14.0);
        assert_eq!(sum, 4.0);
        // z = sum / (std·√k) = 4/√20 = 0.89 standard errors: a lone blip's most.
        // A whole short window shifted by −2 std, split over the ring's seam.
        let ys = [8.0; 20];
        assert_eq!(drift_sum((&ys[..5], &ys[5..]), 10.0, 6.0, 14.0), -40.0);
        assert_eq!(drift_sum((&[], &[]), 3.0, 2.0, 4.0), 0.0);
    }

    #[test]
    fn stuck_severity_by_run_length() {
        let c = cfg();
        assert!(!stuck_is_critical(59, &c));
        assert!(stuck_is_critical(60, &c));
    }
}
