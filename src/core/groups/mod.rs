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
//!   in each. The rows log every change in order (`RowChange`: a row's
//!   exact delta with its rate bin, a column zeroed, the bins moved); a
//!   flush replays the log onto the group sums and rate bins
//!   (`O(changes × groups per meter)`), and sums everything again from the
//!   rows when the log cannot tell (the first flush, a map change, a reset,
//!   a log past [`CHANGE_LOG_CAP`]). Both are exact integer sums, so they
//!   agree (`tests::incremental_sums_equal_the_sums_over_members`).
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
pub use meter_hours::{MeterHours, RowChange, BINS, BIN_MS, CHANGE_LOG_CAP};
pub use refresh::{Refresh, GROUPS_PATH, GROUPS_REQUEST_BASE};
pub use row_log::{LoggedReading, RowLog};

use crate::core::config::Config;
use crate::core::error::WarningCode;
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
    /// `group * BINS + slot` -> the members' readings in rate bin `slot`.
    bins: Vec<u64>,
    /// Per group: meters tracked that the map lists in it.
    member_counts: Vec<u32>,
    /// Per group: `(meter, kind)` alerts active on its members, at the last update.
    alert_counts: Vec<u32>,
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
        self.bins.clear();
        self.member_counts.clear();
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
                // Capped by the build itself (`maxErrorsPerBatch`, then a count).
                let (map, errors) = GroupMap::build(&body, cfg);
                out.extend(errors.into_iter().map(Outbound::Error));
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
            + self.bins.capacity() * 8
            + (self.member_counts.capacity() + self.alert_counts.capacity()) * 4
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
            let unassigned = [self.map.names().len() as u16];
            for &g in if groups.is_empty() { &unassigned[..] } else { groups } {
                if let Some(c) = self.member_counts.get_mut(g as usize) {
                    *c += 1;
                }
            }
        }
    }

    /// Brings the sums, rate bins and member counts up to the rows: from
    /// the rows' change log when it tells every change since the last
    /// update (`O(changes × groups per meter)`), else summed again from the
    /// rows (`O(meters × groups per meter × columns)`: a map change, the
    /// first update, a log past its cap). Either way exact. Then the alerts
    /// (`alerts`: per meter, only when some alert is active), one pass over
    /// the meters with an alert.
    fn update(
        &mut self,
        rows: &MeterHours,
        meters: &MeterTable,
        cols: usize,
        alerts: Option<&dyn Fn(usize) -> u32>,
    ) {
        let n = self.map.names().len() + 1;
        if self.totals.len() != n * cols || self.member_counts.len() != n {
            self.all_dirty = true;
        }
        let changes = if self.all_dirty { None } else { rows.changes() };
        match changes {
            Some(changes) if self.replay(changes, meters, n, cols) => {}
            _ => self.sum_all(rows, meters, n, cols),
        }
        self.all_dirty = false;
        self.alert_counts.clear();
        self.alert_counts.resize(n, 0);
        if let Some(alerts) = alerts {
            for m in 0..meters.len() {
                let active = alerts(m);
                if active == 0 {
                    continue;
                }
                self.for_targets(m, n, |me, g| {
                    if let Some(a) = me.alert_counts.get_mut(g) {
                        *a += active;
                    }
                });
            }
        }
    }

    /// Meter `m`'s groups as a range of `resolved`, or `None` for a meter
    /// in no group (it counts in `unassigned`).
    #[inline]
    fn groups_range(&self, m: usize) -> Option<std::ops::Range<usize>> {
        let (s, l) = self.resolved_at.get(m).copied().unwrap_or((0, 0));
        (l > 0).then(|| s as usize..s as usize + l as usize)
    }

    /// Meter `m`'s groups (`unassigned`, `n - 1`, if none) into `f`.
    #[inline]
    fn for_targets(&mut self, m: usize, n: usize, mut f: impl FnMut(&mut Groups, usize)) {
        match self.groups_range(m) {
            None => f(self, n - 1),
            Some(range) => {
                for i in range {
                    let g = self.resolved.get(i).copied().unwrap_or(0) as usize;
                    f(self, g);
                }
            }
        }
    }

    /// Applies the rows' changes in order; `false` (nothing to trust) if
    /// one names a meter not resolved yet.
    fn replay(
        &mut self,
        changes: &[RowChange],
        meters: &MeterTable,
        n: usize,
        cols: usize,
    ) -> bool {
        self.resolve(meters);
        for c in changes {
            match *c {
                RowChange::Add { m, col, slot, units } => {
                    let m = m as usize;
                    if m >= self.resolved_at.len() {
                        return false;
                    }
                    let (col, slot) = (col as usize, slot as usize);
                    self.for_targets(m, n, |me, g| {
                        if let Some(t) = me.totals.get_mut(g * cols + col) {
                            *t = t.saturating_add(units);
                        }
                        if slot < BINS {
                            if let Some(b) = me.bins.get_mut(g * BINS + slot) {
                                *b += 1;
                            }
                        }
                    });
                }
                RowChange::Zero { col } => {
                    for g in 0..n {
                        if let Some(t) = self.totals.get_mut(g * cols + col as usize) {
                            *t = 0;
                        }
                    }
                }
                RowChange::Advance { from, to } => {
                    let passed = to.saturating_sub(from).clamp(0, BINS as i64);
                    for k in 1..=passed {
                        let slot = (from + k).rem_euclid(BINS as i64) as usize;
                        for b in self.bins.iter_mut().skip(slot).step_by(BINS) {
                            *b = 0;
                        }
                    }
                }
            }
        }
        true
    }

    /// Sums every column, rate bin and member count again from the rows.
    fn sum_all(&mut self, rows: &MeterHours, meters: &MeterTable, n: usize, cols: usize) {
        self.resolved_at.clear();
        self.resolved.clear();
        self.member_counts.clear();
        self.member_counts.resize(n, 0);
        self.resolve(meters);
        self.totals.clear();
        self.totals.resize(n * cols, 0);
        self.bins.clear();
        self.bins.resize(n * BINS, 0);
        for m in 0..meters.len() {
            let row = rows.row(m);
            let counts = rows.counts(m);
            self.for_targets(m, n, |me, g| {
                for (col, &u) in row.iter().enumerate().take(cols) {
                    if let Some(t) = me.totals.get_mut(g * cols + col) {
                        *t = t.saturating_add(u);
                    }
                }
                for (slot, &c) in counts.iter().enumerate() {
                    if let Some(b) = me.bins.get_mut(g * BINS + slot) {
                        *b += u64::from(c);
                    }
                }
            });
        }
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
        // The sums now hold every change the log told: it starts over.
        ledger.meter_hours_mut().take_changes();
        if self.last.as_ref() != Some(&ev) {
            self.last = Some(ev.clone());
            out.push(Outbound::Groups(ev));
        }
    }

    /// The `groups` event now (brings the sums up to the rows first; the
    /// caller then empties the rows' change log, which they now hold).
    fn event(
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
        self.update(rows, meters, cols, alerts);
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
            let meters = self.member_counts.get(g).copied().unwrap_or(0);
            let recent: u64 = self.bins.get(g * BINS..(g + 1) * BINS).map_or(0, |b| b.iter().sum());
            let active = self.alert_counts.get(g).copied().unwrap_or(0);
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

#[cfg(test)]
mod tests {
    //! The incremental sums against their definition: after random live
    //! readings (late ones, refused ones, slot reuse), rebuilt columns (a
    //! catch-up listing per-meter hours), rate-bin moves, map changes with
    //! multi-membership and unassigned meters, a full reset and a change
    //! log past its cap, every group's totals, rate bins, member and alert
    //! counts equal the sums over its members' rows computed afresh.
    use super::*;
    use crate::core::hlc::Hlc;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const METERS: u64 = 40;
    const RESOURCES: usize = 3;
    const HISTORY: u32 = 6;

    fn random_map(rng: &mut Rng, version: u64, cfg: &Config) -> GroupMap {
        let groups = 1 + rng.below(6) as usize;
        let body = GroupMapBody {
            version,
            groups: (0..groups)
                .map(|g| {
                    // Some meters in several groups, some (and some never
                    // seen) in none: they count in `unassigned`.
                    let members = (0..METERS + 5)
                        .filter(|_| rng.below(3) == 0)
                        .map(|m| format!("m{m}"))
                        .collect();
                    (format!("g{g}"), members)
                })
                .collect(),
            uncopied: 0,
        };
        let (map, errors) = GroupMap::build(&body, cfg);
        assert!(errors.is_empty(), "{errors:?}");
        map
    }

    /// What the sums must be: the definition, over the map in force.
    fn check(g: &Groups, rows: &MeterHours, meters: &MeterTable, alerts: &[u32], step: usize) {
        let names = g.map.names().len();
        let n = names + 1;
        let cols = RESOURCES * rows.slots();
        let mut totals = vec![0i64; n * cols];
        let mut bins = vec![0u64; n * BINS];
        let mut members = vec![0u32; n];
        let mut active = vec![0u32; n];
        for m in 0..meters.len() {
            let gs: Vec<usize> = match g.map.groups_of(meters.name(m)) {
                [] => vec![names],
                gs => gs.iter().map(|&x| x as usize).collect(),
            };
            for &k in &gs {
                for col in 0..cols {
                    totals[k * cols + col] += rows.at(m, col);
                }
                for (slot, &c) in rows.counts(m).iter().enumerate() {
                    bins[k * BINS + slot] += u64::from(c);
                }
                members[k] += 1;
                active[k] += alerts.get(m).copied().unwrap_or(0);
            }
        }
        assert_eq!(g.totals, totals, "totals at step {step}");
        assert_eq!(g.bins, bins, "rate bins at step {step}");
        assert_eq!(g.member_counts, members, "members at step {step}");
        assert_eq!(g.alert_counts, active, "alerts at step {step}");
    }

    fn run(seed: u64, steps: usize) -> (u64, u64) {
        let cfg = Config::default();
        assert_eq!(cfg.resources.len(), RESOURCES);
        let mut rng = Rng(seed | 1);
        let mut g = Groups::default();
        let mut rows = MeterHours::new(RESOURCES, HISTORY);
        let mut meters = MeterTable::default();
        let mut alerts = vec![0u32; METERS as usize];
        let (mut now, mut hour, mut version) = (1e12, 0i64, 1u64);
        g.map = random_map(&mut rng, version, &cfg);
        g.all_dirty = true;
        let (mut replayed, mut summed) = (0u64, 0u64);
        for step in 0..steps {
            match rng.below(100) {
                // A live reading: mostly the current hour, some late, some
                // too old for their reused slot (refused, changing nothing).
                0..=59 => {
                    let (m, _) =
                        meters.intern(&format!("m{}", rng.below(METERS)), 1_000).expect("room");
                    let back = [0, 0, 0, 1, 2, 7, 9][rng.below(7) as usize];
                    let units = rng.below(1_000) as i64 - 100;
                    rows.add(m, rng.below(RESOURCES as u64) as usize, hour - back, units);
                }
                // The hour moves on (the next reading reuses a slot).
                60..=62 => hour += 1 + rng.below(2) as i64,
                // The rate bins move on (0 to 80 s).
                63..=69 => {
                    now += rng.below(80_000) as f64;
                    rows.set_time(now);
                }
                // A catch-up rebuilds a column: cleared, then per-meter values.
                70..=71 => {
                    let w = Hlc { wall_ms: step as u64, counter: 0 };
                    let r = rng.below(RESOURCES as u64) as usize;
                    if let Some(col) = rows.rebuild_column(r, hour - rng.below(3) as i64, w) {
                        for _ in 0..rng.below(8) {
                            let (m, _) = meters
                                .intern(&format!("m{}", rng.below(METERS)), 1_000)
                                .expect("room");
                            rows.add_at(m, col, rng.below(500) as i64);
                        }
                    }
                }
                // A new map (multi-membership, unassigned meters).
                72..=73 => {
                    version += 1;
                    g.map = random_map(&mut rng, version, &cfg);
                    g.resolved_at.clear();
                    g.resolved.clear();
                    g.all_dirty = true;
                }
                // Alerts change.
                74..=77 => {
                    let m = rng.below(METERS) as usize;
                    alerts[m] = rng.below(3) as u32;
                }
                // A small log cap: the next flush must sum from the rows.
                78 => rows.set_change_cap(rng.below(20) as usize),
                79 => rows.set_change_cap(CHANGE_LOG_CAP),
                // A full reset: meters re-interned, rows restarted.
                80 if rng.below(10) == 0 => {
                    meters.clear();
                    rows = MeterHours::new(RESOURCES, HISTORY);
                    g.forget_meters();
                }
                // A flush.
                _ => {
                    let cols = RESOURCES * rows.slots();
                    let by_log = !g.all_dirty && rows.changes().is_some();
                    let f = |m: usize| alerts.get(m).copied().unwrap_or(0);
                    let any = alerts.iter().any(|&a| a > 0);
                    g.update(&rows, &meters, cols, any.then_some(&f as &dyn Fn(usize) -> u32));
                    rows.take_changes();
                    if by_log {
                        replayed += 1;
                    } else {
                        summed += 1;
                    }
                    let shown: Vec<u32> = if any { alerts.clone() } else { Vec::new() };
                    check(&g, &rows, &meters, &shown, step);
                }
            }
        }
        (replayed, summed)
    }

    #[test]
    fn incremental_sums_equal_the_sums_over_members() {
        let (mut replayed, mut summed) = (0, 0);
        for seed in 1..=200u64 {
            let (r, s) = run(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 600);
            replayed += r;
            summed += s;
        }
        // Both paths ran, the log's far more often.
        assert!(replayed > 3 * summed && summed > 200, "replayed {replayed}, summed {summed}");
    }
}
