//! `MeterTable`: interning of string meter ids to dense `u32` indices.
//!
//! A meter id is interned once, when it is first seen, and keeps its index for
//! the life of the engine (a per-meter reset clears its samples, not its index).
//! Every per-meter slab in the engine is indexed by this dense index.

use super::error::{CoreError, ErrorCode};

/// Longest meter id accepted, in bytes.
pub const MAX_METER_ID_BYTES: usize = 256;

/// Why `id` is not a meter id, if it is not: a meter id is 1..=256 bytes of
/// UTF-8 (which `&str` guarantees) without control characters (U+0000..=U+001F,
/// U+007F..=U+009F). The one rule of every path (PROTOCOL.md, "Amounts and
/// meter ids"): JSON readings, live frames and catch-ups, the bindings of
/// binary kinds 1, 2 and 3, the engine's interning and the session's detail
/// requests all check their ids here.
pub fn meter_id_problem(id: &str) -> Option<String> {
    if id.is_empty() || id.len() > MAX_METER_ID_BYTES {
        return Some(format!("meter id must be 1..={MAX_METER_ID_BYTES} bytes, got {}", id.len()));
    }
    // The common case, printable ASCII, without decoding characters: the
    // only control characters below U+0080 are bytes 0x00..=0x1F and 0x7F.
    if id.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return None;
    }
    id.char_indices().find(|(_, c)| c.is_control()).map(|(i, c)| {
        format!("meter id must not contain control characters, got U+{:04X} at byte {i}", c as u32)
    })
}

/// `Ok` if `id` is a valid meter id (see [`meter_id_problem`]), else `bad_meter_id`.
pub fn check_meter_id(id: &str) -> Result<(), CoreError> {
    match meter_id_problem(id) {
        None => Ok(()),
        Some(why) => Err(CoreError::new(ErrorCode::BadMeterId, why)),
    }
}

/// String ids to dense indices and back.
///
/// Each id is stored once: `text` holds every id in index order and `ends[m]`
/// where meter `m`'s ends, and `slots`, an open-addressing table with linear
/// probing, holds `m + 1` at (or after) the slot `id`'s hash picks (0: empty).
/// A map from boxed ids to indices beside a vector of boxed ids kept two heap
/// copies of each id, a boxed pointer and a map entry: about 66 B a meter at
/// 5,000 meters in wasm, where this takes about 24 (12-byte ids).
#[derive(Clone, Debug, Default)]
pub struct MeterTable {
    text: String,
    ends: Vec<u32>,
    /// A power of two long (or empty), at most 3/4 full.
    slots: Vec<u32>,
}

/// A 64-bit hash of `id`, mixed so that its top bits pick a slot.
fn hash(id: &str) -> u64 {
    use std::hash::BuildHasher;
    let h = std::hash::BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(id);
    h.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl MeterTable {
    /// Number of meters interned.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no meter is interned.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The first slot to probe for hash `h`.
    fn home(&self, h: u64) -> usize {
        let bits = self.slots.len().trailing_zeros();
        if bits == 0 {
            0
        } else {
            (h >> (64 - bits)) as usize
        }
    }

    /// The index of `id`, if it is interned.
    pub fn get(&self, id: &str) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = self.home(hash(id));
        // At most 3/4 full: the probe meets an empty slot.
        for _ in 0..self.slots.len() {
            let s = *self.slots.get(i)?;
            let m = s.checked_sub(1)?;
            if self.name(m as usize) == id {
                return Some(m);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The id of meter `m` ("" for an unknown index).
    pub fn name(&self, m: usize) -> &str {
        let start = match m.checked_sub(1) {
            None => 0,
            Some(p) => self.ends.get(p).map_or(0, |&e| e as usize),
        };
        let end = self.ends.get(m).map_or(start, |&e| e as usize);
        self.text.get(start..end).unwrap_or("")
    }

    /// Interns `id`. Returns `(index, true)` when it is new. Refuses a bad id, or a
    /// new id when `max_meters` are already interned.
    pub fn intern(&mut self, id: &str, max_meters: u32) -> Result<(u32, bool), CoreError> {
        if let Some(m) = self.get(id) {
            return Ok((m, false));
        }
        check_meter_id(id)?;
        self.check_room(id, max_meters)?;
        let no_memory = || {
            CoreError::new(
                ErrorCode::OutOfMemory,
                format!("meter '{id}' refused: no memory to intern its id"),
            )
        };
        let m = self.ends.len();
        let end = u32::try_from(self.text.len() + id.len()).map_err(|_| no_memory())?;
        let index = u32::try_from(m).map_err(|_| no_memory())?;
        // Room first (every step fallible), then the change.
        if (m + 1) * 4 > self.slots.len() * 3 {
            self.grow_slots(m + 1).ok_or_else(no_memory)?;
        }
        if self.ends.len() == self.ends.capacity() {
            // Doubling, but never past `max_meters` (as the other per-meter
            // tables, see `ring::room_ahead`).
            let more = m.max(16).min((max_meters as usize).saturating_sub(m)).max(1);
            self.ends.try_reserve_exact(more).map_err(|_| no_memory())?;
        }
        self.text.try_reserve(id.len()).map_err(|_| no_memory())?;
        self.text.push_str(id);
        self.ends.push(end);
        self.place(hash(id), index);
        Ok((index, true))
    }

    /// Puts meter `m` in the first empty slot from its hash's home.
    fn place(&mut self, h: u64, m: u32) {
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = self.home(h);
        for _ in 0..self.slots.len() {
            match self.slots.get_mut(i) {
                Some(s) if *s == 0 => {
                    *s = m + 1;
                    return;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Rebuilds `slots` with room for `meters` at most 3/4 full; `None` (nothing
    /// changed) if the memory cannot be had.
    fn grow_slots(&mut self, meters: usize) -> Option<()> {
        let len = meters.checked_mul(4)?.div_ceil(3).max(16).checked_next_power_of_two()?;
        let mut slots = Vec::new();
        slots.try_reserve_exact(len).ok()?;
        slots.resize(len, 0u32);
        let old = std::mem::replace(&mut self.slots, slots);
        drop(old);
        for m in 0..self.ends.len() {
            let h = hash(self.name(m));
            self.place(h, m as u32);
        }
        Some(())
    }

    /// `Ok` if a new meter `id` would fit under `max_meters`.
    pub fn check_room(&self, id: &str, max_meters: u32) -> Result<(), CoreError> {
        if self.is_full(max_meters) {
            return Err(Self::full_error(id, max_meters));
        }
        Ok(())
    }

    /// Whether `max_meters` meters are tracked, so that a new id is refused.
    pub fn is_full(&self, max_meters: u32) -> bool {
        self.len() >= max_meters as usize
    }

    /// The `meter_capacity` error refusing `id` in a full table: apart from
    /// [`MeterTable::check_room`] so that a caller refusing many names can
    /// format the text only for those it reports.
    pub fn full_error(id: &str, max_meters: u32) -> CoreError {
        CoreError::new(
            ErrorCode::MeterCapacity,
            format!("meter '{id}' refused: {max_meters} meters already tracked (maxMeters)"),
        )
    }

    /// Heap bytes reserved: the ids' text, their ends and the slots.
    pub fn bytes(&self) -> usize {
        self.text.capacity() + (self.ends.capacity() + self.slots.capacity()) * 4
    }

    /// Forgets every meter.
    pub fn clear(&mut self) {
        *self = MeterTable::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_bounded() {
        let mut t = MeterTable::default();
        assert_eq!(t.intern("a", 2), Ok((0, true)));
        assert_eq!(t.intern("b", 2), Ok((1, true)));
        assert_eq!(t.intern("a", 2), Ok((0, false)));
        let e = t.intern("c", 2).unwrap_err();
        assert_eq!(e.code, ErrorCode::MeterCapacity);
        assert!(e.message.contains("'c'"));
        assert_eq!(t.name(1), "b");
        assert_eq!(t.intern("", 2).unwrap_err().code, ErrorCode::BadMeterId);
    }

    /// Against a std map as the oracle: ids that share a prefix, collide in
    /// the low bits or arrive while the slots grow keep their indices, and
    /// every index names its id.
    #[test]
    fn many_ids_keep_their_indices_through_growth() {
        let mut t = MeterTable::default();
        let mut oracle = std::collections::HashMap::new();
        let ids: Vec<String> = (0..20_000u32)
            .map(|i| format!("meter-{:06}{}", i * 7919 % 20_011, "x".repeat(i as usize % 5)))
            .collect();
        // Every id, then every third one again (already interned).
        for (k, id) in ids.iter().chain(ids.iter().step_by(3)).enumerate() {
            let expected = oracle.len() as u32;
            let got = t.intern(id, 30_000).unwrap();
            match oracle.get(id) {
                Some(&m) => assert_eq!(got, (m, false)),
                None => {
                    assert_eq!(got, (expected, true));
                    oracle.insert(id.clone(), expected);
                }
            }
            if k % 997 == 0 {
                for (id, &m) in &oracle {
                    assert_eq!(t.get(id), Some(m));
                    assert_eq!(t.name(m as usize), id);
                }
            }
        }
        assert_eq!(t.len(), oracle.len());
        assert_eq!(t.get("meter-absent"), None);
        assert_eq!(t.name(t.len()), "");
        // One copy of each id, slots at most twice the meters rounded up, ends for the cap.
        let text: usize = oracle.keys().map(String::len).sum();
        assert!(t.bytes() <= 2 * text + 4 * 30_000 + 4 * 2 * 32_768, "{} bytes", t.bytes());
    }
}
