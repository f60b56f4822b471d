//! `Windows`: each meter's ring of samples together with its rolling moments.
//!
//! Invariant: `moments[m]` describes exactly the samples in `ring`'s window for
//! meter `m` (up to rounding, which [`Moments::needs_recompute`] bounds by
//! triggering an exact rebuild from the ring).

use super::moments::Moments;
use super::ring::{room_ahead, NoMemory, RingSlab};

/// Per-meter rings and moments, in flat per-meter arrays.
#[derive(Clone, Debug)]
pub struct Windows {
    ring: RingSlab,
    moments: Vec<Moments>,
    recompute_every: u32,
    recomputes: u64,
    /// `1 / window`, for the fixed-n update of a full window.
    inv_window: f64,
}

impl Windows {
    /// Empty windows of `window` samples; moments rebuilt every `recompute_every` removals.
    pub fn new(window: usize, recompute_every: u32) -> Self {
        let ring = RingSlab::new(window);
        let inv_window = 1.0 / ring.window() as f64;
        Windows { ring, moments: Vec::new(), recompute_every, recomputes: 0, inv_window }
    }

    /// Samples per window.
    pub fn window(&self) -> usize {
        self.ring.window()
    }

    /// Number of meters.
    pub fn meters(&self) -> usize {
        self.moments.len()
    }

    /// Makes room for one more meter (the moments grow by [`room_ahead`], see
    /// [`RingSlab::reserve_meter`]); `false` if memory ran out.
    pub fn reserve_meter(&mut self, cap_meters: usize) -> bool {
        let more = room_ahead(self.moments.len(), cap_meters);
        self.ring.reserve_meter(cap_meters)
            && (self.moments.capacity() > self.moments.len()
                || self.moments.try_reserve_exact(more).is_ok()
                || self.moments.try_reserve_exact(1).is_ok())
    }

    /// Adds an empty window for a new meter and returns its index, or `None`
    /// (nothing changed) when memory ran out.
    pub fn add_meter(&mut self, cap_meters: usize) -> Option<usize> {
        if !self.reserve_meter(cap_meters) {
            return None;
        }
        let m = self.ring.add_meter(cap_meters)?;
        self.moments.push(Moments::default());
        Some(m)
    }

    /// The moments of meter `m`'s window (zeros for an unknown meter).
    #[inline]
    pub fn moments(&self, m: usize) -> Moments {
        self.moments.get(m).copied().unwrap_or_default()
    }

    /// Reads the ring slot each of `meters`' next [`Windows::push`] writes, and
    /// nothing else: it changes no state. Issued for a few readings ahead of
    /// their pushes, these independent loads overlap their cache misses (each
    /// ring is 9.6 KB apart from the next, so no hardware prefetcher guesses
    /// the slot), where the pushes, each behind a chain of dependent
    /// arithmetic, would take them one after another ([`RingSlab::warm`]: at
    /// most `ring::WARM_MAX` meters). The caller passes the sum to
    /// `std::hint::black_box` so the loads are not optimised away.
    #[inline]
    pub fn warm(&self, meters: impl Iterator<Item = usize>) -> f64 {
        self.ring.warm(meters)
    }

    /// Appends `x` to meter `m`'s window, evicting the oldest sample when full:
    /// then one fixed-n [`Moments::replace`], else one [`Moments::add`].
    #[inline]
    pub fn push(&mut self, m: usize, x: f64) {
        let evicted = self.ring.push(m, x);
        let Some(mo) = self.moments.get_mut(m) else { return };
        match evicted {
            // A full ring holds `window` samples and so do its moments.
            Some(old) if mo.n as usize == self.ring.window() => mo.replace(old, x, self.inv_window),
            Some(old) => {
                mo.remove(old);
                mo.add(x);
            }
            None => mo.add(x),
        }
        if mo.needs_recompute(self.recompute_every) {
            let (a, b) = self.ring.slices(m);
            *mo = Moments::recompute(a, b);
            self.recomputes += 1;
        }
    }

    /// Meter `m`'s samples oldest first.
    pub fn samples(&self, m: usize) -> Vec<f64> {
        self.ring.to_vec(m)
    }

    /// The newest `k` samples of meter `m`, oldest of them first, as two slices.
    pub fn newest(&self, m: usize, k: usize) -> (&[f64], &[f64]) {
        self.ring.newest(m, k)
    }

    /// Samples meter `m` holds.
    pub fn len(&self, m: usize) -> usize {
        self.ring.len(m)
    }

    /// Exact rebuilds done so far.
    pub fn recomputes(&self) -> u64 {
        self.recomputes
    }

    /// Forgets meter `m`'s samples.
    pub fn clear_meter(&mut self, m: usize) {
        self.ring.clear_meter(m);
        if let Some(mo) = self.moments.get_mut(m) {
            *mo = Moments::default();
        }
    }

    /// Forgets every meter.
    pub fn clear(&mut self) {
        self.ring.clear();
        self.moments = Vec::new();
    }

    /// Sets how many removals trigger a rebuild.
    pub fn set_recompute_every(&mut self, every: u32) {
        self.recompute_every = every;
    }

    /// Changes the window of every meter, keeping the newest samples, and rebuilds
    /// every meter's moments exactly. `Err` (nothing changed) when the larger
    /// slab cannot be had.
    pub fn set_window(&mut self, window: usize) -> Result<(), NoMemory> {
        self.ring.set_window(window)?;
        self.inv_window = 1.0 / self.ring.window() as f64;
        for (m, mo) in self.moments.iter_mut().enumerate() {
            let (a, b) = self.ring.slices(m);
            *mo = Moments::recompute(a, b);
        }
        Ok(())
    }

    /// Bytes reserved by the rings and moments.
    pub fn bytes(&self) -> usize {
        self.ring.bytes() + self.moments.capacity() * std::mem::size_of::<Moments>()
    }
}
