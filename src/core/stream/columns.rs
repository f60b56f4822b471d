//! A `meters.<group>` patch in columns, as a binary DELTA (kind 4,
//! PROTOCOL.md 3.10) carries it: one string holding every meter id, fixed-width
//! columns for the rest, and a small table of resource names. Applying it
//! writes each row into the slot store through a borrowed [`MeterRowRef`], so
//! a row costs no `String` after its meter's first sight (the store interns
//! the id once).
//!
//! Invariants (kept by the only builder, [`MeterColumns::push_row`] /
//! [`MeterColumns::push_remove`], and checked again by the accessors, which
//! never panic): `ends` holds the end of each id in `ids`, upserted rows
//! first; every column has one entry per upserted row; each `resource` index
//! names an entry of `resources`.

use super::{MeterPatch, MeterRow, MeterStatus};
use crate::core::decimal::Decimal;

/// Most distinct resource names a text DELTA's patch holds in columns
/// ([`MeterColumns::resource_index`]); a group's rows name a handful. A
/// binary DELTA's names come indexed and are not looked up.
pub const MAX_TEXT_RESOURCES: usize = 64;

/// One meter row, borrowed: what the store and the windows read of a row,
/// from a [`MeterRow`] or from a column of a [`MeterColumns`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeterRowRef<'a> {
    /// Meter id.
    pub meter: &'a str,
    /// Resource it measures (at most 64 characters).
    pub resource: &'a str,
    /// Timestamp of its latest reading (ms since the Unix epoch).
    pub ts: f64,
    /// Its latest reading's value.
    pub value: f64,
    /// Reporting status.
    pub status: MeterStatus,
    /// Readings since the server started.
    pub count: u64,
    /// Consumption since the server started, exact.
    pub total: Decimal,
}

impl MeterRowRef<'_> {
    /// The row, owned.
    pub fn to_row(&self) -> MeterRow {
        MeterRow {
            meter: self.meter.to_owned(),
            resource: self.resource.to_owned(),
            ts: self.ts,
            value: self.value,
            status: self.status,
            count: self.count,
            total: self.total,
        }
    }
}

impl MeterRow {
    /// The row, borrowed.
    pub fn as_ref(&self) -> MeterRowRef<'_> {
        MeterRowRef {
            meter: &self.meter,
            resource: &self.resource,
            ts: self.ts,
            value: self.value,
            status: self.status,
            count: self.count,
            total: self.total,
        }
    }
}

/// A `meters.<group>` patch in columns (see the module doc).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeterColumns {
    /// Every meter id, upserted rows first, then the removed ones, concatenated.
    pub ids: String,
    /// The end of each id in `ids`.
    pub ends: Vec<u32>,
    /// The distinct resource names the rows use.
    pub resources: Vec<String>,
    /// Per row: its resource, an index into `resources`.
    pub resource: Vec<u16>,
    /// Per row: `ts`.
    pub ts: Vec<f64>,
    /// Per row: `value`.
    pub value: Vec<f64>,
    /// Per row: `status`.
    pub status: Vec<MeterStatus>,
    /// Per row: `count`.
    pub count: Vec<u64>,
    /// Per row: `total`.
    pub total: Vec<Decimal>,
}

impl MeterColumns {
    /// Upserted rows.
    pub fn rows(&self) -> usize {
        self.ts.len()
    }

    /// The `n`th id in `ids` (`""` past the end: never, by the invariants).
    fn id(&self, n: usize) -> &str {
        let start = match n.checked_sub(1) {
            Some(p) => self.ends.get(p).map_or(0, |&e| e as usize),
            None => 0,
        };
        let end = self.ends.get(n).map_or(start, |&e| e as usize);
        self.ids.get(start..end).unwrap_or("")
    }

    /// Row `i`, if there is one.
    pub fn row(&self, i: usize) -> Option<MeterRowRef<'_>> {
        let r = *self.resource.get(i)?;
        Some(MeterRowRef {
            meter: self.id(i),
            resource: self.resources.get(usize::from(r)).map_or("", String::as_str),
            ts: *self.ts.get(i)?,
            value: *self.value.get(i)?,
            status: *self.status.get(i)?,
            count: *self.count.get(i)?,
            total: *self.total.get(i)?,
        })
    }

    /// The upserted rows, in order.
    pub fn upserts(&self) -> impl Iterator<Item = MeterRowRef<'_>> + Clone + '_ {
        (0..self.rows()).filter_map(|i| self.row(i))
    }

    /// The removed ids, in order.
    pub fn removes(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        (self.rows()..self.ends.len()).map(|n| self.id(n))
    }

    /// Appends an upserted row whose resource is `resource` (index into
    /// `resources`); rows must all come before the first remove. False (and
    /// nothing changed) if a remove was already pushed, `ids` would pass
    /// `u32`, or `resource` names no entry.
    pub fn push_row(&mut self, row: MeterRowRef<'_>, resource: u16) -> bool {
        if self.ends.len() != self.rows() || usize::from(resource) >= self.resources.len() {
            return false;
        }
        if !self.push_id(row.meter) {
            return false;
        }
        self.resource.push(resource);
        self.ts.push(row.ts);
        self.value.push(row.value);
        self.status.push(row.status);
        self.count.push(row.count);
        self.total.push(row.total);
        true
    }

    /// Appends a removed id; false (and nothing changed) if `ids` would pass `u32`.
    pub fn push_remove(&mut self, id: &str) -> bool {
        self.push_id(id)
    }

    fn push_id(&mut self, id: &str) -> bool {
        let Some(end) = u32::try_from(self.ids.len() + id.len()).ok() else { return false };
        self.ids.push_str(id);
        self.ends.push(end);
        true
    }

    /// The index of resource `name` in `resources`, added if new (so the
    /// names are in first-seen order); `None` past [`MAX_TEXT_RESOURCES`]
    /// names (a name is added only for a row that names it: the names follow
    /// the payload). The names are scanned, so the bound keeps a row's lookup
    /// constant: a text DELTA of 200,000 rows each naming another resource
    /// made 4·10⁹ comparisons before it (docs/PERFORMANCE.md, "Hostile
    /// bodies"). Such a patch stays in rows ([`MeterPatch`]), which look
    /// nothing up, so what is accepted is unchanged.
    pub fn resource_index(&mut self, name: &str) -> Option<u16> {
        if let Some(i) = self.resources.iter().position(|r| r == name) {
            return u16::try_from(i).ok();
        }
        if self.resources.len() >= MAX_TEXT_RESOURCES {
            return None;
        }
        let i = u16::try_from(self.resources.len()).ok()?;
        self.resources.push(name.to_owned());
        Some(i)
    }

    /// `p` in columns, built row by row as the text DELTA's one-pass reader
    /// builds it (so both give equal columns); `None` if it cannot be held
    /// in columns (more than [`MAX_TEXT_RESOURCES`] resources, ids past 4 GiB).
    pub fn from_patch(p: &MeterPatch) -> Option<MeterColumns> {
        let mut c = MeterColumns::default();
        for r in &p.upsert {
            let i = c.resource_index(&r.resource)?;
            c.push_row(r.as_ref(), i).then_some(())?;
        }
        for id in &p.remove {
            c.push_remove(id).then_some(())?;
        }
        Some(c)
    }

    /// The same patch with owned rows (tests and the differential oracle).
    pub fn to_patch(&self) -> MeterPatch {
        MeterPatch {
            upsert: self.upserts().map(|r| r.to_row()).collect(),
            remove: self.removes().map(str::to_owned).collect(),
        }
    }

    /// Bytes this patch holds on the heap (vectors by capacity).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.ids.capacity()
            + self.ends.capacity() * 4
            + self.resources.capacity() * size_of::<String>()
            + self.resources.iter().map(String::capacity).sum::<usize>()
            + self.resource.capacity() * 2
            + (self.ts.capacity() + self.value.capacity() + self.count.capacity()) * 8
            + self.status.capacity() * size_of::<MeterStatus>()
            + self.total.capacity() * size_of::<Decimal>()
    }
}
