//! What each meter has learned about its own normal behaviour, in O(1) state
//! updated once per evaluation (never on the ingest path).
//!
//! - a **slow baseline** of the window mean (an EWMA with time constant
//!   `baselineReadings`) and the mean square of the window mean's distance from
//!   it (time constant 4·`baselineReadings`): the drift rule's reference and
//!   its own, autocorrelation-aware, scale;
//! - the long-run average of the window's variance and fourth central moment:
//!   the spike rule's floor, so a window that happens to be flat (a pump that
//!   has been off for ten minutes) does not make the meter's ordinary jumps
//!   look infinite;
//! - the mean square of the window variance's relative excess over that
//!   long-run variance: the variance rule's own scale;
//! - the meter's runs of identical readings: the value it rests at longest
//!   (its plateau), the longest completed run there and the longest completed
//!   run at any other value: the stuck rule's reference.
//!
//! Every average is the plain running mean until `baselineReadings` readings
//! have been learned, then an EWMA: no start-up bias, no state per sample.

use super::super::config::Config;
use super::super::moments::Moments;
use super::rules;

/// The scale of the drift statistic is learned this many times slower than
/// the slow baseline it is measured against: the distance from the baseline is
/// itself correlated over about one baseline time constant, so its mean square
/// needs several of them to settle.
pub(super) const SCALE_MEMORY: f64 = 4.0;

/// Each term the drift scale learns, `(window mean − slow)²`, is capped at
/// `(DRIFT_LEARN_Z · scale)²` (and never above the drift threshold's
/// `(driftZ · scale)²`). A cap bounds how fast the scale can grow: by at most
/// a factor `exp((DRIFT_LEARN_Z² − 1) / (SCALE_MEMORY · baselineReadings))`
/// per reading. At the threshold's 5 that was e^6 ≈ 400 in scale² an hour
/// with the defaults, so a slow ramp (a drift over an hour, a leak building
/// up) taught the scale its own deviation and stayed under the threshold
/// (measured: the learned scale² went 0.08 → 3.1 during one 1-hour ramp on
/// AR(1) φ 0.9, and the next drifts were missed). At 3 it is at most 7.4
/// an hour, while a normal statistic loses only 0.5% of its mean square to
/// the cap (E[min(Z², 9)] = 0.995 for a normal Z).
pub(super) const DRIFT_LEARN_Z: f64 = 3.0;

/// [`DRIFT_LEARN_Z`] applies to meters whose readings have a long-run excess
/// kurtosis below this; heavier-tailed ones keep the threshold's cap. On a
/// tap (mostly 0, bursts) a burst moves the window mean far for a whole
/// window, so its normal spread is carried by rare large terms: capped at
/// 3 scales it was learned too small, and the tap raised about 30 false
/// drifts a day after its first incident (measured on the corpus, seeds 1, 3).
pub(super) const DRIFT_LEARN_G2: f64 = 1.0;

/// A spike alert caps what the long-run variance and 4th moment learn while
/// its readings may be in the window (`Teach::var_cap`) only on a meter whose
/// long-run excess kurtosis is below this when it is raised (Laplace's 3). A
/// tap or a pump (excess kurtosis 38 and more at their alerts on the meters
/// corpus) alerts on its own bursts and edges, and with the cap learned its
/// tails too small: `sparse` 6 → 15 false alerts (seed 2). A wandering
/// temperature's first failure dip is raised at 1.02 (the dip's first
/// readings are in the moments already).
pub(super) const SPIKE_CAP_G2: f64 = 3.0;

/// While a spike incident may be in the window, the long-run variance learns
/// at most this many times itself (the variance rule's least ratio,
/// [`VARIANCE_RATIO_MIN`])...
pub(super) const VAR_CAP: f64 = VARIANCE_RATIO_MIN;

/// ...and the long-run 4th moment at most this many times itself, `2·VAR_CAP
/// − 1`: with both caps binding, each term grows `ln var` by about `a·2` and
/// `ln m4` by `a·4` (`a` the learning weight), so the kurtosis `m4/var²`
/// keeps its value; with `VAR_CAP²` (9) it grows as fast as the variance, and
/// a meter's next alert may find it past [`SPIKE_CAP_G2`].
pub(super) const M4_CAP: f64 = 2.0 * VAR_CAP - 1.0;

/// The variance rule's threshold, in multiples of the root mean square of the
/// meter's own normal excesses of window variance over long-run variance.
pub(super) const VARIANCE_Z: f64 = 5.0;

/// The variance rule never breaches below this ratio of window to long-run
/// variance, however steady the meter was while it learned.
pub(super) const VARIANCE_RATIO_MIN: f64 = 3.0;

/// The variance rule needs its excess carried by at least this many readings
/// (`n·(excess m2)² / excess m4`, exact for k equal outliers): one or two
/// readings of any height (a blip) never make a variance breach.
pub(super) const VARIANCE_READINGS: f64 = 10.0;

/// On a meter with light tails (long-run excess kurtosis under
/// [`SPIKE_CAP_G2`]) and no spike incident in view, the variance rule holds
/// what it learns (the long-run variance and 4th moment, its scale) from
/// this share of its limit on (u² over 1/4: within half the limit of a
/// breach), not only while it breaches. An explosion enters the window over
/// a window's readings; learned while it built up, it raised the very limit
/// it was judged against (AR(1) φ 0.99, sd × 4: the limit² 11 → 25 and the
/// long-run variance 3.6 → 5.4 in 1,200 readings, and the window's 5.9
/// times the variance learned at its onset never breached;
/// `tests/detection_learned.rs`). A heavy-tailed meter's window variance
/// swings past half its limit with its bursts: held there, a tap learned its
/// variance too small (8 → 25 false alerts on the meters corpus's `sparse`).
pub(super) const VARIANCE_HOLD_U2: f64 = 0.25;

/// One meter's learned normal behaviour (64 bytes, one cache line; the
/// variance rule's scale and hold counter live in `state::Verdicts`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Learned {
    /// Slow baseline: EWMA of the window mean.
    pub slow: f64,
    /// EWMA of `(window mean − slow)²`, each term capped at
    /// `(min(DRIFT_LEARN_Z, driftZ)·scale)²`.
    pub dev2: f64,
    /// EWMA of the window variance.
    pub var: f64,
    /// EWMA of the window's fourth central moment.
    pub m4: f64,
    /// The value of the longest completed run of identical readings.
    pub plateau_x: f64,
    /// Readings learned from (saturating).
    pub readings: u32,
    /// Longest completed run at `plateau_x`.
    pub plateau_run: u32,
    /// Longest completed run at any other value.
    pub other_run: u32,
    /// The run of identical readings as the last evaluation left it, and its value.
    pub run_seen: u32,
    pub run_x: f64,
}

impl Default for Learned {
    fn default() -> Self {
        Learned {
            slow: 0.0,
            dev2: 0.0,
            var: 0.0,
            m4: 0.0,
            plateau_x: f64::NAN,
            readings: 0,
            plateau_run: 0,
            other_run: 0,
            run_seen: 0,
            run_x: f64::NAN,
        }
    }
}

/// How long a drift alert holds the slow baseline where it was, in multiples
/// of `baselineReadings` (4 hours at 2 Hz with the defaults): until then a
/// level that returns clears the alert at once, with no tail of the baseline
/// closing in; past it the level is adopted as the new normal.
pub(super) const DRIFT_HOLD: f64 = 4.0;

/// What the slow baseline does in an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slow {
    /// No drift alert: it follows the window mean (EWMA).
    Follow,
    /// A drift alert younger than [`DRIFT_HOLD`]: it stays put.
    Hold,
    /// A drift alert older than that: it jumps to the window mean.
    Adopt,
}

/// Which learned statistics an evaluation may teach (see [`Learned::learn_moments`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Teach {
    pub slow: Slow,
    /// The drift scale.
    pub scale: bool,
    /// The long-run variance and 4th moment, and the variance rule's scale:
    /// `Hold` while the variance rule breaches, or (light tails, no spike
    /// incident in view) its evidence is past [`VARIANCE_HOLD_U2`]; `Adopt`
    /// once that has lasted `DRIFT_HOLD`·`baselineReadings` readings;
    /// `Follow` otherwise.
    pub var: Slow,
    /// The window may still hold a spike incident's readings
    /// (`evaluate::spike_recent`): with `var` `Follow`, what the long-run
    /// variance and 4th moment learn is capped at [`VARIANCE_RATIO_MIN`] and
    /// its square times what they have learned.
    pub var_cap: bool,
}

impl Teach {
    /// Everything: no incident in view.
    #[cfg(test)]
    pub const ALL: Teach =
        Teach { slow: Slow::Follow, scale: true, var: Slow::Follow, var_cap: false };

    /// What an evaluation teaches with a drift alert active for `held`
    /// readings (0: none active) and the last one `quiet` readings ago.
    pub fn drift(active: bool, held: u32, quiet: u32, cfg: &Config) -> Teach {
        let base = cfg.baseline_readings;
        let slow = if !active {
            Slow::Follow
        } else if f64::from(held) < DRIFT_HOLD * f64::from(base) {
            Slow::Hold
        } else {
            Slow::Adopt
        };
        Teach { slow, scale: !active && quiet >= base, var: Slow::Follow, var_cap: false }
    }

    /// The same, with the variance rule's verdict: its learning holds in
    /// this evaluation (`hold`: a breach, or past [`VARIANCE_HOLD_U2`], see
    /// `evaluate`) and has for `held` readings in a row.
    pub fn variance(self, hold: bool, held: u32, recent: bool, cfg: &Config) -> Teach {
        let var = if !hold {
            Slow::Follow
        } else if f64::from(held) < DRIFT_HOLD * f64::from(cfg.baseline_readings) {
            Slow::Hold
        } else {
            Slow::Adopt
        };
        Teach { var, var_cap: recent, ..self }
    }
}

impl Learned {
    /// Whether the meter has learned for `baselineReadings` readings: before
    /// that, drift and stuck are not judged.
    #[inline]
    pub fn trained(&self, cfg: &Config) -> bool {
        self.readings >= cfg.baseline_readings
    }

    /// Weight of the newest evaluation (of `new` readings) in an average with
    /// time constant `memory` readings: the running mean's while fewer than
    /// `memory` readings are learned, then the EWMA's.
    #[inline]
    fn weight(&self, new: u32, memory: f64) -> f64 {
        // For `memory ≥ 1` the clamp's bounds commute,
        // `max(min(sum, memory), 1) = min(max(sum, 1), memory)`, and with
        // `new ≤ memory` (and `new ≤ sum`) the quotient is at most 1, so the
        // last `min` changes nothing: one integer `max` (no branch in V8's
        // code) and one float select instead of three `min` / `max` (each a
        // pair of float selects, branches in V8's code). The sum is exact
        // (two `u32`s), and so is its conversion (below 2^53).
        let sum = u64::from(self.readings) + u64::from(new);
        let new = f64::from(new);
        if memory >= 1.0 && new <= memory {
            let low = sum.max(1) as f64;
            return new / if low < memory { low } else { memory };
        }
        (new / (sum as f64).min(memory).max(1.0)).min(1.0)
    }

    /// The drift statistic's scale²: the learned mean square distance of the
    /// window mean from the slow baseline, never below the variance of the
    /// window mean of independent readings, `var/n`.
    #[inline]
    pub fn drift_scale2(&self, window_var: f64, n: f64) -> f64 {
        rules::max_unbranched(self.dev2, window_var / rules::max_select(n, 1.0))
    }

    /// The variance the spike rule divides by: the window's, or the meter's
    /// long-run average window variance if that is larger.
    #[inline]
    pub fn spike_var(&self, window_var: f64) -> f64 {
        rules::max_unbranched(window_var, self.var)
    }

    /// The window variance's relative excess over the meter's long-run window
    /// variance, `max(0, window_var / var − 1)` (0 before any was learned).
    #[inline]
    pub fn variance_excess(&self, window_var: f64) -> f64 {
        // Divides even without an excess: whether there is one is a coin toss
        // per meter (the window's variance is about the long-run one), and a
        // branch on it was mispredicted half the time (docs/DETECTION.md, "Cost").
        if self.var > 0.0 {
            rules::positive_part(window_var / self.var - 1.0)
        } else {
            0.0
        }
    }

    /// The variance rule's limit on that excess, squared:
    /// `max(VARIANCE_Z² · vscale2, (VARIANCE_RATIO_MIN − 1)² · max(1, (g2 + 2)/2))`,
    /// `vscale2` the learned mean square of the excess (`Verdicts::vscale2`).
    #[inline]
    pub fn variance_limit2(&self, vscale2: f32) -> f64 {
        let floor = VARIANCE_RATIO_MIN - 1.0;
        let tails = ((self.excess_kurtosis() + 2.0) / 2.0).max(1.0);
        (VARIANCE_Z * VARIANCE_Z * f64::from(vscale2)).max(floor * floor * tails)
    }

    /// The variance rule's evidence, squared, over its limit (breach above 1):
    /// the excess `q` of the window variance `var` over the long-run one, over
    /// `variance_limit2`; 0 unless the ratio is above `VARIANCE_RATIO_MIN`
    /// (the least limit) and the excess is carried by at least
    /// `VARIANCE_READINGS` readings.
    #[inline]
    pub fn variance_u2(&self, mo: &Moments, var: f64, vscale2: f32) -> f64 {
        // The limit is at least (VARIANCE_RATIO_MIN − 1)²: below that ratio the
        // rule cannot breach, and its evidence is not computed (no division).
        if var <= VARIANCE_RATIO_MIN * self.var {
            return 0.0;
        }
        let q = self.variance_excess(var);
        let em2 = var - self.var;
        let n = f64::from(mo.n);
        let em4 = if mo.n > 0 { mo.m4 / n - self.m4 } else { 0.0 };
        if em4 > 0.0 && n * em2 * em2 < VARIANCE_READINGS * em4 {
            return 0.0;
        }
        q * q / self.variance_limit2(vscale2)
    }

    /// A window's variance and 4th moment as an evaluation with
    /// `Teach::var_cap` learns them: at most [`VAR_CAP`] and [`M4_CAP`] times
    /// the long-run ones (unchanged before any variance was learned). Out of
    /// line: set only while a spike incident may be in the window.
    #[cold]
    #[inline(never)]
    fn capped(&self, var: f64, m4: f64) -> (f64, f64) {
        if self.var > 0.0 {
            (var.min(VAR_CAP * self.var), m4.min(M4_CAP * self.m4))
        } else {
            (var, m4)
        }
    }

    /// Whether a window (moments `mo`, floored variance `var`) is within what
    /// an evaluation with `Teach::var_cap` may learn ([`VAR_CAP`], [`M4_CAP`]
    /// times the long-run variance and 4th moment): it no longer looks like
    /// an incident. The 4th moment `M4/n` is compared without the division.
    #[inline]
    pub fn within_caps(&self, var: f64, mo: &Moments) -> bool {
        var <= VAR_CAP * self.var && mo.m4 <= M4_CAP * self.m4 * f64::from(mo.n)
    }

    /// Excess kurtosis of the meter's long-run readings, from the averaged
    /// moments (0 before any spread was seen).
    #[inline]
    pub fn excess_kurtosis(&self) -> f64 {
        if self.var > 0.0 {
            self.m4 / (self.var * self.var) - 3.0
        } else {
            0.0
        }
    }

    /// Learns from one evaluation of `new` readings: the window's moments `mo`
    /// (floored variance `var`), and the distance `d` of its mean from the slow
    /// baseline as judged (`cap2` the largest d² learned from); `vscale2` is
    /// the variance rule's learned scale (`Verdicts::vscale2`), learned here too.
    ///
    /// A drift incident is not learned as normal: with `teach.scale` false (a
    /// drift alert is active or was within `baselineReadings` readings) the
    /// drift scale is left as it was, and `teach.slow` holds the slow baseline
    /// during a drift alert, until the level has lasted long enough to adopt.
    // One call per evaluation with what it judged; a struct for the arguments
    // would only be built to be taken apart here.
    #[allow(clippy::too_many_arguments)]
    pub fn learn_moments(
        &mut self,
        mo: &Moments,
        var: f64,
        new: u32,
        cap2: f64,
        teach: Teach,
        vscale2: &mut f32,
        cfg: &Config,
    ) {
        let memory = f64::from(cfg.baseline_readings);
        let mean = mo.mean();
        let fresh = self.readings == 0;
        let a = self.weight(new, memory);
        // The scales' weight, once for both (`readings` changes only at the end).
        let b = self.weight(new, SCALE_MEMORY * memory);
        let d = mean - self.slow;
        match teach.slow {
            Slow::Follow => self.slow += a * d,
            Slow::Hold => {}
            Slow::Adopt => self.slow = mean,
        }
        // The window's fourth central moment, M4/n (no division by the variance).
        let m4 = if mo.n > 0 { mo.m4 / f64::from(mo.n) } else { 0.0 };
        match teach.var {
            Slow::Follow => {
                if !fresh {
                    let q = self.variance_excess(var);
                    // The limit is at least (VARIANCE_RATIO_MIN − 1)²: below that
                    // the cap cannot bite, and is not computed (a division).
                    let floor = VARIANCE_RATIO_MIN - 1.0;
                    let term =
                        if q > floor { (q * q).min(self.variance_limit2(*vscale2)) } else { q * q };
                    let v2 = f64::from(*vscale2);
                    *vscale2 = (v2 + b * (term - v2)) as f32;
                }
                let (var, m4) = if teach.var_cap { self.capped(var, m4) } else { (var, m4) };
                self.var += a * (var - self.var);
                if m4.is_finite() {
                    self.m4 += a * (m4 - self.m4);
                }
            }
            Slow::Hold => {}
            Slow::Adopt => {
                self.var = var;
                if m4.is_finite() {
                    self.m4 = m4;
                }
            }
        }
        if !fresh && teach.scale {
            // min(d², (min(DRIFT_LEARN_Z, driftZ)·scale)²) with scale² = cap2 / driftZ²,
            // compared by cross-multiplication: the division only for a term
            // past the cap (about 1% of a normal meter's evaluations).
            let dz2 = cfg.drift_z * cfg.drift_z;
            // `f64::min` in one select (`dz2` is positive and finite, `Config::validate`).
            let k2 = if dz2 < DRIFT_LEARN_Z * DRIFT_LEARN_Z {
                dz2
            } else {
                DRIFT_LEARN_Z * DRIFT_LEARN_Z
            };
            let t = d * d;
            let term = if t * dz2 <= cap2 * k2 {
                t
            } else if self.excess_kurtosis() < DRIFT_LEARN_G2 {
                cap2 * k2 / dz2
            } else {
                // Heavy-tailed readings (a tap's bursts) make a heavy-tailed
                // window mean, whose mean square a lower cap would underestimate.
                t.min(cap2)
            };
            self.dev2 += b * (term - self.dev2);
        }
        self.readings = self.readings.saturating_add(new);
    }

    /// Learns the run of identical readings the meter is in: `run` readings at
    /// `x`, of which `new` arrived since the last evaluation. A run that ended
    /// since then is learned, unless it raised a stuck alert (`stuck_active`):
    /// the run in progress at the last evaluation, at its length when it
    /// ended (`ended`, counted by `observe` at the reading that ended it).
    /// Runs that began and ended between two evaluations are not learned: a
    /// burst of readings (a page that stalled, a batch) is many runs, and
    /// taking its readings before the newest run for one (what this did
    /// before) taught a meter that never repeats a reading a "normal run" as
    /// long as the burst, which raised its stuck limit to `stuckFactor`
    /// times the burst (the dashboard test's stuck alert, 14 to 73 s late
    /// under load).
    pub fn learn_run(&mut self, run: u32, x: f64, new: u32, ended: u32, stuck_active: bool) {
        if run <= new && self.run_seen > 0 && !stuck_active {
            // A new run began in this evaluation: the previous one ended.
            let ended = if ended > 0 { ended } else { self.run_seen };
            let v = self.run_x;
            if v == self.plateau_x {
                self.plateau_run = self.plateau_run.max(ended);
            } else if ended > self.plateau_run {
                self.other_run = self.other_run.max(self.plateau_run);
                self.plateau_x = v;
                self.plateau_run = ended;
            } else {
                self.other_run = self.other_run.max(ended);
            }
        }
        self.run_seen = run;
        self.run_x = x;
    }

    /// The shortest run at `x` that is stuck: `stuckFactor` times the longest
    /// the meter has completed at that kind of value (its plateau, or any
    /// other), and at least `stuckRun`.
    pub fn stuck_limit(&self, x: f64, cfg: &Config) -> f64 {
        let normal = if x == self.plateau_x { self.plateau_run } else { self.other_run };
        rules::max_select(cfg.stuck_factor * f64::from(normal), f64::from(cfg.stuck_run))
    }

    /// Whether the current run (`run` readings) may be judged: the meter is
    /// trained and the run began after training ended (a run that was part of
    /// the training is the meter's normal, whatever its length).
    pub fn judges_run(&self, run: u32, cfg: &Config) -> bool {
        self.trained(cfg) && run <= self.readings - cfg.baseline_readings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_learn_the_plateau_and_the_rest() {
        let mut l = Learned::default();
        // 0 × 10, 12 × 4, 0 × 12, 5 × 1: one reading per evaluation.
        for (x, n) in [(0.0, 10u32), (12.0, 4), (0.0, 12), (5.0, 1)] {
            for run in 1..=n {
                // One reading per evaluation: a run ends at the first of another.
                let ended = if run == 1 { l.run_seen } else { 0 };
                l.learn_run(run, x, 1, ended, false);
            }
        }
        assert_eq!((l.plateau_x, l.plateau_run, l.other_run), (0.0, 12, 4));
        let cfg = Config { stuck_factor: 3.0, stuck_run: 5, ..Config::default() };
        assert_eq!(l.stuck_limit(0.0, &cfg), 36.0);
        assert_eq!(l.stuck_limit(12.0, &cfg), 12.0);
        assert_eq!(l.stuck_limit(7.0, &cfg), 12.0);
        // Batches: a run that ended inside one is learned at the length
        // observe counted (1.0 × 3, then 1.0, 1.0, 2.0, 2.0: 1.0 ended after 5).
        let mut b = Learned::default();
        b.learn_run(3, 1.0, 3, 0, false);
        b.learn_run(2, 2.0, 4, 5, false);
        assert_eq!((b.plateau_x, b.plateau_run), (1.0, 5));
        // A run that raised a stuck alert is not normal.
        b.learn_run(1, 3.0, 1, 2, true);
        assert_eq!((b.plateau_x, b.plateau_run, b.other_run), (1.0, 5, 0));
        // A burst of 40 different readings after a run of 1 is 40 runs of 1,
        // not a run of 40 (the old reading of a batch).
        let mut c = Learned::default();
        c.learn_run(1, 7.0, 1, 0, false);
        c.learn_run(1, 47.0, 40, 1, false);
        assert_eq!((c.plateau_run, c.other_run), (1, 0));
        assert_eq!(c.stuck_limit(99.0, &cfg), 5.0);
    }

    /// The trained meter's weight is the running mean's formula, bit for
    /// bit, on either side of `memory` and at the edges of `u32`.
    #[test]
    fn weight_shortcut_is_the_formula() {
        let formula = |readings: u32, new: u32, memory: f64| {
            let seen = (f64::from(readings) + f64::from(new)).min(memory).max(1.0);
            (f64::from(new) / seen).min(1.0)
        };
        let counts =
            [0, 1, 2, 3, 7, 499, 500, 501, 1_999, 2_000, 2_001, 7_200, u32::MAX - 1, u32::MAX];
        let memories =
            [0.0, 0.5, 1.0, 2.0, 500.0, 2_000.0, 7_200.0, 28_800.0, f64::INFINITY, f64::NAN];
        for &readings in &counts {
            for &new in &counts {
                for &memory in &memories {
                    let l = Learned { readings, ..Learned::default() };
                    let (got, want) = (l.weight(new, memory), formula(readings, new, memory));
                    assert_eq!(got.to_bits(), want.to_bits(), "{readings} {new} {memory}");
                }
            }
        }
    }

    /// The drift rule as `evaluate` runs it, on window means `means` (spread
    /// 1 around each): the first evaluation whose |zd| passes `driftZ`.
    fn first_drift(means: impl Iterator<Item = f64>, cfg: &Config) -> Option<usize> {
        let mut l = Learned::default();
        for (i, m) in means.enumerate() {
            let mo = Moments::recompute(&[m - 1.0, m + 1.0], &[]);
            let scale2 = l.drift_scale2(mo.variance(), 1_200.0);
            let limit2 = cfg.drift_z * cfg.drift_z * scale2;
            let d = m - l.slow;
            if l.trained(cfg) && d * d > limit2 {
                return Some(i);
            }
            l.learn_moments(&mo, mo.variance(), 1, limit2, Teach::ALL, &mut 0.0, cfg);
        }
        None
    }

    #[test]
    fn a_slow_ramp_does_not_teach_the_drift_scale_its_own_deviation() {
        let cfg = Config { baseline_readings: 500, ..Config::default() };
        // Training: the window mean wobbles ±0.1 (scale about 0.07).
        let wobble = |i: usize| 50.0 + 0.1 * (i as f64 * 0.7).sin();
        // Then a ramp of 1 (about 14 scales) over 500 evaluations, one
        // baseline time constant. With each learned term capped at the
        // threshold, (5·scale)², the scale could grow e^6 in scale² per time
        // constant and kept the ramp under |zd| = 5 for good (checked: with
        // DRIFT_LEARN_Z = 5 this finds nothing); at 3 it is found.
        let ramp = |i: usize| wobble(i) + ((i as f64 - 5_000.0) / 500.0).clamp(0.0, 1.0);
        assert_eq!(first_drift((0..5_000).map(wobble), &cfg), None, "no drift while steady");
        let found = first_drift((0..6_500).map(ramp), &cfg);
        assert!(found.is_some_and(|i| i < 5_300), "{found:?}");
    }

    #[test]
    fn averages_start_as_running_means_then_forget() {
        let cfg = Config { baseline_readings: 4, ..Config::default() };
        let mut l = Learned::default();
        for x in [2.0, 4.0, 6.0] {
            let mo = Moments::recompute(&[x - 1.0, x + 1.0], &[]);
            l.learn_moments(&mo, mo.variance(), 1, f64::INFINITY, Teach::ALL, &mut 0.0, &cfg);
        }
        // The slow baseline is the running mean of the window means: 2, 3, 4.
        assert!((l.slow - 4.0).abs() < 1e-12, "{}", l.slow);
        assert!((l.var - 1.0).abs() < 1e-12);
        for _ in 0..200 {
            let mo = Moments::recompute(&[99.0, 101.0], &[]);
            l.learn_moments(&mo, mo.variance(), 1, f64::INFINITY, Teach::ALL, &mut 0.0, &cfg);
        }
        assert!((l.slow - 100.0).abs() < 1e-6, "{}", l.slow);
        assert!(l.trained(&cfg));
    }
}
