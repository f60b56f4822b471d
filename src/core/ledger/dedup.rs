//! `ReadingIds`: per-meter duplicate detection over a sliding window of reading ids.
//!
//! Reading ids are per-meter counters (PROTOCOL.md 3.2), so the ids a meter sends
//! over a few minutes are close together. Each meter keeps a bitmap of `window`
//! ids starting at `base[m]` (a multiple of 64), one flat `u64` slab for all meters:
//! meter `m` owns words `m * words .. (m + 1) * words`.
//!
//! - An id inside the window is new (its bit is set) or a duplicate.
//! - An id above the window slides it up so the id lands in the top word; ids that
//!   slide out below are forgotten.
//! - An id below the window is **unverifiable**: it may be a duplicate of a
//!   forgotten id. The ledger does not count it live; the next REST result covers
//!   it (its watermark includes every stamped reading), so nothing is lost and
//!   nothing is counted twice.
//!
//! Memory: `window / 8 + 8` bytes per meter (136 B at the default 1,024 ids).

/// What a reading id is to its meter's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdCheck {
    /// Not seen before; now recorded.
    New,
    /// Seen before.
    Duplicate,
    /// Below the window: cannot tell.
    Unverifiable,
}

/// Per-meter sliding id windows in one flat slab.
#[derive(Clone, Debug, Default)]
pub struct ReadingIds {
    words: usize,
    bits: Vec<u64>,
    base: Vec<u64>,
    /// Whether meter `m` has seen any id (its `base` is meaningful).
    started: Vec<bool>,
}

impl ReadingIds {
    /// Windows of `window` ids per meter (a multiple of 64, at least 64).
    pub fn new(window: u32) -> Self {
        let words = (window as usize / 64).max(1);
        ReadingIds { words, ..Default::default() }
    }

    /// Ids per meter window.
    pub fn window(&self) -> u64 {
        (self.words * 64) as u64
    }

    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.bits.capacity() * 8 + self.base.capacity() * 8 + self.started.capacity()
    }

    fn ensure(&mut self, m: usize) {
        if m >= self.base.len() {
            self.base.resize(m + 1, 0);
            self.started.resize(m + 1, false);
            self.bits.resize((m + 1) * self.words, 0);
        }
    }

    /// Checks `id` for meter `m` and records it if new.
    pub fn check(&mut self, m: usize, id: u64) -> IdCheck {
        self.ensure(m);
        let w = self.window();
        let (Some(base), Some(started)) = (self.base.get(m).copied(), self.started.get(m).copied())
        else {
            return IdCheck::Unverifiable;
        };
        let words = self.words;
        let Some(slab) = self.bits.get_mut(m * words..(m + 1) * words) else {
            return IdCheck::Unverifiable;
        };
        let base = if !started {
            // Leave half the window below the first id for readings that arrive
            // out of order.
            let b = id.saturating_sub(w / 2) & !63;
            self.started[m] = true;
            self.base[m] = b;
            b
        } else if id >= base.saturating_add(w) {
            let new_base = (id.saturating_add(64) - w) & !63;
            let shift = ((new_base - base) / 64) as usize;
            if shift >= words {
                slab.fill(0);
            } else {
                slab.copy_within(shift.., 0);
                slab[words - shift..].fill(0);
            }
            self.base[m] = new_base;
            new_base
        } else {
            base
        };
        if id < base {
            return IdCheck::Unverifiable;
        }
        let off = id - base;
        let (word, bit) = ((off / 64) as usize, off % 64);
        match slab.get_mut(word) {
            Some(v) if *v & (1 << bit) != 0 => IdCheck::Duplicate,
            Some(v) => {
                *v |= 1 << bit;
                IdCheck::New
            }
            None => IdCheck::Unverifiable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_then_duplicate_per_meter() {
        let mut d = ReadingIds::new(128);
        assert_eq!(d.check(0, 1_000), IdCheck::New);
        assert_eq!(d.check(0, 1_000), IdCheck::Duplicate);
        assert_eq!(d.check(3, 1_000), IdCheck::New);
        assert_eq!(d.check(0, 999), IdCheck::New, "reordered below the first id");
    }

    #[test]
    fn sliding_forgets_old_ids_and_calls_them_unverifiable() {
        let mut d = ReadingIds::new(128);
        for id in 0..1_000 {
            assert_eq!(d.check(0, id), IdCheck::New, "{id}");
        }
        assert_eq!(d.check(0, 999), IdCheck::Duplicate);
        assert_eq!(d.check(0, 900), IdCheck::Duplicate, "still inside the window");
        assert_eq!(d.check(0, 100), IdCheck::Unverifiable);
        // A jump far ahead clears the window entirely.
        assert_eq!(d.check(0, 1_000_000), IdCheck::New);
        assert_eq!(d.check(0, 999), IdCheck::Unverifiable);
        assert_eq!(d.check(0, 1_000_000), IdCheck::Duplicate);
    }

    #[test]
    fn never_panics_near_u64_max() {
        let mut d = ReadingIds::new(64);
        assert_eq!(d.check(0, u64::MAX - 1), IdCheck::New);
        assert_eq!(d.check(0, u64::MAX - 1), IdCheck::Duplicate);
        assert_eq!(d.check(0, 0), IdCheck::Unverifiable);
    }
}
