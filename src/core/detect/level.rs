//! The short-level rule: a level shift of a few standard deviations held for
//! tens of readings (a network surge, a temperature dip, a CPU step) that no
//! single reading makes a spike, on a meter too young to judge drift.
//!
//! Each evaluation moves a short **EWMA of the readings** (weight
//! [`LEVEL_ALPHA`] a reading, about the last 8 readings), each reading first
//! **clipped** to the window mean ± [`LEVEL_CLIP`] standard deviations (the
//! spike rule's: never below the meter's long-run variance), and judges its
//! distance from the window mean, `S = ema − mean`, against the meter's own
//! running mean square of `S`: `u² = S² / (LEVEL_Z² · scale²)`. A breach
//! (u² > 1) is a spike breach, like the variance and seasonal rules: it votes
//! 3 of 5.
//!
//! Why this form:
//! - **A blip does not breach.** A clipped reading moves the EWMA by at most
//!   `LEVEL_CLIP · LEVEL_ALPHA` = 0.375 sd; on independent readings the
//!   learned scale is `sd·√(α/(2 − α))` ≈ 0.26 sd, so one reading reaches at
//!   most 0.29 of the threshold and it takes 5 readings in a row at the clip
//!   to pass it (then the 3-of-5 vote). Heavy tails (Student-t, a
//!   spike-density meter's normal spikes) are cut at the clip.
//! - **The meter's own scale.** The learned scale is the empirical spread of
//!   the very statistic (as the drift rule's), so autocorrelation, cycles and
//!   quantisation are accounted for without a model: on a random walk or
//!   AR(1) φ 0.99 the EWMA follows the readings and the scale approaches the
//!   window's sd, so `S`, at most `LEVEL_CLIP` sd, cannot pass 5 scales.
//! - **Early.** Judged from [`LEVEL_JUDGE`] readings learned (not only once
//!   trained): most NAB-shaped series end before training.
//! - **Not learned from an incident.** The scale learns only while the spike
//!   vote history is empty, each term capped at ([`LEVEL_LEARN_Z`]·scale)².
//! - **A step is drift's.** Not judged while drift breaches or alerts, nor
//!   within a window's readings of a drift alert.
//! - **Not on plateau meters.** Not judged on a meter that has rested at one
//!   value for `stuckRun` readings or more (a pump, a tap): between its
//!   plateaus the EWMA sits exactly on the window mean, the scale learns
//!   nearly 0, and every switch would breach.
//!
//! State: 8 bytes a meter ([`Level`]): the EWMA as its distance from the slow
//! baseline (an `f32` of a level's offset, not of the level, keeps its
//! precision on a meter at 1e6 ± 0.01) and the scale². With several readings
//! in one evaluation the EWMA takes the newest only, at the weight of all of
//! them (the ring is not read).

/// Weight of one reading in the short EWMA.
pub(super) const LEVEL_ALPHA: f64 = 0.125;

/// Each reading enters the EWMA clipped to the window mean ± this many
/// standard deviations.
pub(super) const LEVEL_CLIP: f64 = 3.0;

/// The rule's threshold, in learned scales.
pub(super) const LEVEL_Z: f64 = 5.0;

/// Each term the scale learns is capped at this many scales (squared).
pub(super) const LEVEL_LEARN_Z: f64 = 3.0;

/// Terms learned uncapped, as a plain mean, before the cap applies.
pub(super) const LEVEL_WARM: u32 = 120;

/// Readings learned before the rule judges.
pub(super) const LEVEL_JUDGE: u32 = 600;

/// Time constant of the scale, in readings.
pub(super) const LEVEL_MEMORY: f64 = 1_200.0;

/// One meter's short-level state (8 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub(super) struct Level {
    /// The short EWMA minus the slow baseline (`learn::Learned::slow`).
    pub dev: f32,
    /// Running mean square of `ema − window mean`.
    pub scale2: f32,
}

/// What [`Level::judge`] found, for [`Level::learn`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct LevelStep {
    /// The EWMA after this evaluation.
    pub ema: f64,
    /// Its distance from the window mean.
    pub s: f64,
    /// The evidence, squared (0 when not judged).
    pub u2: f64,
}

impl Level {
    /// Moves the EWMA by the evaluation's newest reading `x` (of `new`),
    /// clipped to `mean ± LEVEL_CLIP·√var2`, and returns its distance from
    /// the window mean and the evidence `S² / (LEVEL_Z² · max(scale², floor2))`
    /// when `judged` and `readings` (learned so far) reach [`LEVEL_JUDGE`].
    /// `slow` is the slow baseline the EWMA is kept against.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn judge(
        &self,
        x: f64,
        new: u32,
        mean: f64,
        var2: f64,
        slow: f64,
        readings: u32,
        judged: bool,
        floor2: f64,
    ) -> LevelStep {
        let reach = LEVEL_CLIP * var2.sqrt();
        let xc = x.max(mean - reach).min(mean + reach);
        let ema = if readings == 0 {
            xc
        } else {
            let a = if new <= 1 { LEVEL_ALPHA } else { 1.0 - keep(new) };
            let prev = slow + f64::from(self.dev);
            prev + a * (xc - prev)
        };
        let s = ema - mean;
        let u2 = if judged && readings >= LEVEL_JUDGE {
            s * s / (LEVEL_Z * LEVEL_Z * f64::from(self.scale2).max(floor2))
        } else {
            0.0
        };
        if u2.is_finite() && s.is_finite() {
            LevelStep { ema, s, u2 }
        } else {
            LevelStep { ema: mean, s: 0.0, u2: 0.0 }
        }
    }

    /// Keeps the EWMA of `step` against the slow baseline as it is after
    /// learning (`slow`) and, when `teach` (the meter is quiet), learns `S²`
    /// into the scale with the weight of `new` readings among `readings`.
    #[inline]
    pub fn learn(&mut self, step: LevelStep, slow: f64, new: u32, readings: u32, teach: bool) {
        let dev = (step.ema - slow) as f32;
        self.dev = if dev.is_finite() { dev } else { 0.0 };
        if !teach {
            return;
        }
        let s2 = f64::from(self.scale2);
        let t = step.s * step.s;
        let term =
            if readings >= LEVEL_WARM { t.min(LEVEL_LEARN_Z * LEVEL_LEARN_Z * s2) } else { t };
        let seen = (f64::from(readings) + f64::from(new)).min(LEVEL_MEMORY).max(1.0);
        let b = (f64::from(new) / seen).min(1.0);
        let next = (s2 + b * (term - s2)) as f32;
        if next.is_finite() {
            self.scale2 = next;
        }
    }
}

/// `(1 − LEVEL_ALPHA)^min(new, 64)` (past 64 readings the newest has all but
/// replaced the EWMA: 0.875^64 ≈ 2e-4), by repeated multiplication so that the JavaScript mirror
/// (`www/bench/js-worker.js`) computes the same bits.
#[cold]
fn keep(new: u32) -> f64 {
    let mut k = 1.0;
    for _ in 0..new.min(64) {
        k *= 1.0 - LEVEL_ALPHA;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule on readings `xs` (one per evaluation) against a fixed window
    /// mean 0 and sd 1: the largest evidence.
    fn max_u2(xs: impl Iterator<Item = f64>) -> f64 {
        let mut l = Level::default();
        let mut top = 0.0f64;
        for (i, x) in xs.enumerate() {
            let readings = i as u32;
            let step = l.judge(x, 1, 0.0, 1.0, 0.0, readings, true, 1e-12);
            top = top.max(step.u2);
            l.learn(step, 0.0, 1, readings, step.u2 <= 1.0);
        }
        top
    }

    fn noise(seed: u64) -> impl Iterator<Item = f64> {
        // A small LCG's uniform sums: about normal, sd 1.
        let mut s = seed;
        std::iter::repeat_with(move || {
            let mut t = 0.0;
            for _ in 0..12 {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                t += (s >> 11) as f64 / (1u64 << 53) as f64;
            }
            t - 6.0
        })
    }

    #[test]
    fn a_held_shift_breaches_and_a_blip_of_any_height_does_not() {
        for seed in 1..4 {
            let quiet: Vec<f64> = noise(seed).take(2_000).collect();
            assert!(max_u2(quiet.iter().copied()) < 1.0, "seed {seed}: noise alone");
            let mut blips = quiet.clone();
            blips[1_500] = 1e9;
            blips[1_501] = -1e9;
            blips[1_700] = 1e9;
            assert!(max_u2(blips.into_iter()) < 1.0, "seed {seed}: blips");
            let mut shift = quiet.clone();
            for x in shift.iter_mut().skip(1_500).take(40) {
                *x += 3.0;
            }
            assert!(
                max_u2(shift.into_iter()) > 1.0,
                "seed {seed}: a shift of 3 sd held 40 readings"
            );
        }
    }

    #[test]
    fn not_judged_before_it_has_learned_and_never_nan() {
        let l = Level::default();
        assert_eq!(l.judge(1e9, 1, 0.0, 1.0, 0.0, LEVEL_JUDGE - 1, true, 1e-12).u2, 0.0);
        assert_eq!(l.judge(1e9, 1, 0.0, 1.0, 0.0, LEVEL_JUDGE, false, 1e-12).u2, 0.0);
        let s = l.judge(f64::NAN, 3, 0.0, f64::INFINITY, 0.0, LEVEL_JUDGE, true, 1e-12);
        assert!(s.u2 == 0.0 && s.ema.is_finite());
    }
}
