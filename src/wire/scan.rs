//! A one-pass scanner for the common shape of a JSON readings payload
//! (PROTOCOL.md 3.1), in front of the general decoder in `json.rs`.
//!
//! It takes bytes and accepts exactly one shape: a top-level object whose
//! fields are only `type` (the string `"readings"`), `v` (the number `1`) and
//! `readings` (required), each at most once, and every item an object of
//! exactly the fields `meter`, `ts` and `value`, each once, in any order, where
//! `meter` is a printable-ASCII string without escapes of 1 to
//! `MAX_METER_ID_BYTES` bytes and `ts` and `value` are finite JSON numbers;
//! JSON whitespace anywhere between tokens, nothing after the object.
//!
//! Anything else, however slightly off (an escape, a fourth field, a repeated
//! field, a bad item, more than `maxBatch` items, an unknown top-level field),
//! returns `None` and the payload goes to the general decoder, which decides
//! and explains. So the scanner changes speed, never acceptance: for every
//! payload it accepts, its batch equals the general decoder's
//! (`tests/wire_scan.rs` checks that differentially on random valid and hostile
//! payloads). Numbers are read in the same pass as their grammar is checked,
//! exactly (Clinger's fast path) when that is possible, else by the standard
//! library's `str::parse::<f64>`; both round correctly, so the values are the
//! same bits as the general decoder's.
//!
//! Nothing here panics or indexes unchecked; it allocates what the batch holds
//! (columns sized by the item count, one `String` per distinct meter, as the
//! general decoder does).

use rustc_hash::FxHashMap;

use crate::core::config::Config;
use crate::core::event::{KeyScope, ReadingBatch};
use crate::core::meters::MAX_METER_ID_BYTES;

/// The batch of `text` if it has the common shape (module docs), else `None`.
pub(crate) fn readings(text: &[u8], cfg: &Config) -> Option<ReadingBatch> {
    let mut s = Scanner { b: text, i: 0 };
    let mut batch: Option<ReadingBatch> = None;
    let (mut seen_type, mut seen_v) = (false, false);
    s.ws();
    s.eat(b'{')?;
    s.ws();
    loop {
        match s.key()? {
            b"type" if !seen_type => {
                seen_type = true;
                s.literal(b"\"readings\"")?;
            }
            b"v" if !seen_v => {
                seen_v = true;
                s.literal(b"1")?;
                // `1` and not `10` or `1.5`: the next byte ends the number.
                if !matches!(s.peek(), Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r')) {
                    return None;
                }
            }
            b"readings" if batch.is_none() => batch = Some(items(&mut s, cfg)?),
            _ => return None,
        }
        s.ws();
        match s.next()? {
            b',' => s.ws(),
            b'}' => break,
            _ => return None,
        }
    }
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    batch
}

/// The `readings` array, after its key.
fn items(s: &mut Scanner<'_>, cfg: &Config) -> Option<ReadingBatch> {
    s.eat(b'[')?;
    s.ws();
    let mut b = ReadingBatch { scope: KeyScope::Batch, ..Default::default() };
    if s.peek() == Some(b']') {
        s.i += 1;
        return Some(b);
    }
    let max_batch = cfg.max_batch as usize;
    let start = s.i;
    let mut keys: FxHashMap<&[u8], u32> = FxHashMap::default();
    loop {
        if b.keys.len() >= max_batch {
            return None;
        }
        let (meter, ts, value) = item(s)?;
        if b.keys.len() == b.keys.capacity() {
            let (seen, rest) = (s.i.saturating_sub(start), s.b.len().saturating_sub(s.i));
            reserve(&mut b, &mut keys, seen, rest, max_batch)?;
        }
        let key = match keys.get(meter) {
            Some(&k) => k,
            None => {
                let k = u32::try_from(b.bindings.len()).ok()?;
                // Printable ASCII, checked by `string`: always UTF-8.
                let id = std::str::from_utf8(meter).ok()?;
                b.bindings.push((k, id.to_owned()));
                keys.insert(meter, k);
                k
            }
        };
        b.keys.push(key);
        b.ts.push(ts);
        b.values.push(value);
        s.ws();
        match s.next()? {
            b',' => s.ws(),
            b']' => return Some(b),
            _ => return None,
        }
    }
}

/// A reading takes at least this many bytes (`{"meter":"m","ts":0,"value":0}`)
/// and a separator.
const MIN_ITEM_BYTES: usize = 30;

/// Room in the columns for the readings still to come, when they are full,
/// never past `maxBatch`: after the first item, as many as the rest of the
/// payload holds at that item's length (the items of a payload are alike; a
/// shorter first one only reserves more); after that, at 7/8 of the mean
/// length so far (`seen` bytes for the items read). A batch of 10,000 items
/// of 70 bytes so reserves about 10,000, not the 25,000 that the smallest
/// possible item would.
fn reserve(
    b: &mut ReadingBatch,
    keys: &mut FxHashMap<&[u8], u32>,
    seen: usize,
    rest: usize,
    max_batch: usize,
) -> Option<()> {
    let read = b.keys.len();
    let per = seen.checked_div(read).map_or(seen, |mean| mean * 7 / 8).max(MIN_ITEM_BYTES);
    let more = (rest / per).saturating_add(1).min(max_batch.saturating_sub(read));
    b.keys.try_reserve_exact(more).ok()?;
    b.ts.try_reserve_exact(more).ok()?;
    b.values.try_reserve_exact(more).ok()?;
    if read == 0 {
        // Distinct meters: at most the items, and a payload of one reading per
        // meter (the common shape) has as many: room for all of them up front.
        // Half of that (as before) made the key map rehash and the bindings
        // double once mid-payload, leaving their first tables behind as holes
        // (about 93 KB at 5,000 meters in wasm, whole pages of linear memory).
        keys.try_reserve(more).ok()?;
        b.bindings.try_reserve_exact(more).ok()?;
    }
    Some(())
}

/// One reading object: `meter`, `ts`, `value`, each exactly once.
///
/// First as the page's `JSON.stringify` and most servers write it
/// (`{"meter":"…","ts":…,"value":…}`, no whitespace, that order), matching
/// the field names as fixed byte strings; anything else goes back to the item's
/// start and is read field by field. The fast form is one spelling of what the
/// general form accepts, read with the same string and number readers, so
/// both give the same item or both refuse it.
#[inline]
fn item<'a>(s: &mut Scanner<'a>) -> Option<(&'a [u8], f64, f64)> {
    let start = s.i;
    if let Some(found) = canonical_item(s) {
        return Some(found);
    }
    s.i = start;
    any_item(s)
}

/// `{"meter":"…","ts":…,"value":…}` exactly, then any whitespace.
#[inline]
fn canonical_item<'a>(s: &mut Scanner<'a>) -> Option<(&'a [u8], f64, f64)> {
    s.literal(b"{\"meter\":")?;
    let meter = s.string()?;
    s.literal(b",\"ts\":")?;
    let ts = s.number()?;
    s.literal(b",\"value\":")?;
    let value = s.number()?;
    s.eat(b'}')?;
    s.ws();
    Some((meter, ts, value))
}

/// One reading object in any field order and spacing.
fn any_item<'a>(s: &mut Scanner<'a>) -> Option<(&'a [u8], f64, f64)> {
    s.eat(b'{')?;
    s.ws();
    let (mut meter, mut ts, mut value) = (None, None, None);
    for n in 0..3 {
        match s.key()? {
            b"meter" if meter.is_none() => meter = Some(s.string()?),
            b"ts" if ts.is_none() => ts = Some(s.number()?),
            b"value" if value.is_none() => value = Some(s.number()?),
            _ => return None,
        }
        s.ws();
        s.eat(if n == 2 { b'}' } else { b',' })?;
        s.ws();
    }
    Some((meter?, ts?, value?))
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.i.checked_add(lit.len())?;
        (self.b.get(self.i..end)? == lit).then(|| self.i = end)
    }

    /// A field name and the `:` after it, the whitespace after that skipped.
    #[inline]
    fn key(&mut self) -> Option<&'a [u8]> {
        let k = self.raw_string()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(k)
    }

    /// A meter id: printable ASCII, 1..=MAX_METER_ID_BYTES bytes.
    #[inline]
    fn string(&mut self) -> Option<&'a [u8]> {
        let s = self.raw_string()?;
        (!s.is_empty() && s.len() <= MAX_METER_ID_BYTES).then_some(s)
    }

    /// A string of printable ASCII without escapes; its bytes, quotes excluded.
    #[inline]
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = self.b.get(start..)?;
        let len = string_end(rest)?;
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.i = start + len + 1;
        rest.get(..len)
    }

    /// A JSON number (RFC 8259 grammar), finite as an f64.
    ///
    /// Read in the same pass as its grammar is checked: up to 19 significant
    /// digits go into an integer, and when it is at most 2^53 and the decimal
    /// exponent within ±22, one multiplication or division by an exact power
    /// of ten gives the correctly rounded double (Clinger's fast path), as
    /// `serde_json` (with `float_roundtrip`) gives. Any other number (17-digit
    /// values, large exponents) goes to `str::parse::<f64>`, never to serde.
    #[inline]
    fn number(&mut self) -> Option<f64> {
        let start = self.i;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.i += 1;
        }
        let mut mantissa = 0u64;
        let mut digits = 0u32;
        let mut exp10 = 0i32;
        match self.next()? {
            b'0' => {}
            c @ b'1'..=b'9' => {
                mantissa = u64::from(c - b'0');
                digits = 1;
                // Eight digits at a time while they fit the 19 kept (a
                // millisecond timestamp is 13 digits: one step and five).
                while digits <= 11 {
                    let Some(eight) = self.eight_digits() else { break };
                    mantissa = mantissa * 100_000_000 + eight;
                    digits += 8;
                    self.i += 8;
                }
                while let Some(c @ b'0'..=b'9') = self.peek() {
                    self.i += 1;
                    if digits < 19 {
                        mantissa = mantissa * 10 + u64::from(c - b'0');
                        digits += 1;
                    } else {
                        digits = u32::MAX;
                    }
                }
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digit()?;
            self.i -= 1;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                self.i += 1;
                if mantissa == 0 && c == b'0' {
                    exp10 -= 1; // leading zeros of a fraction: no significant digit yet
                } else if digits < 19 {
                    mantissa = mantissa * 10 + u64::from(c - b'0');
                    digits += 1;
                    exp10 -= 1;
                } else {
                    digits = u32::MAX;
                }
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            let eneg = match self.peek() {
                Some(b'-') => {
                    self.i += 1;
                    true
                }
                Some(b'+') => {
                    self.i += 1;
                    false
                }
                _ => false,
            };
            self.digit()?;
            self.i -= 1;
            let mut e = 0i32;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                self.i += 1;
                e = e.saturating_mul(10).saturating_add(i32::from(c - b'0'));
            }
            exp10 = exp10.saturating_add(if eneg { -e } else { e });
        }
        const POW10: [f64; 23] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
        ];
        if digits != u32::MAX && mantissa <= 1 << 53 {
            let m = mantissa as f64;
            let v = if exp10 >= 0 {
                POW10.get(exp10 as usize).map(|p| m * p)
            } else {
                POW10.get(exp10.unsigned_abs() as usize).map(|p| m / p)
            };
            if let Some(v) = v {
                return Some(if neg { -v } else { v });
            }
        }
        // The slow path: the standard library's parser (Eisel–Lemire with an
        // exact big-decimal fallback), correctly rounded like the general
        // decoder's. The JSON grammar checked above is a subset of what it
        // accepts, so it reads exactly this number.
        let text = std::str::from_utf8(self.b.get(start..self.i)?).ok()?;
        text.parse::<f64>().ok().filter(|x| x.is_finite())
    }

    /// Eight ASCII digits at the cursor, as their value, if there are eight.
    #[inline]
    fn eight_digits(&self) -> Option<u64> {
        let end = self.i.checked_add(8)?;
        let x = u64::from_le_bytes(self.b.get(self.i..end)?.try_into().ok()?);
        // Every byte 0x30..=0x39: high nibble 3, and adding 6 keeps it 3.
        let digits = x & 0xf0f0_f0f0_f0f0_f0f0 == 0x3030_3030_3030_3030
            && x.wrapping_add(0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0
                == 0x3030_3030_3030_3030;
        digits.then(|| eight_digits_value(x))
    }

    #[inline]
    fn digit(&mut self) -> Option<()> {
        self.next().filter(u8::is_ascii_digit).map(|_| ())
    }
}

/// The value of eight ASCII digits read little-endian (the first digit in the
/// low byte), by three multiplications (the SWAR method of simdjson's
/// `parse_eight_digits_unrolled`): pairs, then quads, then the eight.
#[inline]
fn eight_digits_value(x: u64) -> u64 {
    const MASK: u64 = 0x0000_00ff_0000_00ff;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let x = x.wrapping_sub(0x3030_3030_3030_3030);
    let x = x.wrapping_mul(10).wrapping_add(x >> 8);
    ((x & MASK).wrapping_mul(MUL1).wrapping_add((x >> 16 & MASK).wrapping_mul(MUL2))) >> 32
}

/// The index of the first byte of `rest` that ends a plain string: `"`, `\`,
/// a control byte (below 0x20) or one that is not printable ASCII (0x7f and
/// up), eight bytes at a time (SWAR: each test sets the high bit of a byte it
/// matches; a borrow can only set bits in bytes after a true match, so the
/// lowest set bit is exact).
#[inline]
fn string_end(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    while let Some(chunk) = rest.get(at..at + 8) {
        let x = u64::from_le_bytes(chunk.try_into().ok()?);
        let hits = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | x.wrapping_sub(ONES * 0x20) & !x & HIGH
            | (x.wrapping_add(ONES) | x) & HIGH;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = rest.get(at..)?;
    tail.iter().position(|&c| c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c)).map(|p| at + p)
}

// proptest is a native dev-dependency only (wasm-pack builds the lib tests too).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::Scanner;
    use proptest::prelude::*;

    /// The scanner's number, if it took the whole text.
    fn scan(text: &str) -> Option<f64> {
        let mut s = Scanner { b: text.as_bytes(), i: 0 };
        s.number().filter(|_| s.i == text.len())
    }

    /// What the scanner must give: the correctly rounded value, finite.
    fn want(text: &str) -> Option<f64> {
        text.parse::<f64>().ok().filter(|x| x.is_finite())
    }

    fn same(text: &str) -> Result<(), TestCaseError> {
        let (got, want) = (scan(text), want(text));
        prop_assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{}", text);
        Ok(())
    }

    #[test]
    fn edge_cases_are_correctly_rounded() {
        for t in [
            "0",
            "-0",
            "0.0",
            "1",
            "-1",
            "0.1",
            "0.3",
            "1e22",
            "1e23",
            "-1e-22",
            "1e-23",
            "9007199254740991",
            "9007199254740992",
            "9007199254740993",
            "9007199254740995",
            "-9007199254740993",
            "18014398509481985",
            "12345678901234567",
            "123456789012345678",
            "1234567890123456789",
            "12345678901234567890",
            "0.12345678901234567",
            "99.999999999999999",
            "3.1415926535897932",
            "17.000000000000002",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "2.2250738585072011e-308",
            "2.2250738585072014e-308",
            "4.9406564584124654e-324",
            "2.4703282292062327e-324",
            "2.4703282292062328e-324",
            "1e-400",
            "1e400",
            "0e999999999",
            "1E+2",
            "1e-0",
            "7.2057594037927933e16",
            "1.00000000000000011102230246251565404236316680908203125",
            "0.000000000000000000000000000000001",
            "123.456e-7",
            "8.589973e9",
        ] {
            same(t).unwrap();
        }
    }

    fn payload(items: impl Iterator<Item = String>) -> Vec<u8> {
        let body: Vec<String> = items.collect();
        format!(r#"{{"type":"readings","readings":[{}]}}"#, body.join(",")).into_bytes()
    }

    /// The columns are sized by the items the payload holds (at 7/8 of the
    /// first one's length), not by the smallest item possible: 10,000 readings
    /// of ~70 bytes reserve at most 12.5% more than 10,000 (the bound by the
    /// 28-byte item reserved 25,000).
    #[test]
    fn columns_follow_the_items_not_the_smallest_item() {
        let cfg = crate::core::config::Config::default();
        let n = 10_000;
        let text = payload((0..n).map(|i| {
            format!(
                r#"{{"meter":"meter-{:06}","ts":1700000000000,"value":{}}}"#,
                i % 5_000,
                100.0 + (i as f64 + 1.0).sin()
            )
        }));
        let b = super::readings(&text, &cfg).unwrap();
        assert_eq!(b.keys.len(), n);
        for cap in [b.keys.capacity(), b.ts.capacity(), b.values.capacity()] {
            assert!((n..=n + n / 8).contains(&cap), "capacity {cap} for {n} readings");
        }
    }

    /// One reading per meter (the common shape): the bindings are sized for
    /// every item at the first one, so they never double mid-payload.
    #[test]
    fn distinct_meters_get_their_bindings_up_front() {
        let cfg = crate::core::config::Config::default();
        let n = 5_000;
        let text =
            payload((0..n).map(|i| {
                format!(r#"{{"meter":"meter-{i:06}","ts":1700000000000,"value":{i}.5}}"#)
            }));
        let b = super::readings(&text, &cfg).unwrap();
        assert_eq!(b.bindings.len(), n);
        let cap = b.bindings.capacity();
        assert!((n..=n + n / 8).contains(&cap), "capacity {cap} for {n} meters");
    }

    /// A first item longer than the rest: the columns grow (fallibly) and
    /// every reading is kept.
    #[test]
    fn a_long_first_item_still_reads_every_item() {
        let cfg = crate::core::config::Config::default();
        let long = "m".repeat(100);
        let text = payload((0..3_000).map(|i| {
            let id = if i == 0 { long.clone() } else { format!("{}", i % 7) };
            format!(r#"{{"meter":"{id}","ts":{i},"value":{i}}}"#)
        }));
        let b = super::readings(&text, &cfg).unwrap();
        assert_eq!(b.keys.len(), 3_000);
        assert_eq!(b.values.get(2_999), Some(&2_999.0));
        assert_eq!(b.bindings.len(), 8);
    }

    use crate::test_cases::cases_or;

    fn digits(min: usize, max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(0u8..10, min..=max)
            .prop_map(|d| d.into_iter().map(|c| char::from(b'0' + c)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases_or(20_000)))]

        /// Random JSON numbers of 1 to 24 significant digits, with and without
        /// fraction and exponent (up to ±340), read to the same bits as
        /// `str::parse::<f64>`.
        #[test]
        fn random_decimals_match_std_parse(neg in any::<bool>(), lead in 1u8..10,
                                            int in digits(0, 20), frac in prop::option::of(digits(1, 20)),
                                            exp in prop::option::of((any::<bool>(), 0i32..340))) {
            let mut t = String::new();
            if neg { t.push('-'); }
            t.push(char::from(b'0' + lead));
            t.push_str(&int);
            if let Some(f) = &frac { t.push('.'); t.push_str(f); }
            if let Some((eneg, e)) = exp { t.push_str(&format!("e{}{e}", if eneg { "-" } else { "+" })); }
            same(&t)?;
        }

        /// Doubles printed shortest (17 digits or fewer) and at fixed precisions
        /// read back to the same bits, subnormals included.
        #[test]
        fn printed_doubles_round_trip(bits in any::<u64>(), prec in 0usize..20) {
            let x = f64::from_bits(bits);
            prop_assume!(x.is_finite());
            same(&format!("{x:e}"))?;
            same(&format!("{x:.prec$e}"))?;
            prop_assert_eq!(scan(&format!("{x:e}")).map(f64::to_bits), Some(x.to_bits()));
        }

        /// The eight-at-a-time string end equals the byte-by-byte one, on any
        /// bytes (quotes, escapes, control and non-ASCII bytes at any offset).
        #[test]
        fn string_end_matches_the_byte_loop(bytes in prop::collection::vec(
            prop_oneof![4 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => Just(b'"')], 0..40)) {
            let naive = bytes.iter().position(|&c| c == b'"' || c == b'\\' || !(0x20..0x7f).contains(&c));
            prop_assert_eq!(super::string_end(&bytes), naive);
        }

        /// Eight digits read at once equal their decimal value; anything else
        /// in the eight bytes is not eight digits.
        #[test]
        fn eight_digits_match(bytes in prop::collection::vec(
            prop_oneof![8 => b'0'..=b'9', 1 => any::<u8>()], 8..12)) {
            let s = Scanner { b: &bytes, i: 0 };
            let want = bytes[..8].iter().all(u8::is_ascii_digit)
                .then(|| bytes[..8].iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0')));
            prop_assert_eq!(s.eight_digits(), want);
        }

        /// Values as a meter sends them: a level with 1 to 17 significant digits
        /// in plain decimal notation.
        #[test]
        fn meter_values_match(x in -1e9..1e9f64, prec in 0usize..17) {
            same(&format!("{x:.prec$}"))?;
            same(&format!("{x}"))?;
        }
    }
}
