//! The drift statistic's clipped short-term sum in O(1) per evaluation.
//!
//! The statistic needs `Σ clip(x − mean)` over the newest `k` samples, each
//! clipped to `±clip` around the *current* window mean (`rules::drift_sum`).
//! Scanning `k` samples per meter per tick is most of a tick's cost, so each
//! meter keeps:
//!
//! - `sum = Σ (x − shift)` over its newest `k` samples, updated per evaluation
//!   with only the samples that entered and left (one or two ring reads), with
//!   `shift` the window mean at the last scan so the differences stay exact for
//!   large levels;
//! - a bound on those samples: the largest `|x − shift|` of each of two
//!   consecutive blocks of `k` samples (the current block and the one before
//!   cover at least the newest `k`).
//!
//! Every sample then lies within `bound + |mean − shift|` of the mean; when
//! that is at most the clip, no sample is clipped and the clipped sum is the
//! plain one, `sum − k·(mean − shift)`. Otherwise, when the state is stale
//! (first use, reset, fewer samples than needed) and every `k` evaluations
//! regardless, the newest `k` samples are scanned exactly and the state
//! rebuilt. Both paths give the same sum up to rounding; the periodic scan
//! bounds the rounding a running sum accumulates.

use super::super::windows::Windows;
use super::rules;

/// Marks a state that must be rebuilt by a scan before use.
const STALE: u32 = u32::MAX;

/// Evaluations between rebuilds. Each running update rounds by at most an ulp
/// of `|sum| ≤ k·clip`; 256 of them stay below 1e-11 standard errors for
/// k = 20 (1e-9 for k = 600). Samples large enough to round worse are never
/// in the sum for long: while one is in the short window or the block bound,
/// the bound fails, so every evaluation rebuilds, the first after it leaves
/// included.
const REBUILD_EVERY: u32 = 256;

/// One meter's running short-term sum and sample bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct ShortWindow {
    sum: f64,
    shift: f64,
    /// Largest `|x − shift|` of the previous block, then of the current.
    bounds: [f64; 2],
    /// Samples in the current block (< k).
    block: u32,
    /// Evaluations since the last scan, or [`STALE`].
    age: u32,
}

impl Default for ShortWindow {
    fn default() -> Self {
        ShortWindow { sum: 0.0, shift: 0.0, bounds: [0.0; 2], block: 0, age: STALE }
    }
}

/// The larger of two finite numbers, as one instruction (no NaN handling).
#[inline(always)]
fn larger(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

impl ShortWindow {
    /// Forgets the running sum: the next [`ShortWindow::clipped_sum`] scans.
    /// Called whenever an evaluation skips the statistic, since the samples it
    /// brought are then not in the sum.
    pub fn invalidate(&mut self) {
        self.age = STALE;
    }

    /// `Σ clip(x − mean, ±clip)` over the newest `k` samples of meter `m`, of
    /// which the newest `new` entered since the previous call. The window must
    /// hold at least `k` samples.
    pub fn clipped_sum(
        &mut self,
        windows: &Windows,
        m: usize,
        k: usize,
        new: usize,
        mean: f64,
        clip: f64,
    ) -> f64 {
        if self.advance(windows, m, k, new) {
            let off = mean - self.shift;
            if larger(self.bounds[0], self.bounds[1]) + off.abs() <= clip {
                return self.sum - k as f64 * off;
            }
        }
        // Rebuilt around the mean: when nothing reaches the clip, the plain sum
        // is the answer; otherwise clip each sample.
        self.rebuild(windows.newest(m, k), mean);
        if self.bounds[0] <= clip {
            return self.sum;
        }
        rules::drift_sum(windows.newest(m, k), mean, mean - clip, mean + clip)
    }

    /// Moves the sum and bounds past the `new` samples that entered. False when
    /// the state cannot be moved on and must be rebuilt.
    fn advance(&mut self, windows: &Windows, m: usize, k: usize, new: usize) -> bool {
        if self.age >= REBUILD_EVERY || new >= k {
            return false;
        }
        // Oldest first: the first `new` samples are leaving the short window,
        // the last `new` entered it.
        let (a, b) = windows.newest(m, k + new);
        if a.len() + b.len() != k + new {
            return false;
        }
        let at = |i: usize| a.get(i).or_else(|| b.get(i - a.len())).copied().unwrap_or(0.0);
        for i in 0..new {
            self.sum -= at(i) - self.shift;
        }
        for i in k..k + new {
            let d = at(i) - self.shift;
            self.sum += d;
            if self.block as usize >= k {
                self.bounds = [self.bounds[1], 0.0];
                self.block = 0;
            }
            self.bounds[1] = larger(self.bounds[1], d.abs());
            self.block += 1;
        }
        self.age += 1;
        true
    }

    /// Recomputes the sum and bounds from the newest samples, relative to `shift`.
    fn rebuild(&mut self, newest: (&[f64], &[f64]), shift: f64) {
        let (mut sum, mut bound) = (0.0, 0.0);
        let (a, b) = newest;
        for &x in a.iter().chain(b) {
            let d = x - shift;
            sum += d;
            bound = larger(bound, d.abs());
        }
        *self = ShortWindow { sum, shift, bounds: [bound, 0.0], block: 0, age: 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;

    /// A window of 64 with `xs` pushed; the short sum agrees with a scan at
    /// every step, through clipped stretches, a seam of the ring and batches.
    #[test]
    fn running_sum_matches_the_scan() {
        let mut w = Windows::new(64, 100);
        w.add_meter(1);
        let mut s = ShortWindow::default();
        let (k, clip) = (8usize, 4.0);
        let mut state = 7u64;
        let mut fast = 0;
        for step in 0..3_000 {
            // Batches of 1..3 readings; a blip now and then; a level shift mid-way.
            let new = 1 + step % 3;
            for _ in 0..new {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let level = if step < 1_500 { 1e9 } else { 1e9 + 50.0 };
                w.push(0, level + if step % 97 == 0 { 1e3 } else { u });
            }
            let mo = w.moments(0);
            let (mean, c) = (mo.mean(), clip * mo.std());
            let age = s.age;
            let got = s.clipped_sum(&w, 0, k, new, mean, c);
            if s.age == age.wrapping_add(1) {
                fast += 1;
            }
            let want = rules::drift_sum(w.newest(0, k), mean, mean - c, mean + c);
            assert!(
                (got - want).abs() <= 1e-9 * c.max(1e-300) * k as f64,
                "step {step}: {got} vs {want}"
            );
        }
        assert!(fast > 2_000, "the running path is the common one: {fast}");
    }

    proptest::proptest! {
        /// Whatever the values (tiny, huge, constant stretches), batch sizes
        /// (up to beyond k) and invalidations, the sum is the scan's.
        #[test]
        fn any_stream_gives_the_scans_sum(
            window in 16usize..80,
            k in 2usize..16,
            steps in proptest::collection::vec(
                (1usize..20, proptest::prop_oneof![
                    -1e15..1e15f64,
                    -1.0..1.0f64,
                    proptest::strategy::Just(3.0),
                    (0.0..1.0f64).prop_map(|u| 1e9 + u),
                ], proptest::bool::weighted(0.05)),
                1..300,
            ),
        ) {
            let mut w = Windows::new(window, 100);
            w.add_meter(1);
            let mut s = ShortWindow::default();
            for (new, x, forget) in steps {
                for j in 0..new {
                    w.push(0, x + j as f64 * 1e-3);
                }
                if forget {
                    s.invalidate();
                }
                if w.len(0) < k {
                    s.invalidate();
                    continue;
                }
                let mo = w.moments(0);
                let (mean, c) = (mo.mean(), 4.0 * mo.std().max(1e-6));
                let got = s.clipped_sum(&w, 0, k, new, mean, c);
                let want = rules::drift_sum(w.newest(0, k), mean, mean - c, mean + c);
                proptest::prop_assert!((got - want).abs() <= 1e-9 * c * k as f64, "{got} vs {want}");
            }
        }
    }

    #[test]
    fn a_short_window_falls_back_to_the_scan() {
        let mut w = Windows::new(16, 100);
        w.add_meter(1);
        for x in 0..10 {
            w.push(0, f64::from(x));
        }
        let mut s = ShortWindow::default();
        // k + new > samples held: scan; then `new >= k`: scan again.
        assert_eq!(s.clipped_sum(&w, 0, 8, 4, 5.0, 100.0), (2..10).map(|x| x as f64 - 5.0).sum());
        assert_eq!(s.clipped_sum(&w, 0, 8, 8, 5.0, 100.0), 4.0);
    }
}
