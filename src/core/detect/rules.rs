//! The detection rules as pure functions of numbers: no state, no meters.
//!
//! Each function is the formula documented in `docs/DETECTION.md`; keep the two
//! in step. None of them can return NaN or ±∞ for finite inputs and a valid
//! [`Config`] (`std_floor >= 1e-12`, `spike_widen_max` in 1..=100).

use super::super::config::Config;

/// The variance a z-score divides by: the window's variance, but never below
/// `(std_floor_rel·|mean|)²` nor `std_floor²`.
///
/// A flat window (variance exactly 0) or one whose spread is only rounding of a
/// large level would otherwise give z = ±∞ or absurd values. `f64::max` also
/// replaces a NaN variance by the floor.
#[inline]
pub(super) fn floored_variance(var: f64, mean: f64, cfg: &Config) -> f64 {
    let rel = cfg.std_floor_rel * mean.abs();
    var.max(rel * rel).max(cfg.std_floor * cfg.std_floor)
}

/// `floored_variance(0.0, mean, cfg)`, the floor alone, with one `max` (a
/// branch in V8's code) instead of two; `floored_variance(var, ..)` is
/// `var.max(variance_floor(..))` for any variance a window gives (never −0).
#[inline]
pub(super) fn variance_floor(mean: f64, cfg: &Config) -> f64 {
    let rel = cfg.std_floor_rel * mean.abs();
    max_select(rel * rel, cfg.std_floor * cfg.std_floor)
}

/// The factor the spike threshold is widened by for a window with excess
/// kurtosis `g2`: `1 + max(0, (z² − 3) / 24) · max(0, g2)`, capped at
/// `spike_widen_max`, where z is `spike_z`.
///
/// This is the kurtosis term of the Cornish–Fisher expansion of a quantile,
/// `z + (z³ − 3z)·g2/24`, divided by z: for a normal window (g2 = 0) the
/// threshold is `spike_z`; for heavier tails it moves out roughly as far as the
/// matching quantile does. Light tails (g2 < 0) never narrow it. The cap stops a
/// few extreme readings (which dominate the sample kurtosis) from pushing it
/// out of reach.
///
/// The evaluation computes it as [`Widening::of_tails`], which this formula
/// is the oracle of; the median rule (`median.rs`) calls it as it is.
#[inline]
pub(super) fn widen(g2: f64, cfg: &Config) -> f64 {
    let z = cfg.spike_z;
    let slope = ((z * z - 3.0) / 24.0).max(0.0);
    // `max`/`min` also map a NaN kurtosis to 0 and ∞ to the cap.
    (1.0 + slope * g2.max(0.0)).min(cfg.spike_widen_max).max(1.0)
}

/// The excess kurtosis the spike threshold is widened for, from the window's
/// (`window_g2`, variance `window_var`) and the meter's long-run one
/// (`long_g2`, variance `long_var`): the smaller of the two once the window's
/// variance is at least [`TAILS_VAR_SHARE`] of the long-run one, the larger
/// otherwise (and before anything was learned).
///
/// A meter whose tails are heavy shows it in both. An incident shows in only
/// one: its first readings (a dip's ramp entering the window) in the window's,
/// the memory of past incidents in the long-run one; with the larger of the
/// two either raised the threshold the incident was judged against, and the
/// NAB-like machine temperature's dips went unseen. A window much quieter than
/// the meter's normal (a tap between bursts: variance 0) says nothing of its
/// tails, so the long-run kurtosis is kept there.
#[inline]
pub(super) fn tails(window_g2: f64, long_g2: f64, window_var: f64, long_var: f64) -> f64 {
    if long_var > 0.0 && window_var >= TAILS_VAR_SHARE * long_var {
        window_g2.min(long_g2)
    } else {
        window_g2.max(long_g2)
    }
}

/// See [`tails`]: the share of the long-run variance a window needs for its
/// kurtosis to be believed over the long-run one.
pub(super) const TAILS_VAR_SHARE: f64 = 0.5;

/// Whether an excess kurtosis `num / den − 3` is surely ≤ 0, decided by a
/// product instead of the division: `false` means "not sure", not "heavy".
///
/// With `den` a normal positive number and `den·3(1 − 1e-9)` finite, `num`
/// at most that product makes `num/den < 3` exactly, so the rounded quotient
/// is at most 3 (rounding is monotone and 3 is a double) and the excess is
/// ≤ 0, where [`widen`] is exactly 1. The median rule (`median.rs`) skips
/// its division with it on most readings.
#[inline]
pub(super) fn kurtosis_surely_light(num: f64, den: f64) -> bool {
    let limit = den * (3.0 * (1.0 - 1e-9));
    den >= f64::MIN_POSITIVE && limit < f64::INFINITY && num <= limit
}

/// `widen(tails(..), cfg)` with the config's part computed once a tick, and
/// the per-meter part without a branch on the values (for kurtoses that are
/// not NaN; a NaN takes the float operations).
///
/// Which kurtosis is smaller, and whether either is above 0, is a coin toss
/// per meter (a normal window's kurtosis is about 3, its excess about 0), so
/// branches on them, or the float `select`s of `min`/`max` that V8 turns
/// into branches, are mispredicted often. Only the positive part of the
/// chosen kurtosis counts (`widen` takes `g2.max(0.0)`, and `1 + slope·±0`
/// is 1 either way), and the positive part commutes with `min` and `max`
/// (it is monotone), so the choice is made between the two positive parts.
/// Those are in `[+0, +∞]`, where bits and values order alike: integer
/// `min`/`max` of the bits, which V8 compiles without a branch. The cap
/// likewise: `1 + slope·g` is at least 1 or NaN (`0·∞`), whose bits (either
/// sign) are above every finite double's, so the smaller bits are
/// `f64::min(w, cap)`; and with `cap ≥ 1` (`Config::validate`) the final
/// `max(1)` changes nothing.
#[derive(Clone, Copy, Debug)]
pub(super) struct Widening {
    slope: f64,
    cap: f64,
}

impl Widening {
    /// The widening's constants of `cfg` (`spike_widen_max` in 1..=100).
    pub fn of(cfg: &Config) -> Widening {
        let z = cfg.spike_z;
        Widening { slope: ((z * z - 3.0) / 24.0).max(0.0), cap: cfg.spike_widen_max }
    }

    /// `widen(tails(window_g2, long_g2, window_var, long_var), cfg)`, bit for bit.
    #[inline]
    pub fn of_tails(self, window_g2: f64, long_g2: f64, window_var: f64, long_var: f64) -> f64 {
        if window_g2.is_nan() || long_g2.is_nan() {
            // Never on a window's readings in practice; `tails` ignores a NaN.
            let g2 = tails(window_g2, long_g2, window_var, long_var);
            return (1.0 + self.slope * g2.max(0.0)).min(self.cap).max(1.0);
        }
        let (a, b) = (positive_bits(window_g2), positive_bits(long_g2));
        let smaller = (long_var > 0.0) & (window_var >= TAILS_VAR_SHARE * long_var);
        let g = if smaller { a.min(b) } else { a.max(b) };
        let w = 1.0 + self.slope * f64::from_bits(g);
        f64::from_bits(w.to_bits().min(self.cap.to_bits()))
    }
}

/// The bits of `max(x, +0)` for `x` not NaN (+0 for every `x ≤ 0`, −0
/// included): the sign bit, spread over the word, masks `x` to +0.
#[inline]
fn positive_bits(x: f64) -> u64 {
    let bits = x.to_bits();
    bits & !(((bits as i64) >> 63) as u64)
}

/// The graded score of evidence `u²`, where `u` is the evidence over the
/// kind's threshold (|z|/t for spike, |z|/driftZ for drift, run/limit for
/// stuck, silence/silentAfterMs for silent): `u² / (1 + u²)`. 0 without
/// evidence, 0.5 at the threshold, 0.8 at twice it (critical with the default
/// `criticalFactor`), → 1; monotone. Takes the square so no root is needed.
#[inline]
pub(super) fn score(u2: f64) -> f64 {
    if u2.is_nan() || u2 <= 0.0 {
        0.0
    } else if u2.is_infinite() {
        1.0
    } else {
        u2 / (1.0 + u2)
    }
}

/// `a.max(b)`, bit for bit, chosen by an integer comparison of the bits
/// when both are in `[+0, +∞]` (where bits and values order alike), so the
/// choice is a `select` of integers that V8 can compile without a branch.
/// `f64::max` compiles to a float `select` that V8 turns into a branch, and
/// where the larger of the two is a coin toss per meter (the window's
/// variance against the long-run one) that branch is mispredicted half the
/// time. Anything else (a sign bit, a NaN) takes `f64::max` (rare, predicted).
#[inline]
pub(super) fn max_unbranched(a: f64, b: f64) -> f64 {
    let bits = a.to_bits().max(b.to_bits());
    if bits <= f64::INFINITY.to_bits() {
        f64::from_bits(bits)
    } else {
        a.max(b)
    }
}

/// `a.max(b)`, bit for bit, for `a` and `b` not zeros of opposite signs
/// (no value here is −0) nor both NaN, as one `select` (libm's `fmax` without its
/// separate NaN `select`, whose choices it keeps): `f64::max` is
/// two `select`s in wasm (libm's `fmax`: a NaN test, then the comparison),
/// each a branch in V8's code. For a choice that is not a coin toss
/// ([`max_unbranched`] is for those).
#[inline]
pub(super) fn max_select(a: f64, b: f64) -> f64 {
    if a < b || a.is_nan() {
        b
    } else {
        a
    }
}

/// `max(r, 0)` as `variance_excess` needs it (`r.max(0.0)` for `r` not −0,
/// which a difference `x − 1` never is; +0 for any `r` ≤ 0 or NaN), without a
/// branch on the sign of `r`: its sign bit, spread over the word by an
/// arithmetic shift, masks `r` to +0.
#[inline]
pub(super) fn positive_part(r: f64) -> f64 {
    if r.is_nan() {
        return 0.0;
    }
    let bits = r.to_bits();
    let negative = ((bits as i64) >> 63) as u64;
    f64::from_bits(bits & !negative)
}

/// The low `spike_votes_of` bits: the spike vote history kept.
#[inline]
pub(super) fn vote_mask(cfg: &Config) -> u32 {
    u32::MAX >> 32u32.saturating_sub(cfg.spike_votes_of).min(31)
}

/// Evaluations from the oldest breach still in the vote history to the newest
/// evaluation, inclusive (0 for no breach).
#[inline]
pub(super) fn vote_span(votes: u32) -> u32 {
    32 - votes.leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::default()
    }

    #[test]
    fn flat_window_is_floored_relative_and_absolute() {
        let c = cfg();
        assert_eq!(floored_variance(0.0, 0.0, &c), 1e-12);
        assert_eq!(floored_variance(0.0, 1e6, &c), 1.0);
        assert_eq!(floored_variance(4.0, 1e6, &c), 4.0);
        assert_eq!(floored_variance(f64::NAN, 0.0, &c), 1e-12);
        // A jump of 0.001 over a flat window is a large but finite z.
        let z = 0.001 / floored_variance(0.0, 5.0, &c).sqrt();
        assert!(z.is_finite() && (z - 200.0).abs() < 1e-9, "{z}");
    }

    #[test]
    fn widening_follows_cornish_fisher_then_caps() {
        let c = cfg();
        assert_eq!(widen(0.0, &c), 1.0);
        assert_eq!(widen(-1.2, &c), 1.0, "light tails never narrow the threshold");
        // spike_z = 4: slope (16 − 3)/24 = 13/24; Laplace tails (g2 = 3) give 2.625 → cap 2.
        assert!((widen(1.0, &c) - (1.0 + 13.0 / 24.0)).abs() < 1e-12);
        assert_eq!(widen(3.0, &c), 2.0);
        assert_eq!(widen(f64::INFINITY, &c), 2.0);
        assert_eq!(widen(f64::NAN, &c), 1.0);
        let low = Config { spike_z: 1.5, ..cfg() };
        assert_eq!(widen(10.0, &low), 1.0, "below sqrt(3) the expansion has no widening term");
    }

    #[test]
    fn tails_believe_the_quieter_kurtosis_only_of_a_representative_window() {
        // A dip's ramp entering the window, or past dips in the long-run
        // average: one of the two is high, the threshold follows the other.
        assert_eq!(tails(7.6, -0.1, 26.0, 9.0), -0.1);
        assert_eq!(tails(-0.8, 8.3, 29.0, 21.0), -0.8);
        // Heavy tails show in both: the smaller is still heavy.
        assert_eq!(tails(12.0, 9.0, 3.0, 3.0), 9.0);
        // A window under half the long-run variance (a tap between bursts,
        // variance 0), or nothing learned yet: the larger.
        assert_eq!(tails(0.0, 40.0, 0.0, 2.0), 40.0);
        assert_eq!(tails(0.0, 40.0, 0.99, 2.0), 40.0);
        assert_eq!(tails(0.0, 40.0, 1.0, 2.0), 0.0);
        assert_eq!(tails(5.0, 0.0, 4.0, 0.0), 5.0);
        // A NaN kurtosis is ignored by either choice.
        assert_eq!(tails(f64::NAN, 2.0, 1.0, 1.0), 2.0);
        assert_eq!(tails(f64::NAN, 2.0, 0.0, 1.0), 2.0);
    }

    /// Oracle: the branch-free forms are the float operations they replace,
    /// bit for bit, for any bits (NaNs, ±0, ±∞, subnormals), for values that
    /// differ by one ulp and for the excess of one variance over another.
    // proptest is a native dev-dependency only (wasm-pack builds the lib tests too).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn unbranched_max_and_positive_part_are_the_float_operations() {
        use proptest::prelude::*;
        // `learn::Learned::variance_excess` of window variance `w` over `v`,
        // now and as it was (no division unless `w > v > 0`).
        let excess = |w: f64, v: f64| if v > 0.0 { positive_part(w / v - 1.0) } else { 0.0 };
        let excess_divided_only_past =
            |w: f64, v: f64| if v > 0.0 && w > v { (w / v - 1.0).max(0.0) } else { 0.0 };
        let special = [0.0, -0.0, 1.0, -1.0, f64::MIN_POSITIVE / 4.0, f64::MAX, f64::INFINITY];
        let specials = special.iter().chain(&[f64::NEG_INFINITY, f64::NAN, -f64::NAN]);
        for &a in specials.clone() {
            for &b in specials.clone() {
                assert_eq!(max_unbranched(a, b).to_bits(), a.max(b).to_bits(), "{a} {b}");
                assert_eq!(excess(a, b).to_bits(), excess_divided_only_past(a, b).to_bits());
            }
        }
        let value = prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            proptest::sample::select(special.to_vec()),
            0.0..10.0f64,
        ];
        proptest!(ProptestConfig::with_cases(crate::test_cases::cases_or(20_000)), |(a in value.clone(), b in value, ulp in any::<bool>())| {
            let b = if ulp { f64::from_bits(a.to_bits().wrapping_add(1)) } else { b };
            prop_assert_eq!(max_unbranched(a, b).to_bits(), a.max(b).to_bits(), "{} {}", a, b);
            prop_assert_eq!(max_unbranched(b, a).to_bits(), b.max(a).to_bits(), "{} {}", b, a);
            prop_assert_eq!(excess(a, b).to_bits(), excess_divided_only_past(a, b).to_bits());
        });
        assert_eq!(positive_part(-0.0).to_bits(), 0.0f64.to_bits());
        assert_eq!(positive_part(-f64::NAN).to_bits(), 0.0f64.to_bits());
    }

    /// Oracle: `max_select` is `f64::max` over any bits but a +0/−0 pair or
    /// two NaNs.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn one_select_max_is_the_float_max() {
        use proptest::prelude::*;
        let special = [0.0, 1.0, -1.0, f64::MIN_POSITIVE / 4.0, f64::MAX, f64::INFINITY];
        let value = prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            proptest::sample::select(special.to_vec()),
            Just(f64::NEG_INFINITY),
            Just(f64::NAN),
            Just(-f64::NAN),
            -10.0..10.0f64,
        ];
        proptest!(ProptestConfig::with_cases(crate::test_cases::cases_or(20_000)), |(a in value.clone(), b in value, ulp in any::<bool>())| {
            let b = if ulp { f64::from_bits(a.to_bits().wrapping_add(1)) } else { b };
            // Neither is −0, nor both NaN (the cases `f64::max` leaves open:
            // which zero, which payload).
            let (a, b) = (a + 0.0, b + 0.0);
            if a.is_nan() && b.is_nan() {
                return Ok(());
            }
            prop_assert_eq!(max_select(a, b).to_bits(), a.max(b).to_bits(), "{} {}", a, b);
            prop_assert_eq!(max_select(b, a).to_bits(), b.max(a).to_bits(), "{} {}", b, a);
        });
    }

    /// Oracle: the floor alone, and the floored variance from it, are
    /// `floored_variance`'s, bit for bit, over any mean and any variance a
    /// window gives (+0, positive, +∞; a NaN too).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn the_floor_alone_is_the_floored_variance_of_zero() {
        use proptest::prelude::*;
        let value = prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            proptest::sample::select(vec![0.0, -0.0, 1.0, f64::INFINITY, f64::NAN, 1e-300]),
            -10.0..10.0f64,
        ];
        proptest!(ProptestConfig::with_cases(crate::test_cases::cases_or(20_000)), |(var in value.clone(), mean in value, rel in 0.0..0.1f64, floor in prop_oneof![Just(0.0), 0.0..1.0f64])| {
            // A window's variance is +0, positive or NaN, never −0 (`Moments::variance`).
            let var = if var == 0.0 { 0.0 } else { var.abs() };
            let cfg = Config { std_floor_rel: rel, std_floor: floor, ..Config::default() };
            let f = variance_floor(mean, &cfg);
            prop_assert_eq!(f.to_bits(), floored_variance(0.0, mean, &cfg).to_bits());
            prop_assert_eq!(var.max(f).to_bits(), floored_variance(var, mean, &cfg).to_bits());
        });
    }

    /// Oracle: `Widening::of_tails` is `widen(tails(..))`, bit for bit, over
    /// any bits (NaNs of either sign, ±0, ±∞, subnormals), kurtoses one ulp
    /// apart, and configs whose slope is 0, ordinary or huge.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn widening_once_a_tick_is_widen_of_tails() {
        use proptest::prelude::*;
        let special = [0.0, -0.0, 1.0, -1.0, 3.0, f64::MIN_POSITIVE / 4.0, f64::MAX, f64::INFINITY];
        let specials = special.iter().chain(&[f64::NEG_INFINITY, f64::NAN, -f64::NAN]);
        let cfgs = [
            Config::default(),
            Config { spike_z: 1.5, ..Config::default() },
            Config { spike_z: 1e200, spike_widen_max: 100.0, ..Config::default() },
            Config { spike_z: 7.0, spike_widen_max: 1.0, ..Config::default() },
        ];
        let check = |wg: f64, lg: f64, wv: f64, lv: f64| {
            for cfg in &cfgs {
                let want = widen(tails(wg, lg, wv, lv), cfg);
                let got = Widening::of(cfg).of_tails(wg, lg, wv, lv);
                if got.to_bits() != want.to_bits() {
                    return Err(format!("{wg} {lg} {wv} {lv} z {}: {got} != {want}", cfg.spike_z));
                }
            }
            Ok(())
        };
        for &a in specials.clone() {
            for &b in specials.clone() {
                for (wv, lv) in [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (f64::NAN, 1.0)] {
                    check(a, b, wv, lv).unwrap();
                }
            }
        }
        let value = prop_oneof![
            any::<u64>().prop_map(f64::from_bits),
            proptest::sample::select(special.to_vec()),
            -5.0..5.0f64,
            -1e-300..1e-300f64,
        ];
        proptest!(ProptestConfig::with_cases(crate::test_cases::cases_or(20_000)), |(
            wg in value.clone(), lg in value.clone(), wv in value.clone(), lv in value, ulp in any::<bool>(),
        )| {
            let lg = if ulp { f64::from_bits(wg.to_bits().wrapping_add(1)) } else { lg };
            prop_assert_eq!(check(wg, lg, wv, lv), Ok(()));
            prop_assert_eq!(check(lg, wg, wv, lv), Ok(()));
        });
    }

    /// Oracle: whenever the division-free test says "light", the kurtosis
    /// the division gives is ≤ 0 and `widen` of it is `widen(0.0)` bit for
    /// bit, over random values, values at the margin and extremes.
    // proptest is a native dev-dependency only (wasm-pack builds the lib tests too).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn surely_light_kurtosis_widens_exactly_as_the_division_says() {
        use proptest::prelude::*;
        let edge = prop_oneof![
            Just(0.0),
            Just(f64::MIN_POSITIVE),
            Just(f64::MIN_POSITIVE / 4.0),
            Just(f64::MAX),
            Just(f64::INFINITY),
            Just(f64::NAN),
            1e-300..1e300f64,
            0.0..10.0f64,
        ];
        // num/den near 3: the margin's edge, where a wrong proof would show.
        let near = (1e-3..1e3f64, -1e-6..1e-6f64).prop_map(|(d, e)| (d * 3.0 * (1.0 + e), d));
        let pair = prop_oneof![(edge.clone(), edge), near];
        let cfgs = [Config::default(), Config { spike_z: 1e200, ..Config::default() }];
        proptest!(ProptestConfig::with_cases(crate::test_cases::cases_or(20_000)), |((num, den) in pair)| {
            if kurtosis_surely_light(num, den) {
                prop_assert!(num / den - 3.0 <= 0.0, "{num} / {den}");
                for cfg in &cfgs {
                    prop_assert_eq!(widen(num / den - 3.0, cfg).to_bits(), widen(0.0, cfg).to_bits());
                }
            }
        });
    }

    #[test]
    fn score_is_graded_monotone_and_bounded() {
        assert_eq!(score(0.0), 0.0);
        assert_eq!(score(1.0), 0.5);
        assert!((score(4.0) - 0.8).abs() < 1e-12);
        assert_eq!(score(f64::INFINITY), 1.0);
        assert_eq!(score(f64::NAN), 0.0);
        let mut last = 0.0;
        for i in 1..10_000 {
            let s = score(f64::from(i) * 0.01);
            assert!(s > last && s < 1.0, "{i}: {s}");
            last = s;
        }
    }

    #[test]
    fn vote_mask_and_span() {
        let c = cfg();
        assert_eq!(vote_mask(&c), 0b11111);
        assert_eq!(vote_mask(&Config { spike_votes_of: 32, ..cfg() }), u32::MAX);
        assert_eq!(vote_mask(&Config { spike_votes_of: 1, ..cfg() }), 1);
        assert_eq!(vote_span(0), 0);
        assert_eq!(vote_span(0b111), 3);
        assert_eq!(vote_span(0b1101), 4);
    }
}
