//! `f64` as text, exactly as `{}` and `{:.N}` write it, without core's float
//! formatter (issue 9: `<f64 as Display>` links `core::num::flt2dec`, its
//! Grisu and Dragon tables and bignums, about 18 KB of the `.wasm`; it was
//! used by nothing but error and warning texts and one fetch path).
//!
//! [`Shortest`] writes what `{}` writes and [`Fixed`] what `{:.N}` writes, for
//! every `f64` (NaN, infinities and signed zeros included; no width or fill).
//! Every finite `f64` is `m * 2^e`, so its decimal expansion is finite.
//! `Shortest` takes the first 19 significant digits exactly (`leading`: a
//! small binary bignum) and the fewest of them that, rounded, read back
//! (`str::parse`, already linked for JSON) to the same `f64`; where two
//! candidates of that length read back, core picks the one nearer the value,
//! the upper one on a tie, which is the rounded one. `Fixed` rounds the whole
//! expansion (`expansion`: base 10^9) half to even at `N` decimals, as core
//! does. Property tests compare both with `format!` on random bit patterns
//! and everyday values.
//!
//! For error paths, and slower than core (native: about 0.15 µs for `0.1`,
//! 0.8 µs for a fractional ms clock, 11 µs near `f64::MAX`; docs/SIZE.md):
//! a text built per refused item belongs under the error cap.

use std::fmt;

/// `{}` of an `f64`: the shortest decimal that reads back to the same value,
/// never in exponent form.
#[derive(Clone, Copy, Debug)]
pub struct Shortest(pub f64);

/// `{:.N}` of an `f64`: the exact value rounded half to even at `N` decimals.
#[derive(Clone, Copy, Debug)]
pub struct Fixed(pub f64, pub usize);

impl fmt::Display for Shortest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        if let Some(special) = special(x) {
            return f.write_str(special);
        }
        if x.is_sign_negative() {
            f.write_str("-")?;
        }
        let a = x.abs();
        if a == 0.0 {
            return f.write_str("0");
        }
        // Whole numbers below 2^53 are their own shortest form.
        if a < 9_007_199_254_740_992.0 && a.trunc() == a {
            return write!(f, "{}", a as u64);
        }
        // The first 19 significant digits and whether any nonzero digit
        // follows: enough to round exactly at every length up to 17.
        let (lead, point) = leading(a);
        let mut best = (lead / 100, point); // 17 digits, never used: 17 always reads back
        let mut probe = String::new();
        for n in 1..=17u32 {
            let div = 10u64.pow(19 - n);
            let (mut q, r) = (lead / div, lead % div);
            // Core's shortest mode breaks a tie between two candidates upwards.
            let half = div / 2;
            // What follows the cut is r plus less than one unit (the digits
            // past the 19th): at or above half exactly when r >= half.
            if r >= half {
                q += 1;
            }
            let mut p = point;
            if q == 10u64.pow(n) {
                q /= 10;
                p += 1;
            }
            probe.clear();
            // q * 10^(p - n), read back in exponent form: short whatever the magnitude.
            let _ = fmt::write(&mut probe, format_args!("{q}e{}", p - n as isize));
            best = (q, p);
            if probe.parse::<f64>() == Ok(a) {
                break;
            }
        }
        let (q, p) = best;
        let d: Vec<u8> = q.to_string().bytes().map(|b| b - b'0').collect();
        let mut text = String::new();
        plain(&mut text, &d, p);
        f.write_str(&text)
    }
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (x, prec) = (self.0, self.1);
        if let Some(special) = special(x) {
            return f.write_str(special);
        }
        if x.is_sign_negative() {
            f.write_str("-")?;
        }
        let a = x.abs();
        let (digits, point) = if a == 0.0 { (Vec::new(), 0) } else { expansion(a) };
        let (d, p) = round_at(&digits, point, point + prec as isize, true);
        let mut text = String::new();
        // Integer part.
        if p <= 0 {
            text.push('0');
        } else {
            for i in 0..p {
                text.push(digit(&d, i));
            }
        }
        if prec > 0 {
            text.push('.');
            for i in 0..prec as isize {
                text.push(digit(&d, p + i));
            }
        }
        f.write_str(&text)
    }
}

fn special(x: f64) -> Option<&'static str> {
    if x.is_nan() {
        Some("NaN")
    } else if x == f64::INFINITY {
        Some("inf")
    } else if x == f64::NEG_INFINITY {
        Some("-inf")
    } else {
        None
    }
}

/// The digit at position `i` of `0.d0 d1 d2 ... * 10^point` (0 outside).
fn digit(d: &[u8], i: isize) -> char {
    let v = if i < 0 { 0 } else { d.get(i as usize).copied().unwrap_or(0) };
    char::from(b'0' + v)
}

/// Writes `0.digits * 10^point` without exponent and without trailing zeros.
fn plain(out: &mut String, d: &[u8], point: isize) {
    let len = d.iter().rposition(|&v| v != 0).map_or(0, |i| i + 1);
    if len == 0 {
        out.push('0');
        return;
    }
    if point <= 0 {
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        for i in 0..len as isize {
            out.push(digit(d, i));
        }
    } else {
        for i in 0..point.max(len as isize) {
            if i == point {
                out.push('.');
            }
            out.push(digit(d, i));
        }
    }
}

/// The first 19 significant digits of a finite `a > 0` as an integer in
/// `10^18..10^19` and the point (`a = 0.digits... * 10^point`), exactly
/// (truncated, not rounded): `a * 10^s` for the `s` that puts 19
/// digits before the decimal point, in a small binary bignum (`m * 5^s`
/// shifted, or `m * 2^e` divided by `5^-s`), a few dozen limb operations
/// even for the smallest subnormal.
fn leading(a: f64) -> (u64, isize) {
    let bits = a.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (m, e) = if exp == 0 { (frac, -1074) } else { (frac | (1 << 52), exp - 1075) };
    // log10(a) within one: a = m * 2^e with m of `len` bits.
    let len = 64 - m.leading_zeros() as i32;
    let mut p10 = (f64::from(e + len - 1) * std::f64::consts::LOG10_2).floor() as i32;
    loop {
        let s = 18 - p10;
        let (v, _) = scaled(m, e, s);
        if v < 1_000_000_000_000_000_000 {
            p10 -= 1;
        } else if v >= 10_000_000_000_000_000_000 {
            p10 += 1;
        } else {
            // v has 19 digits: a = 0.v * 10^(19 - s).
            return (v as u64, (19 - s) as isize);
        }
    }
}

/// `floor(m * 2^e * 10^s)` (saturated at `u128::MAX`) and whether a fraction was cut.
fn scaled(m: u64, e: i32, s: i32) -> (u128, bool) {
    let mut n: Vec<u32> = vec![m as u32, (m >> 32) as u32];
    let mut sticky = false;
    let mut shift = e; // the power of two still to apply
    if s >= 0 {
        // m * 5^s * 2^(e + s)
        mul_pow5(&mut n, s as u32);
        shift += s;
    } else {
        // m * 2^(e - t) / 5^t, t = -s: apply the left shift first so the
        // division keeps every digit.
        let t = (-s) as u32;
        shift -= t as i32;
        if shift > 0 {
            shl(&mut n, shift as u32);
            shift = 0;
        }
        for _ in 0..t / 13 {
            // A constant divisor: the compiler divides by multiplying.
            sticky |= div_small(&mut n, 1_220_703_125);
        }
        if t % 13 > 0 {
            sticky |= div_small(&mut n, 5u64.pow(t % 13));
        }
    }
    if shift > 0 {
        shl(&mut n, shift as u32);
    } else if shift < 0 {
        sticky |= shr(&mut n, (-shift) as u32);
    }
    while n.last() == Some(&0) {
        n.pop();
    }
    if n.len() > 4 {
        return (u128::MAX, sticky);
    }
    let v = n.iter().rev().fold(0u128, |acc, &l| (acc << 32) | u128::from(l));
    (v, sticky)
}

/// Divides `n` by `d` (below 2^32) in place; whether a remainder was left.
#[inline(always)]
fn div_small(n: &mut [u32], d: u64) -> bool {
    let mut rem = 0u64;
    for limb in n.iter_mut().rev() {
        let cur = (rem << 32) | u64::from(*limb);
        *limb = (cur / d) as u32;
        rem = cur % d;
    }
    rem != 0
}

fn mul_pow5(n: &mut Vec<u32>, mut k: u32) {
    while k > 0 {
        let step = k.min(13);
        let by = u64::from(5u32.pow(step));
        let mut carry = 0u64;
        for limb in n.iter_mut() {
            let v = u64::from(*limb) * by + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            n.push(carry as u32);
        }
        k -= step;
    }
}

fn shl(n: &mut Vec<u32>, bits: u32) {
    let (words, rest) = ((bits / 32) as usize, bits % 32);
    if rest > 0 {
        let mut carry = 0u32;
        for limb in n.iter_mut() {
            let v = (*limb << rest) | carry;
            carry = *limb >> (32 - rest);
            *limb = v;
        }
        if carry > 0 {
            n.push(carry);
        }
    }
    n.splice(0..0, std::iter::repeat_n(0, words));
}

/// Shifts right by `bits`; whether a one was shifted out.
fn shr(n: &mut Vec<u32>, bits: u32) -> bool {
    let (words, rest) = ((bits / 32) as usize, bits % 32);
    if words >= n.len() {
        let lost = n.iter().any(|&l| l != 0);
        n.clear();
        return lost;
    }
    let mut lost = n[..words].iter().any(|&l| l != 0);
    n.drain(..words);
    if rest > 0 {
        lost |= n.first().is_some_and(|&l| l & ((1 << rest) - 1) != 0);
        for i in 0..n.len() {
            let hi = n.get(i + 1).copied().unwrap_or(0);
            n[i] = (n[i] >> rest) | (hi << (32 - rest));
        }
    }
    lost
}

/// The exact decimal expansion of a finite `a > 0`: digits (most significant
/// first, no leading zero) and `point`, with `a = 0.digits * 10^point`.
fn expansion(a: f64) -> (Vec<u8>, isize) {
    let bits = a.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (mut m, mut e) = if exp == 0 { (frac, -1074) } else { (frac | (1 << 52), exp - 1075) };
    while m & 1 == 0 && e < 0 {
        m >>= 1;
        e += 1;
    }
    // a = m * 2^e. With e < 0: a = m * 5^-e / 10^-e.
    const BASE: u64 = 1_000_000_000;
    let mut limbs: Vec<u32> =
        vec![(m % BASE) as u32, ((m / BASE) % BASE) as u32, (m / BASE / BASE) as u32];
    let (mut left, factor_step, step_value) =
        if e >= 0 { (e as u32, 29, 1u64 << 29) } else { ((-e) as u32, 13, 1_220_703_125u64) };
    while left > 0 {
        let n = left.min(factor_step);
        let by = if n == factor_step {
            step_value
        } else if e >= 0 {
            1u64 << n
        } else {
            5u64.pow(n)
        };
        let mut carry = 0u64;
        for limb in limbs.iter_mut() {
            let v = u64::from(*limb) * by + carry;
            *limb = (v % BASE) as u32;
            carry = v / BASE;
        }
        while carry > 0 {
            limbs.push((carry % BASE) as u32);
            carry /= BASE;
        }
        left -= n;
    }
    let mut digits = Vec::with_capacity(limbs.len() * 9);
    for limb in limbs.iter().rev() {
        let mut v = *limb;
        let mut nine = [0u8; 9];
        for slot in nine.iter_mut().rev() {
            *slot = (v % 10) as u8;
            v /= 10;
        }
        digits.extend_from_slice(&nine);
    }
    let lead = digits.iter().position(|&v| v != 0).unwrap_or(digits.len());
    digits.drain(..lead);
    let scale = if e < 0 { -e as isize } else { 0 };
    let point = digits.len() as isize - scale;
    (digits, point)
}

/// `0.d * 10^point` rounded after its first `keep` digits (`keep` may be 0
/// or negative: everything is then below the cut), an exact half to even
/// (`{:.N}`) or up (`{}`: core's shortest mode breaks a tie between two
/// equally near candidates upwards). Returns
/// the kept digits and the point, which moves up when `9...9` rounds to `10...0`.
fn round_at(d: &[u8], point: isize, keep: isize, ties_even: bool) -> (Vec<u8>, isize) {
    if keep >= d.len() as isize {
        return (d.to_vec(), point);
    }
    if keep < 0 {
        return (Vec::new(), point);
    }
    let k = keep as usize;
    let mut kept = d[..k].to_vec();
    let first = d[k];
    let rest = d[k + 1..].iter().any(|&v| v != 0);
    let odd = kept.last().is_some_and(|&v| v % 2 == 1);
    let up = first > 5 || (first == 5 && (rest || odd || !ties_even));
    if !up {
        return (kept, point);
    }
    for v in kept.iter_mut().rev() {
        if *v == 9 {
            *v = 0;
        } else {
            *v += 1;
            return (kept, point);
        }
    }
    // Every kept digit was 9 (or none was kept): the rounded value is a power of ten.
    kept.insert(0, 1);
    (kept, point + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(x: f64) {
        assert_eq!(Shortest(x).to_string(), format!("{x}"), "{{}} of {:e} ({:#x})", x, x.to_bits());
        for prec in [0usize, 1, 2, 3, 6] {
            assert_eq!(
                Fixed(x, prec).to_string(),
                format!("{x:.prec$}"),
                "{{:.{prec}}} of {:e} ({:#x})",
                x,
                x.to_bits()
            );
        }
    }

    #[test]
    fn edges_match_core() {
        for x in [
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.25,
            0.35,
            2.5,
            0.5,
            9.5,
            0.05,
            0.95,
            99.95,
            999.9999,
            1e21,
            1e22,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            1e-7,
            0.1,
            0.3,
            1733400000123.4563,
            // 619675541801430.25: a tie between two shortest candidates
            // (.2 and .3); core takes the upper.
            f64::from_bits(0x4301_9cbb_a45c_4eb2),
            9_007_199_254_740_992.0,
            2f64.powi(60),
            123456.78901234567,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.001,
        ] {
            check(x);
        }
    }

    /// Property tests (proptest is a native dev-dependency).
    #[cfg(not(target_arch = "wasm32"))]
    mod props {
        use super::check;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(20_000))]
            /// Any bit pattern: the texts equal core's.
            #[test]
            fn any_bits_match_core(bits in any::<u64>()) {
                check(f64::from_bits(bits));
            }

            /// Values of the sizes error texts quote (ms clocks, MB, hours),
            /// with few decimals, where ties and carries are common.
            #[test]
            fn everyday_values_match_core(
                whole in 0u64..10_000_000_000_000,
                frac in 0u32..10_000,
                scale in 0u32..5,
                neg: bool,
            ) {
                let sign = if neg { -1.0 } else { 1.0 };
                let x = (whole as f64 + f64::from(frac) / 10f64.powi(scale as i32)) * sign;
                check(x);
                check(x / 1e6);
            }
        }
    }
}
