//! `Decimal`: an exact decimal amount as it arrived on the wire, and its
//! conversion to whole units of a resource's resolution.
//!
//! Consumption totals must not depend on arrival order, so the ledger never sums
//! `f64`s: every amount is converted once, exactly, to an `i64` count of the
//! resource's smallest unit (e.g. 0.001 kWh), and totals are integer sums.
//! An amount finer than the resolution is refused rather than rounded, so no
//! reading is silently changed.
//!
//! The text grammar (PROTOCOL.md, "Amounts and meter ids") is JSON's number
//! grammar with bounded lengths, [`Decimal::parse_text`] is its one reader, and
//! every exponent and digit count is computed in checked arithmetic on values
//! the bounds keep small: no input can overflow or wrap.

/// `mantissa / 10^scale`, exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub mantissa: i64,
    /// Digits after the decimal point, at most [`MAX_SCALE`].
    pub scale: u8,
}

/// Most digits after the decimal point accepted.
pub const MAX_SCALE: u8 = 18;

/// Most digits in an amount's integer and fraction parts together.
pub const MAX_AMOUNT_DIGITS: usize = 40;

/// Most digits in an amount's exponent (`1e-9999` is grammatical, `1e10000` is not).
pub const MAX_EXPONENT_DIGITS: usize = 4;

/// Why an amount's text is not a [`Decimal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The text does not follow the amount grammar or its length bounds.
    Syntax,
    /// The text is grammatical but its value has more than [`MAX_SCALE`]
    /// significant decimals or a mantissa beyond `i64`.
    Range,
}

/// Why an amount could not become whole units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitsError {
    /// The amount has more significant decimals than the resolution.
    TooFine,
    /// The amount in units does not fit in an `i64`.
    Overflow,
}

/// The parts of an amount's text, as the grammar splits them.
struct Parts<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exponent: i32,
}

/// Splits `text` by the grammar `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
/// with at most [`MAX_AMOUNT_DIGITS`] significand and [`MAX_EXPONENT_DIGITS`]
/// exponent digits; `None` for anything else.
fn split(text: &str) -> Option<Parts<'_>> {
    fn digits(s: &[u8]) -> usize {
        s.iter().take_while(|c| c.is_ascii_digit()).count()
    }
    let s = text.as_bytes();
    let (negative, s) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let n = digits(s);
    let (int, s) = s.split_at(n);
    if int.is_empty() || (int.len() > 1 && int.first() == Some(&b'0')) {
        return None;
    }
    let (frac, s) = match s.split_first() {
        Some((b'.', rest)) => {
            let n = digits(rest);
            if n == 0 {
                return None;
            }
            rest.split_at(n)
        }
        _ => (&[][..], s),
    };
    if int.len() + frac.len() > MAX_AMOUNT_DIGITS {
        return None;
    }
    let (exponent, s) = match s.split_first() {
        Some((b'e' | b'E', rest)) => {
            let (sign, rest) = match rest.split_first() {
                Some((b'-', r)) => (-1, r),
                Some((b'+', r)) => (1, r),
                _ => (1, rest),
            };
            let n = digits(rest);
            if n == 0 || n > MAX_EXPONENT_DIGITS {
                return None;
            }
            let (e, rest) = rest.split_at(n);
            // At most four digits: the value is below 10,000 and cannot overflow.
            let value = e.iter().fold(0i32, |acc, &c| acc * 10 + i32::from(c - b'0'));
            (sign * value, rest)
        }
        _ => (0, s),
    };
    s.is_empty().then_some(Parts { negative, int, frac, exponent })
}

impl Decimal {
    /// A decimal from a mantissa and scale.
    pub fn new(mantissa: i64, scale: u8) -> Decimal {
        Decimal { mantissa, scale }
    }

    /// Parses an amount's text exactly (JSON number text or the contents of a
    /// decimal string), or `None`; see [`Decimal::parse_text`].
    pub fn parse(text: &str) -> Option<Decimal> {
        Decimal::parse_text(text).ok()
    }

    /// Parses an amount's text exactly by the grammar
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`: no spaces, no `+`, no
    /// leading zeros, digits on both sides of a point, at most
    /// [`MAX_AMOUNT_DIGITS`] significand digits and [`MAX_EXPONENT_DIGITS`]
    /// exponent digits. The value is normalised (trailing fraction zeros
    /// dropped) and must fit: at most [`MAX_SCALE`] decimals, a mantissa within
    /// `i64`.
    pub fn parse_text(text: &str) -> Result<Decimal, ParseError> {
        let p = split(text).ok_or(ParseError::Syntax)?;
        let digits = || p.int.iter().chain(p.frac).copied();
        // Significant digits: the significand without its leading and trailing zeros.
        let lead = digits().take_while(|&c| c == b'0').count();
        let total = p.int.len() + p.frac.len();
        if lead == total {
            return Ok(Decimal::new(0, 0));
        }
        let trail = digits().rev().take_while(|&c| c == b'0').count();
        let significant = total - lead - trail;
        // value = significant digits × 10^(trail − frac.len() + exponent). Every
        // term is bounded (digits ≤ 40, |exponent| < 10,000), so i64 cannot overflow.
        let frac_len = i64::try_from(p.frac.len()).map_err(|_| ParseError::Syntax)?;
        let trail_len = i64::try_from(trail).map_err(|_| ParseError::Syntax)?;
        let power = trail_len - frac_len + i64::from(p.exponent);
        if significant > 19 {
            return Err(ParseError::Range);
        }
        let mut mantissa: i128 = 0;
        for c in digits().skip(lead).take(significant) {
            mantissa = mantissa * 10 + i128::from(c - b'0');
        }
        let scale = if power >= 0 {
            let k = u32::try_from(power).map_err(|_| ParseError::Range)?;
            let f = 10i128.checked_pow(k).ok_or(ParseError::Range)?;
            mantissa = mantissa.checked_mul(f).ok_or(ParseError::Range)?;
            0
        } else {
            u8::try_from(-power).ok().filter(|&s| s <= MAX_SCALE).ok_or(ParseError::Range)?
        };
        let m = i64::try_from(if p.negative { -mantissa } else { mantissa })
            .map_err(|_| ParseError::Range)?;
        Ok(Decimal { mantissa: m, scale })
    }

    /// The amount as a count of `10^-decimals` units, exactly.
    pub fn to_units(self, decimals: u8) -> Result<i64, UnitsError> {
        if self.scale <= decimals {
            let f = pow10(decimals - self.scale).ok_or(UnitsError::Overflow)?;
            self.mantissa.checked_mul(f).ok_or(UnitsError::Overflow)
        } else {
            let f = pow10(self.scale - decimals).ok_or(UnitsError::TooFine)?;
            if self.mantissa % f == 0 {
                Ok(self.mantissa / f)
            } else {
                Err(UnitsError::TooFine)
            }
        }
    }

    /// Whether the amount is negative.
    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }
}

/// 10^k for k in 0..=18.
fn pow10(k: u8) -> Option<i64> {
    10i64.checked_pow(u32::from(k))
}

/// Formats `units` of `10^-decimals` as a decimal string (`12345`, 3 → `"12.345"`).
pub fn format_units(units: i64, decimals: u8) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let digits = units.unsigned_abs().to_string();
    let d = usize::from(decimals);
    if d == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = d + 1);
    let (int, frac) = padded.split_at(padded.len() - d);
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        let d = |m, s| Some(Decimal::new(m, s));
        assert_eq!(Decimal::parse("0.125"), d(125, 3));
        assert_eq!(Decimal::parse("12"), d(12, 0));
        assert_eq!(Decimal::parse("1.50"), d(15, 1));
        assert_eq!(Decimal::parse("1.5e3"), d(1500, 0));
        assert_eq!(Decimal::parse("15e-4"), d(15, 4));
        assert_eq!(Decimal::parse("-0.0"), d(0, 0));
        assert_eq!(Decimal::parse("0.1e1"), d(1, 0));
        assert_eq!(Decimal::parse("100"), d(100, 0));
        assert_eq!(Decimal::parse("1E+2"), d(100, 0));
        assert_eq!(Decimal::parse("9223372036854775807"), d(i64::MAX, 0));
        assert_eq!(Decimal::parse("1.000000000000000000000000000000000000000"), d(1, 0));
        assert_eq!(Decimal::parse("1e-18"), d(1, 18));
        assert_eq!(Decimal::parse("0e-9999"), d(0, 0));
        for bad in
            ["", "-", "1.2.3", "abc", "1e", "0x10", "NaN", ".5", "5.", "+5", " 5", "5 ", "05"]
        {
            assert_eq!(Decimal::parse_text(bad), Err(ParseError::Syntax), "{bad}");
        }
        for bad in ["1e99999", "1e-2147483648", "1e2147483647", "1_000", "\u{661}", "1e+-1"] {
            assert_eq!(Decimal::parse_text(bad), Err(ParseError::Syntax), "{bad}");
        }
        assert_eq!(Decimal::parse_text(&"1".repeat(10_000)), Err(ParseError::Syntax));
        assert_eq!(Decimal::parse_text(&"1".repeat(41)), Err(ParseError::Syntax));
        for far in ["1e999", "1e-19", "99999999999999999999999", "9223372036854775808", "1e-9999"] {
            assert_eq!(Decimal::parse_text(far), Err(ParseError::Range), "{far}");
        }
    }

    #[test]
    fn converts_to_units_or_refuses() {
        let d = Decimal::new(125, 3);
        assert_eq!(d.to_units(3), Ok(125));
        assert_eq!(d.to_units(6), Ok(125_000));
        assert_eq!(d.to_units(2), Err(UnitsError::TooFine));
        assert_eq!(Decimal::parse("0.100").map(|d| d.to_units(1)), Some(Ok(1)));
        assert_eq!(Decimal::new(i64::MAX, 0).to_units(1), Err(UnitsError::Overflow));
    }

    #[test]
    fn formats_units() {
        assert_eq!(format_units(12_345, 3), "12.345");
        assert_eq!(format_units(5, 3), "0.005");
        assert_eq!(format_units(-5, 1), "-0.5");
        assert_eq!(format_units(7, 0), "7");
    }
}
