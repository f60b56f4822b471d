//! `Decimal`: an exact decimal amount as it arrived on the wire, and its
//! conversion to whole units of a resource's resolution.
//!
//! Consumption totals must not depend on arrival order, so the ledger never sums
//! `f64`s: every amount is converted once, exactly, to an `i64` count of the
//! resource's smallest unit (e.g. 0.001 kWh), and totals are integer sums.
//! An amount finer than the resolution is refused rather than rounded, so no
//! reading is silently changed.

/// `mantissa / 10^scale`, exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub mantissa: i64,
    /// Digits after the decimal point, at most [`MAX_SCALE`].
    pub scale: u8,
}

/// Most digits after the decimal point accepted.
pub const MAX_SCALE: u8 = 18;

/// Why an amount could not become whole units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitsError {
    /// The amount has more significant decimals than the resolution.
    TooFine,
    /// The amount in units does not fit in an `i64`.
    Overflow,
}

impl Decimal {
    /// A decimal from a mantissa and scale.
    pub fn new(mantissa: i64, scale: u8) -> Decimal {
        Decimal { mantissa, scale }
    }

    /// Parses JSON number text or a decimal string exactly: an optional `-`,
    /// digits, an optional fraction, an optional exponent (`1.5e3`). Returns
    /// `None` for anything else or anything that does not fit.
    pub fn parse(text: &str) -> Option<Decimal> {
        let s = text.trim();
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (num, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
            None => (s, 0),
        };
        let (int, frac) = match num.find('.') {
            Some(i) => (&num[..i], &num[i + 1..]),
            None => (num, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let mut mantissa: i128 = 0;
        for c in int.bytes().chain(frac.bytes()) {
            if !c.is_ascii_digit() {
                return None;
            }
            mantissa = mantissa.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
            if mantissa > i128::from(i64::MAX) * 1_000 {
                return None;
            }
        }
        let mut scale = i32::try_from(frac.len()).ok()? - exp;
        // Normalise: drop trailing zeros while the scale is positive, then apply a
        // negative scale by multiplying out.
        while scale > 0 && mantissa != 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        if mantissa == 0 {
            scale = 0;
        }
        while scale < 0 {
            mantissa = mantissa.checked_mul(10)?;
            scale += 1;
        }
        if scale > i32::from(MAX_SCALE) {
            return None;
        }
        let m = i64::try_from(if neg { -mantissa } else { mantissa }).ok()?;
        Some(Decimal { mantissa: m, scale: scale as u8 })
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
        assert_eq!(Decimal::parse(".5"), d(5, 1));
        for bad in
            ["", "-", "1.2.3", "abc", "1e", "0x10", "NaN", "1e999", "99999999999999999999999"]
        {
            assert_eq!(Decimal::parse(bad), None, "{bad}");
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
