//! `RingSlab`: every meter's recent samples in flat `f64` chunks.
//!
//! Meters are grouped `per_chunk` to a chunk (a page's worth, see
//! [`meters_per_chunk`]); meter `m` owns
//! `chunks[m / per_chunk][(m % per_chunk) * window ..][.. window]`;
//! `head[m]` is the slot the next sample goes to and `len[m]` how many slots are
//! filled. Invariants: `len[m] <= window`, `head[m] < window`, and the oldest
//! sample sits at `(head - len) mod window`.
//!
//! Memory follows the meters in use, not `maxMeters`: a chunk is reserved whole
//! when its first meter arrives (for at most the meters `maxMeters` leaves), and
//! a chunk never moves once reserved, so growth copies nothing and leaves no
//! superseded copy in wasm's never-shrinking linear memory. With `maxMeters:
//! 50000` and 5,000 meters in use, the rings take 5,000 meters' worth (plus at
//! most one partly used chunk), not 480 MB. The chunks are re-laid out in place
//! when the window changes.

/// The most meters [`RingSlab::warm`] reads ahead at once.
pub const WARM_MAX: usize = 64;

/// WebAssembly's page: linear memory grows in steps of 64 KiB.
const WASM_PAGE: usize = 65_536;

/// Bytes the allocator adds to an allocation (dlmalloc: a header word or two and
/// alignment, well under 64).
const ALLOC_SLACK: usize = 64;

/// Meters per chunk for rings of `window` samples: as many rings as fit in one
/// 64 KiB page with the allocator's header, at least one.
///
/// Chunks of 64 rings of 1,200 samples (614,400 bytes) cost 640 bytes a meter
/// in wasm: dlmalloc served each by growing linear memory 10 pages (655,360
/// bytes), and the space freed when the per-meter tables (moments, detector,
/// ledger) doubled lay between those chunks, too small for the next one. Chunks
/// of at most a page (6 rings of 1,200 samples, 57,600 bytes) come from the
/// allocator's free space like any other allocation and fill those holes.
pub fn meters_per_chunk(window: usize) -> usize {
    let ring = window.max(1).saturating_mul(8);
    ((WASM_PAGE - ALLOC_SLACK) / ring).max(1)
}

/// Meters' room a per-meter table reserves at its first meter (at most
/// `maxMeters`), as the detector's.
const FIRST_ROOM: usize = 8_192;

/// How many more meters' room a full per-meter table of `len` meters (the
/// rings' heads, the windows' moments) reserves under a cap of `cap_meters`:
/// at the first meter the cap, up to [`FIRST_ROOM`]; then as many again as it
/// holds (at least 64), never past the cap (at least 1: a cap lowered below
/// the meters in use still adds them one by one). The heads and moments were
/// reserved for the cap at once: with `maxMeters: 50000` and 5,000 meters in
/// use, 3.2 MB of the 3.6 MB unused (docs/PERFORMANCE.md, "A meter's first
/// reading").
pub fn room_ahead(len: usize, cap_meters: usize) -> usize {
    let want = if len == 0 { cap_meters.min(FIRST_ROOM) } else { len.max(64) };
    want.min(cap_meters.saturating_sub(len)).max(1)
}

/// Largest divisor [`ChunkOf`] divides without a division (2^13; a page holds
/// at most 8,184 rings, of one sample each).
const FAST_DIVISOR_MAX: u64 = 1 << 13;
/// Meters [`ChunkOf`] places without a division (2^25; `maxMeters` is at most 2^24).
const FAST_METERS: usize = 1 << 25;

/// `(m / per_chunk, m % per_chunk)` by a multiplication: every reading's ring
/// push (and its warm-up read ahead) places its meter, and a division by a
/// number known only at run time is one `i32.div_u`, tens of cycles.
///
/// With `magic = ⌈2^39 / d⌉ = (2^39 + e) / d`, `0 <= e < d`:
/// `m · magic / 2^39 = m / d + m·e / (d·2^39)`, and the error term is below
/// `m / 2^39 < 2^-14 < 1 / d` for `m < 2^25`, `d <= 2^13`, while the
/// fractional part of `m / d` is at most `1 - 1/d`: the floor is exact (and
/// `m · magic < 2^25 · 2^39` fits in a `u64`). Outside those bounds it divides.
#[derive(Clone, Copy, Debug)]
struct ChunkOf {
    d: usize,
    magic: u64,
}

impl ChunkOf {
    fn new(d: usize) -> ChunkOf {
        let d = d.max(1);
        ChunkOf { d, magic: (1u64 << 39).div_ceil(d as u64) }
    }

    /// `(m / d, m % d)`.
    #[inline(always)]
    fn split(self, m: usize) -> (usize, usize) {
        if m < FAST_METERS && self.d as u64 <= FAST_DIVISOR_MAX {
            let q = ((m as u64 * self.magic) >> 39) as usize;
            (q, m - q * self.d)
        } else {
            (m / self.d, m % self.d)
        }
    }
}

/// Per-meter fixed-length rings in chunks of flat allocations.
#[derive(Clone, Debug)]
pub struct RingSlab {
    window: usize,
    /// Meters per chunk (`chunk_of.d`), fixed while the slab holds meters (a
    /// window change re-lays rings out inside their chunks), and the division
    /// by it (see [`ChunkOf`]).
    chunk_of: ChunkOf,
    chunks: Vec<Vec<f64>>,
    head: Vec<u32>,
    len: Vec<u32>,
}

impl RingSlab {
    /// An empty slab whose rings hold `window` samples each.
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        let per_chunk = meters_per_chunk(window);
        RingSlab {
            window,
            chunk_of: ChunkOf::new(per_chunk),
            chunks: Vec::new(),
            head: Vec::new(),
            len: Vec::new(),
        }
    }

    /// Samples per ring.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Number of meters.
    pub fn meters(&self) -> usize {
        self.head.len()
    }

    /// Samples currently held by meter `m` (0 for an unknown meter).
    pub fn len(&self, m: usize) -> usize {
        self.len.get(m).map_or(0, |&l| l as usize)
    }

    /// Bytes reserved by the slab and its per-meter heads.
    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity() * 8).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<f64>>()
            + (self.head.capacity() + self.len.capacity()) * 4
    }

    /// Makes room for one more meter without a panic on allocation failure.
    ///
    /// A new chunk is reserved whole, for `per_chunk` meters or the fewer
    /// that `cap_meters` leaves room for; if that cannot be had, for this one
    /// meter (the chunk then grows meter by meter). The per-meter heads
    /// grow by [`room_ahead`] (8 bytes a meter). `false`: out of memory (or a
    /// size past the address space).
    pub fn reserve_meter(&mut self, cap_meters: usize) -> bool {
        let m = self.head.len();
        let (c, i) = (m / self.chunk_of.d, m % self.chunk_of.d);
        let Some(need) = i.checked_add(1).and_then(|n| n.checked_mul(self.window)) else {
            return false;
        };
        if c == self.chunks.len() {
            if self.chunks.try_reserve(1).is_err() {
                return false;
            }
            self.chunks.push(Vec::new());
        }
        let Some(chunk) = self.chunks.get_mut(c) else { return false };
        if need > chunk.capacity() {
            let planned = cap_meters.max(m + 1).saturating_sub(m - i).min(self.chunk_of.d);
            let whole = planned.checked_mul(self.window).map(|n| n.saturating_sub(chunk.len()));
            let len = chunk.len();
            let reserved = whole.is_some_and(|n| chunk.try_reserve_exact(n).is_ok())
                || chunk.try_reserve_exact(need - len).is_ok();
            if !reserved {
                return false;
            }
        }
        let heads = |v: &mut Vec<u32>| {
            v.capacity() > v.len()
                || v.try_reserve_exact(room_ahead(v.len(), cap_meters)).is_ok()
                || v.try_reserve_exact(1).is_ok()
        };
        heads(&mut self.head) && heads(&mut self.len)
    }

    /// Adds an empty ring for a new meter and returns its index, or `None` when
    /// memory ran out (nothing changed then). Call [`RingSlab::reserve_meter`]
    /// first so this does not reallocate.
    pub fn add_meter(&mut self, cap_meters: usize) -> Option<usize> {
        let m = self.head.len();
        if !self.reserve_meter(cap_meters) {
            return None;
        }
        let chunk = self.chunks.get_mut(m / self.chunk_of.d)?;
        chunk.resize((m % self.chunk_of.d + 1) * self.window, 0.0);
        self.head.push(0);
        self.len.push(0);
        Some(m)
    }

    /// Meter `m`'s ring (all `window` slots), if it has one.
    #[inline]
    fn ring(&self, m: usize) -> Option<&[f64]> {
        let w = self.window;
        let (c, i) = self.chunk_of.split(m);
        let at = i * w;
        self.chunks.get(c)?.get(at..at + w)
    }

    /// The sample in the slot meter `m`'s next [`RingSlab::push`] writes (0 for
    /// an unknown meter): a read with no effect; the oracle of
    /// [`RingSlab::warm`]'s test.
    #[cfg(test)]
    pub fn next_slot(&self, m: usize) -> f64 {
        self.next_place(m).map_or(0.0, |(c, slot)| self.sample_at(c, slot))
    }

    /// Where meter `m`'s next [`RingSlab::push`] writes: (chunk, index in the
    /// chunk), or `None` for an unknown meter. Reads only the meter's head.
    #[inline(always)]
    fn next_place(&self, m: usize) -> Option<(usize, usize)> {
        let &h = self.head.get(m)?;
        let (c, i) = self.chunk_of.split(m);
        Some((c, i * self.window + h as usize))
    }

    #[inline(always)]
    fn sample_at(&self, c: usize, slot: usize) -> f64 {
        self.chunks.get(c).and_then(|c| c.get(slot)).copied().unwrap_or(0.0)
    }

    /// Reads the slots the next pushes of `meters` (at most [`WARM_MAX`]; an
    /// unknown meter is skipped) write, and nothing else, and returns their
    /// sum, for [`crate::core::windows::Windows::warm`].
    ///
    /// In two loops: first every slot's place (the meters' heads, which are
    /// in cache), then the slots themselves, in a loop of a few instructions
    /// a slot. The slot loads are the misses; in one loop each came behind
    /// its own place's arithmetic and branches, so the reorder buffer held
    /// fewer of them at once (natively, perf put 74 % of the ingest loop's
    /// own samples on that one load).
    #[inline]
    pub fn warm(&self, meters: impl Iterator<Item = usize>) -> f64 {
        let mut places = [(0usize, 0usize); WARM_MAX];
        let mut k = 0;
        for (place, m) in places.iter_mut().zip(meters.filter_map(|m| self.next_place(m))) {
            *place = m;
            k += 1;
        }
        places.get(..k).unwrap_or(&[]).iter().map(|&(c, slot)| self.sample_at(c, slot)).sum()
    }

    /// Appends `x` to meter `m`'s ring and returns the sample it evicted, if full.
    #[inline]
    pub fn push(&mut self, m: usize, x: f64) -> Option<f64> {
        let w = self.window;
        let (Some(h), Some(l)) = (self.head.get(m).copied(), self.len.get(m).copied()) else {
            return None;
        };
        let (c, i) = self.chunk_of.split(m);
        let slot = i * w + h as usize;
        let old =
            self.chunks.get_mut(c).and_then(|c| c.get_mut(slot)).map(|s| std::mem::replace(s, x));
        let next = if h as usize + 1 == w { 0 } else { h + 1 };
        self.head[m] = next;
        if (l as usize) < w {
            self.len[m] = l + 1;
            None
        } else {
            old
        }
    }

    /// Meter `m`'s samples oldest first, as two slices (the second may be empty).
    pub fn slices(&self, m: usize) -> (&[f64], &[f64]) {
        let w = self.window;
        let (Some(&h), Some(&l)) = (self.head.get(m), self.len.get(m)) else {
            return (&[], &[]);
        };
        let Some(ring) = self.ring(m) else {
            return (&[], &[]);
        };
        let (h, l) = (h as usize, l as usize);
        if l < w {
            // Not yet wrapped: the samples are ring[0..l] and head == l.
            (&ring[..l], &[])
        } else {
            (&ring[h..], &ring[..h])
        }
    }

    /// Meter `m`'s samples oldest first, copied.
    pub fn to_vec(&self, m: usize) -> Vec<f64> {
        let (a, b) = self.slices(m);
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        v
    }

    /// The newest `k` samples of meter `m` (fewer if it holds fewer), newest last.
    pub fn newest(&self, m: usize, k: usize) -> (&[f64], &[f64]) {
        let (a, b) = self.slices(m);
        let k = k.min(a.len() + b.len());
        if k <= b.len() {
            (&[], &b[b.len() - k..])
        } else {
            (&a[a.len() - (k - b.len())..], b)
        }
    }

    /// Empties meter `m`'s ring.
    pub fn clear_meter(&mut self, m: usize) {
        if let (Some(h), Some(l)) = (self.head.get_mut(m), self.len.get_mut(m)) {
            *h = 0;
            *l = 0;
        }
    }

    /// Forgets every meter and releases the slab.
    pub fn clear(&mut self) {
        *self = RingSlab::new(self.window);
    }

    /// Meters in chunk `c`.
    fn in_chunk(&self, c: usize) -> usize {
        self.meters().saturating_sub(c * self.chunk_of.d).min(self.chunk_of.d)
    }

    /// Changes the window of every ring, keeping the newest samples, in place.
    /// Growing a window moves rings backwards through each chunk; shrinking
    /// forwards. Growing reserves every chunk's new size first: if that fails
    /// (or a size passes the address space) no sample moves and `Err` says so.
    pub fn set_window(&mut self, new_window: usize) -> Result<(), NoMemory> {
        let new_window = new_window.max(1);
        let old = self.window;
        if new_window == old {
            return Ok(());
        }
        if self.chunks.is_empty() {
            // No rings yet: chunks can be sized for the new window.
            *self = RingSlab::new(new_window);
            return Ok(());
        }
        let mut scratch: Vec<f64> = Vec::new();
        scratch.try_reserve_exact(new_window.min(old)).map_err(|_| NoMemory)?;
        if new_window < old {
            // Compact forwards: meter m's new ring starts at or before its old one,
            // and each ring is linearised into scratch first, so no unread data is overwritten.
            for m in 0..self.meters() {
                self.relayout(m, new_window, &mut scratch);
            }
            for c in 0..self.chunks.len() {
                let n = self.in_chunk(c) * new_window;
                if let Some(chunk) = self.chunks.get_mut(c) {
                    chunk.truncate(n);
                    chunk.shrink_to_fit();
                }
            }
        } else {
            let mut needs = Vec::new();
            needs.try_reserve_exact(self.chunks.len()).map_err(|_| NoMemory)?;
            for c in 0..self.chunks.len() {
                needs.push(self.in_chunk(c).checked_mul(new_window).ok_or(NoMemory)?);
            }
            for (chunk, &need) in self.chunks.iter_mut().zip(&needs) {
                let more = need.saturating_sub(chunk.len());
                chunk.try_reserve_exact(more).map_err(|_| NoMemory)?;
            }
            for (chunk, &need) in self.chunks.iter_mut().zip(&needs) {
                chunk.resize(need, 0.0);
            }
            // Backwards: meter m's new ring ends after every older ring below it.
            for m in (0..self.meters()).rev() {
                self.relayout(m, new_window, &mut scratch);
            }
        }
        self.window = new_window;
        Ok(())
    }

    /// Copies meter `m`'s newest samples (at the current window) to its ring at
    /// `new_window`, oldest first from slot 0.
    fn relayout(&mut self, m: usize, new_window: usize, scratch: &mut Vec<f64>) {
        scratch.clear();
        let (a, b) = self.newest(m, new_window);
        scratch.extend_from_slice(a);
        scratch.extend_from_slice(b);
        let base = (m % self.chunk_of.d) * new_window;
        let l = scratch.len();
        if let Some(dst) =
            self.chunks.get_mut(m / self.chunk_of.d).and_then(|c| c.get_mut(base..base + l))
        {
            dst.copy_from_slice(scratch);
        }
        if let (Some(h), Some(len)) = (self.head.get_mut(m), self.len.get_mut(m)) {
            *len = l as u32;
            *h = if l == new_window { 0 } else { l as u32 };
        }
    }
}

/// Memory for a slab could not be had (or its size passes the address space).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoMemory;

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(window: usize, meters: usize, per_meter: usize) -> RingSlab {
        let mut r = RingSlab::new(window);
        for _ in 0..meters {
            assert!(r.add_meter(1000).is_some());
        }
        for m in 0..meters {
            for i in 0..per_meter {
                r.push(m, (m * 10_000 + i) as f64);
            }
        }
        r
    }

    #[test]
    fn push_evicts_oldest_once_full() {
        let mut r = RingSlab::new(3);
        assert_eq!(r.add_meter(10), Some(0));
        assert_eq!(r.push(0, 1.0), None);
        assert_eq!(r.push(0, 2.0), None);
        assert_eq!(r.push(0, 3.0), None);
        assert_eq!(r.push(0, 4.0), Some(1.0));
        assert_eq!(r.to_vec(0), vec![2.0, 3.0, 4.0]);
        assert_eq!(r.newest(0, 2).0.len() + r.newest(0, 2).1.len(), 2);
    }

    #[test]
    fn meters_do_not_share_slots() {
        let r = filled(4, 3, 6);
        assert_eq!(r.to_vec(1), vec![10_002.0, 10_003.0, 10_004.0, 10_005.0]);
        assert_eq!(r.to_vec(2), vec![20_002.0, 20_003.0, 20_004.0, 20_005.0]);
    }

    #[test]
    fn shrink_and_grow_keep_newest_samples() {
        for per in [0, 2, 5, 8, 13] {
            let mut r = filled(8, 4, per);
            let before: Vec<Vec<f64>> = (0..4).map(|m| r.to_vec(m)).collect();
            assert_eq!(r.set_window(3), Ok(()));
            for (m, b) in before.iter().enumerate() {
                let keep = &b[b.len().saturating_sub(3)..];
                assert_eq!(r.to_vec(m), keep, "per={per} m={m}");
            }
            assert_eq!(r.set_window(6), Ok(()));
            r.push(0, -1.0);
            let v = r.to_vec(0);
            assert_eq!(v.last(), Some(&-1.0));
        }
    }

    #[test]
    fn rings_across_chunks_keep_their_samples_through_window_changes() {
        let meters = 3 * meters_per_chunk(7) + 5;
        let mut r = filled(7, meters, 11);
        let before: Vec<Vec<f64>> = (0..meters).map(|m| r.to_vec(m)).collect();
        assert_eq!(r.set_window(4), Ok(()));
        for (m, b) in before.iter().enumerate() {
            assert_eq!(r.to_vec(m), &b[b.len() - 4..], "m={m}");
        }
        assert_eq!(r.set_window(9), Ok(()));
        for (m, b) in before.iter().enumerate() {
            assert_eq!(r.to_vec(m), &b[b.len() - 4..], "m={m}");
            r.push(m, -(m as f64));
            assert_eq!(r.to_vec(m).last(), Some(&-(m as f64)));
        }
    }

    #[test]
    fn reservation_follows_the_meters_in_use_not_the_cap() {
        let window = 1200;
        let mut r = RingSlab::new(window);
        let per = meters_per_chunk(window);
        for _ in 0..(2 * per + 1) {
            assert!(r.add_meter(50_000).is_some());
        }
        // Three chunks of samples (the last one reserved whole), and 8 bytes a
        // meter of heads for the cap: not 50,000 rings.
        let samples = 3 * per * window * 8;
        assert!(r.bytes() <= samples + 50_000 * 8 + 1024, "{} bytes", r.bytes());
        // A cap below the chunk size reserves only that many rings.
        let mut r = RingSlab::new(window);
        assert!(r.add_meter(3).is_some());
        assert!(r.bytes() <= 3 * window * 8 + 1024, "{} bytes", r.bytes());
    }

    #[test]
    fn heads_grow_with_the_meters_not_to_the_cap() {
        // maxMeters 50,000 with 5,000 meters: the heads hold 8,192 meters'
        // room, not 50,000; past it they double, and end at the cap.
        let mut r = RingSlab::new(8);
        let mut rooms = vec![];
        for m in 0..50_000 {
            assert_eq!(r.add_meter(50_000), Some(m));
            if rooms.last() != Some(&r.head.capacity()) {
                rooms.push(r.head.capacity());
            }
            assert_eq!(r.len.capacity(), r.head.capacity());
        }
        assert_eq!(rooms, vec![8_192, 16_384, 32_768, 50_000]);
        // A cap below the first room reserves the cap; a cap lowered below
        // the meters in use still adds them, one by one.
        assert_eq!(room_ahead(0, 5_000), 5_000);
        assert_eq!(room_ahead(5_000, 5_000), 1);
        assert_eq!(room_ahead(10, 20), 10);
        assert_eq!(room_ahead(100, 1_000), 100);
    }

    #[test]
    fn a_whole_chunk_is_at_most_a_wasm_page_or_one_ring() {
        for window in [1, 8, 100, 1000, 1200, 4096, 8184, 10_000, 65_536] {
            let mut r = RingSlab::new(window);
            assert!(r.add_meter(1_000_000).is_some());
            let ring = window * 8;
            let bytes = r.chunks[0].capacity() * 8;
            assert_eq!(bytes % ring, 0);
            if ring + ALLOC_SLACK <= WASM_PAGE {
                // A page's worth: within one ring of a full page.
                assert!(bytes + ALLOC_SLACK <= WASM_PAGE, "window {window}: {bytes} bytes");
                assert!(WASM_PAGE - ALLOC_SLACK - bytes < ring, "window {window}: {bytes} bytes");
            } else {
                assert_eq!(bytes, ring, "window {window}: one ring a chunk");
            }
        }
        // A window changed before the first meter sizes the chunks for the new window.
        let mut r = RingSlab::new(8);
        assert_eq!(r.set_window(1200), Ok(()));
        assert_eq!(r.chunk_of.d, meters_per_chunk(1200));
    }

    #[test]
    fn warm_reads_the_slots_the_next_pushes_write() {
        // 20 meters across 4 chunks, some full and wrapped, some not.
        let r = filled(7, 20, 9);
        let mut r2 = filled(7, 3, 2);
        r2.push(1, 0.5);
        for (slab, meters) in [(&r, 20), (&r2, 3)] {
            let all: Vec<usize> = (0..meters).chain([meters, usize::MAX, 0]).collect();
            let want: f64 = all.iter().map(|&m| slab.next_slot(m)).sum();
            assert_eq!(slab.warm(all.iter().copied()), want);
            // Every slot a push will overwrite is the one `next_slot` reads.
            for m in 0..meters {
                let mut s = slab.clone();
                let slot = s.next_slot(m);
                let evicted = s.push(m, -1.0);
                assert!(evicted.is_none_or(|e| e == slot), "meter {m}");
            }
        }
        // At most `WARM_MAX` meters are read.
        let many = std::iter::repeat_n(3, WARM_MAX + 5);
        assert_eq!(r.warm(many), r.next_slot(3) * WARM_MAX as f64);
    }

    #[test]
    fn unknown_meter_is_harmless() {
        let mut r = RingSlab::new(4);
        assert_eq!(r.push(7, 1.0), None);
        assert_eq!(r.to_vec(7), Vec::<f64>::new());
    }

    // The sizes are 64-bit ones; the wasm32 wrap is the same overflow at usize::MAX.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_window_that_cannot_be_had_changes_nothing() {
        let mut r = filled(8, 3, 10);
        let before: Vec<Vec<f64>> = (0..3).map(|m| r.to_vec(m)).collect();
        // 3 × 2^61 samples overflow usize; 3 × 2^40 × 8 bytes cannot be reserved.
        for w in [1usize << 61, 1 << 40, usize::MAX] {
            assert_eq!(r.set_window(w), Err(NoMemory), "window {w}");
            assert_eq!(r.window(), 8);
            let after: Vec<Vec<f64>> = (0..3).map(|m| r.to_vec(m)).collect();
            assert_eq!(after, before);
        }
        r.push(1, -1.0);
        assert_eq!(r.to_vec(1).last(), Some(&-1.0));
    }

    // The sizes are 64-bit ones; the wasm32 wrap is the same overflow at usize::MAX.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_slab_past_the_address_space_is_refused_not_wrapped() {
        // On wasm32, 4,194,304 meters × 1,024 samples wrapped to 0 and reserved
        // nothing; the same overflow at usize::MAX must refuse, not wrap.
        let mut r = RingSlab::new(1 << 40);
        assert!(!r.reserve_meter(1 << 30));
        assert_eq!(r.add_meter(1 << 30), None);
        let mut r = RingSlab::new(usize::MAX / 2);
        assert!(!r.reserve_meter(4));
        assert_eq!(r.add_meter(4), None);
        assert_eq!(r.meters(), 0);
    }

    #[test]
    fn chunk_of_splits_as_division_does() {
        // Every divisor a page can give and a few past the fast bound; for
        // each, the meters around the multiples where a wrong floor would
        // show (q·d - 1, q·d, q·d + d - 1) for small, large and seeded q, and
        // the edges of the fast range.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for d in 1..=(FAST_DIVISOR_MAX as usize + 8) {
            let split = ChunkOf::new(d);
            let top = FAST_METERS / d;
            let mut qs = vec![0, 1, 2, top.saturating_sub(1), top, top + 1];
            for _ in 0..8 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                qs.push((seed >> 33) as usize % (top + 2));
            }
            let edges = [FAST_METERS - 1, FAST_METERS, FAST_METERS + 1, usize::MAX];
            let ms = qs.iter().flat_map(|&q| [q * d, q * d + d - 1, (q * d).saturating_sub(1)]);
            for m in ms.chain(edges) {
                assert_eq!(split.split(m), (m / d, m % d), "m {m} d {d}");
            }
        }
    }
}
