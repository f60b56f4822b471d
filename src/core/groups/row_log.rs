//! `RowLog`: the live readings added to the per-meter rows that are stamped
//! after the applied catch-up watermark, so a later catch-up listing
//! per-meter hours can rebuild a row exactly: its value at the catch-up's
//! watermark `W` plus a replay of the logged readings stamped after `W`
//! (docs/LEDGER.md, "Groups", "Rebuilding rows from a catch-up").
//!
//! Invariants:
//! - Every reading the ledger added to a row with a stamp after the applied
//!   watermark is in the log, unless it was forgotten: then `lost` is at
//!   least its stamp. So a rebuild at `W >= lost` replays every reading it
//!   needs, and one at `W < lost` must be refused.
//! - At most `maxRowLogReadings` entries: past it the oldest is forgotten
//!   (its stamp raises `lost`), never the log grown.
//! - Entries at or before the applied watermark are dropped when a catch-up
//!   applies: no later rebuild can need them (older catch-ups are stale).

use std::collections::VecDeque;

use crate::core::hlc::Hlc;

/// One logged reading: meter, resource, hour, units and its frame's stamp
/// (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoggedReading {
    /// Dense meter index.
    pub meter: u32,
    /// Resource index.
    pub resource: u8,
    /// The hour the row counted it in.
    pub hour: i64,
    /// Integer units of the resource.
    pub units: i64,
    /// The server's stamp of its frame, packed ([`Hlc::packed`], which keeps the order).
    pub stamp: u64,
}

/// The bounded log of live readings stamped after the applied watermark.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowLog {
    entries: VecDeque<LoggedReading>,
    cap: usize,
    /// The newest stamp (packed) of a reading added to a row but not (or no longer) logged.
    lost: Option<u64>,
}

impl RowLog {
    /// An empty log of at most `cap` readings (`maxRowLogReadings`).
    pub fn new(cap: u32) -> RowLog {
        RowLog { cap: cap as usize, ..Default::default() }
    }

    /// Takes a new `maxRowLogReadings`; a smaller one forgets the oldest.
    pub fn set_cap(&mut self, cap: u32) {
        self.cap = cap as usize;
        while self.entries.len() > self.cap {
            self.evict();
        }
    }

    fn evict(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.lost = self.lost.max(Some(e.stamp));
        }
    }

    /// Logs a reading a row took; the oldest makes room at the cap, and a
    /// reading that cannot be held is recorded as lost.
    pub fn push(&mut self, r: LoggedReading) {
        if self.cap == 0 {
            self.lost = self.lost.max(Some(r.stamp));
            return;
        }
        if self.entries.len() >= self.cap {
            self.evict();
        }
        if self.entries.len() == self.entries.capacity() && self.entries.try_reserve(1).is_err() {
            self.lost = self.lost.max(Some(r.stamp));
            return;
        }
        self.entries.push_back(r);
    }

    /// Records that a reading stamped `stamp` is in a row (or missing from
    /// one) without being logged: a rebuild before `stamp` would be wrong.
    pub fn forget(&mut self, stamp: Hlc) {
        self.lost = self.lost.max(Some(stamp.packed()));
    }

    /// A catch-up at `as_of` applied: readings at or before it are dropped.
    pub fn applied(&mut self, as_of: Hlc) {
        let w = as_of.packed();
        self.entries.retain(|e| e.stamp > w);
    }

    /// Whether a rebuild at watermark `w` can replay every reading it needs.
    pub fn can_rebuild(&self, w: Hlc) -> bool {
        self.lost.is_none_or(|l| l <= w.packed())
    }

    /// The newest stamp forgotten, if any.
    pub fn lost(&self) -> Option<Hlc> {
        self.lost.map(|l| Hlc { wall_ms: l >> 16, counter: (l & 0xFFFF) as u32 })
    }

    /// The logged readings stamped after `w`.
    pub fn after(&self, w: Hlc) -> impl Iterator<Item = &LoggedReading> + '_ {
        let w = w.packed();
        self.entries.iter().filter(move |e| e.stamp > w)
    }

    /// Readings held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `maxRowLogReadings`.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<LoggedReading>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(wall_ms: u64) -> Hlc {
        Hlc { wall_ms, counter: 0 }
    }

    fn reading(wall_ms: u64) -> LoggedReading {
        LoggedReading { meter: 0, resource: 0, hour: 0, units: 1, stamp: at(wall_ms).packed() }
    }

    #[test]
    fn an_entry_is_32_bytes() {
        assert_eq!(std::mem::size_of::<LoggedReading>(), 32);
    }

    #[test]
    fn eviction_records_the_newest_forgotten_stamp() {
        let mut log = RowLog::new(2);
        for w in [10, 30, 20] {
            log.push(reading(w));
        }
        assert_eq!(log.len(), 2);
        assert_eq!(log.lost(), Some(at(10)));
        assert!(log.can_rebuild(at(10)) && !log.can_rebuild(at(9)));
        assert_eq!(log.after(at(20)).count(), 1);
        log.applied(at(25));
        assert_eq!(log.len(), 1, "30 stays");
        log.set_cap(0);
        assert_eq!(log.lost(), Some(at(30)));
        log.push(reading(40));
        assert!(!log.can_rebuild(at(39)) && log.can_rebuild(at(40)));
    }
}
