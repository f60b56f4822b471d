//! Bounded stores behind the non-totals channels: `MeterStore` (rows per
//! `meters.<group>` channel), `NoticeStore`, and `DetailCache` (LRU + TTL).
//!
//! Invariants:
//! - Each store holds at most its configured cap (`maxMeterEntities` over all
//!   meter channels, `maxNotices`, `detailCacheSize`); an entity past a cap is
//!   refused with an error naming the channel, never stored.
//! - Patches are idempotent and last-write-wins per (entity, seq): an entity
//!   remembers the `(epoch, seq)` that last wrote it, and an older write leaves it.
//! - What changed since the last flush is kept as a set of entity names (so a
//!   flush sends each entity once, newest state: coalescing); an entity the
//!   page held and the store drops is sent as an explicit `remove`.

use rustc_hash::{FxHashMap, FxHashSet};

use super::{MeterRow, Notice};

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

/// One channel's entities and the names changed since the last flush.
#[derive(Clone, Debug)]
struct Table<T> {
    // Fx hashing, as `MeterTable` keys meter ids: a 1,000-row delta hashes
    // each id three times, and SipHash was a visible share of its apply.
    rows: FxHashMap<String, (T, (u64, u64))>,
    dirty: FxHashSet<String>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { rows: FxHashMap::default(), dirty: FxHashSet::default() }
    }
}

impl<T: Clone> Table<T> {
    fn mark(&mut self, id: &str, counters: &mut StreamCounters) {
        if self.dirty.contains(id) {
            counters.coalesced_updates += 1;
        } else {
            self.dirty.insert(id.to_string());
        }
    }

    /// Upserts `row` written at `at`; `Err(id)` if it is new and `room` is 0.
    fn upsert(
        &mut self,
        id: String,
        row: T,
        at: (u64, u64),
        room: usize,
        counters: &mut StreamCounters,
    ) -> Result<bool, String> {
        match self.rows.get_mut(&id) {
            Some((old, written)) => {
                if *written > at {
                    return Ok(false);
                }
                *old = row;
                *written = at;
            }
            None => {
                if room == 0 {
                    counters.refused_entities += 1;
                    return Err(id);
                }
                self.rows.insert(id.clone(), (row, at));
            }
        }
        // The name moves into the dirty set unless it is there already.
        if self.dirty.contains(&id) {
            counters.coalesced_updates += 1;
        } else {
            self.dirty.insert(id);
        }
        Ok(true)
    }

    fn remove(&mut self, id: &str, at: (u64, u64), counters: &mut StreamCounters) {
        if self.rows.get(id).is_some_and(|(_, w)| *w <= at) {
            self.rows.remove(id);
            self.mark(id, counters);
        }
    }

    /// Drops every entity not written at `at` (a full snapshot replaced them).
    fn retain_written_at(&mut self, at: (u64, u64), counters: &mut StreamCounters) {
        let gone: Vec<String> =
            self.rows.iter().filter(|(_, (_, w))| *w != at).map(|(k, _)| k.clone()).collect();
        for id in gone {
            self.rows.remove(&id);
            counters.evictions += 1;
            self.mark(&id, counters);
        }
    }

    /// Takes up to `max` changed names: `(rows to upsert, ids to remove)`.
    fn take(&mut self, max: usize) -> (Vec<T>, Vec<String>) {
        let names: Vec<String> = if self.dirty.len() <= max {
            // The usual case: everything changed fits one message; no copies of names.
            let all: Vec<String> = self.dirty.drain().collect();
            all
        } else {
            self.dirty.iter().take(max).cloned().collect()
        };
        let (mut up, mut rm) = (Vec::with_capacity(names.len()), Vec::new());
        for id in names {
            self.dirty.remove(&id);
            match self.rows.get(&id) {
                Some((row, _)) => up.push(row.clone()),
                None => rm.push(id),
            }
        }
        (up, rm)
    }

    fn bytes(&self, per_row: usize) -> usize {
        self.rows.capacity() * (per_row + 48) + self.dirty.capacity() * 48
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

impl MeterStore {
    /// Rows held over all channels.
    pub fn len(&self) -> usize {
        self.channels.iter().map(|(_, t)| t.rows.len()).sum()
    }

    /// True if no row is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One channel's rows, for tests.
    pub fn rows(&self, channel: &str) -> Vec<&MeterRow> {
        self.channels
            .iter()
            .filter(|(c, _)| c == channel)
            .flat_map(|(_, t)| t.rows.values().map(|(r, _)| r))
            .collect()
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

    /// Applies a patch written at `at = (epoch, seq)`; `full`: a snapshot that
    /// replaces the channel. Returns what the cap refused, if anything.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        channel: &str,
        upsert: &[MeterRow],
        remove: &[String],
        at: (u64, u64),
        full: bool,
        cap: usize,
        counters: &mut StreamCounters,
    ) -> Option<Refused> {
        let mut held = self.len();
        let table = self.table(channel);
        let mut refused: Option<Refused> = None;
        for id in remove {
            let had = table.rows.contains_key(id);
            table.remove(id, at, counters);
            if had && !table.rows.contains_key(id) {
                held -= 1;
            }
        }
        for row in upsert {
            // An existing row is overwritten in place (its id and resource
            // strings reused): no allocation on the common path.
            match table.rows.get_mut(row.meter.as_str()) {
                Some((old, written)) => {
                    if *written > at {
                        continue;
                    }
                    old.resource.clone_from(&row.resource);
                    (old.ts, old.value, old.status) = (row.ts, row.value, row.status);
                    (old.count, old.total) = (row.count, row.total);
                    *written = at;
                }
                None => {
                    if held >= cap {
                        counters.refused_entities += 1;
                        match &mut refused {
                            Some(r) => r.count += 1,
                            None => {
                                let first = row.meter.clone();
                                refused = Some(Refused { channel: channel.into(), first, count: 1 })
                            }
                        }
                        continue;
                    }
                    table.rows.insert(row.meter.clone(), (row.clone(), at));
                    held += 1;
                }
            }
            table.mark(&row.meter, counters);
        }
        if full {
            table.retain_written_at(at, counters);
        }
        refused
    }

    /// Whether `channel` holds a row for `meter`.
    pub fn holds(&self, channel: &str, meter: &str) -> bool {
        self.channels.iter().any(|(c, t)| c == channel && t.rows.contains_key(meter))
    }

    /// Forgets a channel; its rows go to the page as removes at the next flush.
    pub fn drop_channel(&mut self, channel: &str, counters: &mut StreamCounters) {
        let t = self.table(channel);
        let ids: Vec<String> = t.rows.keys().cloned().collect();
        for id in ids {
            t.rows.remove(&id);
            counters.evictions += 1;
            t.mark(&id, counters);
        }
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
        self.channels.retain(|(_, t)| !t.rows.is_empty() || !t.dirty.is_empty());
        out
    }

    /// Changed entities waiting for a flush.
    pub fn queued(&self) -> usize {
        self.channels.iter().map(|(_, t)| t.dirty.len()).sum()
    }

    /// Bytes held (estimate).
    pub fn bytes(&self) -> usize {
        self.channels.iter().map(|(c, t)| c.len() + t.bytes(160)).sum()
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
        self.table.rows.len()
    }

    /// True if none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every notice, for tests.
    pub fn notices(&self) -> Vec<&Notice> {
        self.table.rows.values().map(|(n, _)| n).collect()
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
        for n in upsert {
            let id = n.id.clone();
            let room = cap.saturating_sub(self.table.rows.len());
            if let Err(id) = self.table.upsert(id, n, at, room, counters) {
                match &mut refused {
                    Some(r) => r.count += 1,
                    None => {
                        refused = Some(Refused { channel: "notices".into(), first: id, count: 1 })
                    }
                }
            }
        }
        if full {
            self.table.retain_written_at(at, counters);
        }
        refused
    }

    /// Forgets every notice (unsubscribed).
    pub fn clear(&mut self, counters: &mut StreamCounters) {
        let ids: Vec<String> = self.table.rows.keys().cloned().collect();
        for id in ids {
            self.table.rows.remove(&id);
            counters.evictions += 1;
            self.table.mark(&id, counters);
        }
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
