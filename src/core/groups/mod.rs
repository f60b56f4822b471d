//! Meter groups (site, district, region, tariff): the meter → groups map from
//! the feed server's `GET /groups`, refreshed every `groupsRefreshMs` through
//! the session's fetch mechanism and swapped whole, and per group the exact
//! hourly totals per resource, live rate and active alerts (docs/LEDGER.md,
//! "Groups"; PROTOCOL.md, `groups`).
//!
//! Invariants:
//! - A group's total for a resource and hour is the exact integer sum of
//!   [`MeterHours`] over the meters the map in force lists in it; a meter in
//!   no group counts in `unassigned`, a meter in several groups counts once
//!   in each. The sums are recomputed from the rows for every hour that
//!   changed and for all hours when the map changes: never adjusted
//!   incrementally, so they cannot drift from the rows.
//! - A refresh is decoded and checked whole before it replaces the map
//!   (`map`); a malformed or failed one keeps the previous map and says so
//!   with a `groups_refresh_failed` warning carrying the consecutive count.
//! - At most one `/groups` fetch is outstanding; its request ids are
//!   [`GROUPS_REQUEST_BASE`] and up, apart from the session's.
//!
//! Submodules: `map` (the map and its bounds), `meter_hours` (the per-meter
//! rows the ledger fills), `refresh` (when to fetch), `row_log` (the live
//! readings a catch-up listing per-meter hours replays to rebuild rows).

mod map;
mod meter_hours;
mod refresh;
mod row_log;

pub use map::{group_name_problem, GroupMap, GroupMapBody, MAX_GROUP_NAME_BYTES};
pub use meter_hours::{MeterHours, BINS, BIN_MS};
pub use refresh::{Refresh, GROUPS_PATH, GROUPS_REQUEST_BASE};
pub use row_log::{LoggedReading, RowLog};

use crate::core::config::Config;
use crate::core::error::{ErrorSink, WarningCode};
use crate::core::event::{BucketTotal, Outbound, ResourceTotals, WarningEvent};
use crate::core::ledger::{Ledger, HOUR_MS};
use crate::core::meters::MeterTable;

/// What the host tells the groups: a fetched `/groups` body, or a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupsInput {
    /// A body that decoded.
    Map {
        /// The fetch it answers.
        request_id: u64,
        /// The decoded body.
        body: GroupMapBody,
    },
    /// The fetch failed (`status` 0: no answer) or its body did not decode.
    Failed {
        /// The fetch it answers.
        request_id: u64,
        /// HTTP status, 0 if none.
        status: u16,
        /// What went wrong.
        message: String,
    },
}

/// One group's figures in a `groups` event.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupTotals {
    /// Group name (`""` for the unassigned meters).
    pub group: String,
    /// Meters tracked that the map lists in the group.
    pub meters: u32,
    /// Per resource, the kept hours (same shape as `totals`; `as_of` is `None`).
    pub resources: Vec<ResourceTotals>,
    /// Some kept hour may lack readings of the group's meters.
    pub incomplete: bool,
    /// Readings per second over the last minute (the last `BINS` 10-second bins).
    pub readings_per_sec: f64,
    /// `(meter, kind)` alerts active on the group's meters.
    pub active_alerts: u32,
}

/// Per group totals, coalesced to one per flush interval.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupsEvent {
    /// The map version in force, `None` before any map.
    pub version: Option<u64>,
    /// Start of the current hour, ms.
    pub current_hour_ms: f64,
    /// Start of the first hour whose group totals hold every reading; `None`
    /// if no reading was ever missed (`0` would mean the same).
    pub complete_from_ms: Option<f64>,
    /// Every group of the map, in map order.
    pub groups: Vec<GroupTotals>,
    /// Meters the map lists in no group.
    pub unassigned: GroupTotals,
}

/// The groups' part of `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupsStats {
    /// Map version in force.
    pub version: Option<u64>,
    /// Groups in the map.
    pub groups: u32,
    /// Meters the map lists.
    pub meters: u32,
    /// Memberships (meter, group) in the map.
    pub memberships: u32,
    /// Since the map in force was applied, ms.
    pub age_ms: Option<f64>,
    /// Request to answer of the last applied refresh, ms.
    pub refresh_latency_ms: Option<f64>,
    /// Refreshes failed in a row (0 after one applies).
    pub consecutive_failures: u32,
    /// Refreshes applied since start.
    pub refreshes: u64,
    /// Refreshes failed since start.
    pub failures: u64,
    /// Bytes of per-meter rows per meter (`resources × (historyHours + 2) × 8 + 24`).
    pub row_bytes_per_meter: u32,
    /// Live readings in the row log (stamped after the applied watermark).
    pub row_log: u32,
    /// `maxRowLogReadings`.
    pub row_log_cap: u32,
    /// Catch-ups that rebuilt per-meter rows since start.
    pub rebuilds: u64,
    /// Catch-ups listing per-meter hours whose rebuild was refused since start.
    pub rebuilds_refused: u64,
}

/// The groups' state.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    map: GroupMap,
    refresh: Refresh,
    /// Per meter index `(start, len)` into `resolved`: its groups in the map in force.
    resolved_at: Vec<(u32, u16)>,
    resolved: Vec<u16>,
    /// `(group * cols) + col` -> sum; group `names.len()` is `unassigned`.
    totals: Vec<i64>,
    /// Every column must be summed again (map changed).
    all_dirty: bool,
    applied_at: Option<f64>,
    last: Option<GroupsEvent>,
}

impl Groups {
    /// The map in force.
    pub fn map(&self) -> &GroupMap {
        &self.map
    }

    /// Forgets what depends on meter indices (a full `reset` re-interns
    /// meters); the map and its refresh state stay.
    pub fn forget_meters(&mut self) {
        self.resolved_at.clear();
        self.resolved.clear();
        self.totals.clear();
        self.all_dirty = true;
        self.last = None;
    }

    /// Timer work: a `/groups` fetch when one is due (`active`: the stream
    /// session is in use, so a feed server answers `/groups`).
    pub fn on_timer(&mut self, now_ms: f64, active: bool, cfg: &Config, out: &mut Vec<Outbound>) {
        if let Some(msg) = self.refresh.on_timer(now_ms, active, cfg) {
            out.push(msg);
        }
    }

    /// A fetched `/groups` answer: decode → check → apply, the map swapped whole.
    pub fn on_input(
        &mut self,
        input: GroupsInput,
        now_ms: f64,
        cfg: &Config,
        out: &mut Vec<Outbound>,
    ) {
        match input {
            GroupsInput::Map { request_id, body } => {
                if !self.refresh.answered(request_id, now_ms, true) {
                    return;
                }
                let (map, errors) = GroupMap::build(&body, cfg);
                let mut sink = ErrorSink::new(out, cfg.max_errors_per_batch);
                for e in errors {
                    sink.push(e);
                }
                sink.finish();
                self.map = map;
                self.applied_at = Some(now_ms);
                self.resolved_at.clear();
                self.resolved.clear();
                self.all_dirty = true;
            }
            GroupsInput::Failed { request_id, status, message } => {
                if !self.refresh.answered(request_id, now_ms, false) {
                    return;
                }
                out.push(self.failure_warning(status, &message));
            }
        }
    }

    fn failure_warning(&self, status: u16, message: &str) -> Outbound {
        let what = match status {
            0 => message.to_string(),
            s => format!("HTTP {s}: {message}"),
        };
        Outbound::Warning(WarningEvent {
            count: None,
            code: WarningCode::GroupsRefreshFailed,
            message: format!(
                "groups refresh failed ({what}); {} failure(s) in a row; the map in force (version {}) stays",
                self.refresh.consecutive_failures(),
                self.map.version().map_or("none".to_string(), |v| v.to_string())
            ),
        })
    }

    /// A fetch left unanswered past `groupsRefreshMs` counts as failed.
    pub fn on_expired(&mut self, now_ms: f64, cfg: &Config, out: &mut Vec<Outbound>) {
        if self.refresh.expire(now_ms, cfg) {
            out.push(self.failure_warning(0, "no answer within groupsRefreshMs"));
        }
    }

    /// Stats now.
    pub fn stats(&self, now_ms: f64, ledger: &Ledger) -> GroupsStats {
        GroupsStats {
            version: self.map.version(),
            groups: self.map.names().len() as u32,
            meters: self.map.meters() as u32,
            memberships: self.map.memberships() as u32,
            age_ms: self.applied_at.map(|t| now_ms - t),
            refresh_latency_ms: self.refresh.latency_ms(),
            consecutive_failures: self.refresh.consecutive_failures(),
            refreshes: self.refresh.applied(),
            failures: self.refresh.failures(),
            row_bytes_per_meter: ledger.meter_hours().bytes_per_meter() as u32,
            row_log: ledger.row_log().len() as u32,
            row_log_cap: ledger.row_log().cap() as u32,
            rebuilds: ledger.rebuilds().0,
            rebuilds_refused: ledger.rebuilds().1,
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.map.bytes()
            + self.resolved_at.capacity() * 8
            + self.resolved.capacity() * 2
            + self.totals.capacity() * 8
    }

    /// The members (meter indices) of group `name` in the map in force, or
    /// `None` if it has no such group.
    pub fn members(&mut self, meters: &MeterTable, name: &str) -> Option<Vec<u32>> {
        let g = self.map.names().iter().position(|n| n == name)? as u16;
        self.resolve(meters);
        let mut out = Vec::new();
        for (m, &(s, l)) in self.resolved_at.iter().enumerate() {
            if self
                .resolved
                .get(s as usize..s as usize + l as usize)
                .is_some_and(|gs| gs.contains(&g))
            {
                out.push(m as u32);
            }
        }
        Some(out)
    }

    /// Resolves the groups of meters interned since the last call.
    fn resolve(&mut self, meters: &MeterTable) {
        for m in self.resolved_at.len()..meters.len() {
            let groups = self.map.groups_of(meters.name(m));
            let start = self.resolved.len() as u32;
            self.resolved.extend_from_slice(groups);
            self.resolved_at.push((start, groups.len() as u16));
        }
    }

    /// One pass over the meters: sums the changed columns again from the
    /// per-meter rows, and counts each group's meters, recent readings and
    /// active alerts (`per`, indexed like the groups, `unassigned` last).
    fn sum(
        &mut self,
        rows: &MeterHours,
        meters: usize,
        cols: usize,
        alerts: Option<&dyn Fn(usize) -> u32>,
        per: &mut [(u32, u64, u32)],
    ) {
        let n = self.map.names().len() + 1;
        if self.totals.len() != n * cols {
            self.totals.clear();
            self.totals.resize(n * cols, 0);
            self.all_dirty = true;
        }
        let dirty: Vec<usize> = (0..cols).filter(|&c| self.all_dirty || rows.is_dirty(c)).collect();
        for &col in &dirty {
            for g in 0..n {
                if let Some(t) = self.totals.get_mut(g * cols + col) {
                    *t = 0;
                }
            }
        }
        let unassigned = [(n - 1) as u16];
        for m in 0..meters {
            let (s, l) = self.resolved_at.get(m).copied().unwrap_or((0, 0));
            let targets = match self.resolved.get(s as usize..s as usize + l as usize) {
                Some(gs) if !gs.is_empty() => gs,
                _ => &unassigned[..],
            };
            let recent = rows.recent(m);
            let active = alerts.map_or(0, |a| a(m));
            let row = rows.row(m);
            for &g in targets {
                let g = g as usize;
                if let Some(p) = per.get_mut(g) {
                    *p = (p.0 + 1, p.1 + recent, p.2 + active);
                }
                for &col in &dirty {
                    let u = row.get(col).copied().unwrap_or(0);
                    if let Some(t) = self.totals.get_mut(g * cols + col) {
                        *t = t.saturating_add(u);
                    }
                }
            }
        }
        self.all_dirty = false;
    }

    /// The flush timer: a `groups` event if a map is in force and anything
    /// shown changed since the last one.
    pub fn on_flush(
        &mut self,
        now_ms: f64,
        ledger: &mut Ledger,
        meters: &MeterTable,
        alerts: Option<&dyn Fn(usize) -> u32>,
        cfg: &Config,
        out: &mut Vec<Outbound>,
    ) {
        if self.map.version().is_none() {
            return;
        }
        ledger.meter_hours_mut().set_time(now_ms);
        let ev = self.event(ledger, meters, alerts, cfg);
        ledger.meter_hours_mut().clear_dirty();
        if self.last.as_ref() != Some(&ev) {
            self.last = Some(ev.clone());
            out.push(Outbound::Groups(ev));
        }
    }

    /// The `groups` event now (sums what changed first).
    pub fn event(
        &mut self,
        ledger: &Ledger,
        meters: &MeterTable,
        alerts: Option<&dyn Fn(usize) -> u32>,
        cfg: &Config,
    ) -> GroupsEvent {
        self.resolve(meters);
        let rows = ledger.meter_hours();
        let cols = cfg.resources.len() * rows.slots();
        let n = self.map.names().len();
        let current = ledger.current_hour().unwrap_or(0);
        let history = ledger.history_hours();
        let incomplete = rows.rows_missed_through().is_some_and(|h| h >= current - history);
        // Per group: meters, recent readings, active alerts.
        let mut per = vec![(0u32, 0u64, 0u32); n + 1];
        self.sum(rows, meters.len(), cols, alerts, &mut per);
        let group = |g: usize, name: &str| {
            let resources = cfg
                .resources
                .iter()
                .enumerate()
                .map(|(r, spec)| {
                    let buckets: Vec<BucketTotal> = (current - history..=current)
                        .map(|h| BucketTotal {
                            hour_ms: h as f64 * HOUR_MS,
                            total: rows
                                .column(r, h)
                                .and_then(|c| self.totals.get(g * cols + c).copied())
                                .unwrap_or(0),
                            as_of: None,
                        })
                        .collect();
                    ResourceTotals::from_buckets(spec, buckets)
                })
                .collect();
            let (meters, recent, active) = per.get(g).copied().unwrap_or_default();
            GroupTotals {
                group: name.to_string(),
                meters,
                resources,
                incomplete,
                readings_per_sec: recent as f64 / (BINS as f64 * BIN_MS / 1000.0),
                active_alerts: active,
            }
        };
        GroupsEvent {
            version: self.map.version(),
            current_hour_ms: current as f64 * HOUR_MS,
            complete_from_ms: rows.complete_from_ms(),
            groups: self.map.names().iter().enumerate().map(|(g, name)| group(g, name)).collect(),
            unassigned: group(n, ""),
        }
    }
}
