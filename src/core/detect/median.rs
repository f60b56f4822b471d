//! The median rule: the median of three consecutive readings scored against
//! the window, with a threshold widened only for that median's own tails
//! (docs/DETECTION.md, "Median").
//!
//! The spike rule widens its threshold for the tails of single readings: a
//! count meter whose normal traffic has rare one-reading bursts (×1.5–2.5,
//! 0.4% of readings) has a window kurtosis that widens 4 → 7.4, and a surge
//! of ×3 for 90 readings scores 5–6 there: its breaches never make 3 of 5.
//! The median of three consecutive readings does not see a lone burst at
//! all, so its tails are light on such a meter, while a meter whose heavy
//! tails are sustained (a tap's bursts of 10–90 s) shows them in the median
//! as much as in the readings. So this rule learns the kurtosis of the
//! median's distance from the window mean and widens by that: a surge that
//! holds scores a breach on each reading. A breach is a spike breach, but
//! the rule keeps its own vote (3 of 5, `spikeVotesNeeded` of
//! `spikeVotesOf`): the median of three ignores a one-reading blip and makes
//! at most two breaches of a two-reading one, which also breached as readings
//! two evaluations earlier, so a shared vote would count it four times.
//!
//! Per reading, in `observe`: the median (the excursion rule's, of the three
//! readings before this one), its distance from the window mean, two running
//! moments (a division only in the first [`MEDIAN_MEMORY`] readings) and a
//! comparison; a division only on a breach. Per evaluation: the evidence
//! found is taken, and the threshold is recomputed while the spike vote is
//! quiet. 40 bytes a meter.

use super::super::config::Config;
use super::rules;

/// The memory of the median's moments, in readings: a plain mean until then,
/// an EWMA after (the window's default length).
pub(super) const MEDIAN_MEMORY: u32 = 1_200;

/// One meter's median rule state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Median {
    /// Mean square of the median's distance from the window mean.
    m2: f64,
    /// Mean fourth power of that distance.
    m4: f64,
    /// The threshold in force times the meter's long-run window variance:
    /// the least square distance that breaches (the spike rule's variance
    /// floor, see `learn::Learned::spike_var`).
    floor_limit2: f64,
    /// The threshold in force, squared (`spikeZ` widened for the median's
    /// tails); frozen while a spike vote is open.
    t2: f32,
    /// The strongest evidence found since the last evaluation, squared
    /// (0: none).
    found_u2: f32,
    /// Medians learned (saturating).
    n: u32,
    /// The rule's own vote history, as the spike rule's (`Verdicts::votes`):
    /// bit 0 the newest evaluation, a set bit a breach. Its own, so that a
    /// two-reading blip, which breaches twice as readings and then twice as
    /// medians, never makes three.
    pub votes: u32,
}

impl Default for Median {
    fn default() -> Self {
        Median {
            m2: 0.0,
            m4: 0.0,
            floor_limit2: 0.0,
            t2: f32::INFINITY,
            found_u2: 0.0,
            n: 0,
            votes: 0,
        }
    }
}

impl Median {
    /// Takes the median `median` of the three readings before the newest,
    /// against the window (mean `mean`, floored variance `var`) before the
    /// newest; `warm` when the window holds `warmup` readings.
    #[inline]
    pub fn observe(&mut self, median: f64, mean: f64, var: f64, warm: bool) {
        let d = median - mean;
        let d2 = d * d;
        let n = self.n.saturating_add(1);
        self.n = n;
        let w =
            if n >= MEDIAN_MEMORY { 1.0 / f64::from(MEDIAN_MEMORY) } else { 1.0 / f64::from(n) };
        self.m2 += (d2 - self.m2) * w;
        self.m4 += (d2 * d2 - self.m4) * w;
        let limit2 = f64::from(self.t2) * var;
        let limit2 = if limit2 > self.floor_limit2 { limit2 } else { self.floor_limit2 };
        if warm && d2 > limit2 {
            let u2 = (d2 / limit2) as f32;
            if u2 > self.found_u2 {
                self.found_u2 = u2;
            }
        }
    }

    /// The strongest evidence found since the last call, squared (> 1: a
    /// breach), and forgets it.
    #[inline]
    pub fn take(&mut self) -> f64 {
        let u2 = f64::from(self.found_u2);
        self.found_u2 = 0.0;
        u2
    }

    /// At an evaluation whose evidence was `u2` (`take`): records the vote
    /// (`warm`: the window holds `warmup` readings; none is kept before) and
    /// returns whether it breached; then the threshold from the median's
    /// tails when the vote is quiet (`light_widen` is `rules::widen(0.0)`),
    /// and its floor from the meter's long-run window variance `long_var`.
    #[inline]
    pub fn settle(
        &mut self,
        u2: f64,
        warm: bool,
        long_var: f64,
        light_widen: f32,
        cfg: &Config,
    ) -> bool {
        let breach = warm && u2 > 1.0;
        self.votes =
            if warm { ((self.votes << 1) | u32::from(breach)) & rules::vote_mask(cfg) } else { 0 };
        if self.votes == 0 {
            let widen = if rules::kurtosis_surely_light(self.m4, self.m2 * self.m2) {
                light_widen
            } else if self.m2 > 0.0 {
                rules::widen(self.m4 / (self.m2 * self.m2) - 3.0, cfg) as f32
            } else {
                light_widen
            };
            let t = cfg.spike_z as f32 * widen;
            self.t2 = t * t;
        }
        self.floor_limit2 = f64::from(self.t2) * long_var;
        breach
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the rule over readings `xs` against a fixed window (mean 0,
    /// variance 1), settling after each reading; returns which breached.
    fn run(xs: &[f64]) -> Vec<bool> {
        let cfg = Config::default();
        let light = rules::widen(0.0, &cfg) as f32;
        let mut m = Median::default();
        let mut out = Vec::new();
        for i in 3..xs.len() {
            let mut three = [xs[i - 3], xs[i - 2], xs[i - 1]];
            three.sort_by(f64::total_cmp);
            m.observe(three[1], 0.0, 1.0, true);
            let u2 = m.take();
            out.push(m.settle(u2, true, 1.0, light, &cfg));
        }
        out
    }

    fn normalish(i: usize) -> f64 {
        // A deterministic spread of about 1 (no randomness needed here).
        ((i as f64 * 0.618_034).fract() - 0.5) * 3.4
    }

    #[test]
    fn a_lone_blip_never_breaches_a_held_level_does() {
        let mut xs: Vec<f64> = (0..2_000).map(normalish).collect();
        xs[1_500] = 1e6;
        assert!(!run(&xs).contains(&true));
        // Two readings: two breaches, never the vote's three.
        xs[1_500] = 0.0;
        xs[1_600] = 1e6;
        xs[1_601] = 1e6;
        assert_eq!(run(&xs).iter().filter(|&&b| b).count(), 2);
        let mut xs: Vec<f64> = (0..2_000).map(normalish).collect();
        for x in &mut xs[1_800..1_810] {
            *x += 6.0;
        }
        let breaches = run(&xs).iter().filter(|&&b| b).count();
        assert!(breaches >= 8, "{breaches}");
    }

    #[test]
    fn sustained_heavy_tails_widen_the_threshold() {
        // A tap: mostly 0, bursts of 40 readings at 6 every 800.
        let tap = |i: usize| if i % 800 < 40 { 6.0 } else { 0.0 };
        let xs: Vec<f64> = (0..8_000).map(tap).collect();
        let cfg = Config::default();
        let mut m = Median::default();
        for i in 3..xs.len() {
            let mut three = [xs[i - 3], xs[i - 2], xs[i - 1]];
            three.sort_by(f64::total_cmp);
            m.observe(three[1], 0.3, 1.7, true);
        }
        let _ = m.settle(0.0, true, 1.7, rules::widen(0.0, &cfg) as f32, &cfg);
        let t = cfg.spike_z * cfg.spike_widen_max;
        assert_eq!(f64::from(m.t2), t * t);
    }
}
