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
//! plain one, `sum − k·(mean − shift)`.
//!
//! A running sum accumulates rounding, and a sample that was large when it
//! entered (legitimately unclipped, because the window's spread was as large)
//! leaves an error of its own size's ulp behind. So each update also adds its
//! worst-case rounding to `loss`, and the running sum is trusted only while
//! `loss ≤ 1e-9·clip`, far below anything the drift threshold can see.
//! Otherwise (and when the state is stale: first use, reset, a skipped
//! evaluation, fewer samples than needed) the newest `k` samples are scanned
//! exactly and the state rebuilt. Both paths give the same sum up to that
//! bound.

use super::super::windows::Windows;
use super::rules;

/// The rounding error a running sum may carry, relative to the clip, before
/// it is rebuilt. In standard errors of the drift statistic that is
/// `1e-9·spike_z·√k`: 2e-8 with the defaults.
const MAX_LOSS: f64 = 1e-9;

/// Twice the unit roundoff: a bound on the rounding of one subtraction
/// (`x − shift`) and one addition to the sum.
const ROUNDING: f64 = 2.0 * f64::EPSILON;

/// One meter's running short-term sum and sample bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct ShortWindow {
    sum: f64,
    shift: f64,
    /// Largest `|x − shift|` of the previous block, then of the current.
    bounds: [f64; 2],
    /// Samples in the current block (< k).
    block: u32,
    /// Bound on the rounding error in `sum` since it was last rebuilt
    /// (∞: stale, rebuild before use).
    loss: f32,
}

impl Default for ShortWindow {
    fn default() -> Self {
        ShortWindow { sum: 0.0, shift: 0.0, bounds: [0.0; 2], block: 0, loss: f32::INFINITY }
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
        self.loss = f32::INFINITY;
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
            let unclipped = larger(self.bounds[0], self.bounds[1]) + off.abs() <= clip;
            if unclipped && f64::from(self.loss) <= MAX_LOSS * clip {
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
        if self.loss == f32::INFINITY || new >= k {
            return false;
        }
        // Oldest first: the first `new` samples are leaving the short window,
        // the last `new` entered it.
        let (a, b) = windows.newest(m, k + new);
        if a.len() + b.len() != k + new {
            return false;
        }
        let at = |i: usize| a.get(i).or_else(|| b.get(i - a.len())).copied().unwrap_or(0.0);
        let mut loss = 0.0;
        for i in 0..new {
            let d = at(i) - self.shift;
            self.sum -= d;
            loss += d.abs() + self.sum.abs();
        }
        for i in k..k + new {
            let d = at(i) - self.shift;
            self.sum += d;
            loss += d.abs() + self.sum.abs();
            if self.block as usize >= k {
                self.bounds = [self.bounds[1], 0.0];
                self.block = 0;
            }
            self.bounds[1] = larger(self.bounds[1], d.abs());
            self.block += 1;
        }
        // Rounded up to f32 by adding a relative margin: a bound, not a value.
        self.loss = (f64::from(self.loss) + loss * ROUNDING * (1.0 + 1e-6)) as f32;
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
        *self = ShortWindow { sum, shift, bounds: [bound, 0.0], block: 0, loss: 0.0 };
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
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
            let got = s.clipped_sum(&w, 0, k, new, mean, c);
            // A rebuild leaves no loss; the running path always adds some.
            if s.loss > 0.0 {
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

    /// Found by `any_stream_gives_the_scans_sum`: samples of 1e9 in a window
    /// whose spread is as large pass unclipped through the running sum and
    /// leave ~1e-7 of rounding behind, which matters once they have left the
    /// window and the clip is ~0.01. The loss bound forces a rebuild.
    #[test]
    fn rounding_left_by_large_samples_does_not_linger() {
        let mut w = Windows::new(22, 100);
        w.add_meter(1);
        let mut s = ShortWindow::default();
        let k = 12;
        for (new, x) in [(4, 0.0), (8, 0.0), (4, 1e9), (4, 0.0), (6, 0.0), (8, 0.0), (4, 0.0)] {
            for j in 0..new {
                w.push(0, x + j as f64 * 1e-3);
            }
            if w.len(0) < k {
                s.invalidate();
                continue;
            }
            let mo = w.moments(0);
            let (mean, c) = (mo.mean(), 4.0 * mo.std().max(1e-6));
            let got = s.clipped_sum(&w, 0, k, new, mean, c);
            let want = rules::drift_sum(w.newest(0, k), mean, mean - c, mean + c);
            assert!((got - want).abs() <= 1e-9 * c * k as f64, "{got} vs {want}");
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
        assert_eq!(
            s.clipped_sum(&w, 0, 8, 4, 5.0, 100.0),
            (2..10).map(|x| x as f64 - 5.0).sum::<f64>()
        );
        assert_eq!(s.clipped_sum(&w, 0, 8, 8, 5.0, 100.0), 4.0);
    }
}
