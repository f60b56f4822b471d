//! Hybrid logical clock (Kulkarni, Demirbas et al., 2014) and the timestamp type
//! both the server's stamps and the worker's own clock use.
//!
//! A timestamp is `(wall_ms, counter)` ordered lexicographically; `wall_ms` is
//! whole milliseconds since the Unix epoch (at most [`MAX_WALL_MS`], 2^47 ms, so
//! the pair packs into 64 bits and `wall_ms` is always an exact JS number) and
//! `counter` counts events within one millisecond, up to [`MAX_COUNTER`].
//!
//! Invariants of [`HybridClock`]:
//! - every timestamp it issues is strictly greater than every timestamp it issued
//!   or accepted before (monotone, whatever the physical clock does);
//! - a refused remote timestamp leaves the clock exactly as it was;
//! - counter overflow advances `wall_ms` by 1 ms instead of wrapping.
//!
//! The physical time is always passed in (`pt_ms`); the clock never reads one.

/// Largest counter value; the next event in the same millisecond moves to `wall_ms + 1`.
pub const MAX_COUNTER: u32 = 0xFFFF;
/// Largest wall time accepted in a timestamp, 2^47 ms (year 6429): exact in an f64.
pub const MAX_WALL_MS: u64 = 1 << 47;

/// A hybrid logical timestamp. Ordered by `(wall_ms, counter)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hlc {
    /// Milliseconds since the Unix epoch (the logical wall part, `l` in the paper).
    pub wall_ms: u64,
    /// Events within `wall_ms` (`c` in the paper), at most [`MAX_COUNTER`].
    pub counter: u32,
}

impl Hlc {
    /// A timestamp from parts, or `None` when a part is out of range.
    pub fn new(wall_ms: u64, counter: u32) -> Option<Hlc> {
        (wall_ms <= MAX_WALL_MS && counter <= MAX_COUNTER).then_some(Hlc { wall_ms, counter })
    }

    /// A timestamp from JS numbers (`wallMs`, `counter`): both must be whole,
    /// non-negative and in range.
    pub fn from_f64(wall_ms: f64, counter: f64) -> Option<Hlc> {
        let whole = |x: f64, max: f64| x.is_finite() && x >= 0.0 && x <= max && x.fract() == 0.0;
        if whole(wall_ms, MAX_WALL_MS as f64) && whole(counter, f64::from(MAX_COUNTER)) {
            Hlc::new(wall_ms as u64, counter as u32)
        } else {
            None
        }
    }

    /// The timestamp packed into one `u64` (`wall_ms << 16 | counter`), preserving order.
    /// Never send this to JavaScript as a number: it exceeds 2^53.
    pub fn packed(self) -> u64 {
        (self.wall_ms << 16) | u64::from(self.counter)
    }

    /// A sortable string: 15-digit wall ms, `.`, 5-digit counter.
    pub fn sortable(self) -> String {
        format!("{:015}.{:05}", self.wall_ms, self.counter)
    }

    /// The next timestamp after this one (counter + 1, or the next millisecond).
    /// Saturates at `u64::MAX` ms, which no clock here reaches: issued wall
    /// times stay within `MAX_WALL_MS + 1` but for one ms per 65,536 events.
    pub fn successor(self) -> Hlc {
        if self.counter >= MAX_COUNTER {
            Hlc { wall_ms: self.wall_ms.saturating_add(1), counter: 0 }
        } else {
            Hlc { wall_ms: self.wall_ms, counter: self.counter + 1 }
        }
    }
}

/// Why a remote timestamp was refused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockRefusal {
    /// The remote timestamp.
    pub remote: Hlc,
    /// The physical time it was compared with (ms).
    pub pt_ms: u64,
    /// How far ahead of `pt_ms` it was (ms).
    pub ahead_ms: u64,
}

/// The worker's hybrid logical clock.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HybridClock {
    last: Hlc,
    /// Largest physical time seen, to count backward steps.
    last_pt: u64,
    /// Times the physical clock was seen going backwards.
    regressions: u64,
}

impl HybridClock {
    /// The last timestamp issued or accepted.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// Times the physical clock was seen stepping backwards (the HLC never does).
    pub fn regressions(&self) -> u64 {
        self.regressions
    }

    fn observe_pt(&mut self, pt_ms: u64) {
        if pt_ms < self.last_pt {
            self.regressions += 1;
        } else {
            self.last_pt = pt_ms;
        }
    }

    /// A timestamp for a local or send event at physical time `pt_ms`.
    pub fn now(&mut self, pt_ms: u64) -> Hlc {
        self.observe_pt(pt_ms);
        let pt = pt_ms.min(MAX_WALL_MS);
        let l = self.last.wall_ms.max(pt);
        self.last = if l == self.last.wall_ms {
            self.last.successor()
        } else {
            Hlc { wall_ms: l, counter: 0 }
        };
        self.last
    }

    /// Merges remote timestamp `m` received at physical time `pt_ms` (the paper's
    /// receive rule). Refuses `m` when it is more than `max_offset_ms` ahead of
    /// `pt_ms`, leaving the clock unchanged.
    pub fn receive(&mut self, m: Hlc, pt_ms: u64, max_offset_ms: u64) -> Result<Hlc, ClockRefusal> {
        // A stamp out of range (never decoded from the wire) is refused too.
        if m.wall_ms > pt_ms.saturating_add(max_offset_ms) || m.wall_ms > MAX_WALL_MS {
            return Err(ClockRefusal {
                remote: m,
                pt_ms,
                ahead_ms: m.wall_ms.saturating_sub(pt_ms),
            });
        }
        self.observe_pt(pt_ms);
        let pt = pt_ms.min(MAX_WALL_MS);
        let old = self.last;
        let l = old.wall_ms.max(m.wall_ms).max(pt);
        let next = match (l == old.wall_ms, l == m.wall_ms) {
            (true, true) => Hlc { wall_ms: l, counter: old.counter.max(m.counter) }.successor(),
            (true, false) => old.successor(),
            (false, true) => m.successor(),
            (false, false) => Hlc { wall_ms: l, counter: 0 },
        };
        // `successor` may carry into the next millisecond; the result still exceeds both.
        debug_assert!(next > old && next > m);
        self.last = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_rule_is_monotone_when_physical_time_stalls_or_steps_back() {
        let mut c = HybridClock::default();
        let a = c.now(1_000);
        let b = c.now(1_000);
        let d = c.now(900);
        assert!(a < b && b < d, "{a:?} {b:?} {d:?}");
        assert_eq!(d.wall_ms, 1_000);
        assert_eq!(c.regressions(), 1);
        assert_eq!(c.now(2_000), Hlc { wall_ms: 2_000, counter: 0 });
    }

    #[test]
    fn receive_rule_exceeds_the_remote_and_refusal_changes_nothing() {
        let mut c = HybridClock::default();
        c.now(1_000);
        let m = Hlc { wall_ms: 1_300, counter: 7 };
        assert_eq!(c.receive(m, 1_000, 500), Ok(Hlc { wall_ms: 1_300, counter: 8 }));
        let before = c;
        let far = Hlc { wall_ms: 5_000, counter: 0 };
        let e = c.receive(far, 1_000, 500).unwrap_err();
        assert_eq!(e.ahead_ms, 4_000);
        assert_eq!(c, before);
    }

    #[test]
    fn counter_overflow_carries_into_the_next_millisecond() {
        let mut c = HybridClock::default();
        let m = Hlc { wall_ms: 10, counter: MAX_COUNTER };
        let r = Hlc { wall_ms: 11, counter: 0 };
        assert_eq!(c.receive(m, 10, 0), Ok(r));
        assert!(c.now(10) > r);
    }

    #[test]
    fn the_end_of_time_neither_panics_nor_goes_backwards() {
        let mut c = HybridClock::default();
        let top = Hlc { wall_ms: MAX_WALL_MS, counter: MAX_COUNTER };
        let next = Hlc { wall_ms: MAX_WALL_MS + 1, counter: 0 };
        assert_eq!(c.receive(top, MAX_WALL_MS, 0), Ok(next));
        assert!(c.now(u64::MAX) > next);
        assert!(c
            .receive(Hlc { wall_ms: MAX_WALL_MS + 2, counter: 0 }, u64::MAX, u64::MAX)
            .is_err());
        let before = c;
        let e =
            c.receive(Hlc { wall_ms: u64::MAX, counter: MAX_COUNTER }, 0, u64::MAX).unwrap_err();
        assert_eq!(e.ahead_ms, u64::MAX);
        assert_eq!(c, before);
        let last = Hlc { wall_ms: u64::MAX, counter: MAX_COUNTER };
        assert_eq!(last.successor().wall_ms, u64::MAX);
        assert_eq!(Hlc::from_f64(MAX_WALL_MS as f64 + 1.0, 0.0), None);
        assert_eq!(Hlc::from_f64(f64::INFINITY, 0.0), None);
        assert_eq!(Hlc::from_f64(9_007_199_254_740_993.0, 0.0), None);
    }

    #[test]
    fn parts_are_validated() {
        assert_eq!(Hlc::from_f64(1.5, 0.0), None);
        assert_eq!(Hlc::from_f64(-1.0, 0.0), None);
        assert_eq!(Hlc::from_f64(1.0, 65_536.0), None);
        assert_eq!(Hlc::from_f64(1.0, 3.0), Some(Hlc { wall_ms: 1, counter: 3 }));
        let a = Hlc { wall_ms: 9, counter: 65_535 };
        let b = Hlc { wall_ms: 10, counter: 0 };
        assert!(a.packed() < b.packed() && a.sortable() < b.sortable());
    }
}
