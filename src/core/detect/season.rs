//! The seasonal rule: a meter whose window holds at least three periods of a
//! cycle (a day of 5-minute readings is 288, an hour-of-day cycle 24) is also
//! judged on its **seasonal residual**, the newest reading minus the reading
//! one period before (or two periods before, whichever is closer: a spike one
//! period ago does not echo), in units of the meter's own running scale of
//! that residual. A daily peak that comes as every day is not a residual; a
//! day whose peak is higher, flat or missing, a holiday dip, or a level shift
//! on a seasonal meter is.
//!
//! State: 12 bytes a meter ([`Season`]), in `state::Verdicts`. The period is
//! found from the ring itself by [`detect_period`] (autocorrelation of block
//! means, then the exact lag by mean squared difference, then a multiple of
//! it when the multiple explains the day-to-day differences, a week of days:
//! [`longer_cycle`]; when the block means show no cycle but wander, the same
//! on their first differences, where the wander no longer hides a weak one, kept
//! only if it repeats in each third of the window: [`repeats_throughout`]),
//! at most once per
//! `window` readings, staggered over meters so no tick scans them all; the
//! residual reads two samples from the ring per reading evaluated. Rules and
//! defaults: `docs/DETECTION.md`, "Seasonal".
//!
//! Cost shape: a meter without a period (most meters) costs an evaluation one
//! comparison of its learned reading count against [`Season::scan_at`], the
//! count at which its next scan is due, cached so the due check needs no
//! division; the ring is read only by a scan or by a meter with a period.

/// Readings per block in the coarse autocorrelation scan.
pub(super) const SEASON_BLOCK: usize = 8;

/// Least period, in readings (2 blocks).
pub(super) const SEASON_MIN_PERIOD: usize = 2 * SEASON_BLOCK;

/// The window must hold this many periods for one to be accepted.
pub(super) const SEASON_PERIODS: usize = 3;

/// Least autocorrelation of the block means at the period's lag.
pub(super) const SEASON_ACF: f64 = 0.6;

/// The autocorrelation must have fallen at least this far below its value at
/// the period's lag at some shorter lag (a cycle, not a slow wander).
pub(super) const SEASON_DIP: f64 = 0.5;

/// Among the qualifying peaks, the shortest whose autocorrelation is at least
/// this share of the best is the period (not one of its multiples).
pub(super) const SEASON_NEAR_BEST: f64 = 0.9;

/// The period must carry this share of the window's variance at full
/// resolution: the mean squared difference `x_t − x_{t−P}` is at most
/// `2·(1 − SEASON_EXPLAINED)` times the variance (an autocorrelation of at
/// least this at lag P). Bursts that happen to line up in block means do not.
pub(super) const SEASON_EXPLAINED: f64 = 0.5;

/// A multiple of the period (a week of days) is judged against instead when
/// its mean squared difference is at most this share of the period's
/// ([`longer_cycle`]).
pub(super) const SEASON_LONGER: f64 = 0.5;

/// A period found in a wandering meter's differences must show in each third
/// of the window: their correlation at the lag there is at least this
/// ([`repeats_throughout`]).
pub(super) const SEASON_THIRDS_RHO: f64 = 0.25;

/// Blocks of one period left out of a lag's mean squared difference when
/// multiples are compared ([`trimmed_msd`]): an incident a period long and
/// its echo, two blocks each.
pub(super) const SEASON_TRIM: usize = 4;

/// Residual terms the scale learns from before the rule judges.
pub(super) const SEASON_WARM: u16 = 120;

/// Time constant of the residual scale, in residuals.
pub(super) const SEASON_MEMORY: f64 = 1_200.0;

/// Readings of one evaluation whose residuals are scored (the newest ones).
pub(super) const SEASON_MAX_READINGS: u32 = 16;

/// One meter's seasonal state (12 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub(super) struct Season {
    /// Running mean square of the residual (EWMA once `SEASON_MEMORY` are learned).
    pub scale2: f32,
    /// The period in readings (0: none found).
    pub period: u16,
    /// Residuals learned since the period was found (saturating).
    pub learned: u16,
    /// A cache of [`next_scan`]: the learned reading count at which the
    /// meter's next scan is due, valid while the count is below it and the
    /// window is the one it was computed for (`Detector` zeroes it when the
    /// window changes); 0 when unknown. Not part of what the rule has
    /// learned: [`Season::adopt`] keeps it.
    pub scan_at: u32,
}

/// Sample `k` readings before the newest (k = 0 is the newest) of a window
/// given as two slices, oldest first.
#[inline]
pub(super) fn back(a: &[f64], b: &[f64], k: usize) -> Option<f64> {
    if k < b.len() {
        b.get(b.len() - 1 - k).copied()
    } else {
        let k = k - b.len();
        if k < a.len() {
            a.get(a.len() - 1 - k).copied()
        } else {
            None
        }
    }
}

/// Whether the meter's scan is due in an evaluation that takes its learned
/// reading count from `before` to `after`: once per `every` readings, at a
/// phase set by the meter index so meters that started together do not all
/// scan in the same tick.
#[inline]
pub(super) fn scan_due(m: usize, before: u32, after: u32, every: u32) -> bool {
    if every == 0 {
        return false;
    }
    let phase = ((m as u64).wrapping_mul(2_654_435_761) % u64::from(every)) as u32;
    let e = u64::from(every);
    (u64::from(before) + u64::from(phase)) / e != (u64::from(after) + u64::from(phase)) / e
}

/// The learned reading count at which meter `m`'s next scan is due when it has
/// learned `readings`, once per `every` readings: the least count `R >
/// readings` at which [`scan_due`] turns true, so `scan_due(m, readings,
/// after, every)` is exactly `after >= next_scan(m, readings, every)`.
/// 0 when there is none below 2³² (or `every` is 0).
pub(super) fn next_scan(m: usize, readings: u32, every: u32) -> u32 {
    if every == 0 {
        return 0;
    }
    let e = u64::from(every);
    let phase = (m as u64).wrapping_mul(2_654_435_761) % e;
    let next = ((u64::from(readings) + phase) / e + 1) * e - phase;
    u32::try_from(next).unwrap_or(0)
}

/// The period of the samples (oldest first, as two slices), in readings, or 0
/// when they do not hold [`SEASON_PERIODS`] clear cycles.
///
/// Coarse: the autocorrelation of block means ([`SEASON_BLOCK`] readings
/// each) at every lag up to a third of the blocks; a lag qualifies when it is a
/// local maximum at least [`SEASON_ACF`] that the autocorrelation fell
/// [`SEASON_DIP`] below at a shorter lag; the shortest qualifying lag within
/// [`SEASON_NEAR_BEST`] of the best is kept. Fine: the lag within a block of it
/// with the least mean squared difference `x_t − x_{t−P}` over the samples.
/// O(blocks² + block·n) multiply-adds: about 20,000 at window 1,200.
#[cfg(test)]
pub(super) fn detect_period(a: &[f64], b: &[f64]) -> u16 {
    ScanScratch::default().period(a, b).unwrap_or(0)
}

/// The scan's buffers, kept by the detector across scans: the window as one
/// slice (the ring gives it as two once it has wrapped) and a wandering
/// meter's differences. The scan reads every sample many times (about 20
/// reads each at window 1,200); through a two-slice accessor each read was a
/// branch and two bounds checks, and a burst's tick, with most meters due,
/// spent ~100 ms at 5,000 meters in wasm (docs/PERFORMANCE.md, "The
/// seasonal scan on one slice").
#[derive(Clone, Debug, Default)]
pub(super) struct ScanScratch {
    window: Vec<f64>,
    diffs: Vec<f64>,
}

impl ScanScratch {
    /// [`detect_period`] of the window `a` then `b`; None when the buffers
    /// cannot be had (the caller keeps the period it has).
    pub fn period(&mut self, a: &[f64], b: &[f64]) -> Option<u16> {
        let x = if b.is_empty() {
            a
        } else if a.is_empty() {
            b
        } else {
            self.window.clear();
            self.window.try_reserve(a.len() + b.len()).ok()?;
            self.window.extend_from_slice(a);
            self.window.extend_from_slice(b);
            &self.window
        };
        scan(x, true, &mut self.diffs)
    }

    /// Bytes the buffers hold.
    pub fn bytes(&self) -> usize {
        (self.window.capacity() + self.diffs.capacity()) * std::mem::size_of::<f64>()
    }
}

/// [`detect_period`] on the samples `x`, with the scan of the block means'
/// differences when `wander` (without it, the scan as it was before it: the
/// oracle test's); `diffs` holds the samples' differences for that step.
/// None when `diffs` cannot be had.
fn scan(x: &[f64], wander: bool, diffs: &mut Vec<f64>) -> Option<u16> {
    let n = x.len();
    let nb = n / SEASON_BLOCK;
    let max_lag = nb / SEASON_PERIODS;
    if max_lag < SEASON_MIN_PERIOD / SEASON_BLOCK + 1 {
        return Some(0);
    }
    // Block means aligned to the newest sample (at most 256 blocks, the newest).
    let mut blocks = [0.0f64; 256];
    let nb = nb.min(blocks.len());
    let skip = n - nb * SEASON_BLOCK;
    let mut sum = 0.0;
    let chunks = x.get(skip..).unwrap_or(&[]).chunks_exact(SEASON_BLOCK);
    for (slot, chunk) in blocks.iter_mut().take(nb).zip(chunks) {
        let mut s = 0.0;
        for v in chunk {
            s += v;
        }
        *slot = s / SEASON_BLOCK as f64;
        sum += *slot;
    }
    let mu = sum / nb as f64;
    for slot in blocks.iter_mut().take(nb) {
        *slot -= mu;
    }
    // Coarse, then fine: the lag within a block of the coarse one with the
    // least mean squared difference over the samples. No cycle in the block
    // means: the same on their first differences, where a slow wander (a
    // temperature's weather) no longer hides a cycle that carries a small
    // share of the window's variance; its fine step then compares the
    // samples' differences `x_t − x_{t−B}` (B a block), whose spread no
    // longer grows with the lag, so the wander does not pull the pick
    // short of the cycle (`wandering_cycle`).
    let (found, r1) = coarse_lag(&blocks[..nb]);
    let (pick, least) = if let Some(coarse) = found {
        fine_lag(x, coarse)
    } else if !wander || r1 < SEASON_ACF {
        // Block means that do not wander (their autocorrelation at one block
        // under `SEASON_ACF`) would have shown a cycle themselves: their
        // differences are not scanned (most meters: noise about a level).
        return Some(0);
    } else {
        let mut steps = [0.0f64; 256];
        let mut dsum = 0.0;
        for (slot, pair) in steps.iter_mut().zip(blocks[..nb].windows(2)) {
            *slot = pair[1] - pair[0];
            dsum += *slot;
        }
        let dmu = dsum / (nb - 1) as f64;
        for slot in steps.iter_mut().take(nb - 1) {
            *slot -= dmu;
        }
        let Some(coarse) = coarse_lag(&steps[..nb - 1]).0 else {
            return Some(0);
        };
        // The samples' differences one block apart, `x_{i+B} − x_i`.
        diffs.clear();
        diffs.try_reserve(n - SEASON_BLOCK).ok()?;
        diffs.extend(x.iter().skip(SEASON_BLOCK).zip(x).map(|(later, v)| later - v));
        let (mut pick, msd) = fine_lag(diffs, coarse);
        // The coarse lag may be a multiple of the cycle (its differences'
        // autocorrelation peaks at every multiple alike): the shortest
        // whole part of it whose differences repeat as well is the cycle.
        for d in (2..=8usize).rev() {
            let q = (pick + d / 2) / d;
            if q < SEASON_MIN_PERIOD {
                continue;
            }
            let (lo, hi) = (q.saturating_sub(2), q + 2);
            let (short, m) = fine_lag_in(diffs, lo, hi);
            if m * SEASON_NEAR_BEST * SEASON_NEAR_BEST * SEASON_NEAR_BEST <= msd {
                pick = short;
                break;
            }
        }
        if pick == 0 || !repeats_throughout(diffs, pick) {
            return Some(0);
        }
        let mut s = 0.0;
        for (v, w) in x.iter().skip(pick).zip(x) {
            let d = v - w;
            s += d * d;
        }
        (pick, s / (n - pick) as f64)
    };
    let mut m2 = 0.0;
    let mean = x.iter().sum::<f64>() / n as f64;
    for v in x {
        let d = v - mean;
        m2 += d * d;
    }
    if least.is_nan() || least > 2.0 * (1.0 - SEASON_EXPLAINED) * m2 / n as f64 {
        return Some(0);
    }
    Some(u16::try_from(longer_cycle(x, pick)).unwrap_or(0))
}

/// Whether the samples `y` (a wandering meter's differences) repeat
/// at lag `p` in each third of the window: in every third, their
/// correlation with themselves `p` back, `1 − Σ(y_t − y_{t−p})² / (Σy_t² +
/// Σy_{t−p}²)`, is at least [`SEASON_THIRDS_RHO`] (the differences of a
/// wander have a mean of about 0). A cycle goes on through the window; a
/// burst of evenly spaced spikes (a spike train on a pump's square wave,
/// whose differences are otherwise its edges) is periodic in one third
/// only. Both terms count an event the lag does not repeat, wherever it
/// falls, so one near a third's edge weighs as one inside it.
fn repeats_throughout(y: &[f64], p: usize) -> bool {
    let span = y.len().saturating_sub(p) / 3;
    if span < p {
        return false;
    }
    (0..3).all(|part| {
        let lo = p + part * span;
        let here = y.get(lo..lo + span).unwrap_or(&[]);
        let back = y.get(lo - p..lo - p + span).unwrap_or(&[]);
        let (mut both, mut sd) = (0.0, 0.0);
        for (&v, &w) in here.iter().zip(back) {
            let d = v - w;
            both += v * v + w * w;
            sd += d * d;
        }
        both > 0.0 && sd <= (1.0 - SEASON_THIRDS_RHO) * both
    })
}

/// The fine step of [`detect_period`]: the lag within a block of `coarse`
/// blocks with the least mean squared difference `x_t − x_{t−P}` over the
/// samples `x`, and that mean square.
fn fine_lag(x: &[f64], coarse: usize) -> (usize, f64) {
    let centre = coarse * SEASON_BLOCK;
    let lo = centre.saturating_sub(SEASON_BLOCK).max(SEASON_MIN_PERIOD);
    fine_lag_in(x, lo, centre + SEASON_BLOCK)
}

/// The lag in `lo..=hi` (`hi` at most a third of the samples) with the least
/// mean squared difference `x_t − x_{t−P}` over the samples `x`, and that
/// mean square.
fn fine_lag_in(x: &[f64], lo: usize, hi: usize) -> (usize, f64) {
    let n = x.len();
    let hi = hi.min(n / SEASON_PERIODS);
    let mut pick = 0usize;
    let mut least = f64::INFINITY;
    let mut p = lo;
    while p <= hi {
        // Four lags at once: lag p + j's sum takes its terms i = p + j .. n
        // in increasing i, as a loop per lag would.
        let k = (hi + 1 - p).min(4);
        let s = if k == 4 { four_lag_sums(x, p) } else { lag_msd_sums(x, p, k) };
        for (j, sj) in s.iter().take(k).enumerate() {
            let msd = sj / (n - (p + j)) as f64;
            if msd < least {
                least = msd;
                pick = p + j;
            }
        }
        p += k;
    }
    (pick, least)
}

/// `Σ_{i ≥ p+j} (x_i − x_{i−p−j})²` for the `k` (< 4) lags `p + j`, each
/// summed in increasing `i`.
fn lag_msd_sums(x: &[f64], p: usize, k: usize) -> [f64; 4] {
    let mut s = [0.0f64; 4];
    for (j, sj) in s.iter_mut().enumerate().take(k) {
        let lag = p + j;
        for (v, w) in x.iter().skip(lag).zip(x) {
            let d = v - w;
            *sj += d * d;
        }
    }
    s
}

/// `Σ_{i ≥ p+j} (x_i − x_{i−p−j})²` for the four lags `p .. p + 4`, each
/// summed in increasing `i` (the first three terms of the longer lags
/// first, then every lag's term at each `i` from `p + 3`): the sums of
/// [`lag_msd_sums`], bit for bit, four addition chains in flight.
fn four_lag_sums(x: &[f64], p: usize) -> [f64; 4] {
    let n = x.len();
    let mut s = [0.0f64; 4];
    // i in p .. p + 3: only the lags that reach back that far.
    for i in p..(p + 3).min(n) {
        for (j, sj) in s.iter_mut().enumerate() {
            if let (true, Some(v), Some(w)) = (i >= p + j, x.get(i), x.get(i.wrapping_sub(p + j))) {
                let d = v - w;
                *sj += d * d;
            }
        }
    }
    // i from p + 3: the window `[x_{i−p−3}, …, x_{i−p}]` beside x_i.
    let ahead = x.iter().skip(p + 3);
    let behind = x.get(..n.saturating_sub(p)).unwrap_or(&[]).windows(4);
    for (&v, w) in ahead.zip(behind) {
        if let [w3, w2, w1, w0] = *w {
            let (d0, d1, d2, d3) = (v - w0, v - w1, v - w2, v - w3);
            s[0] += d0 * d0;
            s[1] += d1 * d1;
            s[2] += d2 * d2;
            s[3] += d3 * d3;
        }
    }
    s
}

/// The coarse step of [`detect_period`]: over centred block means, the lag (in
/// blocks) of the shortest local maximum of the autocorrelation that is at
/// least [`SEASON_ACF`], that the autocorrelation fell [`SEASON_DIP`] below at
/// a shorter lag, and within [`SEASON_NEAR_BEST`] of the best such; None when
/// there is none (or the blocks are flat). With it, the autocorrelation at
/// one block (0 for flat blocks).
pub(super) fn coarse_lag(blocks: &[f64]) -> (Option<usize>, f64) {
    let nb = blocks.len();
    let mut c0 = 0.0;
    for x in blocks {
        c0 += x * x;
    }
    if c0.is_nan() || c0 <= 0.0 || !c0.is_finite() {
        return (None, 0.0);
    }
    let c0 = c0 / nb as f64;
    let max_lag = (nb / SEASON_PERIODS).min(u16::MAX as usize / SEASON_BLOCK);
    let first = SEASON_MIN_PERIOD / SEASON_BLOCK;
    if max_lag < first + 1 {
        return (None, 0.0);
    }
    // r at lags first-1 ..= max_lag+2, for the local-maximum test (a peak one
    // block past the longest period still gives that period, as the fine
    // search is clamped to it).
    let mut r = [0.0f64; 90];
    let top = (max_lag + 2).min(r.len() - 1).min(nb - 1);
    let mut l = first - 1;
    while l <= top {
        // Up to four lags at once, each its own sum in the one-lag order
        // (`lag_sums`): the same bits, four addition chains in flight.
        let k = (top + 1 - l).min(4);
        let s = lag_sums(blocks, l, k);
        for (j, sj) in s.iter().take(k).enumerate() {
            if let Some(slot) = r.get_mut(l + j) {
                *slot = sj / ((nb - (l + j)) as f64 * c0);
            }
        }
        l += k;
    }
    let mut low = f64::INFINITY;
    let mut peaks = [(0usize, 0.0f64); 16];
    let mut k = 0;
    let mut best = 0.0f64;
    for l in first..top {
        let (prev, here, next) = (r[l - 1], r[l], r[l + 1]);
        low = low.min(prev);
        if l <= max_lag + 1
            && here >= SEASON_ACF
            && here - low >= SEASON_DIP
            && here >= prev
            && here >= next
            && k < peaks.len()
        {
            peaks[k] = (l, here);
            k += 1;
            best = best.max(here);
        }
    }
    (peaks[..k].iter().find(|p| p.1 >= SEASON_NEAR_BEST * best).map(|p| p.0), r[1])
}

/// The cycle to judge a meter of period `p` against: among the multiples
/// `k·p` (2 ≤ k ≤ 31) that the samples `x` (oldest first) hold
/// [`SEASON_PERIODS`] times, the shortest whose [`trimmed_msd`] is within
/// [`SEASON_NEAR_BEST`] of the least (a week, not two), if that is at most
/// [`SEASON_LONGER`] of `p`'s; otherwise `p`. A week of days: when weekend
/// days differ from weekdays, every weekday → weekend edge is a daily
/// residual as large as an incident, and the same day a week before is the
/// like-for-like comparison. On a cycle that repeats every period (and on a
/// wander, whose differences grow with the lag) no multiple comes near that
/// share, so `p` stays. At most `n/(3p)` lags of `n` differences each, only
/// for a meter with a period, once per scan.
fn longer_cycle(x: &[f64], p: usize) -> usize {
    let n = x.len();
    if p > 0 && 2 * p > n / SEASON_PERIODS {
        return beyond_reach(x, p);
    }
    let mut msd = [f64::INFINITY; 32];
    let mut least = f64::INFINITY;
    for (k, slot) in msd.iter_mut().enumerate().skip(2) {
        let q = k * p;
        if p == 0 || q > n / SEASON_PERIODS {
            break;
        }
        *slot = trimmed_msd(x, q, p);
        least = least.min(*slot);
    }
    let base = trimmed_msd(x, p, p);
    // NaN-safe: a NaN share (sums past f64's range) keeps `p`.
    let longer = least.is_finite() && least <= SEASON_LONGER * base;
    if !longer {
        return p;
    }
    let k = msd.iter().position(|&m| m * SEASON_NEAR_BEST <= least).unwrap_or(1);
    k * p
}

/// [`longer_cycle`] for a period `p` with no multiple the window holds three
/// times: `p` may itself be several of a shorter cycle (the scan's coarse
/// step picked 6 days, 288 readings, on the NAB-like `taxi-demand` when its
/// one-day autocorrelation fell under 90% of the week's, and the meter then
/// lost its week). The lags `q > p` that are multiples of `d = p/j` (j in
/// 2..=7, `d` a whole number of at least [`SEASON_MIN_PERIOD`]) are tried,
/// each by its [`trimmed_msd`] in blocks of `d` against `p`'s; the least at
/// most [`SEASON_LONGER`] of it wins, otherwise `p`. A few lags: at window
/// 1,200 only periods of 201–400 readings come here.
fn beyond_reach(x: &[f64], p: usize) -> usize {
    let top = x.len() / SEASON_PERIODS;
    let (mut pick, mut least) = (p, f64::INFINITY);
    for j in 2..=7 {
        let d = p / j;
        if p % j != 0 || d < SEASON_MIN_PERIOD {
            continue;
        }
        let base = trimmed_msd(x, p, d);
        let mut q = p + d;
        while q <= top {
            let m = trimmed_msd(x, q, d);
            if m <= SEASON_LONGER * base && m < least {
                (pick, least) = (q, m);
            }
            q += d;
        }
    }
    pick
}

/// The mean squared difference `x_t − x_{t−q}` over whole blocks of `p`
/// terms, less the [`SEASON_TRIM`] blocks with the largest sums: an incident
/// a period long (a holiday) and its echo one lag later each fall across up
/// to two blocks at any lag, and untrimmed they weigh on a lag's figure as
/// much as a weekly pattern does (a holiday in the window took the weekly
/// lag's share on the NAB-like `taxi-demand` from 0.13–0.21 to 0.4–0.8).
/// `f64::INFINITY` when no more than `SEASON_TRIM` blocks fit.
///
/// Each block's sum runs in increasing `t`; four blocks are summed side by
/// side (four addition chains in flight), then taken in block order.
fn trimmed_msd(x: &[f64], q: usize, p: usize) -> f64 {
    let blocks = x.len().saturating_sub(q) / p.max(1);
    if blocks <= SEASON_TRIM {
        return f64::INFINITY;
    }
    if p == 0 {
        // Empty blocks (never asked for: a period is at least
        // `SEASON_MIN_PERIOD`): 0 / 0, as the sums over them give.
        return f64::NAN;
    }
    let span = blocks * p;
    let later = x.get(q..q + span).unwrap_or(&[]).chunks_exact(p);
    let earlier = x.get(..span).unwrap_or(&[]).chunks_exact(p);
    let mut pairs = later.zip(earlier);
    let mut total = 0.0;
    let mut top = [0.0f64; SEASON_TRIM];
    let mut take = |s: f64| {
        total += s;
        // Keep the largest block sums, largest first.
        let mut v = s;
        for t in top.iter_mut() {
            if v > *t {
                std::mem::swap(&mut v, t);
            }
        }
    };
    loop {
        match (pairs.next(), pairs.next(), pairs.next(), pairs.next()) {
            (Some(a), Some(b), Some(c), Some(d)) => {
                let mut s = [0.0f64; 4];
                let terms = a.0.iter().zip(a.1).zip(b.0.iter().zip(b.1));
                let terms = terms.zip(c.0.iter().zip(c.1).zip(d.0.iter().zip(d.1)));
                for (((ha, la), (hb, lb)), ((hc, lc), (hd, ld))) in terms {
                    let (da, db, dc, dd) = (ha - la, hb - lb, hc - lc, hd - ld);
                    s[0] += da * da;
                    s[1] += db * db;
                    s[2] += dc * dc;
                    s[3] += dd * dd;
                }
                s.into_iter().for_each(&mut take);
            }
            (a, b, c, _) => {
                for (later, earlier) in [a, b, c].into_iter().flatten() {
                    let mut s = 0.0;
                    for (h, l) in later.iter().zip(earlier) {
                        let d = h - l;
                        s += d * d;
                    }
                    take(s);
                }
                break;
            }
        }
    }
    (total - top.iter().sum::<f64>()) / ((blocks - SEASON_TRIM) * p) as f64
}

/// The lagged products `Σ_{i < n−(l+j)} x_i·x_{i+l+j}` of `x` (n samples) for
/// the `k` (1..=4) lags `l + j`, `j < k`, each summed in increasing `i`: the
/// sums a loop per lag gives, bit for bit, with up to four independent
/// addition chains (a loop per lag waits an addition's latency per term).
fn lag_sums(x: &[f64], l: usize, k: usize) -> [f64; 4] {
    let n = x.len();
    let mut s = [0.0f64; 4];
    // Terms every lag has: i < n − (l + k − 1).
    let common = n.saturating_sub(l + k - 1);
    if k == 4 {
        let ys = x.get(l..).unwrap_or(&[]).windows(4);
        for (xi, y) in x.iter().take(common).zip(ys) {
            if let [y0, y1, y2, y3] = *y {
                s[0] += xi * y0;
                s[1] += xi * y1;
                s[2] += xi * y2;
                s[3] += xi * y3;
            }
        }
    } else {
        for (i, xi) in x.iter().enumerate().take(common) {
            for (j, sj) in s.iter_mut().enumerate().take(k) {
                *sj += xi * x.get(i + l + j).copied().unwrap_or(0.0);
            }
        }
    }
    // The longer sums' last terms, still in increasing i.
    for (j, sj) in s.iter_mut().enumerate().take(k) {
        for i in common..n.saturating_sub(l + j) {
            *sj += x.get(i).copied().unwrap_or(0.0) * x.get(i + l + j).copied().unwrap_or(0.0);
        }
    }
    s
}

/// The seasonal residual of the sample `k` readings before the newest, for
/// period `p`: against the sample one period before it or two, whichever is
/// closer (None when the window does not reach two periods back).
#[inline]
pub(super) fn residual(a: &[f64], b: &[f64], k: usize, p: usize) -> Option<f64> {
    let x = back(a, b, k)?;
    let r1 = x - back(a, b, k + p)?;
    let r2 = x - back(a, b, k + 2 * p)?;
    Some(if r1.abs() <= r2.abs() { r1 } else { r2 })
}

impl Season {
    /// The largest squared residual among the newest `new` readings (at most
    /// [`SEASON_MAX_READINGS`]), 0 without a period.
    #[inline]
    pub fn peak_r2(&self, a: &[f64], b: &[f64], new: u32) -> f64 {
        let p = usize::from(self.period);
        if p == 0 {
            return 0.0;
        }
        let mut top = 0.0f64;
        for k in 0..new.min(SEASON_MAX_READINGS) as usize {
            if let Some(r) = residual(a, b, k, p) {
                top = top.max(r * r);
            }
        }
        top
    }

    /// The evidence, squared, of residual² `r2` over threshold `t` (the spike
    /// threshold in force) times the learned scale; 0 until the scale has
    /// learned from [`SEASON_WARM`] residuals. `floor2` floors the scale².
    #[inline]
    pub fn u2(&self, r2: f64, t: f64, floor2: f64) -> f64 {
        if self.period == 0 || self.learned < SEASON_WARM || r2 <= 0.0 {
            return 0.0;
        }
        r2 / (t * t * f64::from(self.scale2).max(floor2))
    }

    /// Learns residual² `r2` (capped at the threshold `t`: an incident moves
    /// the scale at most that much).
    #[inline]
    pub fn learn(&mut self, r2: f64, t: f64) {
        if self.period == 0 {
            return;
        }
        let s2 = f64::from(self.scale2);
        let term = if self.learned < SEASON_WARM { r2 } else { r2.min(t * t * s2) };
        let seen = (f64::from(self.learned) + 1.0).min(SEASON_MEMORY);
        let next = s2 + (term - s2) / seen;
        if next.is_finite() {
            self.scale2 = next as f32;
        }
        self.learned = self.learned.saturating_add(1);
    }

    /// Whether meter `m`'s scan is due in an evaluation that takes its learned
    /// reading count from `readings` to `readings + new` (saturating), once
    /// per `window` readings: exactly [`scan_due`], but from the cached
    /// [`Season::scan_at`], so that on most evaluations it is one comparison
    /// (the cache is refilled, with a division, once per `window` readings).
    #[inline]
    pub fn scan_due(&mut self, m: usize, readings: u32, new: u32, window: usize) -> bool {
        let every = u32::try_from(window).unwrap_or(u32::MAX);
        if self.scan_at <= readings {
            self.scan_at = next_scan(m, readings, every);
            if self.scan_at == 0 {
                // No due count below 2³²: the exact test, every time.
                return scan_due(m, readings, readings.saturating_add(new), every);
            }
        }
        readings.saturating_add(new) >= self.scan_at
    }

    /// Rescans the period when `due` ([`Season::scan_due`]) and the window (two
    /// slices, oldest first) is full (`window` readings).
    /// `scratch` holds the scan's buffers; without memory for them the
    /// period is kept as it is.
    pub fn rescan(
        &mut self,
        (a, b): (&[f64], &[f64]),
        window: usize,
        due: bool,
        scratch: &mut ScanScratch,
    ) {
        if due && a.len() + b.len() == window {
            if let Some(p) = scratch.period(a, b) {
                self.adopt(p);
            }
        }
    }

    /// One evaluation over the newest `new` readings of the window (two
    /// slices, oldest first): scores the largest residual against threshold
    /// `t` (`floor2` floors the scale²), then learns it. Returns the evidence
    /// squared (breach above 1); 0 without a period.
    pub fn judge(&mut self, (a, b): (&[f64], &[f64]), new: u32, t: f64, floor2: f64) -> f64 {
        if self.period == 0 {
            return 0.0;
        }
        let r2 = self.peak_r2(a, b, new);
        let u2 = self.u2(r2, t, floor2);
        self.learn(r2, t);
        u2
    }

    /// Adopts the period `p` found by a scan (a new period learns its scale
    /// afresh; 0, no cycle found, drops it).
    #[inline]
    pub fn adopt(&mut self, p: u16) {
        let near = p != 0 && self.period != 0 && p.abs_diff(self.period) <= SEASON_BLOCK as u16;
        if near {
            // The same cycle measured again (noise moves the estimate a few
            // readings): keep what the scale has learned.
            self.period = p;
        } else if p != self.period {
            *self = Season { period: p, scan_at: self.scan_at, ..Season::default() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::season_oracle;
    use super::*;

    /// The scan without its wander step, on the window `a` then `b`.
    fn plain(a: &[f64], b: &[f64]) -> u16 {
        let x = [a, b].concat();
        scan(&x, false, &mut Vec::new()).unwrap_or(0)
    }

    /// One reading `i` of `x` through the rule, as the tick does: a scan when
    /// due (as meter 3, once a window), then the judge; the reading's u².
    fn step(s: &mut Season, x: &[f64], i: usize, window: usize, t: f64) -> f64 {
        let lo = (i + 1).saturating_sub(window);
        let ring = (&x[lo..=i], &[][..]);
        let due = s.scan_due(3, i as u32, 1, window);
        s.rescan(ring, window, due, &mut ScanScratch::default());
        s.judge(ring, 1, t, 1e-12)
    }

    /// A uniform draw in [-0.5, 0.5) from a 64-bit LCG.
    fn uniform(s: &mut u64) -> f64 {
        *s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((*s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }

    fn wave(n: usize, p: usize, noise: f64, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                let u = uniform(&mut s);
                let f = (i % p) as f64 / p as f64;
                50.0 + 30.0 * (std::f64::consts::TAU * f).sin() + noise * u
            })
            .collect()
    }

    #[test]
    fn finds_the_period_of_a_noisy_cycle_exactly() {
        for p in [24usize, 48, 100, 288, 400] {
            let x = wave(1_200, p, 4.0, p as u64);
            let (a, b) = x.split_at(517);
            assert_eq!(usize::from(detect_period(a, b)), p, "period {p}");
        }
    }

    #[test]
    fn finds_no_period_in_noise_a_ramp_or_a_flat_window() {
        let noise = wave(1_200, 1_200_000, 40.0, 7);
        let noise: Vec<f64> = noise.iter().map(|v| v - 50.0).collect();
        assert_eq!(detect_period(&noise, &[]), 0);
        let ramp: Vec<f64> = (0..1_200).map(f64::from).collect();
        assert_eq!(detect_period(&ramp, &[]), 0);
        assert_eq!(detect_period(&[5.0; 1_200], &[]), 0);
        assert_eq!(detect_period(&[], &[]), 0);
        // Fewer than three periods in the window: none.
        let long = wave(1_200, 500, 1.0, 3);
        assert_eq!(detect_period(&long, &[]), 0);
    }

    #[test]
    fn residual_ignores_a_spike_one_period_back() {
        let mut x = wave(600, 100, 0.0, 1);
        let last = x.len() - 1;
        x[last - 100] += 1_000.0;
        let r = residual(&x, &[], 0, 100).unwrap_or(f64::NAN);
        assert!(r.abs() < 1e-9, "{r}");
        x[last] += 7.0;
        let r = residual(&x, &[], 0, 100).unwrap_or(f64::NAN);
        assert!((r - 7.0).abs() < 1e-9, "{r}");
        assert_eq!(residual(&x[..150], &[], 0, 100), None);
    }

    /// A meter fed a noisy cycle through a 1,200-reading window, one reading
    /// per evaluation: the seasonal rule never breaches on the normal cycles
    /// (their peaks are 15 noise sds high), and breaches within a few readings
    /// once one cycle's high phase is 1.5 times as high.
    #[test]
    fn a_changed_cycle_breaches_and_normal_peaks_do_not() {
        let (p, window, t) = (96usize, 1_200usize, 4.0);
        let mut x = wave(6_000, p, 4.0, 11);
        let at = 4_800;
        for (i, v) in x.iter_mut().enumerate().skip(at).take(p) {
            let f = (i % p) as f64 / p as f64;
            *v += 0.5 * 30.0 * (std::f64::consts::TAU * f).sin().max(0.0);
        }
        let mut s = Season::default();
        let mut first = None;
        for i in 0..x.len() {
            let u2 = step(&mut s, &x, i, window, t);
            if u2 > 1.0 {
                assert!(i >= at, "normal cycle breached at {i}: u² {u2}, period {}", s.period);
                first.get_or_insert(i);
            }
        }
        assert_eq!(usize::from(s.period), p);
        let first = first.unwrap_or(usize::MAX);
        assert!(first < at + p / 4, "the changed cycle was seen at {first}");
    }

    /// About N(0, 1): the sum of twelve uniform draws.
    fn normal(s: &mut u64) -> f64 {
        (0..12).map(|_| uniform(s)).sum()
    }

    /// An hourly temperature (the NAB-like `ambient-temperature`): a daily
    /// swing of ±`swing` (period `p`) on a wander (AR(1) φ `phi`, sd 3),
    /// noise 0.4, rounded to 0.1; `shift` added to readings `at..at + 30`.
    fn weather(
        n: usize,
        p: usize,
        swing: f64,
        phi: f64,
        shift: (usize, f64),
        seed: u64,
    ) -> Vec<f64> {
        let mut s = seed;
        let mut w = 0.0f64;
        (0..n)
            .map(|i| {
                w = phi * w + (1.0 - phi * phi).sqrt() * normal(&mut s);
                let f = (i % p) as f64 / p as f64;
                let day = -swing * (std::f64::consts::TAU * (f - 0.2)).cos();
                let step = if i >= shift.0 && i < shift.0 + 30 { shift.1 } else { 0.0 };
                ((71.0 + 3.0 * w + day + 0.4 * normal(&mut s) + step) * 10.0).round() / 10.0
            })
            .collect()
    }

    /// A daily swing that carries a tenth of the window's variance under a
    /// wander (the NAB-like `ambient-temperature`) is found from the block
    /// means' differences, within a reading of its length (not a multiple,
    /// not a lag the wander pulls short); the scan of the block means alone
    /// finds nothing there. (A 40-reading swing, as weak, is found only on
    /// some seeds: docs/DETECTION.md.)
    #[test]
    fn wandering_cycle() {
        for seed in 1..=8u64 {
            let x = weather(1_200, 24, 1.0, 0.995, (0, 0.0), seed);
            let (a, b) = x.split_at(700);
            assert_eq!(plain(a, b), 0, "seed {seed}: the plain scan");
            let p = detect_period(a, b);
            assert!(p.abs_diff(24) <= 1, "seed {seed}: {p}");
        }
    }

    /// A pump's square wave (exactly 12 for 720 readings, 0 for 1,680) with
    /// a spike train (five 3-reading spikes 40 readings apart, the meters
    /// corpus's `square-spike-train`) anywhere in the window: the train is
    /// periodic in the differences, but in one third of the window only, so
    /// their scan finds no period (it found 40 before `repeats_throughout`,
    /// and the square's edges then breached against it).
    #[test]
    fn a_spike_train_on_a_square_wave_is_no_cycle() {
        for start in (0..2_400).step_by(150) {
            for train in (0..1_000).step_by(125) {
                let x: Vec<f64> = (start..start + 1_200)
                    .map(|i| {
                        let square = if i % 2_400 < 720 { 12.0 } else { 0.0 };
                        let j = i - start;
                        let spike = j >= train && j < train + 163 && (j - train) % 40 < 3;
                        square + if spike { 50.0 } else { 0.0 }
                    })
                    .collect();
                // The block means' own scan may see the train alone (a
                // window with no edge); the differences' scan adds nothing.
                let plain = plain(&x, &[]);
                assert_eq!(detect_period(&x, &[]), plain, "start {start}, train at {train}");
            }
        }
    }

    /// A wander with no cycle, at any φ, has none found by either scan.
    #[test]
    fn no_cycle_in_a_plain_wander() {
        for seed in 1..=8u64 {
            for phi in [0.5, 0.9, 0.99, 0.995, 0.999] {
                let x = weather(1_200, 24, 0.0, phi, (0, 0.0), seed);
                assert_eq!(detect_period(&x, &[]), 0, "seed {seed}, φ {phi}");
            }
        }
    }

    /// The wandering temperature fed one reading per evaluation: a drop of
    /// 7 for 30 readings closes the 3-of-5 vote within 10 readings on most
    /// seeds, and the normal weather never does. Against the window's spread
    /// (sd about 3) the drop is 2–3 sd, which no other rule judges before the
    /// meter has trained; without the differences' scan there is no period
    /// and no seed finds it.
    #[test]
    fn a_drop_on_a_wandering_cycle_breaches_and_the_weather_does_not() {
        let (window, t, at) = (1_200usize, 4.0, 4_000usize);
        let mut found = 0;
        for seed in 1..=6u64 {
            let x = weather(5_000, 24, 1.0, 0.995, (at, -7.0), seed);
            let mut s = Season::default();
            let mut first = None;
            let mut votes = 0u32;
            for i in 0..x.len() {
                let u2 = step(&mut s, &x, i, window, t);
                votes = ((votes << 1) | u32::from(u2 > 1.0)) & 0b1_1111;
                if u2 > 1.0 && votes.count_ones() >= 3 {
                    assert!(i >= at, "seed {seed}: the weather alerted at {i}: u² {u2}");
                    first.get_or_insert(i);
                }
            }
            found += usize::from(first.is_some_and(|i| i < at + 10));
        }
        assert!(found >= 4, "{found} of 6 drops found within 10 readings");
    }

    /// A day of `p` readings on a week of 7 (days 5 and 6 a flatter weekend
    /// shape, as taxi demand), 5% noise; the day starting at `holiday` (if any)
    /// at `dip` of its normal.
    fn week(n: usize, p: usize, holiday: Option<usize>, dip: f64, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                let u = uniform(&mut s);
                let f = (i % p) as f64 / p as f64;
                let d = 0.5 - 0.5 * (std::f64::consts::TAU * (f - 0.2)).cos();
                let weekend = (i / p) % 7 >= 5;
                let shape = if weekend { 0.55 + 0.35 * d } else { 0.2 + 0.8 * d };
                let off = holiday.is_some_and(|h| i >= h && i < h + p);
                1_000.0 * shape * (1.0 + 0.1 * u) * if off { dip } else { 1.0 }
            })
            .collect()
    }

    /// A daily cycle whose weekend days differ is judged against the same
    /// day a week before (`longer_cycle`); a plain daily cycle keeps its day.
    #[test]
    fn a_week_of_days_is_judged_against_the_week() {
        for (p, seed) in [(48usize, 1u64), (48, 2), (40, 3), (24, 4), (16, 5)] {
            let x = week(1_200, p, None, 1.0, seed);
            let q = longer_cycle(&x, p);
            assert!(q > p && q % (7 * p) == 0, "period {p}, seed {seed}: {q}");
            // With a holiday in the window (and its echo a week later).
            let x = week(1_200, p, Some(9 * p), 0.5, seed);
            let q = longer_cycle(&x, p);
            assert!(q > p && q % (7 * p) == 0, "period {p}, seed {seed}, holiday: {q}");
        }
        let x = week(1_200, 48, None, 1.0, 1);
        let (a, b) = x.split_at(300);
        assert_eq!(detect_period(a, b), 336);
        // The scan found 6 days (no multiple in reach): the week, from the day.
        for seed in 1..=4u64 {
            let x = week(1_200, 48, Some(9 * 48), 0.5, seed);
            assert_eq!(longer_cycle(&x, 288), 336, "seed {seed}");
        }
        let x = wave(1_200, 288, 4.0, 5);
        assert_eq!(longer_cycle(&x, 288), 288);
        // Weekends like weekdays: the day.
        for p in [24usize, 48] {
            let x = wave(1_200, p, 8.0, p as u64);
            assert_eq!(usize::from(detect_period(&x, &[])), p, "period {p}");
            assert_eq!(longer_cycle(&x, p), p, "period {p}");
        }
    }

    /// A weekly meter fed one reading per evaluation: its normal weekends
    /// never close the 3-of-5 vote, and a holiday on the first day of a weekend (at 0.55 of
    /// that day a week before, but close to the weekday before it at night)
    /// breaches within its first quarter. Judged against one or two days
    /// back, the weekday → weekend edges fill the learned scale and the
    /// holiday is missed.
    #[test]
    fn a_weekend_holiday_breaches_and_normal_weekends_do_not() {
        let (p, window, t) = (48usize, 1_200usize, 4.0);
        for seed in [1u64, 3, 4, 5] {
            // A Saturday (day 5 of the week) in the 9th week.
            let at = (8 * 7 + 5) * p;
            let x = week(6_000, p, Some(at), 0.55, seed);
            let mut s = Season::default();
            let mut first = None;
            let mut votes = 0u32;
            for i in 0..x.len() {
                let u2 = step(&mut s, &x, i, window, t);
                // The spike vote the rule's breaches go to: 3 of the last 5.
                votes = ((votes << 1) | u32::from(u2 > 1.0)) & 0b1_1111;
                if u2 > 1.0 && votes.count_ones() >= 3 {
                    assert!(i >= at, "seed {seed}: a normal week alerted at {i}: u² {u2}");
                    first.get_or_insert(i);
                }
            }
            let first = first.unwrap_or(usize::MAX);
            assert!(first < at + p / 4, "seed {seed}: the holiday was seen at {first}");
            assert_eq!(usize::from(s.period), 7 * p, "seed {seed}");
        }
    }

    #[test]
    fn back_reads_across_both_slices() {
        let (a, b) = ([1.0, 2.0, 3.0], [4.0, 5.0]);
        assert_eq!(back(&a, &b, 0), Some(5.0));
        assert_eq!(back(&a, &b, 2), Some(3.0));
        assert_eq!(back(&a, &b, 4), Some(1.0));
        assert_eq!(back(&a, &b, 5), None);
    }

    /// The cached due check against the exact one, over evaluations of 0 to
    /// 3,000 readings (several intervals at once, none, and a count that
    /// does not move, as in warm-up), up to the count's saturation.
    #[test]
    fn the_cached_due_check_is_the_exact_one() {
        let mut seed = 5u64;
        let mut rand = |k: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % k
        };
        for m in [0usize, 1, 7, 4_999, 1 << 20] {
            for every in [8u32, 600, 1_200, 1_048_576] {
                for start in [0u32, u32::MAX - 10_000] {
                    let mut s = Season::default();
                    let mut readings = start;
                    for _ in 0..4_000 {
                        let new = match rand(10) {
                            0 => rand(3_000) as u32,
                            1 => 0,
                            _ => 1 + rand(3) as u32,
                        };
                        let exact = scan_due(m, readings, readings.saturating_add(new), every);
                        assert_eq!(s.scan_due(m, readings, new, every as usize), exact);
                        // Warm-up evaluations do not advance the count.
                        if rand(20) != 0 {
                            readings = readings.saturating_add(new);
                        }
                    }
                }
            }
        }
    }

    /// `detect_period` as it was before its sums ran four lags at once (and
    /// before the wander step): the oracle the faster one must equal. Its
    /// coarse and fine sums run here, one lag at a time; the two-slice
    /// reads, the block means and the test of the lag picked are
    /// `season_oracle`'s, shared with the two-slice scan.
    fn detect_period_one_lag_at_a_time(a: &[f64], b: &[f64]) -> u16 {
        let n = a.len() + b.len();
        let at = season_oracle::samples(a, b);
        let Some((blocks, nb)) = season_oracle::centred_block_means(at, n) else {
            return 0;
        };
        let mut c0 = 0.0;
        for x in blocks.iter().take(nb) {
            c0 += x * x;
        }
        if c0.is_nan() || c0 <= 0.0 || !c0.is_finite() {
            return 0;
        }
        let c0 = c0 / nb as f64;
        let max_lag = (nb / SEASON_PERIODS).min(u16::MAX as usize / SEASON_BLOCK);
        let acf = |l: usize| -> f64 {
            let mut s = 0.0;
            for (x, y) in blocks.iter().take(nb - l).zip(blocks.iter().skip(l)) {
                s += x * y;
            }
            s / ((nb - l) as f64 * c0)
        };
        let first = SEASON_MIN_PERIOD / SEASON_BLOCK;
        // r at lags first-1 ..= max_lag+2, for the local-maximum test (a peak one
        // block past the longest period still gives that period, as the fine
        // search is clamped to it).
        let mut r = [0.0f64; 90];
        let top = (max_lag + 2).min(r.len() - 1).min(nb - 1);
        for (l, slot) in r.iter_mut().enumerate().take(top + 1).skip(first - 1) {
            *slot = acf(l);
        }
        let mut low = f64::INFINITY;
        let mut peaks = [(0usize, 0.0f64); 16];
        let mut k = 0;
        let mut best = 0.0f64;
        for l in first..top {
            let (prev, here, next) = (r[l - 1], r[l], r[l + 1]);
            low = low.min(prev);
            if l <= max_lag + 1
                && here >= SEASON_ACF
                && here - low >= SEASON_DIP
                && here >= prev
                && here >= next
                && k < peaks.len()
            {
                peaks[k] = (l, here);
                k += 1;
                best = best.max(here);
            }
        }
        let Some(&(coarse, _)) = peaks[..k].iter().find(|p| p.1 >= SEASON_NEAR_BEST * best) else {
            return 0;
        };
        // Fine: least mean squared difference within a block of the coarse lag.
        let (lo, hi) = season_oracle::fine_range(coarse);
        let hi = hi.min(n / SEASON_PERIODS);
        let mut pick = 0usize;
        let mut least = f64::INFINITY;
        for p in lo..=hi {
            let mut s = 0.0;
            for i in p..n {
                let d = at(i) - at(i - p);
                s += d * d;
            }
            let msd = s / (n - p) as f64;
            if msd < least {
                least = msd;
                pick = p;
            }
        }
        season_oracle::accepted(at, n, pick, least)
    }

    /// The period found is the one-lag-at-a-time scan's, on cycles of every
    /// length the window can hold, noise, bursts, steps and windows of every
    /// split and length.
    #[test]
    fn detect_period_is_the_one_lag_at_a_time_scan() {
        let mut found = 0;
        let mut seed = 9u64;
        for case in 0..400u64 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(case);
            let n = [1_200usize, 600, 333, 2_400, 97][(seed >> 40) as usize % 5];
            let p = 10 + (seed >> 20) as usize % (n / 2);
            let noise = [0.0, 1.0, 8.0, 40.0, 200.0][(seed >> 50) as usize % 5];
            let mut x = wave(n, p, noise, seed);
            if case % 7 == 0 {
                // A step in the middle.
                for v in x.iter_mut().skip(n / 2) {
                    *v += 25.0;
                }
            }
            if case % 5 == 0 {
                // Quantised.
                for v in x.iter_mut() {
                    *v = v.round();
                }
            }
            let split = (seed >> 8) as usize % (n + 1);
            let (a, b) = x.split_at(split);
            assert_eq!(
                plain(a, b),
                detect_period_one_lag_at_a_time(a, b),
                "case {case}: n {n} p {p}"
            );
            let got = plain(a, b);
            found += usize::from(got != 0);
        }
        assert!(found > 100, "only {found} cases found a period");
    }

    /// The scan on one slice finds the period the two-slice scan it replaced
    /// found (`season_oracle`), bit for bit in every sum: cycles of every
    /// length (with a step, quantised), wandering cycles, weeks with
    /// holidays, spike trains on a square wave and noise, over every split
    /// of the window and lengths from 97 to 2,400, through the scan's own
    /// buffers reused from case to case as the detector reuses them.
    #[test]
    fn the_one_slice_scan_is_the_two_slice_scan() {
        let mut scratch = ScanScratch::default();
        let (mut found, mut wandering) = (0, 0);
        let mut seed = 17u64;
        for case in 0..600u64 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(case);
            let n = [1_200usize, 600, 333, 2_400, 97, 1_201][(seed >> 40) as usize % 6];
            let p = 16 + (seed >> 20) as usize % (n / 2).max(1);
            let mut x = match case % 5 {
                0 | 1 => wave(n, p, [0.0, 1.0, 8.0, 40.0][(seed >> 50) as usize % 4], seed),
                2 => weather(n, 16 + p % 48, 1.0, 0.995, (n / 3, 6.0 * (case % 2) as f64), seed),
                3 => week(n, 16 + p % 40, Some(n / 2), 0.5, seed),
                _ => (0..n)
                    .map(|i| {
                        let square = if (i + case as usize) % 2_400 < 720 { 12.0 } else { 0.0 };
                        square + if i % 40 < 3 && i < n / 3 { 50.0 } else { uniform(&mut seed) }
                    })
                    .collect(),
            };
            if case % 7 == 0 {
                for v in x.iter_mut().skip(n / 2) {
                    *v += 25.0;
                }
            }
            if case % 11 == 0 {
                for v in x.iter_mut() {
                    *v = v.round();
                }
            }
            let split = (seed >> 8) as usize % (n + 1);
            let (a, b) = x.split_at(split);
            let want = season_oracle::scan(a, b, true);
            assert_eq!(scratch.period(a, b), Some(want), "case {case}: n {n} p {p} split {split}");
            assert_eq!(plain(a, b), season_oracle::scan(a, b, false), "case {case}: plain");
            found += usize::from(want != 0);
            wandering += usize::from(want != 0 && season_oracle::scan(a, b, false) == 0);
        }
        assert!(found > 200, "only {found} cases found a period");
        assert!(wandering > 10, "only {wandering} periods came from the wander step");
    }

    /// The interleaved sums are the one-lag sums, bit for bit.
    #[test]
    fn lag_sums_are_the_sums_of_one_lag_each() {
        let x = wave(301, 37, 9.0, 4);
        for l in [1usize, 2, 5, 100, 296, 297, 298, 300] {
            for k in 1..=4usize {
                let s = lag_sums(&x, l, k);
                for (j, sj) in s.iter().enumerate().take(k) {
                    let mut one = 0.0;
                    for (a, b) in x.iter().zip(x.iter().skip(l + j)) {
                        one += a * b;
                    }
                    assert_eq!(sj.to_bits(), one.to_bits(), "lag {l}+{j} of {k}");
                }
            }
        }
    }

    #[test]
    fn scans_are_staggered_once_per_interval() {
        let every = 1_200;
        for m in 0..50 {
            let hits = (0..every * 3).filter(|&r| scan_due(m, r, r + 1, every)).count();
            assert_eq!(hits, 3, "meter {m}");
        }
        let at_once = (0..1_000).filter(|&m| scan_due(m, 5_000, 5_001, every)).count();
        assert!(at_once < 10, "{at_once}");
        assert!(!scan_due(0, 0, 10, 0));
    }
}
