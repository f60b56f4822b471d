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
//! holds scores a breach on each reading. The rule keeps its own vote over
//! its last `spikeVotesOf` medians (`spikeVotesNeeded` of them breaching, 3 of
//! 5): the median of three ignores a one-reading blip and makes at most two
//! breaches of a two-reading one, which also breached as readings two
//! evaluations earlier, so the spike rule's vote would count it four times.
//! A vote that closes is a finding, handed to the excursion rule's record,
//! so it raises a spike as a found excursion does, without the spike vote.
//!
//! Everything runs in `observe`, per reading, so the tick is unchanged: the
//! median (the excursion rule's, of the three readings before this one), its
//! distance from the window mean, a comparison and the vote; two running
//! moments (a division only in the first [`MEDIAN_MEMORY`] readings); the
//! threshold while the vote is quiet (no division on a meter whose medians
//! are surely light-tailed); a division only when a vote closes. 32 bytes a
//! meter.

use super::super::config::Config;
use super::rules;

/// The memory of the median's moments, in readings: a plain mean until then,
/// an EWMA after. `baselineReadings`' default, the memory of the long-run
/// window variance the spike rule floors by: with the window's 1,200 a tap
/// quiet for longer than that forgot its bursts (its floor and its tails),
/// and its next burst was found (seed 1: 8 → 53 false alerts on `sparse`).
pub(super) const MEDIAN_MEMORY: u32 = 7_200;

/// One meter's median rule state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Median {
    /// Mean square of the median's distance from the window mean; also the
    /// floor of the variance the distance is judged against (a window flat at
    /// one value, a pump at rest, says nothing of the meter's spread).
    m2: f64,
    /// Mean fourth power of that distance.
    m4: f64,
    /// The threshold in force, squared (`spikeZ` widened for the median's
    /// tails); frozen while the vote is open.
    t2: f32,
    /// Medians learned (saturating).
    n: u32,
    /// The rule's own vote history: bit 0 the newest median, a set bit a
    /// breach; the low `spikeVotesOf` bits are kept.
    votes: u32,
    /// The excursion rule's learned least step (`excursion::learn_step`):
    /// the least height of a one-reading hop that came straight back, seen
    /// twice; a candidate seen once kept negated; −∞ before any. Kept here, in the 4 bytes this record
    /// had spare, so the excursion record stays one 64-byte line.
    pub step: f32,
}

impl Default for Median {
    fn default() -> Self {
        Median { m2: 0.0, m4: 0.0, t2: f32::INFINITY, n: 0, votes: 0, step: f32::NEG_INFINITY }
    }
}

impl Median {
    /// Takes the median `median` of the three readings before the newest,
    /// against the window (mean `mean`, floored variance `var`, at least the
    /// rounding variance) before the newest; `warm` when the window holds `warmup` readings (no vote is
    /// kept before). Returns the evidence squared (> 1) when this median
    /// closes a vote, else 0.
    #[inline]
    pub fn observe(&mut self, median: f64, mean: f64, var: f64, warm: bool, cfg: &Config) -> f64 {
        let d = median - mean;
        let d2 = d * d;
        let scale2 = if var > self.m2 { var } else { self.m2 };
        let limit2 = f64::from(self.t2) * scale2;
        let breach = warm && d2 > limit2;
        self.votes =
            if warm { ((self.votes << 1) | u32::from(breach)) & rules::vote_mask(cfg) } else { 0 };
        let found = if breach && self.votes.count_ones() >= cfg.spike_votes_needed {
            d2 / limit2
        } else {
            0.0
        };
        let n = self.n.saturating_add(1);
        self.n = n;
        let w =
            if n >= MEDIAN_MEMORY { 1.0 / f64::from(MEDIAN_MEMORY) } else { 1.0 / f64::from(n) };
        self.m2 += (d2 - self.m2) * w;
        self.m4 += (d2 * d2 - self.m4) * w;
        if self.votes == 0 {
            self.t2 = self.threshold2(cfg);
        }
        found
    }

    /// The variance of rounding to the meter's quantum `q`
    /// (`excursion::quantum`), `q²/12` (0 before a step is learned): the least spread a meter quantised to it
    /// can be said to have, which floors the spike rule's and this rule's
    /// variance (docs/DETECTION.md, "Quantised meters").
    #[inline]
    pub fn rounding_variance(q: f64) -> f64 {
        q * q / 12.0
    }

    /// The threshold squared for the median's tails: `spikeZ` when they are
    /// surely light (`widen(0)` is exactly 1, as `spikeWidenMax` ≥ 1), else
    /// `spikeZ · widen(g2)` (`rules::widen`).
    #[inline]
    fn threshold2(&self, cfg: &Config) -> f32 {
        let z = cfg.spike_z as f32;
        let t = if rules::kurtosis_surely_light(self.m4, self.m2 * self.m2) || self.m2 <= 0.0 {
            z
        } else {
            z * rules::widen(self.m4 / (self.m2 * self.m2) - 3.0, cfg) as f32
        };
        t * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the rule over readings `xs` against a fixed window (mean 0,
    /// variance `var`); returns which medians closed a vote.
    fn run(xs: &[f64], var: f64) -> Vec<bool> {
        let cfg = Config::default();
        let mut m = Median::default();
        (3..xs.len())
            .map(|i| {
                let mut three = [xs[i - 3], xs[i - 2], xs[i - 1]];
                three.sort_by(f64::total_cmp);
                m.observe(three[1], 0.0, var, true, &cfg) > 1.0
            })
            .collect()
    }

    fn normalish(i: usize) -> f64 {
        // A deterministic spread of about 1 (no randomness needed here).
        ((i as f64 * 0.618_034).fract() - 0.5) * 3.4
    }

    #[test]
    fn blips_never_close_the_vote_a_held_level_does() {
        let mut xs: Vec<f64> = (0..2_000).map(normalish).collect();
        xs[1_500] = 1e6;
        xs[1_700] = 1e6;
        xs[1_701] = 1e6;
        assert!(!run(&xs, 1.0).contains(&true));
        let mut xs: Vec<f64> = (0..2_000).map(normalish).collect();
        for x in &mut xs[1_800..1_810] {
            *x += 6.0;
        }
        let found: Vec<usize> = run(&xs, 1.0).iter().positions();
        // The medians of readings 1_800.. breach from the reading after the
        // second (index i is the median before reading i + 3).
        assert!(found.len() >= 6 && found[0] == 1_800 - 3 + 4, "{found:?}");
    }

    #[test]
    fn sustained_heavy_tails_widen_the_threshold() {
        // A tap: mostly 0, bursts of 40 readings at 6 every 800, against its
        // window (mean 0.3, variance 1.7): the bursts' medians are as heavy as
        // its readings, so the threshold widens to its cap and none is found.
        let tap = |i: usize| if i % 800 < 40 { 6.0 } else { 0.0 };
        let xs: Vec<f64> = (0..8_000).map(tap).map(|x| x - 0.3).collect();
        let found = run(&xs, 1.7);
        assert!(!found[1_200..].contains(&true));
        let cfg = Config::default();
        let mut m = Median::default();
        for i in 3..xs.len() {
            let mut three = [xs[i - 3], xs[i - 2], xs[i - 1]];
            three.sort_by(f64::total_cmp);
            let _ = m.observe(three[1], 0.0, 1.7, true, &cfg);
        }
        let t = cfg.spike_z * cfg.spike_widen_max;
        assert_eq!(f64::from(m.threshold2(&cfg)), t * t);
    }

    /// Indices of `true`.
    trait Positions {
        fn positions(self) -> Vec<usize>;
    }
    impl<'a, I: Iterator<Item = &'a bool>> Positions for I {
        fn positions(self) -> Vec<usize> {
            self.enumerate().filter(|(_, &b)| b).map(|(i, _)| i).collect()
        }
    }
}
