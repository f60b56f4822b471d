//! `f64` as text, exactly as `{}` and `{:.N}` write it, without core's float
//! formatter (issue 9: `<f64 as Display>` links `core::num::flt2dec`, its
//! Grisu and Dragon tables and bignums, about 18 KB of the `.wasm`; it was
//! used by nothing but error and warning texts and one fetch path).
//!
//! [`Shortest`] writes what `{}` writes and [`Fixed`] what `{:.N}` writes, for
//! every `f64` (NaN, infinities and signed zeros included; no width or fill).
//! The value's exact decimal expansion comes from a small base-10^9 bignum
//! (every finite `f64` is `m * 2^e`, so its expansion is finite), is rounded
//! half to even as core does, and `Shortest` takes the fewest significant
//! digits that read back (`str::parse`, already linked for JSON) to the same
//! `f64`. Where two candidates of that length read back, core picks the one
//! nearer the value, the upper one on a tie; the rounded expansion is that
//! one (property tests against `format!` check random bit patterns and
//! everyday values).
//!
//! For error paths: the work and the allocation are bounded by the expansion
//! (at most 767 significant digits, about 40 limbs times 83 steps for the
//! smallest subnormal).

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
        let (digits, point) = expansion(a);
        let mut text = String::new();
        for n in 1..=17 {
            let (d, p) = round_at(&digits, point, n as isize, false);
            text.clear();
            plain(&mut text, &d, p);
            if text.parse::<f64>() == Ok(a) {
                break;
            }
        }
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
