//! The excursion rule: a short run of readings far from the meter's level
//! just before it, that then returns (docs/DETECTION.md, "Excursion").
//!
//! The spike rule scores a reading against the window's mean and spread; on a
//! bimodal meter (a pump's 0/12 square wave) or a heavy-tailed one that spread
//! hides a spike of 8 sd during the low phase. This rule scores each reading
//! against a robust short baseline instead, the median of the three readings
//! before it, in units of the meter's own typical distance from that median
//! (an average of |x − median| over the readings that stayed near it), never
//! below `EXCURSION_WINDOW_SHARE` of the window's standard deviation (so a
//! plateau's near-zero spread, a tap between bursts, cannot make its noise
//! look huge). A reading beyond `EXCURSION_Z` of those units opens an
//! excursion; the level it left is frozen as its base. The excursion is
//! *found* when, after at least `spikeVotesNeeded` and at most `spikeVotesOf`
//! readings all beyond the limit on the same side of the base, a reading
//! comes back. So a one- or two-reading blip never counts (the vote's rule),
//! and a step or a square wave's edge never does either: its readings stay
//! away longer than `spikeVotesOf`, and the excursion is dropped. Blips that
//! come densely (faster than one per `BLIP_WEIGHT` readings, sustained) are
//! found too: the record's spare byte keeps their leaky count.
//!
//! All of it runs in `observe`, O(1) per reading and without a division
//! except on the rare readings beyond the limit; an evaluation only takes
//! what was found. 64 bytes a meter.

use super::super::config::Config;

/// How far from the short baseline a reading must be to count, in units of
/// the learned scale.
pub(super) const EXCURSION_Z: f64 = 5.0;
/// The scale's floor, as a share of the window's standard deviation.
pub(super) const EXCURSION_WINDOW_SHARE: f64 = 0.5;
/// The scale's memory, in readings: a plain mean until then, an EWMA after.
pub(super) const EXCURSION_MEMORY: u32 = 1_200;

/// What one blip (an excursion of fewer than `spikeVotesNeeded` readings that
/// returned) adds to a meter's blip density; every reading takes 1 away.
pub(super) const BLIP_WEIGHT: u8 = 16;
/// The least evidence (weakest (|x − base| / limit)² of its readings) of a
/// blip that counts toward the density: twice the limit. A meter whose
/// normal readings include dense blips has them in its window's spread,
/// which then floors the limit (`EXCURSION_WINDOW_SHARE`) at over half
/// their height (blips of height h once per 16 readings: sd ≥ h/4, limit
/// ≥ 0.625·h), so they do not count.
pub(super) const BLIP_U2: f64 = 4.0;
/// The blip density at which a blip is found as a spike without the vote:
/// blips coming faster than one per `BLIP_WEIGHT` readings, sustained.
pub(super) const BLIP_DENSE: u8 = 64;

/// One meter's excursion state.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C, align(64))]
pub(super) struct Excursion {
    /// The three newest readings, oldest first.
    last: [f64; 3],
    /// The median of the three readings before the open excursion.
    base: f64,
    /// Average |x − median of the three before| over readings that stayed
    /// within the limit.
    scale: f64,
    /// The weakest evidence among the open excursion's readings:
    /// (|x − base| / limit)².
    open_u2: f64,
    /// The strongest evidence of an excursion found since the last
    /// evaluation, or of a median vote closed (`found`); 0 when none was.
    found_u2: f64,
    /// Readings seen (saturating).
    readings: u32,
    /// Readings in the open excursion (0: none open).
    open: u8,
    /// The open excursion is above its base.
    up: bool,
    /// The window's spread was within the meter's rounding at its newest
    /// reading (variance below (quantum/2)², the most two neighbouring
    /// values can have): set in `observe` for the stuck rule, which the tick
    /// judges without the `Median` record the quantum is kept in.
    coarse: bool,
    /// Blip density: a leaky count of blips, `BLIP_WEIGHT` per blip, less 1
    /// per reading (saturating both ways).
    blips: u8,
}

/// The median of three numbers (finite readings), without a branch: three
/// `f64x2` pseudo-minima and maxima (one `minpd`/`maxpd` each in V8), where
/// the branches below go either way from meter to meter. Only a tie of +0
/// and −0 can give the other zero, which changes no result (`x − median`
/// then differs only in its zero's sign, and every use squares it, takes
/// its absolute value or compares it with 0).
#[cfg(target_arch = "wasm32")]
#[inline]
fn median3(a: f64, b: f64, c: f64) -> f64 {
    use core::arch::wasm32::{f64x2_extract_lane, f64x2_pmax, f64x2_pmin, f64x2_splat};
    let (a, b, c) = (f64x2_splat(a), f64x2_splat(b), f64x2_splat(c));
    let (lo, hi) = (f64x2_pmin(a, b), f64x2_pmax(a, b));
    f64x2_extract_lane::<0>(f64x2_pmax(lo, f64x2_pmin(hi, c)))
}

/// The median of three numbers (finite readings).
#[cfg(not(target_arch = "wasm32"))]
#[inline]
fn median3(a: f64, b: f64, c: f64) -> f64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    if c <= lo {
        lo
    } else if c >= hi {
        hi
    } else {
        c
    }
}

/// The meter's quantum from its learned `step` (`Median::step`): the step
/// once confirmed (positive), else 0 (no slack: a candidate is negative, and
/// none is −∞). One select, no branch: it is taken on every reading.
#[inline]
pub(super) fn quantum(step: f32) -> f64 {
    super::rules::max_select(f64::from(step), 0.0)
}

/// Learns the least step from `d`, the height of a one-reading hop that
/// came straight back (readings b, c, x with x == b ≠ c: how a quantised
/// meter's rounding tips one reading to the next value; a level's edge, a
/// square wave's, never comes back at the next reading, and a meter with
/// continuous values never reads exactly the same value twice in three).
/// The least such `d` is first a *candidate* (kept negated) and becomes the
/// step only when a second hop of the same height (as `f32`s) comes: a
/// quantised meter shows its quantum again and again, while a lone blip on a
/// meter that never varied before shows its height once, and must not
/// become the slack that hides a later spike. A smaller `d` makes a new
/// candidate. −∞ before any.
#[inline]
fn learn_step(step: &mut f32, d: f64) {
    let d = d as f32;
    let s = *step;
    // Rare once learned, so the branch predicts well.
    if d > 0.0 && d < s.abs() {
        *step = -d;
    } else if s < 0.0 && d == -s {
        *step = d;
    }
}

/// |r| less the step `q`, never below 0: the distance rounding to `q` cannot
/// explain. The existing `rules::positive_part`, whose branch-free mask
/// suits a test that goes either way from one quantised meter's reading to
/// the next (its +0 for a ≤ 0 is the old `if`'s 0).
#[inline]
fn beyond(r: f64, q: f64) -> f64 {
    super::rules::positive_part(r.abs() - q)
}

impl Excursion {
    /// Takes reading `x`; `var` is the window's floored variance before it,
    /// `q` the meter's `quantum` and `step` its least step (`Median::step`,
    /// learned here, see `learn_step`).
    /// Returns the median of the three readings before `x` (the median
    /// rule's, `median`), or `None` before there were three.
    #[inline]
    pub fn observe(
        &mut self,
        x: f64,
        var: f64,
        q: f64,
        step: &mut f32,
        cfg: &Config,
    ) -> Option<f64> {
        let readings = self.readings;
        self.coarse = 4.0 * var < q * q;
        self.blips = self.blips.saturating_sub(1);
        let median = if readings >= 3 {
            let [a, b, c] = self.last;
            let median = median3(a, b, c);
            self.judge(x, median, var, q, cfg);
            Some(median)
        } else {
            None
        };
        // A one-reading hop that came straight back (b, c, x with x == b ≠ c):
        // the rounding's hop on a quantised meter, never a level's edge.
        let [_, b, c] = self.last;
        if readings >= 2 && x == b && c != x {
            learn_step(step, (c - x).abs());
        }
        self.readings = readings.saturating_add(1);
        // Shifted, not a rotating slot: the slot's wrap was a branch that
        // goes either way from one meter's reading to the next's.
        self.last = [b, c, x];
        median
    }

    /// Judges reading `x` against `median`, that of the three before it.
    ///
    /// Every distance is taken less the meter's `quantum`, the least height
    /// of a one-reading hop that came straight back, seen twice
    /// (`learn_step`): on a quantised
    /// meter that is its quantum, and a reading and a median each rounded to
    /// it may be a whole quantum apart when the values they were rounded from
    /// are not apart at all. So a meter that reads a few values of a coarse
    /// quantum (a bandwidth meter at 4 ± 1 steps of 100 MB) is not found to
    /// leave its level each time its rounding tips three readings the other
    /// way (docs/DETECTION.md, "Quantised meters"); a meter with continuous
    /// values learns none.
    fn judge(&mut self, x: f64, median: f64, var: f64, q: f64, cfg: &Config) {
        let share2 = EXCURSION_WINDOW_SHARE * EXCURSION_WINDOW_SHARE * var;
        let scale2 = self.scale * self.scale;
        let limit2 = EXCURSION_Z * EXCURSION_Z * if scale2 > share2 { scale2 } else { share2 };
        if self.open > 0 {
            let r = x - self.base;
            let a = beyond(r, q);
            if (r > 0.0) == self.up && a * a > limit2 {
                if u32::from(self.open) >= cfg.spike_votes_of {
                    // Away longer than a spike: a new level, not an excursion.
                    self.open = 0;
                } else {
                    self.open += 1;
                    let u2 = a * a / limit2;
                    if u2 < self.open_u2 {
                        self.open_u2 = u2;
                    }
                }
            } else {
                // Back within half the limit of the base: a spike that
                // returned. Anywhere else (between, or far on the other side)
                // it was not one.
                let returned = 4.0 * a * a <= limit2;
                if returned && u32::from(self.open) < cfg.spike_votes_needed {
                    // A blip: alone it never counts; coming densely it does,
                    // if it was at least twice the limit away.
                    if self.open_u2 >= BLIP_U2 {
                        self.blips = self.blips.saturating_add(BLIP_WEIGHT);
                        if self.blips >= BLIP_DENSE && self.open_u2 > self.found_u2 {
                            self.found_u2 = self.open_u2;
                        }
                    }
                } else if returned && self.open_u2 > self.found_u2 {
                    self.found_u2 = self.open_u2;
                }
                self.open = 0;
            }
            return;
        }
        let r = x - median;
        let a = beyond(r, q);
        if a * a > limit2 {
            if self.readings >= cfg.warmup {
                self.open = 1;
                self.up = r > 0.0;
                self.base = median;
                self.open_u2 = a * a / limit2;
            }
            return;
        }
        let seen = f64::from(self.readings.min(EXCURSION_MEMORY));
        self.scale += (r.abs() - self.scale) / seen;
    }

    /// Adds a finding of the median rule (`median`), evidence `u2` (0:
    /// none): like an excursion found, it raises a spike without the spike
    /// vote, so the evaluation takes both as one.
    #[inline]
    pub fn found(&mut self, u2: f64) {
        if u2 > self.found_u2 {
            self.found_u2 = u2;
        }
    }

    /// Whether the window's spread was within the meter's rounding at the
    /// newest reading (`coarse`): its runs of one value are then set by
    /// where its level sits between two quanta, not by the meter, and the
    /// stuck rule does not judge them (docs/DETECTION.md, "Quantised meters").
    #[inline]
    pub fn coarse(&self) -> bool {
        self.coarse
    }

    /// The strongest evidence found since the last call, squared (> 1: an
    /// excursion was found), and forgets it.
    #[inline]
    pub fn take(&mut self) -> f64 {
        let u2 = self.found_u2;
        self.found_u2 = 0.0;
        u2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(xs: &[f64], var: f64) -> Vec<bool> {
        let cfg = Config::default();
        let mut e = Excursion::default();
        let mut step = f32::NEG_INFINITY;
        xs.iter()
            .map(|&x| {
                let _ = e.observe(x, var, quantum(step), &mut step, &cfg);
                e.take() > 1.0
            })
            .collect()
    }

    /// A noiseless 0/12 square wave with readings `spike` added at `at`.
    fn square(spike: &[f64], at: usize) -> Vec<f64> {
        (0..4_000)
            .map(|i| {
                let base = if (i / 300) % 3 == 0 { 12.0 } else { 0.0 };
                base + if i >= at { spike.get(i - at).copied().unwrap_or(0.0) } else { 0.0 }
            })
            .collect()
    }

    #[test]
    fn square_edges_and_blips_are_not_excursions() {
        let var = 32.0;
        assert!(!run(&square(&[], 0), var).contains(&true));
        assert!(!run(&square(&[16.0], 1_000), var).contains(&true));
        assert!(!run(&square(&[16.0, 16.0], 1_000), var).contains(&true));
    }

    #[test]
    fn a_three_to_five_reading_spike_is_found_on_its_return() {
        for len in 3..=5 {
            let found = run(&square(&[16.0; 5][..len], 1_000), 32.0);
            let at: Vec<usize> = (0..found.len()).filter(|&i| found[i]).collect();
            assert_eq!(at, vec![1_000 + len], "length {len}");
        }
        // Six readings away: a level, not a spike.
        assert!(!run(&square(&[16.0; 6], 1_000), 32.0).contains(&true));
    }

    /// A level of 20 with a small deterministic wobble, and a one-reading
    /// blip of +40 at every multiple of `every` from `from` to `to`.
    fn blips(every: usize, from: usize, to: usize) -> Vec<f64> {
        (0..4_000)
            .map(|i| {
                let wobble = [0.3, -0.2, 0.1, -0.4, 0.2][i % 5];
                let blip = i >= from && i < to && (i - from) % every == 0;
                20.0 + wobble + if blip { 40.0 } else { 0.0 }
            })
            .collect()
    }

    #[test]
    fn dense_blips_are_found_and_sparse_ones_never() {
        let var = 1.0;
        // One blip every 8 readings for 150: found within that stretch.
        let found = run(&blips(8, 1_000, 1_150), var);
        let at: Vec<usize> = (0..found.len()).filter(|&i| found[i]).collect();
        assert!(!at.is_empty() && at.iter().all(|&i| (1_000..1_150).contains(&i)), "{at:?}");
        // Every 16 readings or fewer, however long: never (the density drains
        // as fast as such blips fill it), nor a lone blip.
        for every in [16, 17, 40, 300] {
            assert!(!run(&blips(every, 100, 4_000), var).contains(&true), "every {every}");
        }
        // A meter whose normal is a blip every 8 readings: its window's
        // spread (variance 40² · 1/8 · 7/8 = 175) sets the limit, so its
        // blips are within twice it and never count.
        assert!(!run(&blips(8, 100, 4_000), 175.0).contains(&true));
    }

    /// `xs` through one record; which readings found an excursion, and the
    /// learned step at the end.
    fn run_step(xs: &[f64], var: f64) -> (Vec<usize>, f32) {
        let cfg = Config::default();
        let mut e = Excursion::default();
        let mut step = f32::NEG_INFINITY;
        let found = xs
            .iter()
            .enumerate()
            .filter_map(|(i, &x)| {
                let _ = e.observe(x, var, quantum(step), &mut step, &cfg);
                (e.take() > 1.0).then_some(i)
            })
            .collect();
        (found, step)
    }

    /// A meter quantised to 0.1 reading 0.4, its rounding tipping one
    /// reading to 0.3 or 0.5 every 13 and 17, and three readings to 0.3
    /// every 97 (as b-00135 in the feed: window sd 0.035, so one quantum is
    /// more than the unquantised limit of 5 × 0.0175).
    fn coarse(i: usize) -> f64 {
        if i % 97 < 3 {
            0.3
        } else if i % 13 == 0 {
            0.5
        } else if i % 17 == 0 {
            0.3
        } else {
            0.4
        }
    }

    #[test]
    fn a_quantised_meters_rounding_is_no_excursion_a_spike_of_three_quanta_is() {
        let var = 0.035 * 0.035;
        let xs: Vec<f64> = (0..4_000).map(coarse).collect();
        let (found, step) = run_step(&xs, var);
        assert_eq!(found, Vec::<usize>::new());
        assert_eq!(step, 0.1f32);
        // Without the step, its rounding's three-reading dips are found.
        let cfg = Config::default();
        let mut e = Excursion::default();
        let mut none = f32::NEG_INFINITY;
        let dips = xs
            .iter()
            .filter(|&&x| {
                let _ = e.observe(x, var, quantum(none), &mut none, &cfg);
                none = f32::NEG_INFINITY;
                e.take() > 1.0
            })
            .count();
        assert!(dips > 30, "{dips}");
        // Three readings three quanta up: still a spike.
        let mut xs = xs;
        xs[3_050..3_053].copy_from_slice(&[0.7; 3]);
        assert_eq!(run_step(&xs, var).0, vec![3_053]);
    }

    #[test]
    fn edges_and_a_lone_blip_teach_no_step() {
        // A noiseless square wave: its edges never come back at the next
        // reading, so no step, and its spikes are found as before.
        let (_, step) = run_step(&square(&[], 0), 32.0);
        assert_eq!(step, f32::NEG_INFINITY);
        // A flat meter's one blip is a candidate only: a later spike of the
        // same height is found.
        let mut xs = vec![5.0; 3_000];
        xs[1_000] = 9.0;
        xs[2_000..2_003].copy_from_slice(&[9.0; 3]);
        let (found, step) = run_step(&xs, 0.25);
        assert_eq!(found, vec![2_003]);
        assert_eq!(step, -4.0);
    }

    #[test]
    fn median_of_three() {
        for (a, b, c, m) in [(1.0, 2.0, 3.0, 2.0), (3.0, 1.0, 2.0, 2.0), (2.0, 3.0, 1.0, 2.0)] {
            assert_eq!(median3(a, b, c), m);
        }
    }
}
