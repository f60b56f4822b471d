//! `StreamCursor`: where each live channel's stream stands, and which frames are missing.
//!
//! A stream is `(channel, epoch)`; its frames carry `seq` growing by one, and the
//! server's stamps grow with `seq`. So when frame `s` arrives while `e < s` was
//! expected, frames `e..s` are missing and every reading in them was stamped
//! *before* frame `s`'s stamp: a REST result whose `asOf` is at least that stamp
//! covers them. Each missing `seq` (a *hole*) is kept with that bound until its
//! frame arrives late (reordering) or a covering REST result is applied.
//!
//! Holes are bounded by `maxMissingSeqs` per channel; past it, the bound is folded
//! into one `overflow_need` for the channel (nothing is forgotten: the totals stay
//! incomplete until a covering REST result). Channels are bounded by `maxChannels`.

use std::collections::BTreeMap;

use crate::core::hlc::Hlc;
use crate::core::keys::{KeyTable, PendingNames};

/// What a frame's `(epoch, seq)` means for its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramePlace {
    /// The next expected frame, or the first of the channel.
    InOrder,
    /// The first frame of a new epoch (a reconnect): readings before it may be missing.
    NewEpoch,
    /// Frames were skipped: `missing` of them.
    Gap { missing: u64 },
    /// A missing frame arriving late.
    FilledHole,
    /// Already seen (a duplicated frame).
    Behind,
    /// From an epoch older than the current one (a straggler across a reconnect):
    /// its keys cannot use the current epoch's key table.
    OldEpoch,
}

/// One channel's stream position.
#[derive(Clone, Debug)]
pub struct StreamCursor {
    /// The channel's name.
    pub channel: String,
    epoch: Option<u64>,
    /// The next expected `seq`; `u128` so that the frame after `u64::MAX` is
    /// not `u64::MAX` again (a duplicate would read as in order).
    next_seq: u128,
    /// Missing seq -> the stamp a REST `asOf` must reach to cover it.
    holes: BTreeMap<u64, Hlc>,
    /// Bound for holes not kept individually, and for readings before a new epoch.
    overflow_need: Option<Hlc>,
    /// A stampless `hello` began this epoch: its first frame bounds what was missed.
    expect_first: bool,
    /// Binary (kind 2) key table of the current epoch: key -> `meter << 8 | resource`.
    keys: KeyTable<u64>,
    /// Keys of the current epoch bound to a meter not interned yet, with the resource.
    pending: PendingNames<u8>,
}

/// Marks a key no frame of the current epoch has bound.
pub const UNBOUND_KEY: u64 = u64::MAX;

impl StreamCursor {
    /// A cursor for `channel` with nothing seen.
    pub fn new(channel: &str) -> Self {
        StreamCursor {
            channel: channel.to_string(),
            epoch: None,
            next_seq: 0,
            holes: BTreeMap::new(),
            overflow_need: None,
            expect_first: false,
            keys: KeyTable::new(UNBOUND_KEY),
            pending: PendingNames::default(),
        }
    }

    /// The newest stamp a REST result must reach to cover everything missing here.
    pub fn need(&self) -> Option<Hlc> {
        self.holes.values().copied().max().max(self.overflow_need)
    }

    /// Missing frames tracked individually.
    #[cfg(test)]
    pub fn holes(&self) -> usize {
        self.holes.len()
    }

    /// Bytes held (estimate).
    pub fn bytes(&self) -> usize {
        // A BTreeMap entry is about key + value + node overhead.
        self.holes.len() * 40
            + self.keys.bytes()
            + self.pending.bytes()
            + self.channel.len()
            + std::mem::size_of::<StreamCursor>()
    }

    /// The current epoch's key table and the keys waiting for their meter.
    pub fn keys_mut(&mut self) -> (&mut KeyTable<u64>, &mut PendingNames<u8>) {
        (&mut self.keys, &mut self.pending)
    }

    fn need_at_least(&mut self, stamp: Hlc) {
        self.overflow_need = self.overflow_need.max(Some(stamp));
    }

    /// A `hello` announced `epoch`, its first `seq` and the server's stamp at greeting.
    /// Returns whether it starts a new epoch.
    pub fn hello(&mut self, epoch: u64, next_seq: Option<u64>, stamp: Option<Hlc>) -> bool {
        if self.epoch.is_some_and(|e| epoch <= e) {
            return false;
        }
        self.epoch = Some(epoch);
        self.next_seq = u128::from(next_seq.unwrap_or(0));
        self.keys.clear();
        self.pending.clear();
        // Readings stamped before the greeting may have been missed while
        // disconnected. Without a stamp, the first frame will bound them.
        match stamp {
            Some(s) => self.need_at_least(s),
            None => self.expect_first = true,
        }
        true
    }

    /// Places a frame; records holes and needs. `max_holes` bounds the holes kept.
    pub fn place(&mut self, epoch: u64, seq: u64, stamp: Hlc, max_holes: usize) -> FramePlace {
        let new_epoch = match self.epoch {
            None => true,
            Some(e) if epoch > e => true,
            Some(e) if epoch < e => return FramePlace::OldEpoch,
            Some(_) => false,
        };
        if new_epoch {
            self.epoch = Some(epoch);
            self.next_seq = u128::from(seq) + 1;
            self.expect_first = false;
            self.keys.clear();
            self.pending.clear();
            self.need_at_least(stamp);
            return FramePlace::NewEpoch;
        }
        if self.expect_first {
            // The epoch was announced by a hello without a stamp: this frame bounds
            // what may have been missed before the stream started.
            self.expect_first = false;
            self.need_at_least(stamp);
        }
        let next = self.next_seq;
        let wide = u128::from(seq);
        if wide == next {
            self.next_seq = wide + 1;
            FramePlace::InOrder
        } else if wide > next {
            // `next <= seq < 2^64` here, so both fit a u64.
            let next = next as u64;
            let missing = seq - next;
            let room = max_holes.saturating_sub(self.holes.len()) as u64;
            if missing <= room {
                for s in next..seq {
                    self.holes.insert(s, stamp);
                }
            } else {
                self.need_at_least(stamp);
            }
            self.next_seq = wide + 1;
            FramePlace::Gap { missing }
        } else if self.holes.remove(&seq).is_some() {
            FramePlace::FilledHole
        } else {
            FramePlace::Behind
        }
    }

    /// A snapshot of this channel at `(epoch, last_seq)` was applied (the
    /// session delivers in order): the next frame expected is `last_seq + 1`
    /// in `epoch`, and every hole up to `last_seq` is covered by it. A new
    /// epoch starts a fresh key table.
    pub fn sync(&mut self, epoch: u64, last_seq: u64) {
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.keys.clear();
            self.pending.clear();
            self.holes.clear();
        } else {
            self.holes.retain(|&s, _| s > last_seq);
        }
        self.next_seq = u128::from(last_seq) + 1;
        self.expect_first = false;
    }

    /// A REST result with watermark `as_of` covering every kept hour was applied:
    /// forget what it covers.
    pub fn covered(&mut self, as_of: Hlc) {
        self.holes.retain(|_, need| *need > as_of);
        if self.overflow_need.is_some_and(|n| n <= as_of) {
            self.overflow_need = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(w: u64) -> Hlc {
        Hlc { wall_ms: w, counter: 0 }
    }

    #[test]
    fn gap_then_late_frame_fills_the_hole() {
        let mut c = StreamCursor::new("");
        assert_eq!(c.place(1, 10, h(100), 16), FramePlace::NewEpoch);
        assert_eq!(c.need(), Some(h(100)));
        c.covered(h(100));
        assert_eq!(c.need(), None);
        assert_eq!(c.place(1, 11, h(110), 16), FramePlace::InOrder);
        assert_eq!(c.place(1, 14, h(140), 16), FramePlace::Gap { missing: 2 });
        assert_eq!(c.holes(), 2);
        assert_eq!(c.place(1, 12, h(120), 16), FramePlace::FilledHole);
        assert_eq!(c.place(1, 12, h(120), 16), FramePlace::Behind);
        assert_eq!(c.need(), Some(h(140)));
        c.covered(h(139));
        assert_eq!(c.need(), Some(h(140)));
        c.covered(h(140));
        assert_eq!((c.need(), c.holes()), (None, 0));
    }

    #[test]
    fn holes_are_bounded_and_fold_into_one_need() {
        let mut c = StreamCursor::new("");
        c.place(1, 0, h(1), 4);
        c.covered(h(1));
        assert_eq!(c.place(1, 1_000_000, h(50), 4), FramePlace::Gap { missing: 999_999 });
        assert_eq!(c.holes(), 0);
        assert_eq!(c.need(), Some(h(50)));
    }

    #[test]
    fn new_epoch_and_older_epochs() {
        let mut c = StreamCursor::new("");
        c.place(1, 5, h(10), 4);
        assert_eq!(c.place(2, 0, h(30), 4), FramePlace::NewEpoch);
        assert_eq!(c.place(1, 6, h(11), 4), FramePlace::OldEpoch);
        assert!(c.hello(3, Some(7), Some(h(40))));
        assert!(!c.hello(3, Some(7), Some(h(40))));
        assert_eq!(c.place(3, 7, h(41), 4), FramePlace::InOrder);
        assert_eq!(c.need(), Some(h(40)));
    }

    #[test]
    fn extreme_epochs_and_seqs_do_not_overflow() {
        let mut c = StreamCursor::new("");
        assert_eq!(c.place(u64::MAX, u64::MAX, h(1), 4), FramePlace::NewEpoch);
        assert_eq!(c.place(u64::MAX, u64::MAX, h(2), 4), FramePlace::Behind);
        assert_eq!(c.place(u64::MAX, 0, h(3), 4), FramePlace::Behind);
        let mut c = StreamCursor::new("");
        c.place(0, 0, h(1), 4);
        // A gap of 2^53 frames folds into one need without walking it.
        assert_eq!(c.place(0, 1 << 53, h(9), 4), FramePlace::Gap { missing: (1 << 53) - 1 });
        assert_eq!((c.holes(), c.need()), (0, Some(h(9))));
        assert!(!c.hello(0, Some(u64::MAX), None));
        assert!(c.hello(u64::MAX, Some(u64::MAX), None));
        assert_eq!(c.place(u64::MAX, u64::MAX, h(10), 4), FramePlace::InOrder);
    }
}
