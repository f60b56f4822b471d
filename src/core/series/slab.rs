//! `SeriesSlab`: every `(meter, resource)` pair's downsampled series over the
//! 6-hour horizon, in one flat slab of fixed-size buckets.
//!
//! Layout (chosen by size, docs/LEDGER.md "Series"): per pair, a ring of 120
//! one-minute buckets (the last two hours up to the pair's newest minute) and
//! a ring of 48 five-minute buckets (the four hours before); a minute leaving
//! the minute ring is folded into its five-minute bucket, so a five-minute
//! answer combines both rings exactly. 168 buckets × 22 bytes = 3,696 bytes,
//! plus 24 bytes of head and 4 bytes of index per resource: 3,724 bytes for a
//! meter of one resource. A pair's rings exist only once it has a reading.
//! The slab is time-major within blocks of [`BLOCK_PAIRS`] pairs (bucket `b`
//! of pair `p` at `(p / 8) × 8 × 168 + b × 8 + p % 8`), each block (29.6 KB)
//! allocated once when its first pair arrives and never moved: the buckets of
//! the current minute of a block's pairs lie together (176 B per block, 110 KB
//! at 5,000 pairs), so the reading path stays in cache where a pair-major
//! layout took a cache miss per reading. Eight pairs a block keep the unused
//! tail of the last block under 8 pairs (64 left up to 63: 45 B a meter at
//! 5,000).
//!
//! Invariants:
//! - `sum` is the exact sum, in integer units of the resource, of the readings
//!   the ledger counted (each `(meter, id)` once) whose timestamp falls in the
//!   bucket; `count` is how many. `min`/`max`/`last` are the reading amounts
//!   in units, rounded to f32 (24-bit mantissa); `last` is the amount of the
//!   reading with the latest timestamp (`tick`), the later arrival on a tie.
//! - A reading older than the horizon of its pair, or past
//!   [`MAX_PER_BUCKET`] in its bucket, or taking its bucket's sum (or
//!   needing alone) more than 48 bits (±2^47 units), is not in the series: it is counted in
//!   `missed` and its minute is at or before `missed_through`, which makes
//!   every answer covering it `incomplete`.
//! - Memory follows the pairs seen, grown with `try_reserve`; a pair refused
//!   for memory is recorded the same way.

/// One-minute buckets per pair: two hours.
pub const MINUTES: i64 = 120;
/// Five-minute buckets per pair, before the minute ring: four hours.
pub const FIVES: i64 = 48;
/// Buckets per pair.
pub const BUCKETS: usize = (MINUTES + FIVES) as usize;
/// Most readings one bucket counts (its `count` is 16 bits).
pub const MAX_PER_BUCKET: u16 = u16::MAX;
/// One minute, ms.
pub const MINUTE_MS: f64 = 60_000.0;
/// Ticks (the `last` ordering within a bucket) are 5 ms: a five-minute bucket has 60,000.
const TICK_MS: f64 = 5.0;
const NONE: u32 = u32::MAX;
/// An index entry for a pair refused at `maxSeriesPairs` (reported once, retried
/// when a reading comes after the bound was raised).
const REFUSED: u32 = u32::MAX - 1;
/// Pairs per block of the slab.
pub const BLOCK_PAIRS: usize = 8;
const BLOCK: usize = BLOCK_PAIRS * BUCKETS;

/// Where bucket `b` of pair `p` lies in the slab.
#[inline]
fn at(p: usize, b: usize) -> usize {
    (p / BLOCK_PAIRS) * BLOCK + b * BLOCK_PAIRS + p % BLOCK_PAIRS
}

/// The slab's buckets, [`BLOCK`] at a time: each block is allocated once, when
/// its first pair arrives, and never moved. (One `Vec` grown by a block at a
/// time copied the whole slab at every block and left each old copy as a free
/// hole in the wasm heap, which linear memory never gives back: in the soak,
/// about 50 MB of linear memory beside a 20 MB slab.) Indexed like a flat
/// slice: bucket `b` of pair `p` is `at(p, b) % BLOCK` of block `p / 8`.
#[derive(Clone, Debug, Default, PartialEq)]
struct Blocks(Vec<Box<[Stored]>>);

impl Blocks {
    fn len(&self) -> usize {
        self.0.len() * BLOCK
    }

    /// Bucket `b` of pair `p` (`at(p, b)`, found with shifts: 8 pairs a block).
    #[inline]
    fn pair(&self, p: usize, b: usize) -> Option<&Stored> {
        self.0.get(p / BLOCK_PAIRS)?.get(b * BLOCK_PAIRS + p % BLOCK_PAIRS)
    }

    #[inline]
    fn pair_mut(&mut self, p: usize, b: usize) -> Option<&mut Stored> {
        self.0.get_mut(p / BLOCK_PAIRS)?.get_mut(b * BLOCK_PAIRS + p % BLOCK_PAIRS)
    }

    /// One more block of empty buckets; `None` without memory. The list of
    /// blocks grows by doubling but not past `max_blocks` (`maxSeriesPairs / 8`).
    fn grow(&mut self, max_blocks: usize) -> Option<()> {
        let len = self.0.len();
        if self.0.capacity() == len {
            let room = len.saturating_mul(2).max(len + 1).min(max_blocks.max(len + 1));
            self.0.try_reserve_exact(room - len).ok()?;
        }
        let mut block = Vec::new();
        block.try_reserve_exact(BLOCK).ok()?;
        block.resize(BLOCK, Stored::EMPTY);
        self.0.push(block.into_boxed_slice());
        Some(())
    }

    fn bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<Box<[Stored]>>()
            + self.len() * std::mem::size_of::<Stored>()
    }
}

/// A bucket as the slab stores it: 22 bytes, 2-byte aligned (`packed(2)`:
/// its fields are read and written by value, never borrowed). The exact sum
/// and the count share one word, `sum << 16 | count`, so the sum has 48 bits
/// (±1.4 × 10^14 units) and one checked add both adds a reading and finds an
/// overflow of either: a reading that would pass them is refused (missed),
/// never wrapped. (Sum `i64` beside `count` took 24 bytes a bucket.)
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, packed(2))]
struct Stored {
    /// `sum << 16 | count`.
    word: i64,
    min: f32,
    max: f32,
    last: f32,
    /// Time of `last` within the bucket, in 5 ms ticks.
    tick: u16,
}

/// The count bits of a stored word.
const COUNT_BITS: u32 = 16;

impl Stored {
    const EMPTY: Stored =
        Stored { word: 0, min: f32::INFINITY, max: f32::NEG_INFINITY, last: 0.0, tick: 0 };

    /// One reading of `units` at `tick`; `None` if `units` needs more than 48 bits.
    #[inline]
    fn one(units: i64, tick: u16) -> Option<Stored> {
        let word = units.checked_mul(1 << COUNT_BITS)? | 1;
        let v = units as f32;
        Some(Stored { word, min: v, max: v, last: v, tick })
    }

    #[inline]
    fn count(self) -> u16 {
        self.word as u16
    }

    /// Folds `o` (its `last` at `tick`) into this bucket. `false` (nothing
    /// changed) if the count would pass [`MAX_PER_BUCKET`] or the sum 48 bits.
    #[inline]
    fn merge(&mut self, o: Stored, tick: u16) -> bool {
        let (c, oc) = (self.count(), o.count());
        if oc == 0 {
            return true;
        }
        // With the counts' sum within 16 bits no carry leaves the low bits,
        // so the word's add overflows exactly when the 48-bit sum does.
        if c.checked_add(oc).is_none() {
            return false;
        }
        let Some(word) = self.word.checked_add(o.word) else { return false };
        self.word = word;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if c == 0 || tick >= self.tick {
            self.last = o.last;
            self.tick = tick;
        }
        true
    }

    /// This bucket, read, with `last` at `tick`.
    #[inline]
    fn read(self, tick: u32) -> Bucket {
        Bucket {
            sum: self.word >> COUNT_BITS,
            min: self.min,
            max: self.max,
            last: self.last,
            count: u32::from(self.count()),
            tick,
        }
    }
}

/// One bucket as read: a minute, or a five-minute period (its stored
/// five-minute bucket and its minutes not folded yet, combined here, wide
/// enough that combining six stored buckets cannot overflow).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Exact sum of the amounts, integer units.
    pub sum: i64,
    /// Smallest amount, units.
    pub min: f32,
    /// Largest amount, units.
    pub max: f32,
    /// Amount of the latest reading, units.
    pub last: f32,
    /// Readings.
    pub count: u32,
    /// Time of `last` within the bucket, in 5 ms ticks.
    pub tick: u32,
}

impl Bucket {
    /// No reading.
    pub const EMPTY: Bucket =
        Bucket { sum: 0, min: f32::INFINITY, max: f32::NEG_INFINITY, last: 0.0, count: 0, tick: 0 };

    /// Adds `o`, a stretch of time after this one's when their ticks tie.
    fn absorb(&mut self, o: Bucket) {
        if o.count == 0 {
            return;
        }
        // At most six stored buckets: 6 × 65,535 readings, 6 × 2^47 units.
        self.sum = self.sum.saturating_add(o.sum);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        if self.count == 0 || o.tick >= self.tick {
            self.last = o.last;
            self.tick = o.tick;
        }
        self.count = self.count.saturating_add(o.count);
    }
}

/// Per pair: where its rings stand.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Head {
    /// The newest minute held (the minute ring holds `(minute - 120, minute]`).
    minute: i64,
    /// The slab's change counter when this pair last changed.
    changed: u64,
    /// The newest HLC wall (ms) of a frame whose reading this pair holds.
    watermark: f64,
}

/// Every pair's series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesSlab {
    resources: usize,
    /// Most pairs held (`maxSeriesPairs`).
    max_pairs: usize,
    /// Most index slots (`maxMeters × resources`): the index and the heads
    /// grow by doubling but not past their bounds, so at the bound they hold
    /// what `Config::worst_case_bytes` charges, not up to twice that.
    max_slots: usize,
    /// `m * resources + r` -> pair number, `NONE`, or `REFUSED`.
    index: Vec<u32>,
    /// Index slots refused at the bound since [`SeriesSlab::take_refused`].
    refused: Vec<u32>,
    heads: Vec<Head>,
    /// Bucket `b` of pair `p` at `at(p, b)`: minute ring `0..120`, five-minute ring `120..168`.
    buckets: Blocks,
    changes: u64,
    missed: u64,
    missed_through: Option<i64>,
    /// Readings refused at a bucket's bound since [`SeriesSlab::take_overflow`].
    overflow: Overflow,
    newest_minute: Option<i64>,
}

/// Readings a bucket refused (past [`MAX_PER_BUCKET`] or ±2^47 units) since
/// the last report: how many, and the first one's index slot and minute.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    pub readings: u64,
    pub first: Option<(u32, i64)>,
}

impl Overflow {
    /// `readings` of index slot `slot`, minute `minute`, refused at a bucket's bound.
    fn add(&mut self, slot: u32, minute: i64, readings: u64) {
        self.readings = self.readings.saturating_add(readings);
        self.first = self.first.or(Some((slot, minute)));
    }
}

/// Refused readings for the `series_limit` error that names them: how many,
/// and the first's meter, resource and minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflowed {
    pub readings: u64,
    pub meter: u32,
    pub resource: usize,
    pub minute: i64,
}

fn minute_of(ts_ms: f64) -> Option<i64> {
    let m = (ts_ms / MINUTE_MS).floor();
    (m.is_finite() && m.abs() < 1e13).then_some(m as i64)
}

impl SeriesSlab {
    /// Series for `resources` resources, at most `max_pairs` `(meter, resource)` pairs.
    pub fn new(resources: usize, max_pairs: u32) -> SeriesSlab {
        SeriesSlab {
            resources,
            max_pairs: max_pairs as usize,
            max_slots: usize::MAX,
            ..Default::default()
        }
    }

    /// Most pairs held (`maxSeriesPairs`, or its default).
    pub fn max_pairs(&self) -> usize {
        self.max_pairs
    }

    /// Takes a new `maxMeters` (the index's growth stops at `maxMeters × resources` slots).
    pub fn set_max_meters(&mut self, max_meters: u32) {
        self.max_slots = (max_meters as usize).saturating_mul(self.resources);
    }

    /// Takes a new `maxSeriesPairs` (pairs held stay; new ones stop at the bound).
    pub fn set_max_pairs(&mut self, max_pairs: u32) {
        self.max_pairs = max_pairs as usize;
    }

    /// The `(meter, resource)` pairs refused at `maxSeriesPairs` since the last
    /// call, each once, for the `series_limit` error that names them.
    pub fn take_refused(&mut self) -> Vec<(u32, usize)> {
        let r = self.resources.max(1);
        std::mem::take(&mut self.refused)
            .into_iter()
            .map(|slot| (slot / r as u32, slot as usize % r))
            .collect()
    }

    /// The readings refused at a bucket's bound since the last call (`None`
    /// if none), for the one `series_limit` error a flush raises about them.
    pub fn take_overflow(&mut self) -> Option<Overflowed> {
        let o = std::mem::take(&mut self.overflow);
        let (slot, minute) = o.first?;
        let r = self.resources.max(1);
        Some(Overflowed {
            readings: o.readings,
            meter: slot / r as u32,
            resource: slot as usize % r,
            minute,
        })
    }

    /// Pairs with a series.
    pub fn pairs(&self) -> usize {
        self.heads.len()
    }

    /// Readings not in the series (older than the horizon, a full bucket, no memory).
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The newest minute a reading of which may be missing from the series.
    pub fn missed_through(&self) -> Option<i64> {
        self.missed_through
    }

    /// The newest minute any reading fell in.
    pub fn newest_minute(&self) -> Option<i64> {
        self.newest_minute
    }

    /// Bumped on every change: a cache keyed on it is fresh while it stands.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.index.capacity() * 4
            + self.heads.capacity() * std::mem::size_of::<Head>()
            + self.buckets.bytes()
    }

    /// Bytes a pair takes (its buckets and head), and an index entry per resource of a meter.
    pub fn bytes_per_pair(&self) -> usize {
        BUCKETS * std::mem::size_of::<Stored>() + std::mem::size_of::<Head>()
    }

    fn miss(&mut self, minute: i64) {
        self.missed += 1;
        self.missed_through = self.missed_through.max(Some(minute));
    }

    fn pair(&mut self, m: usize, r: usize, minute: i64) -> Option<usize> {
        let slot = m.checked_mul(self.resources)?.checked_add(r)?;
        let seen = match self.index.get(slot) {
            Some(&p) if p < REFUSED => return Some(p as usize),
            Some(&p) => p == REFUSED,
            None => false,
        };
        if self.index.len() <= slot {
            let len = self.index.len();
            if self.index.capacity() <= slot {
                let room = len.saturating_mul(2).max(slot + 1).min(self.max_slots.max(slot + 1));
                self.index.try_reserve_exact(room - len).ok()?;
            }
            self.index.resize(slot + 1, NONE);
        }
        let p = self.heads.len();
        if p >= self.max_pairs {
            // Named once per pair (the refusal list holds each slot once).
            let named = u32::try_from(slot).ok().filter(|_| !seen);
            if let Some(s) = named.filter(|_| self.refused.try_reserve(1).is_ok()) {
                if let Some(x) = self.index.get_mut(slot) {
                    *x = REFUSED;
                }
                self.refused.push(s);
            }
            return None;
        }
        let p32 = u32::try_from(p).ok().filter(|&x| x < REFUSED)?;
        if self.heads.capacity() == p {
            let room = p.saturating_mul(2).max(p + 1).min(self.max_pairs.max(p + 1));
            self.heads.try_reserve_exact(room - p).ok()?;
        }
        if self.buckets.len() <= at(p, 0) {
            self.buckets.grow(self.max_pairs.div_ceil(BLOCK_PAIRS))?;
        }
        self.heads.push(Head { minute, changed: 0, watermark: f64::NEG_INFINITY });
        if let Some(x) = self.index.get_mut(slot) {
            *x = p32;
        }
        Some(p)
    }

    /// Adds one counted reading: meter `m`, resource `r`, reading time `ts_ms`,
    /// `units` (integer units), from a frame stamped at HLC wall `stamp_ms`.
    /// `false` if the series cannot hold it (recorded as missed).
    pub fn add(&mut self, m: u32, r: usize, ts_ms: f64, units: i64, stamp_ms: f64) -> bool {
        let Some(t) = minute_of(ts_ms) else { return false };
        if r >= self.resources {
            return false;
        }
        // Only for naming the pair in a report.
        let named = u32::try_from(m as usize * self.resources + r).unwrap_or(u32::MAX);
        // A reading that alone passes a bucket's 48-bit sum is refused before
        // it can take a pair or move the pair's minute window.
        if Stored::one(units, 0).is_none() {
            self.miss(t);
            self.overflow.add(named, t, 1);
            return false;
        }
        let Some(p) = self.pair(m as usize, r, t) else {
            self.miss(t);
            return false;
        };
        let head = self.heads.get(p).map_or(t, |h| h.minute);
        if t > head {
            self.advance(p, named, head, t);
        }
        let head = head.max(t);
        let (slot, tick) = if t > head - MINUTES {
            let within = ts_ms - t as f64 * MINUTE_MS;
            (t.rem_euclid(MINUTES) as usize, (within / TICK_MS) as u16)
        } else {
            let q = t.div_euclid(5);
            let oldest = (head - MINUTES).div_euclid(5) - (FIVES - 1);
            if q < oldest {
                self.miss(t);
                return false;
            }
            let within = ts_ms - (q * 5) as f64 * MINUTE_MS;
            ((MINUTES + q.rem_euclid(FIVES)) as usize, (within / TICK_MS) as u16)
        };
        let ok = Stored::one(units, tick)
            .is_some_and(|one| self.buckets.pair_mut(p, slot).is_some_and(|b| b.merge(one, tick)));
        if !ok {
            self.miss(t);
            self.overflow.add(named, t, 1);
            return false;
        }
        self.changes += 1;
        let changes = self.changes;
        if let Some(h) = self.heads.get_mut(p) {
            h.changed = changes;
            h.watermark = h.watermark.max(stamp_ms);
        }
        self.newest_minute = self.newest_minute.max(Some(t));
        true
    }

    /// Moves pair `p`'s newest minute from `h0` to `h1`: the minutes leaving
    /// the minute ring fold into their five-minute buckets (a five-minute
    /// bucket starts empty at its period's first minute), and the minute
    /// slots they free start empty.
    /// (`named`: the pair's index slot, to name it if a fold is refused.)
    fn advance(&mut self, p: usize, named: u32, h0: i64, h1: i64) {
        let ring = &mut self.buckets;
        let first = (h0 - MINUTES + 1).max((h1 - MINUTES - 5 * FIVES + 1).div_euclid(5) * 5);
        for t in first..=h1 - MINUTES {
            let q = t.div_euclid(5);
            let five = (MINUTES + q.rem_euclid(FIVES)) as usize;
            if t.rem_euclid(5) == 0 {
                if let Some(b) = ring.pair_mut(p, five) {
                    *b = Stored::EMPTY;
                }
            }
            if t <= h0 {
                let slot = t.rem_euclid(MINUTES) as usize;
                let Some(mb) = ring.pair(p, slot).copied() else { continue };
                // Ticks of the minute, as 5 ms ticks of its five-minute period.
                let offset = (t - q * 5) as u16 * (MINUTE_MS / TICK_MS) as u16;
                let tick = offset.saturating_add(mb.tick);
                if let Some(b) = ring.pair_mut(p, five) {
                    // Two full minutes cannot pass the bound unless the period
                    // already holds as many: then the minute's readings are missed.
                    if !b.merge(mb, tick) {
                        self.missed += u64::from(mb.count());
                        self.missed_through = self.missed_through.max(Some(t));
                        self.overflow.add(named, t, u64::from(mb.count()));
                    }
                }
            }
        }
        for t in (h0 + 1).max(h1 - MINUTES + 1)..=h1 {
            if let Some(b) = ring.pair_mut(p, t.rem_euclid(MINUTES) as usize) {
                *b = Stored::EMPTY;
            }
        }
        if let Some(h) = self.heads.get_mut(p) {
            h.minute = h1;
        }
    }

    /// Pair `(m, r)`'s bucket for one step: a minute (`five == false`) or the
    /// five-minute period `k` (minutes `5k..5k+5`). `None` if the pair has no
    /// series; an empty bucket if the step is outside what it holds.
    pub fn bucket(&self, m: usize, r: usize, k: i64, five: bool) -> Option<Bucket> {
        let p = *self.index.get(m * self.resources + r).filter(|&&p| p < REFUSED)? as usize;
        let head = self.heads.get(p)?.minute;
        let ring = &self.buckets;
        let minute = |t: i64| -> Option<Stored> {
            (t <= head && t > head - MINUTES)
                .then(|| ring.pair(p, t.rem_euclid(MINUTES) as usize).copied())?
        };
        if !five {
            return Some(minute(k).map_or(Bucket::EMPTY, |b| b.read(u32::from(b.tick))));
        }
        let newest_five = (head - MINUTES).div_euclid(5);
        let stored = (k <= newest_five && k > newest_five - FIVES)
            .then(|| ring.pair(p, (MINUTES + k.rem_euclid(FIVES)) as usize).copied())
            .flatten();
        let mut b = stored.map_or(Bucket::EMPTY, |b| b.read(u32::from(b.tick)));
        for i in 0..5u32 {
            if let Some(mb) = minute(k * 5 + i64::from(i)) {
                // The minute's ticks as 5 ms ticks of its five-minute period.
                b.absorb(mb.read(i * 12_000 + u32::from(mb.tick)));
            }
        }
        Some(b)
    }

    /// Pair `(m, r)`'s change counter and watermark, if it has a series.
    pub fn source(&self, m: usize, r: usize) -> Option<(u64, f64)> {
        let p = *self.index.get(m * self.resources + r).filter(|&&p| p < REFUSED)? as usize;
        self.heads.get(p).map(|h| (h.changed, h.watermark))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: f64 = 29_401_080.0 * MINUTE_MS; // a minute divisible by 5

    #[test]
    fn minutes_fold_into_fives_exactly() {
        let mut s = SeriesSlab::new(2, 1000);
        // One reading per minute for 6 hours, amount = minute number.
        for k in 0..360i64 {
            assert!(s.add(3, 1, T0 + k as f64 * MINUTE_MS + 1000.0, k, 1.0));
        }
        let head = (T0 / MINUTE_MS) as i64 + 359;
        // Minutes of the last two hours are held one by one.
        for k in 240..360 {
            let b = s.bucket(3, 1, (T0 / MINUTE_MS) as i64 + k, false);
            assert_eq!(b.map(|b| (b.count, b.sum)), Some((1, k)));
        }
        // Every five-minute period of the 6 hours sums its five minutes.
        for q in 0..72i64 {
            let k = head.div_euclid(5) - 71 + q;
            let b = s.bucket(3, 1, k, true).unwrap_or(Bucket::EMPTY);
            let first = k * 5 - (T0 / MINUTE_MS) as i64;
            assert_eq!((b.count, b.sum), (5, (first..first + 5).sum()), "period {q}");
            assert_eq!(
                (b.min, b.max, b.last),
                (first as f32, (first + 4) as f32, (first + 4) as f32)
            );
        }
        assert_eq!(s.missed(), 0);
        // A reading older than the horizon is missed, never silently dropped.
        assert!(!s.add(3, 1, T0 - 10.0 * MINUTE_MS, 1, 1.0));
        assert_eq!(s.missed(), 1);
        assert!(s.bucket(3, 0, head, false).is_none(), "resource 0 has no series");
    }

    #[test]
    fn late_readings_fold_in_and_last_is_latest_timestamp() {
        let mut s = SeriesSlab::new(1, 1000);
        let t = T0 + 3.0 * 3_600_000.0;
        assert!(s.add(0, 0, t + 30_000.0, 7, 1.0));
        assert!(s.add(0, 0, t + 10_000.0, 2, 2.0)); // late, earlier: not last
        let b = s.bucket(0, 0, (t / MINUTE_MS) as i64, false).unwrap_or(Bucket::EMPTY);
        assert_eq!((b.count, b.sum, b.min, b.max, b.last), (2, 9, 2.0, 7.0, 7.0));
        // A late reading 3 hours back lands in its five-minute bucket.
        assert!(s.add(0, 0, t - 3.0 * 3_600_000.0 + 61_000.0, 5, 3.0));
        let k = ((t - 3.0 * 3_600_000.0) / MINUTE_MS) as i64 / 5;
        assert_eq!(s.bucket(0, 0, k, true).map(|b| (b.count, b.sum)), Some((1, 5)));
        assert_eq!(s.source(0, 0).map(|x| x.1), Some(3.0));
    }

    #[test]
    fn a_long_silence_empties_the_rings() {
        let mut s = SeriesSlab::new(1, 1000);
        assert!(s.add(0, 0, T0, 4, 1.0));
        assert!(s.add(0, 0, T0 + 7.0 * 3_600_000.0, 1, 1.0));
        let k = (T0 / MINUTE_MS) as i64;
        assert_eq!(s.bucket(0, 0, k, true).map(|b| b.count), Some(0));
        assert_eq!(std::mem::size_of::<Stored>(), 22);
        assert!(s.bytes_per_pair() + 4 < 4000);
    }

    // proptest is a native dev-dependency only (wasm-pack builds the lib tests too).
    #[cfg(not(target_arch = "wasm32"))]
    mod near_the_bound {
        use super::*;

        /// The oracle's rule for a bucket: the readings it holds, counted and
        /// summed exactly (`i128`); `add` refuses what would pass 16 bits of count
        /// or 48 bits of sum.
        #[derive(Clone, Copy, Default)]
        struct Exact {
            count: u32,
            sum: i128,
        }

        impl Exact {
            fn takes(self, count: u32, sum: i128) -> Option<Exact> {
                let (count, sum) = (self.count + count, self.sum + sum);
                (count <= u32::from(MAX_PER_BUCKET) && (-(1i128 << 47)..1i128 << 47).contains(&sum))
                    .then_some(Exact { count, sum })
            }
        }

        fn units_near_the_bound() -> impl proptest::strategy::Strategy<Value = i64> {
            use proptest::prelude::*;
            const B: i64 = 1 << 47;
            prop_oneof![
                -1_000i64..1_000,
                B - 2_000..B + 2_000,
                -B - 2_000..-B + 2_000,
                B / 2 - 1_000..B / 2 + 1_000,
                -B / 2 - 1_000..-B / 2 + 1_000,
                Just(i64::MAX),
                Just(i64::MIN),
            ]
        }

        proptest::proptest! {
            /// Sums near the 48-bit bound: every bucket holds exactly the
            /// readings the oracle says fit, with the exact sum; a reading (or,
            /// when minutes fold into their five-minute bucket, a minute) that
            /// would pass the bound is refused, counted in `missed` and marks its
            /// minute, never wrapped.
            #[test]
            fn sums_past_48_bits_are_refused_and_reported_never_wrapped(
                readings in proptest::collection::vec((0i64..20, 0u32..60_000, units_near_the_bound()), 1..60)
            ) {
                let base = (T0 / MINUTE_MS) as i64;
                let at = |t: i64, ms: u32| (base + t) as f64 * MINUTE_MS + f64::from(ms);
                let mut s = SeriesSlab::new(1, 4);
                // The head at minute 20: every reading below lands in the minute ring.
                assert!(s.add(0, 0, at(20, 0), 0, 1.0));
                let mut minutes = [Exact::default(); 21];
                minutes[20] = Exact { count: 1, sum: 0 };
                let (mut missed, mut through, mut first) = (0u64, None, None);
                for &(t, ms, units) in &readings {
                    // A reading that alone needs more than 48 bits is refused too.
                    let alone = (-(1i64 << 47)..1i64 << 47).contains(&units);
                    let fits = minutes[t as usize].takes(1, i128::from(units)).filter(|_| alone);
                    proptest::prop_assert_eq!(s.add(0, 0, at(t, ms), units, 2.0), fits.is_some());
                    match fits {
                        Some(e) => minutes[t as usize] = e,
                        None => {
                            (missed, through) = (missed + 1, through.max(Some(base + t)));
                            first = first.or(Some(base + t));
                        }
                    }
                }
                // Every refusal is reported: how many, and the first's pair and minute.
                let report = s.take_overflow();
                proptest::prop_assert_eq!(report.map(|o| (o.readings, o.meter, o.resource, o.minute)), first.map(|f| (missed, 0, 0, f)));
                proptest::prop_assert_eq!(s.take_overflow(), None);
                let before_fold = missed;
                for (t, e) in minutes.iter().enumerate() {
                    let b = s.bucket(0, 0, base + t as i64, false).unwrap_or(Bucket::EMPTY);
                    proptest::prop_assert_eq!((b.count, i128::from(b.sum)), (e.count, e.sum));
                }
                proptest::prop_assert_eq!((s.missed(), s.missed_through()), (missed, through));
                // Two hours and a half later the 21 minutes are folded into their
                // five-minute buckets, a minute at a time, under the same bound.
                assert!(s.add(0, 0, at(20 + MINUTES + 30, 0), 0, 3.0));
                for q in 0..5 {
                    let mut five = Exact::default();
                    for t in q * 5..(q * 5 + 5).min(21) {
                        let m = minutes[t as usize];
                        match five.takes(m.count, m.sum) {
                            Some(e) => five = e,
                            None => (missed, through) = (missed + u64::from(m.count), through.max(Some(base + t))),
                        }
                    }
                    let b = s.bucket(0, 0, base / 5 + q, true).unwrap_or(Bucket::EMPTY);
                    proptest::prop_assert_eq!((b.count, i128::from(b.sum)), (five.count, five.sum));
                }
                proptest::prop_assert_eq!((s.missed(), s.missed_through()), (missed, through));
                let folded = s.take_overflow().map_or(0, |o| o.readings);
                proptest::prop_assert_eq!(folded, missed - before_fold);
            }
        }
    }

    #[test]
    fn a_reading_too_large_for_a_bucket_moves_nothing() {
        let mut s = SeriesSlab::new(1, 4);
        let k = (T0 / MINUTE_MS) as i64;
        assert!(s.add(0, 0, T0, 4, 1.0));
        let (pairs, changes) = (s.pairs(), s.changes());
        // Far enough ahead that advancing would fold minute k into its five.
        let ahead = T0 + (MINUTES + 30) as f64 * MINUTE_MS;
        assert!(!s.add(0, 0, ahead, 1 << 47, 2.0));
        assert!(!s.add(1, 0, ahead, i64::MIN, 2.0), "no pair is taken for it");
        assert_eq!((s.pairs(), s.changes(), s.newest_minute()), (pairs, changes, Some(k)));
        assert_eq!(s.bucket(0, 0, k, false).map(|b| (b.count, b.sum)), Some((1, 4)));
        let report = s.take_overflow().map(|o| (o.readings, o.meter, o.minute));
        assert_eq!(report, Some((2, 0, k + MINUTES + 30)));
        assert_eq!((s.missed(), s.missed_through()), (2, Some(k + MINUTES + 30)));
    }

    #[test]
    fn a_bucket_counts_at_most_max_per_bucket_readings() {
        let mut s = SeriesSlab::new(1, 4);
        for i in 0..u32::from(MAX_PER_BUCKET) {
            assert!(s.add(0, 0, T0 + f64::from(i % 60_000), 1, 1.0));
        }
        assert!(!s.add(0, 0, T0 + 5.0, 1, 1.0), "the 65,536th reading is refused");
        let b = s.bucket(0, 0, (T0 / MINUTE_MS) as i64, false).unwrap_or(Bucket::EMPTY);
        assert_eq!((b.count, b.sum, s.missed()), (65_535, 65_535, 1));
        assert_eq!(s.missed_through(), Some((T0 / MINUTE_MS) as i64));
        let report = s.take_overflow().map(|o| (o.readings, o.meter, o.resource, o.minute));
        assert_eq!(report, Some((1, 0, 0, (T0 / MINUTE_MS) as i64)));
    }

    #[test]
    fn the_configs_slack_bound_is_one_block() {
        let block = (BLOCK_PAIRS * BUCKETS * std::mem::size_of::<Stored>()) as u128;
        assert_eq!(crate::core::config::SERIES_BLOCK_SLACK_BYTES, block);
    }
}
