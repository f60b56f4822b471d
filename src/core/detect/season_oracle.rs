//! The seasonal scan as it was before each of its speed-ups: the oracles
//! the shipped scan (`season::scan`) must equal bit for bit. Every sample
//! is read through [`samples`] over the ring's two slices, one sum at a
//! time per block, as the shipped code did up to 07b1360.
//! - [`scan`] is the two-slice scan (with its wander step, or without), the
//!   oracle of `the_one_slice_scan_is_the_two_slice_scan`;
//! - the older scan whose sums ran one lag at a time (no wander step),
//!   `detect_period_one_lag_at_a_time` in `season`'s tests, the oracle of
//!   `detect_period_is_the_one_lag_at_a_time_scan`, takes its reads, block
//!   means ([`centred_block_means`]), fine lags ([`fine_range`]) and test of
//!   the lag picked ([`accepted`], with [`longer_cycle`]) from here. Its
//!   coarse and fine sums stay in the test, one lag at a time: they are what
//!   it checks the four-lag sums against.
#![cfg(test)]

use super::season::{
    coarse_lag, SEASON_ACF, SEASON_BLOCK, SEASON_EXPLAINED, SEASON_LONGER, SEASON_MIN_PERIOD,
    SEASON_NEAR_BEST, SEASON_PERIODS, SEASON_THIRDS_RHO, SEASON_TRIM,
};

/// Sample `i` (oldest first) of the window given as the slices `a` then
/// `b`, as the two-slice scans read it.
pub(super) fn samples<'a>(a: &'a [f64], b: &'a [f64]) -> impl Fn(usize) -> f64 + Copy + 'a {
    move |i: usize| -> f64 {
        if i < a.len() {
            a.get(i).copied().unwrap_or(0.0)
        } else {
            b.get(i - a.len()).copied().unwrap_or(0.0)
        }
    }
}

/// The block means of the `n` samples `at(i)`, aligned to the newest sample
/// (at most 256 blocks, the newest), less their mean, and how many there
/// are; None when the window cannot hold [`SEASON_PERIODS`] periods of the
/// least length (no period).
pub(super) fn centred_block_means(
    at: impl Fn(usize) -> f64,
    n: usize,
) -> Option<([f64; 256], usize)> {
    let nb = n / SEASON_BLOCK;
    let max_lag = nb / SEASON_PERIODS;
    if max_lag < SEASON_MIN_PERIOD / SEASON_BLOCK + 1 {
        return None;
    }
    let mut blocks = [0.0f64; 256];
    let nb = nb.min(blocks.len());
    let skip = n - nb * SEASON_BLOCK;
    let mut sum = 0.0;
    for (j, slot) in blocks.iter_mut().take(nb).enumerate() {
        let mut s = 0.0;
        for i in 0..SEASON_BLOCK {
            s += at(skip + j * SEASON_BLOCK + i);
        }
        *slot = s / SEASON_BLOCK as f64;
        sum += *slot;
    }
    let mu = sum / nb as f64;
    for slot in blocks.iter_mut().take(nb) {
        *slot -= mu;
    }
    Some((blocks, nb))
}

/// The period the scan reports for the lag `pick` whose mean squared
/// difference is `least`: 0 unless the lag carries [`SEASON_EXPLAINED`] of
/// the `n` samples' variance, else its [`longer_cycle`] (0 past u16).
pub(super) fn accepted(at: impl Fn(usize) -> f64 + Copy, n: usize, pick: usize, least: f64) -> u16 {
    let mut m2 = 0.0;
    let mean = (0..n).map(at).sum::<f64>() / n as f64;
    for i in 0..n {
        let d = at(i) - mean;
        m2 += d * d;
    }
    if least.is_nan() || least > 2.0 * (1.0 - SEASON_EXPLAINED) * m2 / n as f64 {
        return 0;
    }
    u16::try_from(longer_cycle(at, n, pick)).unwrap_or(0)
}

/// `season::detect_period` (with `wander`) as it was, on the ring's two
/// slices; without `wander`, the scan as it was before that step.
pub(super) fn scan(a: &[f64], b: &[f64], wander: bool) -> u16 {
    let n = a.len() + b.len();
    let at = samples(a, b);
    let Some((blocks, nb)) = centred_block_means(at, n) else {
        return 0;
    };
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
        fine_lag(at, n, coarse)
    } else if !wander || r1 < SEASON_ACF {
        // Block means that do not wander (their autocorrelation at one block
        // under `SEASON_ACF`) would have shown a cycle themselves: their
        // differences are not scanned (most meters: noise about a level).
        return 0;
    } else {
        let mut diffs = [0.0f64; 256];
        let mut dsum = 0.0;
        for (j, slot) in diffs.iter_mut().take(nb - 1).enumerate() {
            *slot =
                blocks.get(j + 1).copied().unwrap_or(0.0) - blocks.get(j).copied().unwrap_or(0.0);
            dsum += *slot;
        }
        let dmu = dsum / (nb - 1) as f64;
        for slot in diffs.iter_mut().take(nb - 1) {
            *slot -= dmu;
        }
        let Some(coarse) = coarse_lag(&diffs[..nb - 1]).0 else {
            return 0;
        };
        let diff = |i: usize| at(i + SEASON_BLOCK) - at(i);
        let (mut pick, msd) = fine_lag(diff, n - SEASON_BLOCK, coarse);
        // The coarse lag may be a multiple of the cycle (its differences'
        // autocorrelation peaks at every multiple alike): the shortest
        // whole part of it whose differences repeat as well is the cycle.
        for d in (2..=8usize).rev() {
            let q = (pick + d / 2) / d;
            if q < SEASON_MIN_PERIOD {
                continue;
            }
            let (lo, hi) = (q.saturating_sub(2), q + 2);
            let (short, m) = fine_lag_in(diff, n - SEASON_BLOCK, lo, hi);
            if m * SEASON_NEAR_BEST * SEASON_NEAR_BEST * SEASON_NEAR_BEST <= msd {
                pick = short;
                break;
            }
        }
        if pick == 0 || !repeats_throughout(diff, n - SEASON_BLOCK, pick) {
            return 0;
        }
        let mut s = 0.0;
        for i in pick..n {
            let d = at(i) - at(i - pick);
            s += d * d;
        }
        (pick, s / (n - pick) as f64)
    };
    accepted(at, n, pick, least)
}

/// Whether the `n` samples `y(i)` (a wandering meter's differences) repeat
/// at lag `p` in each third of the window: in every third, their
/// correlation with themselves `p` back, `1 − Σ(y_t − y_{t−p})² / (Σy_t² +
/// Σy_{t−p}²)`, is at least `SEASON_THIRDS_RHO` (the differences of a
/// wander have a mean of about 0). A cycle goes on through the window; a
/// burst of evenly spaced spikes (a spike train on a pump's square wave,
/// whose differences are otherwise its edges) is periodic in one third
/// only. Both terms count an event the lag does not repeat, wherever it
/// falls, so one near a third's edge weighs as one inside it.
fn repeats_throughout(y: impl Fn(usize) -> f64 + Copy, n: usize, p: usize) -> bool {
    let span = n.saturating_sub(p) / 3;
    if span < p {
        return false;
    }
    (0..3).all(|part| {
        let lo = p + part * span;
        let (mut both, mut sd) = (0.0, 0.0);
        for i in lo..lo + span {
            let (v, w) = (y(i), y(i - p));
            let d = v - w;
            both += v * v + w * w;
            sd += d * d;
        }
        both > 0.0 && sd <= (1.0 - SEASON_THIRDS_RHO) * both
    })
}

/// The fine step of `detect_period`: the lag within a block of `coarse`
/// blocks with the least mean squared difference `x_t − x_{t−P}` over the `n`
/// samples `at(i)`, and that mean square.
fn fine_lag(at: impl Fn(usize) -> f64 + Copy, n: usize, coarse: usize) -> (usize, f64) {
    let (lo, hi) = fine_range(coarse);
    fine_lag_in(at, n, lo, hi)
}

/// The lags the fine step tries for `coarse` blocks: within a block of it,
/// at least [`SEASON_MIN_PERIOD`] (the caller clamps the top to a third of
/// the window).
pub(super) fn fine_range(coarse: usize) -> (usize, usize) {
    let centre = coarse * SEASON_BLOCK;
    let lo = centre.saturating_sub(SEASON_BLOCK).max(SEASON_MIN_PERIOD);
    (lo, centre + SEASON_BLOCK)
}

/// The lag in `lo..=hi` (`hi` at most a third of `n`) with the least mean
/// squared difference `x_t − x_{t−P}` over the `n` samples `at(i)`, and that
/// mean square.
fn fine_lag_in(at: impl Fn(usize) -> f64 + Copy, n: usize, lo: usize, hi: usize) -> (usize, f64) {
    let hi = hi.min(n / SEASON_PERIODS);
    let mut pick = 0usize;
    let mut least = f64::INFINITY;
    let mut p = lo;
    while p <= hi {
        // Four lags at once, as for the coarse sums: lag p + j's sum takes its
        // terms i = p + j .. n in increasing i, as a loop per lag would.
        let k = (hi + 1 - p).min(4);
        let mut s = [0.0f64; 4];
        for i in p..(p + 3).min(n) {
            for (j, sj) in s.iter_mut().enumerate().take(k) {
                if i >= p + j {
                    let d = at(i) - at(i - (p + j));
                    *sj += d * d;
                }
            }
        }
        if k == 4 {
            for i in (p + 3).min(n)..n {
                let x = at(i);
                let d0 = x - at(i - p);
                let d1 = x - at(i - p - 1);
                let d2 = x - at(i - p - 2);
                let d3 = x - at(i - p - 3);
                s[0] += d0 * d0;
                s[1] += d1 * d1;
                s[2] += d2 * d2;
                s[3] += d3 * d3;
            }
        } else {
            for i in (p + 3).min(n)..n {
                let x = at(i);
                for (j, sj) in s.iter_mut().enumerate().take(k) {
                    let d = x - at(i - (p + j));
                    *sj += d * d;
                }
            }
        }
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

/// `season::longer_cycle` as it was, through `at(i)`.
fn longer_cycle(at: impl Fn(usize) -> f64 + Copy, n: usize, p: usize) -> usize {
    if p > 0 && 2 * p > n / SEASON_PERIODS {
        return beyond_reach(at, n, p);
    }
    let mut msd = [f64::INFINITY; 32];
    let mut least = f64::INFINITY;
    for (k, slot) in msd.iter_mut().enumerate().skip(2) {
        let q = k * p;
        if p == 0 || q > n / SEASON_PERIODS {
            break;
        }
        *slot = trimmed_msd(at, n, q, p);
        least = least.min(*slot);
    }
    let base = trimmed_msd(at, n, p, p);
    // NaN-safe: a NaN share (sums past f64's range) keeps `p`.
    let longer = least.is_finite() && least <= SEASON_LONGER * base;
    if !longer {
        return p;
    }
    let k = msd.iter().position(|&m| m * SEASON_NEAR_BEST <= least).unwrap_or(1);
    k * p
}

/// `longer_cycle` for a period `p` with no multiple the window holds three
/// times: `p` may itself be several of a shorter cycle (the scan's coarse
/// step picked 6 days, 288 readings, on the NAB-like `taxi-demand` when its
/// one-day autocorrelation fell under 90% of the week's, and the meter then
/// lost its week). The lags `q > p` that are multiples of `d = p/j` (j in
/// 2..=7, `d` a whole number of at least `SEASON_MIN_PERIOD`) are tried,
/// each by its `trimmed_msd` in blocks of `d` against `p`'s; the least at
/// most `SEASON_LONGER` of it wins, otherwise `p`. A few lags: at window
/// 1,200 only periods of 201–400 readings come here.
fn beyond_reach(at: impl Fn(usize) -> f64 + Copy, n: usize, p: usize) -> usize {
    let top = n / SEASON_PERIODS;
    let (mut pick, mut least) = (p, f64::INFINITY);
    for j in 2..=7 {
        let d = p / j;
        if p % j != 0 || d < SEASON_MIN_PERIOD {
            continue;
        }
        let base = trimmed_msd(at, n, p, d);
        let mut q = p + d;
        while q <= top {
            let m = trimmed_msd(at, n, q, d);
            if m <= SEASON_LONGER * base && m < least {
                (pick, least) = (q, m);
            }
            q += d;
        }
    }
    pick
}

/// The mean squared difference `x_t − x_{t−q}` over whole blocks of `p`
/// terms, less the `SEASON_TRIM` blocks with the largest sums: an incident
/// a period long (a holiday) and its echo one lag later each fall across up
/// to two blocks at any lag, and untrimmed they weigh on a lag's figure as
/// much as a weekly pattern does (a holiday in the window took the weekly
/// lag's share on the NAB-like `taxi-demand` from 0.13–0.21 to 0.4–0.8).
/// `f64::INFINITY` when no more than `SEASON_TRIM` blocks fit.
fn trimmed_msd(at: impl Fn(usize) -> f64, n: usize, q: usize, p: usize) -> f64 {
    let blocks = n.saturating_sub(q) / p.max(1);
    if blocks <= SEASON_TRIM {
        return f64::INFINITY;
    }
    let mut total = 0.0;
    let mut top = [0.0f64; SEASON_TRIM];
    for j in 0..blocks {
        let mut s = 0.0;
        for i in (q + j * p)..(q + (j + 1) * p) {
            let d = at(i) - at(i - q);
            s += d * d;
        }
        total += s;
        // Keep the largest block sums, largest first.
        let mut v = s;
        for t in top.iter_mut() {
            if v > *t {
                std::mem::swap(&mut v, t);
            }
        }
    }
    (total - top.iter().sum::<f64>()) / ((blocks - SEASON_TRIM) * p) as f64
}
