//! `MeterHours`: every meter's live consumption per resource and kept hour,
//! and its readings per 10-second bin, in flat slabs indexed by the dense
//! meter index. The ledger owns one and adds each live reading it counts (or
//! finds covered by a REST watermark) exactly once per `(meter, id)`; the
//! groups' totals are sums over these rows, so a map change rebuilds them
//! exactly.
//!
//! Invariants:
//! - `units[m][r][s]` is the sum, in integer units of resource `r`, of the
//!   live readings of meter `m` counted in hour `tags[r][s]` (a slot whose
//!   tag is another hour holds nothing: it is zeroed when reused).
//! - Every hour a reading may have been missed in (a ledger need, the time
//!   before the worker first saw the stream, a reading that could not be
//!   recorded here) is at or before `missed_through`: the series of later
//!   hours hold every reading the server stamped for them. The rows' own
//!   mark, `rows_missed_through`, rises with it but a rebuild from a
//!   catch-up listing per-meter hours lowers it (`rebuilt`): a rebuilt row
//!   holds the catch-up's value, which the series never see.
//! - A column rebuilt at watermark `W` (`rebuilt_at`) holds, per meter, the
//!   catch-up's value at `W` plus the live readings stamped after `W`: a
//!   reading stamped at or before `W` arriving later goes to the series
//!   only ([`MeterHours::add_series`]), never twice into the row.
//! - Memory follows the meters seen: `resources × (historyHours + 2) × 8 +
//!   BINS × 4` bytes per meter, grown with `try_reserve`.

use crate::core::hlc::Hlc;
use crate::core::ledger::HOUR_MS;
use crate::core::series::{Overflowed, SeriesSlab};

/// `maxSeriesPairs` until the ledger passes its config's (the default config's
/// 5,000 meters × 3 resources).
const DEFAULT_SERIES_PAIRS: u32 = 15_000;

/// Rate bins per meter: the readings of the last `BINS × BIN_MS` ms.
pub const BINS: usize = 6;
/// Width of one rate bin, ms.
pub const BIN_MS: f64 = 10_000.0;

/// Entries the change log holds before it gives up (the consumer then sums
/// every column again from the rows, exactly): 16,384 × 24 B = 384 KiB at
/// most, about 1.6 s of readings at 10,000 readings/s.
pub const CHANGE_LOG_CAP: usize = 16_384;

/// One change to the rows or the rate bins since the groups last summed,
/// in order (docs/LEDGER.md "Groups", "Rates and alerts").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowChange {
    /// Meter `m`'s units in column `col` moved by `units`; a live reading
    /// (`slot < BINS`) also counted one in rate bin `slot`.
    Add {
        /// Meter index.
        m: u32,
        /// Column (`r * slots + s`).
        col: u32,
        /// Rate bin slot, `BINS` for none (a rebuild's value).
        slot: u8,
        /// The exact change of the row.
        units: i64,
    },
    /// Every meter's units in column `col` became 0 (slot reused or rebuilt).
    Zero {
        /// Column.
        col: u32,
    },
    /// The rate bins moved from bin `from` to bin `to`, emptying those passed.
    Advance {
        /// Bin before.
        from: i64,
        /// Bin after.
        to: i64,
    },
}

/// Per meter, per resource and kept hour: live units counted; per meter, readings per bin.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeterHours {
    resources: usize,
    slots: usize,
    meters: usize,
    units: Vec<i64>,
    /// `r * slots + s` -> the hour slot `s` of resource `r` holds.
    tags: Vec<Option<i64>>,
    /// `r * slots + s` -> changed since the groups last summed it.
    dirty: Vec<bool>,
    /// `m * BINS + b` -> readings of meter `m` in bin `b`.
    counts: Vec<u32>,
    /// The current bin number (`floor(now / BIN_MS)`).
    bin: Option<i64>,
    /// The newest hour the worker may have missed a reading of.
    missed_through: Option<i64>,
    /// The newest hour the rows may lack a reading of (lowered by a rebuild).
    rows_missed_through: Option<i64>,
    /// `r * slots + s` -> the watermark the column was last rebuilt at.
    rebuilt_at: Vec<Option<Hlc>>,
    /// A meter's row could not be grown: its readings are missed (see `missed_through`).
    refused: u64,
    /// The same readings by minute and five minutes (docs/LEDGER.md "Series").
    series: SeriesSlab,
    /// Changes since the consumer last took them, while `tracking`.
    changes: Vec<RowChange>,
    /// A consumer reads `changes` (the groups, while a map is in force).
    tracking: bool,
    /// `changes` is not the whole story since the last take (not tracking,
    /// or past `change_cap`): the consumer must sum from the rows.
    changes_lost: bool,
    /// Entries `changes` may hold ([`CHANGE_LOG_CAP`]).
    change_cap: usize,
    /// `maxMeters`: the rows grow by doubling but never past it, so at the
    /// bound they hold `maxMeters` rows, what `Config::worst_case_bytes`
    /// charges (amortised doubling left up to twice that: 8,192 rows' room,
    /// 354 B a meter, at 5,000 meters).
    max_meters: usize,
}

impl MeterHours {
    /// Rows for `resources` resources keeping `history` past hours (the
    /// ledger's buckets: `history + 2` slots).
    pub fn new(resources: usize, history: u32) -> MeterHours {
        let slots = history as usize + 2;
        MeterHours {
            resources,
            slots,
            tags: vec![None; resources * slots],
            dirty: vec![false; resources * slots],
            rebuilt_at: vec![None; resources * slots],
            series: SeriesSlab::new(resources, DEFAULT_SERIES_PAIRS),
            changes_lost: true,
            change_cap: CHANGE_LOG_CAP,
            max_meters: usize::MAX,
            ..Default::default()
        }
    }

    /// Bounds the rows' growth at `max_meters` (`maxMeters`; more are
    /// still held, grown exactly, if asked: the bound is the engine's).
    pub fn with_max_meters(mut self, max_meters: u32) -> MeterHours {
        self.set_max_meters(max_meters);
        self
    }

    /// Takes a new `maxMeters`.
    pub fn set_max_meters(&mut self, max_meters: u32) {
        self.max_meters = max_meters as usize;
        self.series.set_max_meters(max_meters);
    }

    fn stride(&self) -> usize {
        self.resources * self.slots
    }

    /// Meters with a row.
    pub fn meters(&self) -> usize {
        self.meters
    }

    /// Hour slots per resource.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Rows refused for memory since start.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// The newest hour a reading may be missing from.
    pub fn missed_through(&self) -> Option<i64> {
        self.missed_through
    }

    /// The newest hour the rows (and so the groups' totals) may lack a reading of.
    pub fn rows_missed_through(&self) -> Option<i64> {
        self.rows_missed_through
    }

    /// Records that readings of hours up to `hour` may be missing.
    pub fn miss_through(&mut self, hour: i64) {
        self.missed_through = self.missed_through.max(Some(hour));
        self.rows_missed_through = self.rows_missed_through.max(Some(hour));
    }

    /// Rows for meters `0..n`: `false` if the memory cannot be had.
    pub fn grow_to(&mut self, n: usize) -> bool {
        n == 0 || self.ensure(n - 1)
    }

    fn ensure(&mut self, m: usize) -> bool {
        if m < self.meters {
            return true;
        }
        let n = m + 1;
        let stride = self.stride();
        if self.units.capacity() < n * stride || self.counts.capacity() < n * BINS {
            // Room for twice the rows held, or `n`, but not past `maxMeters`.
            let room = self.meters.saturating_mul(2).max(n).min(self.max_meters.max(n));
            if self
                .units
                .try_reserve_exact((room * stride).saturating_sub(self.units.len()))
                .is_err()
                || self
                    .counts
                    .try_reserve_exact((room * BINS).saturating_sub(self.counts.len()))
                    .is_err()
            {
                return false;
            }
        }
        self.units.resize(n * self.stride(), 0);
        self.counts.resize(n * BINS, 0);
        self.meters = n;
        true
    }

    /// Moves the rate bins to worker time `now_ms`, emptying the bins it passes.
    pub fn set_time(&mut self, now_ms: f64) {
        let b = (now_ms / BIN_MS).floor();
        if !b.is_finite() || b.abs() > 1e15 {
            return;
        }
        let b = b as i64;
        let Some(old) = self.bin else {
            self.bin = Some(b);
            return;
        };
        if b <= old {
            return;
        }
        self.log(RowChange::Advance { from: old, to: b });
        let passed = (b - old).min(BINS as i64);
        for k in 1..=passed {
            let slot = (old + k).rem_euclid(BINS as i64) as usize;
            for c in self.counts.iter_mut().skip(slot).step_by(BINS) {
                *c = 0;
            }
        }
        self.bin = Some(b);
    }

    /// Adds one live reading of `units` for meter `m`, resource `r`, hour
    /// `hour` (kept by the ledger). `false` (changing nothing but marking the
    /// hour missed) if the row cannot be had or the slot holds a newer hour.
    #[inline]
    pub fn add(&mut self, m: u32, r: usize, hour: i64, units: i64) -> bool {
        let m = m as usize;
        if r >= self.resources || !self.ensure(m) {
            self.refused += 1;
            self.miss_through(hour);
            return false;
        }
        let s = hour.rem_euclid(self.slots as i64) as usize;
        let col = r * self.slots + s;
        match self.tags.get(col).copied().flatten() {
            Some(h) if h == hour => {}
            Some(h) if h > hour => {
                self.miss_through(hour);
                return false;
            }
            _ => self.reset_column(col, hour),
        }
        let stride = self.stride();
        let mut moved = 0;
        if let Some(u) = self.units.get_mut(m * stride + col) {
            let before = *u;
            *u = u.saturating_add(units);
            moved = *u - before;
        }
        if let Some(d) = self.dirty.get_mut(col) {
            *d = true;
        }
        let bin = self.bin.unwrap_or(0).rem_euclid(BINS as i64) as usize;
        if let Some(c) = self.counts.get_mut(m * BINS + bin) {
            *c = c.saturating_add(1);
        }
        self.log(RowChange::Add { m: m as u32, col: col as u32, slot: bin as u8, units: moved });
        true
    }

    /// Appends to the change log while a consumer tracks it; past the cap
    /// (or without memory) the log is dropped and marked lost, so the
    /// consumer sums from the rows instead: never a wrong sum.
    #[inline]
    fn log(&mut self, c: RowChange) {
        if !self.tracking || self.changes_lost {
            return;
        }
        let n = self.changes.len();
        if n >= self.change_cap
            || (n == self.changes.capacity() && self.changes.try_reserve(n.max(256)).is_err())
        {
            self.changes = Vec::new();
            self.changes_lost = true;
            return;
        }
        self.changes.push(c);
    }

    /// The changes since [`MeterHours::take_changes`], or `None` if the
    /// log cannot tell them (not tracked, or overflowed): sum from the rows.
    pub fn changes(&self) -> Option<&[RowChange]> {
        (!self.changes_lost).then_some(&self.changes[..])
    }

    /// The consumer has applied the changes (or summed from the rows):
    /// the log starts empty and is tracked from now on.
    pub fn take_changes(&mut self) {
        self.changes.clear();
        self.changes_lost = false;
        self.tracking = true;
    }

    /// Bounds the change log at `cap` entries (tests; [`CHANGE_LOG_CAP`] by default).
    pub fn set_change_cap(&mut self, cap: usize) {
        self.change_cap = cap;
    }

    /// Meter `m`'s readings per rate bin slot (empty past the rows held).
    #[inline]
    pub fn counts(&self, m: usize) -> &[u32] {
        self.counts.get(m * BINS..(m + 1) * BINS).unwrap_or(&[])
    }

    /// [`MeterHours::add`], and the reading (at `ts_ms`, in a frame stamped
    /// `stamp_ms`) into the series when the row took it, so that the series'
    /// sums over an hour equal the row. A reading stamped in an earlier hour
    /// than its timestamp counts in the stamp's hour (the ledger's rule), so
    /// the series places it at that hour's last millisecond.
    #[inline]
    pub fn add_reading(
        &mut self,
        m: u32,
        r: usize,
        hour: i64,
        ts_ms: f64,
        units: i64,
        stamp_ms: f64,
    ) -> bool {
        if !self.add(m, r, hour, units) {
            return false;
        }
        self.add_series(m, r, hour, ts_ms, units, stamp_ms);
        true
    }

    /// A reading into the series only: one the row already holds through a
    /// rebuild (stamped at or before the column's `rebuilt_at`). A reading
    /// the series cannot hold marks its minute missed there (and the hour in
    /// `missed_through`, which the series answers read; not the rows').
    #[inline]
    pub fn add_series(
        &mut self,
        m: u32,
        r: usize,
        hour: i64,
        ts_ms: f64,
        units: i64,
        stamp_ms: f64,
    ) {
        let ts = ts_ms.min((hour + 1) as f64 * HOUR_MS - 1.0);
        if !self.series.add(m, r, ts, units, stamp_ms) {
            self.miss_series_through(hour);
        }
    }

    /// Records that the series (not the rows) may lack readings of hours up to `hour`.
    pub fn miss_series_through(&mut self, hour: i64) {
        self.missed_through = self.missed_through.max(Some(hour));
    }

    /// The watermark column `(r, hour)` was last rebuilt at, if it was.
    pub fn rebuilt_at(&self, r: usize, hour: i64) -> Option<Hlc> {
        self.column(r, hour).and_then(|c| self.rebuilt_at.get(c).copied().flatten())
    }

    /// Starts rebuilding column `(r, hour)` at watermark `w`: every meter's
    /// units there become 0 (the caller then adds the catch-up's values and
    /// replays the log). `None` if the slot holds a newer hour or `r` is unknown.
    pub fn rebuild_column(&mut self, r: usize, hour: i64, w: Hlc) -> Option<usize> {
        if r >= self.resources {
            return None;
        }
        let col = r * self.slots + hour.rem_euclid(self.slots as i64) as usize;
        match self.tags.get(col).copied().flatten() {
            Some(h) if h > hour => return None,
            _ => self.reset_column(col, hour),
        }
        if let Some(x) = self.rebuilt_at.get_mut(col) {
            *x = Some(w);
        }
        Some(col)
    }

    /// Adds `units` to meter `m`'s row in column `col` (a rebuild's catch-up
    /// value or replayed reading); `false` if the row cannot be had.
    pub fn add_at(&mut self, m: u32, col: usize, units: i64) -> bool {
        let m = m as usize;
        if col >= self.stride() || !self.ensure(m) {
            return false;
        }
        let stride = self.stride();
        let mut moved = 0;
        if let Some(u) = self.units.get_mut(m * stride + col) {
            let before = *u;
            *u = u.saturating_add(units);
            moved = *u - before;
        }
        self.log(RowChange::Add { m: m as u32, col: col as u32, slot: BINS as u8, units: moved });
        true
    }

    /// A rebuild made every row of hours `from..=to` exact for every resource
    /// and nothing after its watermark is missed: if the rows' missed mark
    /// lies in that range, only hours before `from` may still lack readings.
    pub fn rebuilt(&mut self, from: i64, to: i64) {
        if let Some(h) = self.rows_missed_through.filter(|&h| h <= to) {
            self.rows_missed_through = Some(h.min(from - 1));
        }
    }

    /// Bounds the series at `max_pairs` `(meter, resource)` pairs (`maxSeriesPairs`).
    pub fn with_series_pairs(mut self, max_pairs: u32) -> MeterHours {
        self.series.set_max_pairs(max_pairs);
        self
    }

    /// Takes a new `maxSeriesPairs`.
    pub fn set_series_pairs(&mut self, max_pairs: u32) {
        self.series.set_max_pairs(max_pairs);
    }

    /// The `(meter, resource)` pairs the series refused at `maxSeriesPairs`
    /// since the last call, each once.
    pub fn take_series_refused(&mut self) -> Vec<(u32, usize)> {
        self.series.take_refused()
    }

    /// The readings the series refused at a bucket's bound since the last call.
    pub fn take_series_overflow(&mut self) -> Option<Overflowed> {
        self.series.take_overflow()
    }

    /// The per-meter series.
    pub fn series(&self) -> &SeriesSlab {
        &self.series
    }

    fn reset_column(&mut self, col: usize, hour: i64) {
        let stride = self.stride();
        for u in self.units.iter_mut().skip(col).step_by(stride.max(1)) {
            *u = 0;
        }
        if let Some(t) = self.tags.get_mut(col) {
            *t = Some(hour);
        }
        self.log(RowChange::Zero { col: col as u32 });
        if let Some(d) = self.dirty.get_mut(col) {
            *d = true;
        }
        if let Some(x) = self.rebuilt_at.get_mut(col) {
            *x = None;
        }
    }

    /// Meter `m`'s units of resource `r` in `hour` (0 if none kept).
    #[inline]
    pub fn units(&self, m: usize, r: usize, hour: i64) -> i64 {
        let s = hour.rem_euclid(self.slots as i64) as usize;
        let col = r * self.slots + s;
        if self.tags.get(col).copied().flatten() != Some(hour) {
            return 0;
        }
        self.units.get(m * self.stride() + col).copied().unwrap_or(0)
    }

    /// The column index of `(r, hour)` if its slot holds that hour.
    pub fn column(&self, r: usize, hour: i64) -> Option<usize> {
        let col = r * self.slots + hour.rem_euclid(self.slots as i64) as usize;
        (r < self.resources && self.tags.get(col).copied().flatten() == Some(hour)).then_some(col)
    }

    /// Meter `m`'s units in column `col`.
    #[inline]
    pub fn at(&self, m: usize, col: usize) -> i64 {
        self.units.get(m * self.stride() + col).copied().unwrap_or(0)
    }

    /// Meter `m`'s row: its units per column (empty past the rows held).
    #[inline]
    pub fn row(&self, m: usize) -> &[i64] {
        let stride = self.stride();
        self.units.get(m * stride..(m + 1) * stride).unwrap_or(&[])
    }

    /// Meter `m`'s readings over the rate bins.
    #[inline]
    pub fn recent(&self, m: usize) -> u64 {
        self.counts
            .get(m * BINS..(m + 1) * BINS)
            .map_or(0, |c| c.iter().map(|&x| u64::from(x)).sum())
    }

    /// Whether any column changed since [`MeterHours::clear_dirty`].
    pub fn any_dirty(&self) -> bool {
        self.dirty.iter().any(|&d| d)
    }

    /// Whether column `col` changed since [`MeterHours::clear_dirty`].
    #[inline]
    pub fn is_dirty(&self, col: usize) -> bool {
        self.dirty.get(col).copied().unwrap_or(false)
    }

    /// Marks every column summed.
    pub fn clear_dirty(&mut self) {
        self.dirty.iter_mut().for_each(|d| *d = false);
    }

    /// Bytes held: the rows, the series and the change log.
    pub fn bytes(&self) -> usize {
        self.row_bytes() + self.series.bytes() + self.change_log_bytes()
    }

    /// Bytes held by the rows themselves (units, rate bins, column tags).
    pub fn row_bytes(&self) -> usize {
        self.units.capacity() * 8
            + self.counts.capacity() * 4
            + self.tags.capacity() * std::mem::size_of::<Option<i64>>()
            + self.dirty.capacity()
            + self.rebuilt_at.capacity() * std::mem::size_of::<Option<Hlc>>()
    }

    /// Bytes held by the change log (at most [`CHANGE_LOG_CAP`] entries).
    pub fn change_log_bytes(&self) -> usize {
        self.changes.capacity() * std::mem::size_of::<RowChange>()
    }

    /// Bytes per meter row: `resources × slots × 8 + BINS × 4`.
    pub fn bytes_per_meter(&self) -> usize {
        self.stride() * 8 + BINS * 4
    }

    /// Start (ms) of the first hour after `rows_missed_through`, or `None` if
    /// no row ever missed a reading.
    pub fn complete_from_ms(&self) -> Option<f64> {
        self.rows_missed_through.map(|h| (h.saturating_add(1)) as f64 * HOUR_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_reset_when_reused_and_rows_grow() {
        let mut mh = MeterHours::new(2, 6);
        assert!(mh.add(3, 1, 100, 5));
        assert!(mh.add(3, 1, 100, 7));
        assert_eq!(mh.meters(), 4);
        assert_eq!(mh.units(3, 1, 100), 12);
        assert_eq!(mh.units(3, 0, 100), 0);
        // Hour 108 reuses hour 100's slot: the column starts empty.
        assert!(mh.add(0, 1, 108, 2));
        assert_eq!(mh.units(3, 1, 100), 0);
        assert_eq!(mh.units(3, 1, 108), 0);
        assert_eq!(mh.units(0, 1, 108), 2);
        // A reading for the older hour of a reused slot is refused and marked missed.
        assert!(!mh.add(0, 1, 100, 1));
        assert_eq!(mh.missed_through(), Some(100));
        assert!(!mh.add(0, 9, 108, 1), "unknown resource");
    }

    #[test]
    fn a_rebuilt_column_starts_empty_remembers_its_watermark_and_lowers_the_mark() {
        let w = Hlc { wall_ms: 5, counter: 1 };
        let mut mh = MeterHours::new(2, 6);
        assert!(mh.add(0, 1, 100, 5) && mh.add(1, 1, 100, 7));
        mh.miss_through(100);
        let col = mh.rebuild_column(1, 100, w).expect("hour 100 is held");
        assert_eq!((mh.units(0, 1, 100), mh.units(1, 1, 100)), (0, 0));
        assert!(mh.add_at(2, col, 4), "a meter's row grows");
        assert_eq!(mh.units(2, 1, 100), 4);
        assert_eq!(mh.rebuilt_at(1, 100), Some(w));
        assert_eq!(mh.rebuilt_at(0, 100), None);
        mh.rebuilt(99, 100);
        assert_eq!(mh.rows_missed_through(), Some(98));
        assert_eq!(mh.missed_through(), Some(100), "the series' mark stays");
        // A newer hour in the slot refuses; reusing the slot forgets the watermark.
        assert!(mh.add(0, 1, 108, 1));
        assert_eq!(mh.rebuild_column(1, 100, w), None);
        assert_eq!(mh.rebuilt_at(1, 108), None);
    }

    #[test]
    fn rate_bins_age_out() {
        let mut mh = MeterHours::new(1, 1);
        mh.set_time(0.0);
        assert!(mh.add(0, 0, 0, 1));
        mh.set_time(15_000.0);
        assert!(mh.add(0, 0, 0, 1));
        assert_eq!(mh.recent(0), 2);
        mh.set_time(55_000.0);
        assert_eq!(mh.recent(0), 2);
        mh.set_time(60_000.0);
        assert_eq!(mh.recent(0), 1, "bin 0 left the window");
        mh.set_time(1e9);
        assert_eq!(mh.recent(0), 0);
    }
}
