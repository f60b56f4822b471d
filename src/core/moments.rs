//! Rolling central moments (mean, M2, M3, M4) with O(1) add, remove and
//! replace.
//!
//! The update formulas are Pébay's (2008) one-pass central-moment updates, and
//! removal is their exact algebraic inverse. A full window of fixed `n` takes
//! one [`Moments::replace`] per reading (the oldest sample out, the new one in,
//! no division). Removal and replacement cancel, so error grows with
//! each one; [`Moments::needs_recompute`] says when to rebuild exactly from the
//! ring (every `recompute_every` removals, when M2 falls below 1e-4 of its peak
//! since the last rebuild, when M4 falls below 1e-6 of its peak — M4 collapses
//! roughly as the square of M2, its rounding error scales with its peak, and
//! excess kurtosis (n·M4/M2² − 3) turns a relative error of M4 into an absolute
//! one —,
//! or when an even moment goes negative). A constant series
//! keeps `mean == x` exactly, so its M2..M4 stay exactly 0.
//!
//! `recompute_every` is 1,200 by default (it was 100). Measured against a
//! two-pass reference at window 1,200, worst relative error of M2 / M4 over
//! 1e6–2e6 readings, every 7th step (offset 1e9 sd 10 with a 1e7 shift; a
//! 1e7 drift over 2e6 readings; AR(1) φ 0.99; spikes of 1e6 on sd 1):
//! every 100: ≤ 3.8e-15 / 3.9e-14; every 1,200: ≤ 6.6e-14 / 6.1e-13; every
//! 3,600: ≤ 4.6e-13 / 2.8e-11. Rebuilding without a count (only the
//! collapse guards) fails `ten_million_sample_drift`. A rebuild reads the
//! whole ring (150 cache lines at 1,200), so at 100 it was about a quarter
//! of a binary ingest; at 1,200 it is a twelfth of that.
//!
//! Samples are taken relative to a per-meter `shift` (the first sample after the
//! last rebuild): `x - shift` is exact for nearby values (Sterbenz), so a level of
//! 1e9 with a spread of 1e-3 keeps the precision a two-pass computation has,
//! instead of losing it to the rounding of a large absolute mean.

/// The central moments of one meter's window: 64 bytes, aligned, so that a
/// reading's update reads and writes one cache line (at 72 bytes every
/// meter's record straddled two).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(align(64))]
pub struct Moments {
    /// Samples in the window. A count (at most the window, a `u32`) and not an
    /// `f64`, so the record fits a line; every use converts it exactly
    /// (`f64::from`), so the arithmetic is the `f64` one bit for bit.
    pub n: u32,
    /// Samples are accumulated as `x - shift`.
    pub shift: f64,
    /// Mean of `x - shift`; the mean is `shift + centered_mean` (see [`Moments::mean`]).
    pub centered_mean: f64,
    pub m2: f64,
    pub m3: f64,
    pub m4: f64,
    /// Largest M2 since the last exact recompute.
    pub peak_m2: f64,
    /// Largest M4 since the last exact recompute.
    pub peak_m4: f64,
    /// Removals since the last exact recompute.
    pub removals: u32,
}

/// Accumulates one centred deviation `d` into M2, M3, M4.
#[inline(always)]
fn central(m2: &mut f64, m3: &mut f64, m4: &mut f64, d: f64) {
    let d2 = d * d;
    *m2 += d2;
    *m3 += d2 * d;
    *m4 += d2 * d2;
}

/// The exact rebuild's two passes over one contiguous part of a ring, in four
/// accumulators: sample `i` of the part goes to accumulator `i % 4`.
///
/// On wasm32 each pair of accumulators is one `f64x2` (simd128 is always on
/// there, .cargo/config.toml): lane by lane the same operations in the same
/// order as the portable loops, so the sums are the same bit for bit. The
/// vectoriser does not find this by itself (it built the vectors lane by lane
/// and left the products scalar), and the rebuild was 28 % of a binary ingest
/// burst's time in the browser (`profile-tick.mjs --ingest`).
mod rebuild_pass {
    #[cfg(not(target_arch = "wasm32"))]
    use super::central;

    /// `s[i % 4] += x_i - k`.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn sums(part: &[f64], k: f64, s: &mut [f64; 4]) {
        let mut chunks = part.chunks_exact(4);
        for c in &mut chunks {
            for (acc, &x) in s.iter_mut().zip(c) {
                *acc += x - k;
            }
        }
        for (acc, &x) in s.iter_mut().zip(chunks.remainder()) {
            *acc += x - k;
        }
    }

    /// With `d = x_i - k - md`: `m2 += d²`, `m3 += d²·d`, `m4 += d²·d²` in accumulator `i % 4`.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) fn central_sums(part: &[f64], k: f64, md: f64, m: [&mut [f64; 4]; 3]) {
        let [m2, m3, m4] = m;
        let mut chunks = part.chunks_exact(4);
        for c in &mut chunks {
            for j in 0..4 {
                central(&mut m2[j], &mut m3[j], &mut m4[j], c[j] - k - md);
            }
        }
        for (j, &x) in chunks.remainder().iter().enumerate() {
            central(&mut m2[j], &mut m3[j], &mut m4[j], x - k - md);
        }
    }

    #[cfg(target_arch = "wasm32")]
    use core::arch::wasm32::{
        f64x2, f64x2_add, f64x2_extract_lane, f64x2_mul, f64x2_splat, f64x2_sub, v128,
    };

    #[cfg(target_arch = "wasm32")]
    fn pair(v: &[f64; 4]) -> (v128, v128) {
        (f64x2(v[0], v[1]), f64x2(v[2], v[3]))
    }

    #[cfg(target_arch = "wasm32")]
    fn unpair(lo: v128, hi: v128) -> [f64; 4] {
        [
            f64x2_extract_lane::<0>(lo),
            f64x2_extract_lane::<1>(lo),
            f64x2_extract_lane::<0>(hi),
            f64x2_extract_lane::<1>(hi),
        ]
    }

    #[cfg(target_arch = "wasm32")]
    pub(super) fn sums(part: &[f64], k: f64, s: &mut [f64; 4]) {
        let kk = f64x2_splat(k);
        let (mut lo, mut hi) = pair(s);
        let mut chunks = part.chunks_exact(4);
        for c in &mut chunks {
            let (x01, x23) = (f64x2(c[0], c[1]), f64x2(c[2], c[3]));
            lo = f64x2_add(lo, f64x2_sub(x01, kk));
            hi = f64x2_add(hi, f64x2_sub(x23, kk));
        }
        *s = unpair(lo, hi);
        for (acc, &x) in s.iter_mut().zip(chunks.remainder()) {
            *acc += x - k;
        }
    }

    #[cfg(target_arch = "wasm32")]
    pub(super) fn central_sums(part: &[f64], k: f64, md: f64, m: [&mut [f64; 4]; 3]) {
        let [m2, m3, m4] = m;
        let (kk, mm) = (f64x2_splat(k), f64x2_splat(md));
        let ((mut a2, mut b2), (mut a3, mut b3), (mut a4, mut b4)) = (pair(m2), pair(m3), pair(m4));
        let mut chunks = part.chunks_exact(4);
        for c in &mut chunks {
            let (x01, x23) = (f64x2(c[0], c[1]), f64x2(c[2], c[3]));
            // `x - k - md` is `(x - k) - md`, as in the portable loop.
            let (da, db) = (f64x2_sub(f64x2_sub(x01, kk), mm), f64x2_sub(f64x2_sub(x23, kk), mm));
            let (sa, sb) = (f64x2_mul(da, da), f64x2_mul(db, db));
            a2 = f64x2_add(a2, sa);
            b2 = f64x2_add(b2, sb);
            a3 = f64x2_add(a3, f64x2_mul(sa, da));
            b3 = f64x2_add(b3, f64x2_mul(sb, db));
            a4 = f64x2_add(a4, f64x2_mul(sa, sa));
            b4 = f64x2_add(b4, f64x2_mul(sb, sb));
        }
        (*m2, *m3, *m4) = (unpair(a2, b2), unpair(a3, b3), unpair(a4, b4));
        for (j, &x) in chunks.remainder().iter().enumerate() {
            super::central(&mut m2[j], &mut m3[j], &mut m4[j], x - k - md);
        }
    }
}

/// Relative floor under which M2 has cancelled too far to trust.
const M2_COLLAPSE: f64 = 1e-4;
/// The same for M4, which falls as the square of M2.
const M4_COLLAPSE: f64 = 1e-6;

impl Moments {
    /// Raises the peaks since the last rebuild to the current M2 and M4.
    ///
    /// A comparison, not `f64::max`: every reading is finite (checked before
    /// it reaches a window), so M2 and M4 are never NaN, and `max`'s NaN rule
    /// (return the other operand) costs a compare-and-select pair per call in
    /// wasm, on the per-reading path. For a NaN operand the result is the
    /// same anyway: the peak is kept.
    #[inline(always)]
    fn raise_peaks(&mut self) {
        if self.m2 > self.peak_m2 {
            self.peak_m2 = self.m2;
        }
        if self.m4 > self.peak_m4 {
            self.peak_m4 = self.m4;
        }
    }

    /// Adds sample `x`.
    #[inline]
    pub fn add(&mut self, x: f64) {
        if self.n == 0 {
            self.shift = x;
            self.centered_mean = 0.0;
        }
        let x = x - self.shift;
        let n1 = f64::from(self.n);
        let n = n1 + 1.0;
        let delta = x - self.centered_mean;
        let dn = delta / n;
        let dn2 = dn * dn;
        let term1 = delta * dn * n1;
        self.centered_mean += dn;
        self.m4 += term1 * dn2 * (n * n - 3.0 * n + 3.0) + 6.0 * dn2 * self.m2 - 4.0 * dn * self.m3;
        self.m3 += term1 * dn * (n - 2.0) - 3.0 * dn * self.m2;
        self.m2 += term1;
        self.n += 1;
        self.raise_peaks();
    }

    /// Replaces sample `old` (in the window) by `x` in a full window of fixed
    /// `n`, given `inv_n = 1 / n`: one update instead of [`Moments::remove`]
    /// then [`Moments::add`], and no division.
    ///
    /// With `a`, `b` the deviations of `old`, `x` from the current mean,
    /// `d = x - old`, `δ = d / n` (the mean's step), `A = a - δ`, `B = b - δ`
    /// (the deviations from the new mean), the sums of powers over the new
    /// window expand exactly as
    ///
    /// - `M2' = M2 + d (A + B + δ)`
    /// - `M3' = M3 - 3δ M2 + d (A² + AB + B² - δ²)`
    /// - `M4' = M4 - 4δ M3 + 6δ² M2 + d ((A + B)(A² + B²) + δ³)`
    ///
    /// (from `Σ(y - δ)^p` over the old window, `B^p - A^p` factored by
    /// `B - A = d`, and `nδ = d`). Each change is a multiple of `d`, so
    /// `x == old` changes nothing, bit for bit (a constant window stays exactly
    /// constant). It counts as one removal towards the exact rebuild.
    #[inline]
    pub fn replace(&mut self, old: f64, x: f64, inv_n: f64) {
        let d = x - old;
        let dl = d * inv_n;
        let a = (old - self.shift) - self.centered_mean;
        let b = (x - self.shift) - self.centered_mean;
        let (aa, bb) = (a - dl, b - dl);
        let (a2, b2) = (aa * aa, bb * bb);
        let dl2 = dl * dl;
        let (m2, m3) = (self.m2, self.m3);
        self.m4 += 6.0 * dl2 * m2 - 4.0 * dl * m3 + d * ((aa + bb) * (a2 + b2) + dl2 * dl);
        self.m3 += d * (a2 + aa * bb + b2 - dl2) - 3.0 * dl * m2;
        self.m2 += d * (aa + bb + dl);
        self.centered_mean += dl;
        self.raise_peaks();
        self.removals += 1;
    }

    /// Removes sample `x`, which must be in the window. Inverts [`Moments::add`].
    #[inline]
    pub fn remove(&mut self, x: f64) {
        if self.n <= 1 {
            *self = Moments {
                peak_m2: self.peak_m2,
                peak_m4: self.peak_m4,
                removals: self.removals + 1,
                ..Default::default()
            };
            return;
        }
        let n = f64::from(self.n);
        let x = x - self.shift;
        let n1 = n - 1.0;
        let mean1 = self.centered_mean - (x - self.centered_mean) / n1;
        let delta = x - mean1;
        let dn = delta / n;
        let dn2 = dn * dn;
        let term1 = delta * dn * n1;
        let m2 = self.m2 - term1;
        let m3 = self.m3 - term1 * dn * (n - 2.0) + 3.0 * dn * m2;
        let m4 = self.m4 - term1 * dn2 * (n * n - 3.0 * n + 3.0) - 6.0 * dn2 * m2 + 4.0 * dn * m3;
        // A constant window stays exactly constant: x == mean gives delta == 0.
        if x != self.centered_mean {
            self.centered_mean = mean1;
        }
        self.m2 = m2;
        self.m3 = m3;
        self.m4 = m4;
        self.n -= 1;
        self.removals += 1;
    }

    /// Whether accumulated cancellation calls for an exact rebuild.
    #[inline]
    pub fn needs_recompute(&self, recompute_every: u32) -> bool {
        self.removals >= recompute_every
            || self.m2 < 0.0
            || self.m4 < 0.0
            || (self.removals > 0
                && (self.m2 < M2_COLLAPSE * self.peak_m2 || self.m4 < M4_COLLAPSE * self.peak_m4))
    }

    /// Rebuilds exactly from the samples (two passes, shifted by the first sample
    /// so a constant series gives exactly zero moments and large offsets cancel).
    pub fn recompute(a: &[f64], b: &[f64]) -> Moments {
        // At most a window's samples: the count fits a `u32` (`Config`'s
        // window bound), and `n` is that count exactly.
        let count = (a.len() + b.len()) as u32;
        let n = f64::from(count);
        let Some(&k) = a.first().or(b.first()) else {
            return Moments::default();
        };
        // Four independent accumulators per sum: the rebuild runs every
        // `recompute_every` removals, so its speed is part of the per-reading cost (see
        // `rebuild_pass`).
        let mut s = [0.0f64; 4];
        for part in [a, b] {
            rebuild_pass::sums(part, k, &mut s);
        }
        let md = ((s[0] + s[1]) + (s[2] + s[3])) / n;
        let (mut m2, mut m3, mut m4) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
        for part in [a, b] {
            rebuild_pass::central_sums(part, k, md, [&mut m2, &mut m3, &mut m4]);
        }
        let sum = |v: [f64; 4]| (v[0] + v[1]) + (v[2] + v[3]);
        let (m2, m3, m4) = (sum(m2), sum(m3), sum(m4));
        Moments {
            n: count,
            shift: k,
            centered_mean: md,
            m2,
            m3,
            m4,
            peak_m2: m2,
            peak_m4: m4,
            removals: 0,
        }
    }

    /// The mean of the window (0 when empty).
    #[inline]
    pub fn mean(&self) -> f64 {
        self.shift + self.centered_mean
    }

    /// Population variance (M2 / n), 0 for fewer than two samples; never negative.
    #[inline]
    pub fn variance(&self) -> f64 {
        if self.n < 2 || self.m2 <= 0.0 {
            0.0
        } else {
            self.m2 / f64::from(self.n)
        }
    }

    /// Population standard deviation.
    #[inline]
    pub fn std(&self) -> f64 {
        self.variance().sqrt()
    }

    /// Sample skewness g1 = sqrt(n) M3 / M2^1.5; 0 when the variance is 0.
    pub fn skewness(&self) -> f64 {
        if self.variance() == 0.0 {
            0.0
        } else {
            f64::from(self.n).sqrt() * self.m3 / self.m2.powf(1.5)
        }
    }

    /// Excess kurtosis g2 = n M4 / M2^2 - 3; 0 when the variance is 0.
    pub fn excess_kurtosis(&self) -> f64 {
        if self.variance() == 0.0 {
            0.0
        } else {
            f64::from(self.n) * self.m4 / (self.m2 * self.m2) - 3.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reading's update touches one cache line of moments: a field more
    /// (or `n` back as an `f64`) would make every meter's record straddle two.
    #[test]
    fn one_meters_moments_are_one_cache_line() {
        assert_eq!(std::mem::size_of::<Moments>(), 64);
        assert_eq!(std::mem::align_of::<Moments>(), 64);
    }

    #[test]
    fn add_then_remove_matches_recompute() {
        let xs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        let mut m = Moments::default();
        for &x in &xs {
            m.add(x);
        }
        m.remove(3.0);
        m.remove(1.0);
        let r = Moments::recompute(&xs[2..], &[]);
        for (a, b) in [(m.mean(), r.mean()), (m.m2, r.m2), (m.m3, r.m3), (m.m4, r.m4)] {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn constant_series_has_exactly_zero_moments() {
        let mut m = Moments::default();
        for _ in 0..50 {
            m.add(0.1);
        }
        for _ in 0..20 {
            m.remove(0.1);
            m.add(0.1);
        }
        assert_eq!((m.m2, m.m3, m.m4), (0.0, 0.0, 0.0));
        assert_eq!(m.variance(), 0.0);
        assert_eq!(m.skewness(), 0.0);
        assert_eq!(m.excess_kurtosis(), 0.0);
        let r = Moments::recompute(&[0.1; 7], &[]);
        assert_eq!((r.m2, r.variance()), (0.0, 0.0));
    }

    #[test]
    fn replace_matches_recompute_and_is_exact_for_equal_samples() {
        let xs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0];
        let w = 5;
        let mut m = Moments::recompute(&xs[..w], &[]);
        for i in w..xs.len() {
            m.replace(xs[i - w], xs[i], 1.0 / w as f64);
            let r = Moments::recompute(&xs[i + 1 - w..=i], &[]);
            for (a, b) in [(m.mean(), r.mean()), (m.m2, r.m2), (m.m3, r.m3), (m.m4, r.m4)] {
                assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "step {i}: {a} vs {b}");
            }
        }
        let before = m;
        m.replace(7.25, 7.25, 0.2);
        assert_eq!((m.mean(), m.m2, m.m3, m.m4), (before.mean(), before.m2, before.m3, before.m4));
    }

    #[test]
    fn collapse_of_m2_asks_for_recompute() {
        let mut m = Moments::default();
        for x in [0.0, 1e7, 1e7, 1e7] {
            m.add(x);
        }
        assert!(!m.needs_recompute(100));
        m.remove(0.0);
        assert!(m.needs_recompute(100));
    }
}
