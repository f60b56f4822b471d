//! `KeyTable`: stream and batch keys (`u32` chosen by the sender) to values.
//!
//! Keys are picked by whoever encodes a payload, so a table must never be sized
//! by the largest key named: a 40-byte frame binding key 4,294,967,294 must not
//! reserve 4 billion slots. A table keeps a dense `Vec` while keys are dense
//! relative to the entries bound (a key below `2 × entries + DENSE_SLACK` may grow
//! it), and puts any other key in a hash map. Lookups stay O(1): one bounds check
//! and a load for dense keys, a hash probe only when the map is non-empty.
//!
//! Invariants: `dense.len() <= max(DENSE_SLACK, 2 × entries + DENSE_SLACK)`;
//! a key is in at most one of `dense` and `sparse`; binding a key to the
//! table's `unbound` value when it is not bound stores nothing; growth is
//! `try_reserve` and a failure leaves the table unchanged.

use std::collections::{TryReserveError, VecDeque};

use rustc_hash::FxHashMap;

/// Keys below this always fit the dense part, whatever the number of entries.
pub const DENSE_SLACK: usize = 4_096;

/// Worst-case bytes per key a table of up to `N` keys (8-byte values) holds:
/// the dense part is at most `N` slots of 8 B; the map holds at most `N / 2`
/// entries (the `s`-th key it takes was bound as entry `j >= s`, so it is at
/// least `2 (s - 1) + DENSE_SLACK`, and below `N`), each at most 39 B (a 16 B
/// slot and a control byte, at 7/16 load just after the map doubled). So
/// `8 + 39 / 2`, rounded up. [`crate::core::config::Config::worst_case_bytes`]
/// counts every key table at this rate.
pub const WORST_BYTES_PER_KEY: u64 = 28;

/// Keys to values, dense for small keys and hashed for sparse ones.
#[derive(Clone, Debug)]
pub struct KeyTable<V: Copy + PartialEq> {
    dense: Vec<V>,
    sparse: FxHashMap<u32, V>,
    /// Distinct keys bound so far (not decreased by an unbind).
    entries: usize,
    unbound: V,
}

impl<V: Copy + PartialEq> KeyTable<V> {
    /// An empty table whose unbound keys read as `unbound`.
    pub fn new(unbound: V) -> Self {
        KeyTable { dense: Vec::new(), sparse: FxHashMap::default(), entries: 0, unbound }
    }

    /// Room for keys `0..n` in the dense part at once, before any is bound (a
    /// batch's keys are its bindings' indices), so binding them does not
    /// double the table step by step. Does nothing once a key is bound.
    pub fn reserve_dense(&mut self, n: usize) -> Result<(), TryReserveError> {
        if self.dense.is_empty() && self.sparse.is_empty() {
            self.dense.try_reserve_exact(n)?;
            self.dense.resize(n, self.unbound);
        }
        Ok(())
    }

    /// The value bound to `key`, or the table's `unbound` value.
    #[inline]
    pub fn get(&self, key: u32) -> V {
        match self.dense.get(key as usize) {
            Some(&v) => v,
            None if self.sparse.is_empty() => self.unbound,
            None => self.sparse.get(&key).copied().unwrap_or(self.unbound),
        }
    }

    /// Distinct keys bound so far.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Binds `key` to `value` (unbinds it when `value` is the unbound value).
    /// The dense part never grows past `max_keys` slots (the caller's bound on
    /// keys, `maxStreamKeys`). Allocates at most a constant times the entries
    /// bound; an allocation failure leaves the table as it was.
    pub fn bind(&mut self, key: u32, value: V, max_keys: u32) -> Result<(), TryReserveError> {
        let k = key as usize;
        if let Some(slot) = self.dense.get_mut(k) {
            if *slot == self.unbound && value != self.unbound {
                self.entries += 1;
            }
            *slot = value;
            return Ok(());
        }
        if let Some(slot) = self.sparse.get_mut(&key) {
            *slot = value;
            return Ok(());
        }
        if value == self.unbound {
            return Ok(());
        }
        let limit = self.entries.saturating_add(1).saturating_mul(2).saturating_add(DENSE_SLACK);
        if k < limit {
            // Grow geometrically (so sparse keys migrate O(log n) times), but never
            // past the limit the entries allow.
            let len = self.dense.len();
            let new_len = (k + 1).max(len.saturating_mul(2).min(limit).min(max_keys as usize));
            self.dense.try_reserve_exact(new_len - len)?;
            self.dense.resize(new_len, self.unbound);
            self.migrate();
            if let Some(slot) = self.dense.get_mut(k) {
                *slot = value;
            }
        } else {
            self.sparse.try_reserve(1)?;
            self.sparse.insert(key, value);
        }
        self.entries += 1;
        Ok(())
    }

    /// Moves map entries the dense part now covers into it.
    fn migrate(&mut self) {
        if self.sparse.is_empty() {
            return;
        }
        let len = self.dense.len();
        let dense = &mut self.dense;
        self.sparse.retain(|&k, v| match dense.get_mut(k as usize) {
            Some(slot) if (k as usize) < len => {
                *slot = *v;
                false
            }
            _ => true,
        });
    }

    /// Forgets every key and releases the memory.
    pub fn clear(&mut self) {
        *self = KeyTable::new(self.unbound);
    }

    /// Bytes reserved (the map's at its capacity).
    pub fn bytes(&self) -> usize {
        let v = std::mem::size_of::<V>();
        self.dense.capacity() * v + self.sparse.capacity() * (v + 4 + 1)
    }
}

/// Keys bound to a meter id that is not interned yet, with a tag (the
/// resource, for ledger keys). A meter is interned only when one of its
/// readings is accepted, so a binding whose readings are all refused costs no
/// meter slot; until then its name waits here. At most `cap` names wait (the
/// caller passes the meters still free under `maxMeters`); each is at most
/// `MAX_METER_ID_BYTES` long.
#[derive(Clone, Debug, Default)]
pub struct PendingNames<T: Copy> {
    names: FxHashMap<u32, (Box<str>, T, u64)>,
    /// Keys in the order they started waiting, with their insertion number
    /// (entries whose key was since removed or re-bound are skipped).
    order: VecDeque<(u32, u64)>,
    next: u64,
    name_bytes: usize,
}

impl<T: Copy> PendingNames<T> {
    /// The name and tag waiting on `key`, if any.
    #[inline]
    pub fn get(&self, key: u32) -> Option<(&str, T)> {
        if self.names.is_empty() {
            return None;
        }
        self.names.get(&key).map(|(n, t, _)| (&**n, *t))
    }

    /// Whether no name waits.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Makes `key` wait on `name`. When `cap` names already wait: with `evict`
    /// (a table that persists across payloads) the longest-waiting name stops
    /// waiting, so a sender cannot lock the table with names it never sends a
    /// valid reading for (that key is unbound; its later readings are
    /// `unknown_key`); without, the new name is refused (`false`), as the
    /// names of one payload are refused in order past `maxMeters`. `false`
    /// also when memory ran out; the key is then left unbound.
    pub fn insert(&mut self, key: u32, name: &str, tag: T, cap: usize, evict: bool) -> bool {
        self.remove(key);
        if self.names.len() >= cap {
            if !evict || cap == 0 {
                return false;
            }
            self.evict_oldest();
        }
        if self.names.try_reserve(1).is_err() || self.order.try_reserve(1).is_err() {
            return false;
        }
        self.name_bytes += name.len();
        self.names.insert(key, (name.into(), tag, self.next));
        self.order.push_back((key, self.next));
        self.next += 1;
        if self.order.len() > 2 * self.names.len() + 16 {
            let names = &self.names;
            self.order.retain(|(k, n)| names.get(k).is_some_and(|e| e.2 == *n));
        }
        true
    }

    fn evict_oldest(&mut self) {
        while let Some((k, n)) = self.order.pop_front() {
            if self.names.get(&k).is_some_and(|e| e.2 == n) {
                self.remove(k);
                return;
            }
        }
    }

    /// Stops `key` waiting.
    pub fn remove(&mut self, key: u32) {
        if self.names.is_empty() {
            return;
        }
        if let Some((n, _, _)) = self.names.remove(&key) {
            self.name_bytes -= n.len();
        }
    }

    /// Forgets every waiting name.
    pub fn clear(&mut self) {
        *self = PendingNames {
            names: FxHashMap::default(),
            order: VecDeque::new(),
            next: 0,
            name_bytes: 0,
        };
    }

    /// Bytes held: the names, the map's slots and the order queue.
    pub fn bytes(&self) -> usize {
        self.name_bytes
            + self.names.capacity() * (4 + std::mem::size_of::<(Box<str>, T, u64)>() + 1)
            + self.order.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: u64 = u64::MAX;

    #[test]
    fn dense_keys_stay_in_the_vector() {
        let mut t = KeyTable::new(U);
        for k in 0..10_000u32 {
            assert!(t.bind(k, u64::from(k) * 3, u32::MAX).is_ok());
        }
        assert!(t.sparse.is_empty());
        assert_eq!((t.get(9_999), t.get(10_000), t.entries()), (29_997, U, 10_000));
    }

    #[test]
    fn a_far_key_goes_to_the_map_and_migrates_when_dense() {
        let mut t = KeyTable::new(U);
        assert!(t.bind(u32::MAX - 1, 7, u32::MAX).is_ok());
        assert!(t.bind(10_000, 8, u32::MAX).is_ok());
        assert!(t.bytes() < 1_024, "{} bytes for two keys", t.bytes());
        assert_eq!((t.get(u32::MAX - 1), t.get(10_000), t.get(3)), (7, 8, U));
        for k in 0..9_000u32 {
            assert!(t.bind(k, 1, u32::MAX).is_ok());
        }
        // 10,000 is now below 2 × entries + slack: it moved into the vector.
        assert!(t.dense.len() > 10_000 && !t.sparse.contains_key(&10_000));
        assert_eq!((t.get(10_000), t.get(u32::MAX - 1)), (8, 7));
    }

    #[test]
    fn unbinding_an_unbound_key_stores_nothing() {
        let mut t = KeyTable::new(U);
        assert!(t.bind(1 << 30, U, u32::MAX).is_ok());
        assert_eq!((t.bytes(), t.entries()), (0, 0));
        assert!(t.bind(5, 1, u32::MAX).is_ok() && t.bind(5, U, u32::MAX).is_ok());
        assert_eq!(t.get(5), U);
    }

    #[test]
    fn pending_names_are_capped_evicting_the_oldest_or_refusing_the_newest() {
        let mut p = PendingNames::default();
        for k in 0..10u32 {
            assert!(p.insert(k, &format!("m{k}"), 1u8, 4, true));
        }
        assert_eq!(p.names.len(), 4);
        assert_eq!((p.get(5), p.get(6), p.get(9)), (None, Some(("m6", 1)), Some(("m9", 1))));
        assert!(p.bytes() < 2_048);
        p.remove(9);
        assert_eq!(p.get(9), None);
        assert_eq!(p.name_bytes, p.names.values().map(|(n, _, _)| n.len()).sum::<usize>());
        // Without eviction the first names hold and the newest is refused.
        let mut q = PendingNames::default();
        assert!(q.insert(0, "a", (), 2, false) && q.insert(1, "b", (), 2, false));
        assert!(!q.insert(2, "c", (), 2, false));
        assert_eq!((q.get(0), q.get(2)), (Some(("a", ())), None));
        // Re-binding one key many times keeps the order queue short.
        for i in 0..1_000u32 {
            assert!(q.insert(1, &format!("b{i}"), (), 2, false));
        }
        assert!(q.order.len() <= 2 * q.names.len() + 17);
    }
}
