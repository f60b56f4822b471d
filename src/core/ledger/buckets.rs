//! `HourBuckets`: per resource, the hourly buckets the dashboard shows.
//!
//! Each bucket holds two parts:
//! - `rest`: the total of the newest applied REST result covering the hour, with
//!   that result's watermark `as_of`;
//! - `live`: the sum of live readings counted for the hour whose stamp is
//!   **after** `as_of`, kept as `Pending` entries aggregated per frame stamp.
//!
//! The bucket shows `rest + live`. When a newer REST result arrives, it replaces
//! `rest` and *retires* every pending entry with `stamp <= as_of` (the REST total
//! now includes those readings). A live reading stamped at or before a bucket's
//! `as_of` is already in `rest` and is never added (it is *covered*).
//!
//! Hours are numbered `floor(ts / 3,600,000)`. The kept hours are
//! `current - history ..= current + 1` (the next hour too, for meters whose clock
//! runs slightly ahead). Buckets live in a ring of `history + 2` slots per
//! resource; a slot whose hour has passed is reset when reused, and its pending
//! readings leave with it (they were counted; the hour is simply no longer shown).

use crate::core::hlc::Hlc;

/// Milliseconds per hour.
pub const HOUR_MS: f64 = 3_600_000.0;

/// The hour number of a timestamp (ms), or `None` if it is not finite.
pub fn hour_of(ts_ms: f64) -> Option<i64> {
    let h = (ts_ms / HOUR_MS).floor();
    (h.is_finite() && h.abs() < 1e15).then_some(h as i64)
}

/// Live readings counted with one stamp (usually one frame) in one bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pending {
    pub stamp: Hlc,
    pub units: i64,
    pub count: u32,
}

/// One hour of one resource.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bucket {
    /// The hour number this slot holds; `None` when unused.
    pub hour: Option<i64>,
    /// REST total at `as_of`, in resource units.
    pub rest: i64,
    /// The watermark of the REST result behind `rest`.
    pub as_of: Option<Hlc>,
    /// Sum of pending live readings (stamped after `as_of`).
    pub live: i64,
    pending: Vec<Pending>,
    pending_count: u64,
}

impl Bucket {
    /// What the bucket shows: REST part plus pending live part.
    pub fn shown(&self) -> i64 {
        self.rest.saturating_add(self.live)
    }

    /// Whether a reading stamped `stamp` is already in `rest`.
    #[inline]
    pub fn covers(&self, stamp: Hlc) -> bool {
        self.as_of.is_some_and(|a| stamp <= a)
    }

    /// Live readings pending in this bucket.
    #[cfg(test)]
    pub fn pending_count(&self) -> u64 {
        self.pending_count
    }

    /// Adds `count` readings totalling `units`, all stamped `stamp`. Fails (changing
    /// nothing) if the bucket's live sum would overflow.
    pub fn add_live(&mut self, stamp: Hlc, units: i64, count: u32) -> Result<(), ()> {
        let live = self.live.checked_add(units).ok_or(())?;
        live.checked_add(self.rest).ok_or(())?;
        self.live = live;
        self.pending_count += u64::from(count);
        match self.pending.last_mut() {
            Some(p) if p.stamp == stamp && p.count < u32::MAX - count => {
                p.units += units;
                p.count += count;
            }
            _ => self.pending.push(Pending { stamp, units, count }),
        }
        Ok(())
    }

    /// Applies a REST total at `as_of` if it is newer than the bucket's; returns the
    /// number of pending readings it retired, or `None` if the bucket was newer.
    pub fn apply_rest(&mut self, total: i64, as_of: Hlc) -> Option<u64> {
        if self.as_of.is_some_and(|a| a >= as_of) {
            return None;
        }
        self.rest = total;
        self.as_of = Some(as_of);
        let mut retired = 0u64;
        let mut live = 0i64;
        self.pending.retain(|p| {
            if p.stamp <= as_of {
                retired += u64::from(p.count);
                false
            } else {
                live = live.saturating_add(p.units);
                true
            }
        });
        self.live = live;
        self.pending_count -= retired.min(self.pending_count);
        Some(retired)
    }

    /// Bytes held by the pending entries.
    pub fn bytes(&self) -> usize {
        self.pending.capacity() * std::mem::size_of::<Pending>()
    }

    /// Empties the slot for `hour`, keeping the pending vector's allocation.
    fn reset(&mut self, hour: i64) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        *self = Bucket { hour: Some(hour), pending, ..Default::default() };
    }
}

/// Where an hour falls relative to the kept hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HourPlace {
    /// Kept.
    Kept,
    /// Before the kept hours: rolled off.
    Late,
    /// More than one hour after the current one.
    Future,
}

/// Every resource's hourly buckets.
#[derive(Clone, Debug)]
pub struct HourBuckets {
    resources: usize,
    history: i64,
    slots: usize,
    current: Option<i64>,
    buckets: Vec<Bucket>,
}

impl HourBuckets {
    /// Buckets for `resources` resources keeping `history` past hours.
    pub fn new(resources: usize, history: u32) -> Self {
        let slots = history as usize + 2;
        HourBuckets {
            resources,
            history: i64::from(history),
            slots,
            current: None,
            buckets: vec![Bucket::default(); resources * slots],
        }
    }

    /// The current hour number, once a clock has been seen.
    pub fn current(&self) -> Option<i64> {
        self.current
    }

    /// Past hours kept besides the current one.
    pub fn history(&self) -> i64 {
        self.history
    }

    /// Moves the current hour to `hour` (never backwards). Returns the pending
    /// readings that left with rolled-off buckets.
    pub fn set_current(&mut self, hour: i64) -> u64 {
        if self.current.is_some_and(|c| hour <= c) {
            return 0;
        }
        self.current = Some(hour);
        let oldest = hour - self.history;
        let mut dropped = 0;
        for b in &mut self.buckets {
            if b.hour.is_some_and(|h| h < oldest) {
                dropped += b.pending_count;
                *b = Bucket::default();
            }
        }
        dropped
    }

    /// Where `hour` falls (everything is kept before a clock has been seen).
    pub fn place(&self, hour: i64) -> HourPlace {
        match self.current {
            Some(c) if hour < c - self.history => HourPlace::Late,
            Some(c) if hour > c + 1 => HourPlace::Future,
            _ => HourPlace::Kept,
        }
    }

    fn slot(&self, r: usize, hour: i64) -> usize {
        r * self.slots + hour.rem_euclid(self.slots as i64) as usize
    }

    /// The bucket of resource `r` for a kept `hour`, created empty if its slot held
    /// an older hour. `None` if the hour is not kept or the slot holds a newer hour.
    pub fn get_mut(&mut self, r: usize, hour: i64) -> Option<&mut Bucket> {
        if r >= self.resources || self.place(hour) != HourPlace::Kept {
            return None;
        }
        let i = self.slot(r, hour);
        let b = self.buckets.get_mut(i)?;
        match b.hour {
            Some(h) if h == hour => Some(b),
            Some(h) if h > hour => None,
            _ => {
                b.reset(hour);
                Some(b)
            }
        }
    }

    /// The bucket of resource `r` for `hour`, if it holds that hour.
    pub fn get(&self, r: usize, hour: i64) -> Option<&Bucket> {
        if r >= self.resources {
            return None;
        }
        self.buckets.get(self.slot(r, hour)).filter(|b| b.hour == Some(hour))
    }

    /// Live readings pending across all buckets.
    pub fn pending(&self) -> u64 {
        self.buckets.iter().map(|b| b.pending_count).sum()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.buckets.iter().map(Bucket::bytes).sum::<usize>()
            + self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(w: u64) -> Hlc {
        Hlc { wall_ms: w, counter: 0 }
    }

    #[test]
    fn rest_retires_covered_live_readings_only() {
        let mut b = Bucket::default();
        assert!(b.add_live(h(10), 5, 1).is_ok());
        assert!(b.add_live(h(20), 7, 2).is_ok());
        assert!(b.add_live(h(30), 11, 1).is_ok());
        assert_eq!(b.shown(), 23);
        assert_eq!(b.apply_rest(100, h(20)), Some(3));
        assert_eq!((b.rest, b.live, b.shown(), b.pending_count()), (100, 11, 111, 1));
        assert!(b.covers(h(20)) && !b.covers(h(21)));
        assert_eq!(b.apply_rest(90, h(15)), None, "an older watermark never applies");
        assert_eq!(b.shown(), 111);
    }

    #[test]
    fn hours_roll_off_and_slots_are_reused() {
        let mut hb = HourBuckets::new(1, 6);
        hb.set_current(100);
        assert_eq!(hb.place(93), HourPlace::Late);
        assert_eq!(hb.place(94), HourPlace::Kept);
        assert_eq!(hb.place(101), HourPlace::Kept);
        assert_eq!(hb.place(102), HourPlace::Future);
        assert_eq!(hb.get_mut(0, 94).map(|b| b.add_live(h(1), 3, 3)), Some(Ok(())));
        assert_eq!(hb.pending(), 3);
        assert_eq!(hb.set_current(101), 3);
        assert!(hb.get(0, 94).is_none());
        assert!(hb.get_mut(0, 94).is_none());
        // Hour 102 reuses 94's slot and starts empty.
        assert_eq!(hb.get_mut(0, 102).map(|b| b.shown()), Some(0));
    }

    #[test]
    fn hour_of_floors_negative_and_refuses_non_finite() {
        assert_eq!(hour_of(3_600_000.0), Some(1));
        assert_eq!(hour_of(3_599_999.0), Some(0));
        assert_eq!(hour_of(-1.0), Some(-1));
        assert_eq!(hour_of(f64::NAN), None);
        // Timestamps at the edge of exact JS numbers, and beyond any date.
        let two53 = 9_007_199_254_740_992.0;
        assert_eq!(hour_of(two53), Some(2_501_999_792));
        assert_eq!(hour_of(-two53), Some(-2_501_999_793));
        assert_eq!(hour_of(1e300), None);
        assert_eq!(hour_of(f64::NEG_INFINITY), None);
        // The kept-hour arithmetic stays in range at the largest hour.
        let mut hb = HourBuckets::new(1, 168);
        hb.set_current(999_999_999_999_999);
        assert_eq!(hb.place(-999_999_999_999_999), HourPlace::Late);
        assert_eq!(hb.place(999_999_999_999_999 + 2), HourPlace::Future);
        assert!(hb.get_mut(0, 999_999_999_999_999).is_some());
    }
}
