//! Bounded stores behind the non-totals channels: `MeterStore` (rows per
//! `meters.<group>` channel), `NoticeStore`, and `DetailCache` (LRU + TTL).
//!
//! Invariants:
//! - Each store holds at most its configured cap (`maxMeterEntities` over all
//!   meter channels, `maxNotices`, `detailCacheSize`); an entity past a cap is
//!   refused with an error naming the channel, never stored.
//! - Patches are idempotent and last-write-wins per (entity, seq): an entity
//!   remembers the `(epoch, seq)` that last wrote it, and an older write leaves it.
//! - Each channel's table interns an entity id once to a dense `u32` slot;
//!   what changed since the last flush is a list of slots with a flag per
//!   slot (so a flush sends each entity once, newest state: coalescing, and a
//!   row written again costs one hash lookup, no `String`); an entity the page
//!   held and the store drops keeps its slot until the flush sends it as an
//!   explicit `remove`, which frees the slot for the next new entity.

use rustc_hash::FxHashMap;

use super::{MeterRow, MeterRowRef, Notice};

/// Bytes one index entry may cost a table: the key's box and the slot
/// (24 bytes), a control byte, at the map's 7/8 load just after it doubled.
const INDEX_ENTRY_WORST_BYTES: usize = 64;
/// Heap bytes of a string of at most `n` bytes (allocator overhead included).
const fn string_worst(n: usize) -> usize {
    n + 16
}

/// The most bytes one entity may cost its table: its slot twice (the slot
/// vector just doubled), the heap strings `heap`, its index entry (which
/// holds the id again, `id`), and its place in `dirty` and `free` (doubled).
const fn entity_worst(slot: usize, heap: usize, id: usize) -> u128 {
    (2 * slot + heap + string_worst(id) + INDEX_ENTRY_WORST_BYTES + 2 * 2 * 4) as u128
}

/// The most bytes a meter row may cost the store (`Config::worst_case_bytes`):
/// a 256-byte id (twice) and a 64-character resource (≤ 256 bytes).
pub const METER_ENTITY_WORST_BYTES: u128 = entity_worst(
    std::mem::size_of::<Option<Slot<MeterRow>>>(),
    string_worst(256) + string_worst(256),
    256,
);

/// The most bytes a notice may cost the store: a 256-byte id (twice), title
/// and text of 4,096 characters (≤ 16,384 bytes each).
pub const NOTICE_WORST_BYTES: u128 = entity_worst(
    std::mem::size_of::<Option<Slot<Notice>>>(),
    string_worst(256) + 2 * string_worst(16_384),
    256,
);

/// A detail cache entry beside its body: the meter id (≤ 256 bytes) and the
/// entry itself, doubled for the vector's growth.
pub const DETAIL_ENTRY_BYTES: u128 = (string_worst(256) + 2 * 64) as u128;

/// Counters for `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Entity updates merged into a newer one before a flush sent them.
    pub coalesced_updates: u64,
    /// Entities dropped by the stores (a snapshot without them, an unsubscribe, expiry).
    pub evictions: u64,
    /// Entities refused at a store's cap.
    pub refused_entities: u64,
    /// Detail requests answered from the cache.
    pub detail_cache_hits: u64,
    /// Detail requests that needed a fetch.
    pub detail_fetches: u64,
    /// `meters`/`notices` messages posted to the page.
    pub update_messages: u64,
}

/// What a table needs of an entity: its id, and an in-place overwrite that
/// reuses the old value's buffers (an existing row is rewritten without
/// allocating on the common path).
trait Entity: Clone {
    fn id(&self) -> &str;
    fn overwrite(&mut self, from: &Self);
    fn into_id(self) -> String;
}

impl Entity for MeterRow {
    fn id(&self) -> &str {
        &self.meter
    }

    fn overwrite(&mut self, from: &Self) {
        // Same meter (the slot was found by it): its id stays.
        self.resource.clone_from(&from.resource);
        (self.ts, self.value, self.status) = (from.ts, from.value, from.status);
        (self.count, self.total) = (from.count, from.total);
    }

    fn into_id(self) -> String {
        self.meter
    }
}

impl Entity for Notice {
    fn id(&self) -> &str {
        &self.id
    }

    fn overwrite(&mut self, from: &Self) {
        self.clone_from(from);
    }

    fn into_id(self) -> String {
        self.id
    }
}

/// What an upsert reads a row from: the entity itself, or (for meters) a
/// borrowed [`MeterRowRef`] out of a binary DELTA's columns, which writes an
/// existing row in place and allocates only for a new entity.
trait Source<T> {
    fn source_id(&self) -> &str;
    fn to_entity(&self) -> T;
    fn write_into(&self, row: &mut T);
}

impl<T: Entity> Source<T> for T {
    fn source_id(&self) -> &str {
        self.id()
    }

    fn to_entity(&self) -> T {
        self.clone()
    }

    fn write_into(&self, row: &mut T) {
        row.overwrite(self);
    }
}

impl Source<MeterRow> for MeterRowRef<'_> {
    fn source_id(&self) -> &str {
        self.meter
    }

    fn to_entity(&self) -> MeterRow {
        self.to_row()
    }

    fn write_into(&self, row: &mut MeterRow) {
        // Same meter (the slot was found by it): its id stays. The resource
        // rarely changes; rewriting it reuses the string's buffer.
        if row.resource != self.resource {
            row.resource.clear();
            row.resource.push_str(self.resource);
        }
        (row.ts, row.value, row.status) = (self.ts, self.value, self.status);
        (row.count, row.total) = (self.count, self.total);
    }
}

/// One entity's place in a table: its newest row, the `(epoch, seq)` that
/// wrote it, whether the store holds it (`false`: removed, its `remove` not
/// flushed yet), whether it waits in the table's dirty list, and its `link`.
#[derive(Clone, Debug)]
struct Slot<T> {
    row: T,
    at: (u64, u64),
    held: bool,
    dirty: bool,
    /// For meter rows: the engine's dense index of this meter plus one (0:
    /// not known yet), so a row's reading reaches its window without a
    /// second lookup by id. Set only by [`MeterStore::apply_feeding`]'s
    /// caller, cleared by [`MeterStore::forget_links`] when the engine's
    /// meter table is reset; a slot placed anew starts at 0.
    link: u32,
}

/// What an upsert did.
enum Upsert {
    /// Written (new, or newer than what the entity held), in slot `.0`.
    Written(u32),
    /// The entity (slot `.0`) holds a newer write: left as it was.
    Older(u32),
    /// A new entity and no room for it (or no memory): not stored.
    Refused,
}

/// One channel's entities, each interned once to a dense `u32` slot: after
/// an id's first sight, a write is one hash lookup and writes in place, and
/// marking it changed is a flag and a `u32` push, never a `String`.
///
/// Invariants: `index` maps exactly the ids of the occupied slots, each to
/// its own slot; `dirty` lists each slot whose `dirty` flag is set, once;
/// a slot not held is dirty (its `remove` is owed) and is freed by the flush
/// that sends it; `held` counts the held slots. `free` lists the empty slots.
#[derive(Clone, Debug)]
struct Table<T> {
    index: FxHashMap<Box<str>, u32>,
    slots: Vec<Option<Slot<T>>>,
    free: Vec<u32>,
    dirty: Vec<u32>,
    held: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            index: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            held: 0,
        }
    }
}

impl<T: Entity> Table<T> {
    fn slot(&self, id: &str) -> Option<&Slot<T>> {
        let i = *self.index.get(id)?;
        self.slots.get(i as usize)?.as_ref()
    }

    fn holds(&self, id: &str) -> bool {
        self.slot(id).is_some_and(|s| s.held)
    }

    fn rows(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten().filter(|s| s.held).map(|s| &s.row)
    }

    /// Queues slot `i` for the next flush, once (a second change before the
    /// flush is coalesced into the first).
    fn mark(&mut self, i: u32, counters: &mut StreamCounters) {
        let Some(Some(s)) = self.slots.get_mut(i as usize) else { return };
        if s.dirty {
            counters.coalesced_updates += 1;
        } else {
            s.dirty = true;
            // `place` keeps room for every slot in `dirty`: no allocation here.
            self.dirty.push(i);
        }
    }

    /// Upserts `row` written at `at`; `room`: whether a new entity may be stored.
    fn upsert<S: Source<T>>(
        &mut self,
        row: &S,
        at: (u64, u64),
        room: bool,
        counters: &mut StreamCounters,
    ) -> Upsert {
        let i = match self.index.get(row.source_id()) {
            Some(&i) => i,
            None if !room => {
                counters.refused_entities += 1;
                return Upsert::Refused;
            }
            None => match self.place(row.to_entity(), at) {
                Some(i) => {
                    self.mark(i, counters);
                    return Upsert::Written(i);
                }
                None => {
                    counters.refused_entities += 1;
                    return Upsert::Refused;
                }
            },
        };
        let Some(Some(s)) = self.slots.get_mut(i as usize) else { return Upsert::Refused };
        if s.held {
            if s.at > at {
                return Upsert::Older(i);
            }
        } else if !room {
            // Removed and not flushed yet: to the store it is a new entity.
            counters.refused_entities += 1;
            return Upsert::Refused;
        } else {
            s.held = true;
            self.held += 1;
        }
        row.write_into(&mut s.row);
        s.at = at;
        self.mark(i, counters);
        Upsert::Written(i)
    }

    /// Interns a new entity into a free or new slot, held; `None` without
    /// the memory for it (nothing changed then).
    fn place(&mut self, row: T, at: (u64, u64)) -> Option<u32> {
        let next = self.slots.len();
        let reuse = self.free.last().copied();
        let grow = usize::from(reuse.is_none());
        // Room first, so nothing below can fail half way: the index entry,
        // and `dirty`/`free` as long as the slots (each lists a slot once).
        let want = next + grow;
        self.index.try_reserve(1).ok()?;
        self.slots.try_reserve(grow).ok()?;
        self.dirty.try_reserve(want.saturating_sub(self.dirty.len())).ok()?;
        self.free.try_reserve(want.saturating_sub(self.free.len())).ok()?;
        let i = match reuse {
            Some(i) => {
                self.free.pop();
                i
            }
            None => u32::try_from(next).ok()?,
        };
        self.index.insert(row.id().into(), i);
        let slot = Some(Slot { row, at, held: true, dirty: false, link: 0 });
        match self.slots.get_mut(i as usize) {
            Some(s) => *s = slot,
            None => self.slots.push(slot),
        }
        self.held += 1;
        Some(i)
    }

    /// Stops holding slot `i` (its `remove` goes at the next flush).
    fn unhold(&mut self, i: u32, counters: &mut StreamCounters) {
        if let Some(Some(s)) = self.slots.get_mut(i as usize) {
            if s.held {
                s.held = false;
                self.held -= 1;
                self.mark(i, counters);
            }
        }
    }

    /// Removes `id` unless a newer write than `at` holds it; true if removed.
    fn remove(&mut self, id: &str, at: (u64, u64), counters: &mut StreamCounters) -> bool {
        let Some(&i) = self.index.get(id) else { return false };
        let older = self
            .slots
            .get(i as usize)
            .and_then(Option::as_ref)
            .is_some_and(|s| s.held && s.at <= at);
        if older {
            self.unhold(i, counters);
        }
        older
    }

    /// Drops every entity not written at `at` (a full snapshot replaced
    /// them); with `at` `None`, every entity.
    fn evict_unless_written_at(&mut self, at: Option<(u64, u64)>, counters: &mut StreamCounters) {
        for i in 0..self.slots.len() {
            let gone = self.slots[i].as_ref().is_some_and(|s| s.held && Some(s.at) != at);
            if gone {
                counters.evictions += 1;
                // `i` < `slots.len()` <= u32::MAX + 1 (slots are `u32`-indexed).
                self.unhold(i as u32, counters);
            }
        }
    }

    /// Takes up to `max` changed entities, oldest change first: `(rows to
    /// upsert, ids to remove)`. A removed entity's slot is freed here.
    fn take(&mut self, max: usize) -> (Vec<T>, Vec<String>) {
        let k = self.dirty.len().min(max);
        let (mut up, mut rm) = (Vec::with_capacity(k), Vec::new());
        for n in 0..k {
            let i = self.dirty[n];
            let Some(cell) = self.slots.get_mut(i as usize) else { continue };
            match cell {
                Some(s) if s.held => {
                    s.dirty = false;
                    up.push(s.row.clone());
                }
                Some(_) => {
                    if let Some(s) = cell.take() {
                        self.index.remove(s.row.id());
                        // `place` reserved room for every slot in `free`.
                        self.free.push(i);
                        rm.push(s.row.into_id());
                    }
                }
                None => {}
            }
        }
        self.dirty.drain(..k);
        (up, rm)
    }

    /// Bytes held (estimate): `heap` is an entity's own heap bytes.
    fn bytes(&self, heap: usize) -> usize {
        self.slots.capacity() * (std::mem::size_of::<Option<Slot<T>>>() + heap)
            + self.index.capacity() * 48
            + (self.dirty.capacity() + self.free.capacity()) * 4
    }
}

/// Meter rows per `meters.<group>` channel, at most `cap` in all.
#[derive(Clone, Debug, Default)]
pub struct MeterStore {
    channels: Vec<(String, Table<MeterRow>)>,
}

/// Why a row was refused: the channel and meter, for the error event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The channel.
    pub channel: String,
    /// The first refused entity.
    pub first: String,
    /// How many were refused.
    pub count: u64,
}

impl Refused {
    fn add(slot: &mut Option<Refused>, channel: &str, id: &str) {
        match slot {
            Some(r) => r.count += 1,
            None => *slot = Some(Refused { channel: channel.into(), first: id.into(), count: 1 }),
        }
    }
}

impl MeterStore {
    /// Rows held over all channels.
    pub fn len(&self) -> usize {
        self.channels.iter().map(|(_, t)| t.held).sum()
    }

    /// True if no row is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One channel's rows, for tests.
    pub fn rows(&self, channel: &str) -> Vec<&MeterRow> {
        self.channels.iter().filter(|(c, _)| c == channel).flat_map(|(_, t)| t.rows()).collect()
    }

    /// Channels held.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.channels.iter().map(|(c, _)| c.as_str())
    }

    fn table(&mut self, channel: &str) -> &mut Table<MeterRow> {
        let i = match self.channels.iter().position(|(c, _)| c == channel) {
            Some(i) => i,
            None => {
                self.channels.push((channel.to_string(), Table::default()));
                self.channels.len() - 1
            }
        };
        // `i` is an index into `channels`, found or just pushed.
        &mut self.channels[i].1
    }

    /// Applies a patch written at `at = (epoch, seq)` (removes first, then
    /// upserts, in order; rows borrowed from a [`MeterPatch`](super::MeterPatch)
    /// or a [`MeterColumns`](super::MeterColumns) alike); `full`: a snapshot that
    /// replaces the channel. Returns what the cap refused, if anything.
    #[allow(clippy::too_many_arguments)]
    pub fn apply<'a>(
        &mut self,
        channel: &str,
        upsert: impl IntoIterator<Item = MeterRowRef<'a>>,
        remove: impl IntoIterator<Item = &'a str>,
        at: (u64, u64),
        full: bool,
        cap: usize,
        counters: &mut StreamCounters,
    ) -> Option<Refused> {
        let mut feed = |_: usize, _: &MeterRowRef<'a>, _: &mut u32| {};
        self.apply_feeding(channel, upsert, remove, at, full, cap, counters, &mut feed)
    }

    /// [`apply`](Self::apply), calling `feed(i, row, link)` for each upserted
    /// row `i` the store holds once it is applied (written, or older than
    /// the row held), in order, right after its upsert; `link` is the slot's
    /// link (the engine's meter index plus one, 0 until `feed` sets it),
    /// which `feed` may read and set. A refused row is not fed.
    /// (Upserts never stop holding a meter, and a meter the cap refused stays
    /// refused for the rest of the patch: so the rows fed are those whose
    /// meter the store holds after the patch, full snapshots' evictions aside.)
    #[allow(clippy::too_many_arguments)]
    pub fn apply_feeding<'a>(
        &mut self,
        channel: &str,
        upsert: impl IntoIterator<Item = MeterRowRef<'a>>,
        remove: impl IntoIterator<Item = &'a str>,
        at: (u64, u64),
        full: bool,
        cap: usize,
        counters: &mut StreamCounters,
        // `dyn`: one copy of this loop per row source, not one per caller.
        feed: &mut dyn FnMut(usize, &MeterRowRef<'a>, &mut u32),
    ) -> Option<Refused> {
        let mut held = self.len();
        let table = self.table(channel);
        let mut refused: Option<Refused> = None;
        for id in remove {
            if table.remove(id, at, counters) {
                held -= 1;
            }
        }
        for (n, row) in upsert.into_iter().enumerate() {
            let before = table.held;
            match table.upsert(&row, at, held < cap, counters) {
                Upsert::Refused => Refused::add(&mut refused, channel, row.meter),
                Upsert::Written(i) | Upsert::Older(i) => {
                    if let Some(Some(s)) = table.slots.get_mut(i as usize) {
                        feed(n, &row, &mut s.link);
                    }
                }
            }
            held = held + table.held - before;
        }
        if full {
            table.evict_unless_written_at(Some(at), counters);
        }
        refused
    }

    /// Forgets every slot's link (the engine's meter table was reset).
    pub fn forget_links(&mut self) {
        for (_, t) in &mut self.channels {
            for s in t.slots.iter_mut().flatten() {
                s.link = 0;
            }
        }
    }

    /// Whether `channel` holds a row for `meter`.
    pub fn holds(&self, channel: &str, meter: &str) -> bool {
        self.channels.iter().any(|(c, t)| c == channel && t.holds(meter))
    }

    /// Forgets a channel; its rows go to the page as removes at the next flush.
    pub fn drop_channel(&mut self, channel: &str, counters: &mut StreamCounters) {
        self.table(channel).evict_unless_written_at(None, counters);
    }

    /// Takes pending changes: `(channel, upserts, removes)` messages of at
    /// most `max` entities each.
    pub fn flush(&mut self, max: usize) -> Vec<(String, Vec<MeterRow>, Vec<String>)> {
        let mut out = Vec::new();
        for (name, t) in &mut self.channels {
            while !t.dirty.is_empty() {
                let (up, rm) = t.take(max.max(1));
                out.push((name.clone(), up, rm));
            }
        }
        // A channel emptied and flushed is forgotten.
        self.channels.retain(|(_, t)| t.held > 0 || !t.dirty.is_empty());
        out
    }

    /// Changed entities waiting for a flush.
    pub fn queued(&self) -> usize {
        self.channels.iter().map(|(_, t)| t.dirty.len()).sum()
    }

    /// Bytes held (estimate).
    pub fn bytes(&self) -> usize {
        self.channels.iter().map(|(c, t)| c.len() + t.bytes(64)).sum()
    }
}

/// Notices by id, at most `cap`.
#[derive(Clone, Debug, Default)]
pub struct NoticeStore {
    table: Table<Notice>,
}

impl NoticeStore {
    /// Notices held.
    pub fn len(&self) -> usize {
        self.table.held
    }

    /// True if none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every notice, for tests.
    pub fn notices(&self) -> Vec<&Notice> {
        self.table.rows().collect()
    }

    /// Applies a patch; see [`MeterStore::apply`].
    pub fn apply(
        &mut self,
        upsert: Vec<Notice>,
        remove: &[String],
        at: (u64, u64),
        full: bool,
        cap: usize,
        counters: &mut StreamCounters,
    ) -> Option<Refused> {
        let mut refused: Option<Refused> = None;
        for id in remove {
            self.table.remove(id, at, counters);
        }
        for n in &upsert {
            let room = self.table.held < cap;
            if let Upsert::Refused = self.table.upsert(n, at, room, counters) {
                Refused::add(&mut refused, "notices", &n.id);
            }
        }
        if full {
            self.table.evict_unless_written_at(Some(at), counters);
        }
        refused
    }

    /// Forgets every notice (unsubscribed).
    pub fn clear(&mut self, counters: &mut StreamCounters) {
        self.table.evict_unless_written_at(None, counters);
    }

    /// Takes pending changes in messages of at most `max` entities.
    pub fn flush(&mut self, max: usize) -> Vec<(Vec<Notice>, Vec<String>)> {
        let mut out = Vec::new();
        while !self.table.dirty.is_empty() {
            out.push(self.table.take(max.max(1)));
        }
        out
    }

    /// Changed notices waiting for a flush.
    pub fn queued(&self) -> usize {
        self.table.dirty.len()
    }

    /// Bytes held (estimate).
    pub fn bytes(&self) -> usize {
        self.table.bytes(256)
    }
}

/// Detail bodies by meter: at most `cap`, each valid for `ttl_ms`, least
/// recently used evicted first, the selected meter never.
#[derive(Clone, Debug, Default)]
pub struct DetailCache {
    /// `(meter, body, fetched at, last used)`, in no particular order.
    entries: Vec<(String, String, f64, u64)>,
    selected: Option<String>,
    clock: u64,
}

impl DetailCache {
    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The selected meter (never evicted).
    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    /// Selects `meter`; returns its body if cached and fresh at `now`.
    pub fn select(&mut self, meter: &str, now: f64, ttl_ms: f64) -> Option<String> {
        self.selected = Some(meter.to_string());
        self.clock += 1;
        let clock = self.clock;
        let e = self.entries.iter_mut().find(|e| e.0 == meter)?;
        if now - e.2 > ttl_ms {
            return None;
        }
        e.3 = clock;
        Some(e.1.clone())
    }

    /// Stores `meter`'s body fetched at `now`; returns the evicted count.
    pub fn insert(&mut self, meter: &str, body: String, now: f64, cap: usize, ttl: f64) -> u64 {
        self.clock += 1;
        let clock = self.clock;
        let mut evicted = 0;
        let selected = self.selected.clone();
        let before = self.entries.len();
        self.entries
            .retain(|e| e.0 == meter || now - e.2 <= ttl || Some(&e.0) == selected.as_ref());
        evicted += (before - self.entries.len()) as u64;
        match self.entries.iter_mut().find(|e| e.0 == meter) {
            Some(e) => {
                e.1 = body;
                e.2 = now;
                e.3 = clock;
            }
            None => self.entries.push((meter.to_string(), body, now, clock)),
        }
        while self.entries.len() > cap.max(1) {
            let victim = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| Some(&e.0) != selected.as_ref() && e.0 != meter)
                .min_by_key(|(_, e)| e.3)
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    self.entries.swap_remove(i);
                    evicted += 1;
                }
                None => break,
            }
        }
        evicted
    }

    /// Bytes held (estimate).
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.0.len() + e.1.len() + 48).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decimal::Decimal;
    use crate::core::stream::MeterStatus;
    use std::collections::{BTreeMap, HashMap, HashSet};

    type Rows = HashMap<String, (MeterRow, (u64, u64))>;

    /// The store as it was when keyed by `String`s, before the slots: the
    /// oracle. Same rules, written the plain way.
    #[derive(Default)]
    struct Model {
        channels: BTreeMap<String, (Rows, HashSet<String>)>,
        c: StreamCounters,
    }

    fn mark(dirty: &mut HashSet<String>, id: &str, c: &mut StreamCounters) {
        if !dirty.insert(id.to_string()) {
            c.coalesced_updates += 1;
        }
    }

    impl Model {
        fn len(&self) -> usize {
            self.channels.values().map(|(r, _)| r.len()).sum()
        }

        #[allow(clippy::too_many_arguments)]
        fn apply(
            &mut self,
            ch: &str,
            upsert: &[MeterRow],
            remove: &[String],
            at: (u64, u64),
            full: bool,
            cap: usize,
        ) -> Option<(String, u64)> {
            let mut held = self.len();
            let (rows, dirty) = self.channels.entry(ch.to_string()).or_default();
            let c = &mut self.c;
            for id in remove {
                if rows.get(id).is_some_and(|(_, w)| *w <= at) {
                    rows.remove(id);
                    held -= 1;
                    mark(dirty, id, c);
                }
            }
            let mut refused: Option<(String, u64)> = None;
            for r in upsert {
                match rows.get_mut(&r.meter) {
                    Some((old, w)) => {
                        if *w > at {
                            continue;
                        }
                        *old = r.clone();
                        *w = at;
                    }
                    None => {
                        if held >= cap {
                            c.refused_entities += 1;
                            refused.get_or_insert((r.meter.clone(), 0)).1 += 1;
                            continue;
                        }
                        rows.insert(r.meter.clone(), (r.clone(), at));
                        held += 1;
                    }
                }
                mark(dirty, &r.meter, c);
            }
            if full {
                let gone: Vec<String> =
                    rows.iter().filter(|(_, (_, w))| *w != at).map(|(k, _)| k.clone()).collect();
                for id in gone {
                    rows.remove(&id);
                    c.evictions += 1;
                    mark(dirty, &id, c);
                }
            }
            refused
        }

        fn drop_channel(&mut self, ch: &str) {
            let (rows, dirty) = self.channels.entry(ch.to_string()).or_default();
            for id in rows.keys().cloned().collect::<Vec<_>>() {
                rows.remove(&id);
                self.c.evictions += 1;
                mark(dirty, &id, &mut self.c);
            }
        }

        /// Per channel: (rows upserted sorted by meter, ids removed sorted).
        fn flush(&mut self) -> BTreeMap<String, (Vec<MeterRow>, Vec<String>)> {
            let mut out = BTreeMap::new();
            for (name, (rows, dirty)) in &mut self.channels {
                if dirty.is_empty() {
                    continue;
                }
                let (mut up, mut rm) = (Vec::new(), Vec::new());
                for id in dirty.drain() {
                    match rows.get(&id) {
                        Some((r, _)) => up.push(r.clone()),
                        None => rm.push(id),
                    }
                }
                up.sort_by(|a, b| a.meter.cmp(&b.meter));
                rm.sort();
                out.insert(name.clone(), (up, rm));
            }
            self.channels.retain(|_, (r, d)| !r.is_empty() || !d.is_empty());
            out
        }
    }

    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    fn row(m: u64, v: u64) -> MeterRow {
        MeterRow {
            meter: format!("m{m}"),
            resource: if v % 2 == 0 { "water".into() } else { "energy-long-name".into() },
            ts: v as f64,
            value: v as f64,
            status: MeterStatus::Ok,
            count: v,
            total: Decimal::new(v as i64, 1),
        }
    }

    /// The slot store against the `String`-keyed oracle: after every step the
    /// same rows, counters, refusals and queue; every flush (split into
    /// messages of `max`) the same upserts and removes per channel.
    #[test]
    fn slots_behave_as_the_string_keyed_store() {
        const CHANNELS: [&str; 2] = ["meters.a", "meters.b"];
        let mut flushes = 0;
        for seed in 0..1_500u64 {
            let mut r = Lcg(seed);
            let cap = 2 + r.below(9) as usize;
            let (mut store, mut model) = (MeterStore::default(), Model::default());
            let mut c = StreamCounters::default();
            for step in 0..40 {
                let ch = CHANNELS[r.below(2) as usize];
                match r.below(20) {
                    0 => {
                        store.drop_channel(ch, &mut c);
                        model.drop_channel(ch);
                    }
                    1..=6 => {
                        let max = 1 + r.below(4) as usize;
                        let mut got: BTreeMap<String, (Vec<MeterRow>, Vec<String>)> =
                            BTreeMap::new();
                        for (name, up, rm) in store.flush(max) {
                            assert!(up.len() + rm.len() <= max);
                            let e = got.entry(name).or_default();
                            e.0.extend(up);
                            e.1.extend(rm);
                        }
                        for (up, rm) in got.values_mut() {
                            up.sort_by(|a, b| a.meter.cmp(&b.meter));
                            rm.sort();
                        }
                        assert_eq!(got, model.flush(), "seed {seed} step {step}");
                        flushes += 1;
                    }
                    _ => {
                        let at = (1 + r.below(2), r.below(12));
                        let ups: Vec<MeterRow> =
                            (0..r.below(6)).map(|_| row(r.below(14), r.below(1_000))).collect();
                        let rms: Vec<String> =
                            (0..r.below(3)).map(|_| format!("m{}", r.below(14))).collect();
                        let full = r.below(8) == 0;
                        let a = store.apply(
                            ch,
                            ups.iter().map(MeterRow::as_ref),
                            rms.iter().map(String::as_str),
                            at,
                            full,
                            cap,
                            &mut c,
                        );
                        let b = model.apply(ch, &ups, &rms, at, full, cap);
                        assert_eq!(
                            a.map(|x| (x.first, x.count)),
                            b,
                            "seed {seed} step {step}: refused"
                        );
                    }
                }
                assert_eq!(c, model.c, "seed {seed} step {step}: counters");
                assert_eq!(store.len(), model.len(), "seed {seed} step {step}");
                let queued: usize = model.channels.values().map(|(_, d)| d.len()).sum();
                assert_eq!(store.queued(), queued, "seed {seed} step {step}");
                for name in CHANNELS {
                    let mut mine: Vec<MeterRow> = store.rows(name).into_iter().cloned().collect();
                    mine.sort_by(|a, b| a.meter.cmp(&b.meter));
                    let mut want: Vec<MeterRow> = model
                        .channels
                        .get(name)
                        .map(|(rows, _)| rows.values().map(|(r, _)| r.clone()).collect())
                        .unwrap_or_default();
                    want.sort_by(|a, b| a.meter.cmp(&b.meter));
                    assert_eq!(mine, want, "seed {seed} step {step}: rows of {name}");
                    for m in 0..14 {
                        let id = format!("m{m}");
                        let held =
                            model.channels.get(name).is_some_and(|(r, _)| r.contains_key(&id));
                        assert_eq!(store.holds(name, &id), held);
                    }
                }
            }
        }
        assert!(flushes > 10_000, "{flushes}");
    }
}
