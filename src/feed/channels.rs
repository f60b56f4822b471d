//! The `meters.<group>` and `notices` channels' read model (pure, one writer):
//! every meter belongs to a district group; per meter the entity state (latest
//! reading, status, count, exact total) and the `seq` of its last change; per
//! channel a `seq`, a bounded ring of recent deltas (for the stream) and, for
//! `notices`, a bounded log of removals. A mini-snapshot `since_seq = N` is the
//! entities whose last change is after `N` (plus the removals after `N`): read
//! from that precomputed state, never recomputed from history.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::model::HOUR_MS;
use super::sim::{Incident, IncidentKind, Reading, DECIMALS, RESOURCES};
use crate::core::decimal::Decimal;
use crate::core::session::rng::SplitMix64;
use crate::core::stream::{MeterRowRef, MeterStatus};
use crate::wire::binary::encode_meters_delta;

/// The default district groups, in index order (`--groups 8`).
pub const GROUP_NAMES: [&str; 8] =
    ["north", "south", "east", "west", "centre", "harbour", "hills", "airport"];
/// The notices channel.
pub const NOTICES: &str = "notices";
/// Prefix of a meter group's channel.
pub const METERS_PREFIX: &str = "meters.";
/// A meter whose last reading is older than this (simulated ms) is `stale`.
pub const STALE_MS: u64 = 3_000;
/// Simulated time from an hour's start to its maintenance window, and its length.
const MAINTENANCE_AT_MS: u64 = 30 * 60_000;
const MAINTENANCE_FOR_MS: u64 = 15 * 60_000;

/// The name of group `i`: the 8 districts, then `district-9` … `district-64`.
pub fn group_name(i: usize) -> String {
    GROUP_NAMES.get(i).map_or_else(|| format!("district-{}", i + 1), |s| (*s).to_string())
}

/// Each meter's group: uniform over `groups`, deterministic per seed (its own
/// generator, so the readings do not depend on the number of groups).
pub fn assign_groups(meters: usize, groups: usize, seed: u64) -> Vec<u16> {
    let mut rng = SplitMix64::new(seed ^ 0x6772_6f75_7073_0001);
    let g = groups.max(1) as u64;
    (0..meters).map(|_| (rng.next_u64() % g) as u16).collect()
}

/// A meter's status on its channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    Ok,
    /// The last reading is older than [`STALE_MS`].
    Stale,
    /// In a dropout incident.
    Offline,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Stale => "stale",
            Status::Offline => "offline",
        }
    }
}

/// One meter's entity on its `meters.<group>` channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entity {
    pub meter: u32,
    /// `ts` of the latest reading (0: none yet).
    pub ts: u64,
    /// Units of the latest reading.
    pub units: i64,
    pub status: Status,
    /// Readings since the start.
    pub count: u64,
    /// Units since the start.
    pub total_units: i64,
}

/// A notice on the `notices` channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub id: String,
    pub severity: &'static str,
    pub title: String,
    pub text: String,
    pub from_ms: u64,
    pub to_ms: u64,
}

/// What one delta carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Patch {
    Meters { upsert: Vec<Entity>, remove: Vec<u32> },
    Notices { upsert: Vec<Notice>, remove: Vec<String> },
}

/// One DELTA of a `meters.<group>` or the `notices` channel, encoded at most once.
#[derive(Debug)]
pub struct Delta {
    pub channel: Arc<str>,
    pub epoch: u64,
    pub seq: u64,
    pub patch: Patch,
    names: Arc<Names>,
    json: OnceLock<Arc<str>>,
    binary: OnceLock<Option<Arc<[u8]>>>,
}

impl Delta {
    /// `{"op":"DELTA","channel":…,"epoch":…,"seq":…,"patch":{"upsert":[…],"remove":[…]}}`.
    pub fn json(&self) -> Arc<str> {
        self.json.get_or_init(|| Arc::from(self.encode())).clone()
    }

    /// A `meters.<group>` delta as a binary kind-4 frame (PROTOCOL.md 3.10),
    /// for a connection that asked `binary_deltas`: the same op as
    /// [`Delta::json`], encoded at most once. `None` for `notices` (always
    /// text) and for a delta the frame cannot carry (then the text goes).
    pub fn binary(&self) -> Option<Arc<[u8]>> {
        self.binary.get_or_init(|| self.encode_binary().map(Arc::from)).clone()
    }

    fn encode_binary(&self) -> Option<Vec<u8>> {
        let Patch::Meters { upsert, remove } = &self.patch else { return None };
        let rows: Vec<MeterRowRef<'_>> = upsert.iter().map(|e| self.names.row(e)).collect();
        let remove: Vec<&str> = remove.iter().map(|&m| self.names.id(m)).collect();
        encode_meters_delta(&self.channel, self.epoch, self.seq, &rows, &remove).ok()
    }

    fn encode(&self) -> String {
        let mut s = String::with_capacity(96 + self.len() * 140);
        let _ = write!(
            s,
            r#"{{"op":"DELTA","channel":"{}","epoch":{},"seq":{},"patch":"#,
            self.channel, self.epoch, self.seq
        );
        match &self.patch {
            Patch::Meters { upsert, remove } => write_patch(
                &mut s,
                upsert,
                |s, e| self.names.entity(s, e),
                remove,
                |s, m| write_str(s, self.names.id(*m)),
            ),
            Patch::Notices { upsert, remove } => {
                write_patch(&mut s, upsert, write_notice, remove, |s, id| write_str(s, id))
            }
        }
        s.push('}');
        s
    }

    /// Entities upserted plus removed.
    pub fn len(&self) -> usize {
        match &self.patch {
            Patch::Meters { upsert, remove } => upsert.len() + remove.len(),
            Patch::Notices { upsert, remove } => upsert.len() + remove.len(),
        }
    }

    /// No change (never sent: a delta exists only when something changed).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn write_patch<A, B>(
    s: &mut String,
    upsert: &[A],
    mut up: impl FnMut(&mut String, &A),
    remove: &[B],
    mut rm: impl FnMut(&mut String, &B),
) {
    s.push_str(r#"{"upsert":["#);
    for (i, x) in upsert.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        up(s, x);
    }
    s.push_str(r#"],"remove":["#);
    for (i, x) in remove.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        rm(s, x);
    }
    s.push_str("]}");
}

/// A JSON string (ids and texts are ours, but escape anyway).
fn write_str(s: &mut String, x: &str) {
    s.push_str(&serde_json::Value::from(x).to_string());
}

fn write_notice(s: &mut String, n: &Notice) {
    s.push_str(r#"{"id":"#);
    write_str(s, &n.id);
    let _ = write!(s, r#","severity":"{}","title":"#, n.severity);
    write_str(s, &n.title);
    s.push_str(r#","text":"#);
    write_str(s, &n.text);
    let _ = write!(s, r#","fromMs":{},"toMs":{}}}"#, n.from_ms, n.to_ms);
}

/// Meter ids and resources, shared by every delta for encoding.
#[derive(Debug)]
pub struct Names {
    ids: Vec<String>,
    resources: Vec<usize>,
}

impl Names {
    fn id(&self, m: u32) -> &str {
        self.ids.get(m as usize).map_or("", String::as_str)
    }

    /// One entity as the core's row, with exactly the values its JSON text
    /// reads as: `value` is `units / 10^DECIMALS` (one correctly rounded
    /// division, as parsing the decimal text rounds), `total` the exact
    /// decimal, normalised as `Decimal::parse` leaves it.
    pub fn row(&self, e: &Entity) -> MeterRowRef<'_> {
        let resource = self
            .resources
            .get(e.meter as usize)
            .and_then(|&r| RESOURCES.get(r))
            .map_or("", |r| r.0);
        let pow = 10i64.pow(u32::from(DECIMALS));
        let (mut mantissa, mut scale) = (e.total_units, DECIMALS);
        while scale > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            scale -= 1;
        }
        MeterRowRef {
            meter: self.id(e.meter),
            resource,
            ts: e.ts as f64,
            value: e.units as f64 / pow as f64,
            status: match e.status {
                Status::Ok => MeterStatus::Ok,
                Status::Stale => MeterStatus::Stale,
                Status::Offline => MeterStatus::Offline,
            },
            count: e.count,
            total: Decimal::new(mantissa, scale),
        }
    }

    /// One entity as the channel's JSON object (no allocation: snapshots of
    /// thousands of meters are encoded on request).
    pub fn entity(&self, s: &mut String, e: &Entity) {
        let resource = self
            .resources
            .get(e.meter as usize)
            .and_then(|&r| RESOURCES.get(r))
            .map_or("", |r| r.0);
        s.push_str(r#"{"meter":""#);
        s.push_str(self.id(e.meter));
        s.push_str(r#"","resource":""#);
        s.push_str(resource);
        let _ = write!(s, r#"","ts":{},"value":"#, e.ts);
        push_units(s, e.units);
        s.push_str(r#","status":""#);
        s.push_str(e.status.as_str());
        let _ = write!(s, r#"","count":{},"total":""#, e.count);
        push_units(s, e.total_units);
        s.push_str("\"}");
    }
}

/// `units` as an exact decimal with [`DECIMALS`] places, as
/// [`format_units`](crate::core::decimal::format_units) writes it, appended
/// without allocating.
fn push_units(s: &mut String, units: i64) {
    let d = usize::from(DECIMALS);
    let pow = 10u64.pow(u32::from(DECIMALS));
    let sign = if units < 0 { "-" } else { "" };
    let abs = units.unsigned_abs();
    if d == 0 {
        let _ = write!(s, "{sign}{abs}");
    } else {
        let _ = write!(s, "{sign}{}.{:0d$}", abs / pow, abs % pow);
    }
}

/// A channel's stream position and its ring of recent deltas.
#[derive(Debug)]
pub struct Stream {
    pub name: Arc<str>,
    seq: u64,
    ring: VecDeque<Arc<Delta>>,
}

impl Stream {
    fn new(name: String) -> Stream {
        Stream { name: Arc::from(name), seq: 0, ring: VecDeque::new() }
    }

    /// The last delta's `seq` (0 before the first).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The oldest `seq` still in the ring.
    pub fn oldest_seq(&self) -> Option<u64> {
        self.ring.front().map(|d| d.seq)
    }

    /// Deltas after `after_seq` still held, oldest first, at most `max`; `None`
    /// when `after_seq + 1` is no longer (or not yet validly) held.
    pub fn deltas_after(&self, after_seq: u64, max: usize) -> Option<Vec<Arc<Delta>>> {
        let first = self.ring.front().map_or(self.seq + 1, |d| d.seq);
        if after_seq > self.seq || after_seq + 1 < first {
            return None;
        }
        let skip = (after_seq + 1 - first) as usize;
        Some(self.ring.iter().skip(skip).take(max).cloned().collect())
    }

    fn push(&mut self, d: Delta, cap: usize) {
        self.seq = d.seq;
        if self.ring.len() >= cap {
            self.ring.pop_front();
        }
        self.ring.push_back(Arc::new(d));
    }
}

/// A snapshot (full, or a mini one since `since_seq`) of one channel, copied
/// out of the model under its read lock and encoded outside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub channel: Arc<str>,
    pub epoch: u64,
    pub snapshot_seq: u64,
    /// `Some(N)`: a mini-snapshot (changes after `N`).
    pub since_seq: Option<u64>,
    pub patch: SnapshotBody,
}

/// A snapshot's entities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotBody {
    Meters { meters: Vec<Entity>, remove: Vec<u32> },
    Notices { notices: Vec<Notice>, remove: Vec<String> },
}

impl Snapshot {
    /// The body of `/snapshot-v2?channel=meters.G|notices[&since_seq=N]`.
    pub fn json(&self, names: &Names) -> String {
        let n = match &self.patch {
            SnapshotBody::Meters { meters, .. } => meters.len(),
            SnapshotBody::Notices { notices, .. } => notices.len(),
        };
        let mut s = String::with_capacity(128 + n * 140);
        let _ = write!(
            s,
            r#"{{"channel":"{}","epoch":{},"snapshot_seq":{}"#,
            self.channel, self.epoch, self.snapshot_seq
        );
        if let Some(n) = self.since_seq {
            let _ = write!(s, r#","since_seq":{n}"#);
        }
        let list = |s: &mut String, key: &str, f: &mut dyn FnMut(&mut String)| {
            let _ = write!(s, r#","{key}":["#);
            f(s);
            s.push(']');
        };
        match &self.patch {
            SnapshotBody::Meters { meters, remove } => {
                list(&mut s, "meters", &mut |s| {
                    for (i, e) in meters.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        names.entity(s, e);
                    }
                });
                if self.since_seq.is_some() {
                    list(&mut s, "remove", &mut |s| {
                        for (i, m) in remove.iter().enumerate() {
                            if i > 0 {
                                s.push(',');
                            }
                            write_str(s, names.id(*m));
                        }
                    });
                }
            }
            SnapshotBody::Notices { notices, remove } => {
                list(&mut s, "notices", &mut |s| {
                    for (i, x) in notices.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        write_notice(s, x);
                    }
                });
                if self.since_seq.is_some() {
                    list(&mut s, "remove", &mut |s| {
                        for (i, id) in remove.iter().enumerate() {
                            if i > 0 {
                                s.push(',');
                            }
                            write_str(s, id);
                        }
                    });
                }
            }
        }
        s.push('}');
        s
    }
}

/// One group: its members and its stream.
#[derive(Debug)]
struct Group {
    members: Vec<u32>,
    stream: Stream,
    /// Members changed in the tick being applied.
    changed: Vec<u32>,
}

/// Limits of the channel model (from `FeedConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Deltas kept per channel for the stream.
    pub delta_ring: usize,
    /// Notices held at once (the oldest is removed past it).
    pub max_notices: usize,
    /// Notice removals remembered for mini-snapshots.
    pub notice_removals: usize,
}

/// A full snapshot body and the channel position `(epoch, seq)` it was encoded at.
type KeptBody = ((u64, u64), Arc<str>);

/// The `meters.<group>` and `notices` read model.
#[derive(Debug)]
pub struct ChannelModel {
    epoch: u64,
    limits: ChannelLimits,
    names: Arc<Names>,
    group_of: Vec<u16>,
    groups: Vec<Group>,
    entities: Vec<Entity>,
    /// Per meter, the `seq` (on its group's channel) of its last change.
    changed_seq: Vec<u64>,
    /// Dropout incidents (their meter is `offline` while they last).
    dropouts: Vec<Incident>,
    notices: Stream,
    /// Held notices with the `seq` of their last change, oldest first.
    held: VecDeque<(Notice, u64)>,
    /// Removed notices `(seq, id)`, oldest first, at most `notice_removals`.
    removed: VecDeque<(u64, String)>,
    /// A mini-snapshot since `N < horizon` cannot list its removals: full.
    removed_horizon: u64,
    next_notice: u64,
    last_ts: u64,
    incident_posted: Vec<bool>,
    rng: SplitMix64,
    /// Full snapshot bodies already encoded, one per channel at most, each
    /// valid for the channel position it was encoded at (so the next delta of
    /// that channel invalidates it). Memory: one full snapshot body per
    /// channel (`groups` + 1 at most, about 140 bytes a meter).
    bodies: Mutex<HashMap<String, KeptBody>>,
}

impl ChannelModel {
    /// The model for `ids`/`resources`, meters in `group_of` (one of `groups`),
    /// dropouts from `incidents`, at simulated `start_ms`. (Each argument is a
    /// distinct piece of the simulation's setup; a struct would only rename them.)
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        epoch: u64,
        ids: Vec<String>,
        resources: Vec<usize>,
        group_of: Vec<u16>,
        groups: usize,
        incidents: &[Incident],
        seed: u64,
        start_ms: u64,
        limits: ChannelLimits,
    ) -> ChannelModel {
        let mut gs: Vec<Group> = (0..groups.max(1))
            .map(|i| Group {
                members: Vec::new(),
                stream: Stream::new(format!("{METERS_PREFIX}{}", group_name(i))),
                changed: Vec::new(),
            })
            .collect();
        for (m, &g) in group_of.iter().enumerate() {
            if let Some(grp) = gs.get_mut(g as usize) {
                grp.members.push(m as u32);
            }
        }
        let n = ids.len();
        ChannelModel {
            epoch,
            limits: ChannelLimits {
                delta_ring: limits.delta_ring.max(1),
                max_notices: limits.max_notices.max(1),
                notice_removals: limits.notice_removals.max(1),
            },
            names: Arc::new(Names { ids, resources }),
            group_of,
            groups: gs,
            entities: (0..n).map(|m| Entity { meter: m as u32, ..Entity::default() }).collect(),
            changed_seq: vec![0; n],
            dropouts: incidents
                .iter()
                .filter(|i| i.kind == IncidentKind::Dropout)
                .copied()
                .collect(),
            notices: Stream::new(NOTICES.to_string()),
            held: VecDeque::new(),
            removed: VecDeque::new(),
            removed_horizon: 0,
            next_notice: 0,
            last_ts: start_ms,
            incident_posted: vec![false; incidents.len()],
            rng: SplitMix64::new(seed ^ 0x6e6f_7469_6365_0001),
            bodies: Mutex::new(HashMap::new()),
        }
    }

    /// The full snapshot body of `channel` encoded at its current position, if
    /// one was kept: `(epoch, snapshot_seq, body)`.
    pub fn cached_snapshot(&self, channel: &str) -> Option<(u64, u64, Arc<str>)> {
        let at = (self.epoch, self.stream(channel)?.seq);
        let bodies = self.bodies.lock().unwrap_or_else(PoisonError::into_inner);
        bodies.get(channel).filter(|(pos, _)| *pos == at).map(|(_, b)| (at.0, at.1, b.clone()))
    }

    /// Keeps `body`, the full snapshot of `channel` at `(epoch, seq)`, unless
    /// the channel has moved on since (a stale body is never kept).
    pub fn keep_snapshot(&self, channel: &str, epoch: u64, seq: u64, body: Arc<str>) {
        let Some(stream) = self.stream(channel) else { return };
        if (self.epoch, stream.seq) != (epoch, seq) {
            return;
        }
        let mut bodies = self.bodies.lock().unwrap_or_else(PoisonError::into_inner);
        match bodies.get_mut(channel) {
            Some(kept) => *kept = ((epoch, seq), body),
            None => {
                bodies.insert(stream.name.to_string(), ((epoch, seq), body));
            }
        }
    }

    /// Names for encoding.
    pub fn names(&self) -> &Arc<Names> {
        &self.names
    }

    /// The number of groups.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Group `g`'s member meters.
    pub fn members(&self, g: usize) -> &[u32] {
        self.groups.get(g).map_or(&[], |x| &x.members)
    }

    /// The stream of `meters.<group>` or `notices`.
    pub fn stream(&self, channel: &str) -> Option<&Stream> {
        if channel == NOTICES {
            return Some(&self.notices);
        }
        self.group_index(channel).and_then(|g| self.groups.get(g)).map(|g| &g.stream)
    }

    /// Every channel's stream, groups first.
    pub fn streams(&self) -> impl Iterator<Item = &Stream> {
        self.groups.iter().map(|g| &g.stream).chain(std::iter::once(&self.notices))
    }

    /// The group of a `meters.<group>` channel name.
    pub fn group_index(&self, channel: &str) -> Option<usize> {
        let name = channel.strip_prefix(METERS_PREFIX)?;
        self.groups.iter().position(|g| g.stream.name.strip_prefix(METERS_PREFIX) == Some(name))
    }

    /// The district group of meter `m` (`north`, …).
    pub fn group_of(&self, m: u32) -> Option<&str> {
        let g = *self.group_of.get(m as usize)?;
        self.groups.get(usize::from(g))?.stream.name.strip_prefix(METERS_PREFIX)
    }

    /// One meter's entity.
    pub fn entity(&self, m: u32) -> Option<&Entity> {
        self.entities.get(m as usize)
    }

    /// Held notices, oldest first.
    pub fn notices(&self) -> impl Iterator<Item = &Notice> {
        self.held.iter().map(|(n, _)| n)
    }

    /// Applies one tick (`ts`, its readings, `incidents` for notices): at most
    /// one delta per group with the meters that changed, and one on `notices`.
    pub fn apply(&mut self, ts: u64, readings: &[Reading], incidents: &[Incident]) {
        for r in readings {
            let m = r.meter as usize;
            let Some(e) = self.entities.get_mut(m) else { continue };
            e.ts = r.ts_ms;
            e.units = r.units;
            e.count += 1;
            e.total_units += r.units;
            e.status = Status::Ok;
            if let Some(g) = self.group_of.get(m).and_then(|&g| self.groups.get_mut(g as usize)) {
                g.changed.push(r.meter);
            }
        }
        // Meters that did not read this tick: offline in a dropout, stale past
        // STALE_MS; only a change of status makes a change.
        for e in &mut self.entities {
            if e.ts == ts {
                continue;
            }
            let offline = self
                .dropouts
                .iter()
                .any(|d| d.meter == e.meter && (d.start_ms..d.end_ms).contains(&ts));
            let status = if offline {
                Status::Offline
            } else if ts.saturating_sub(e.ts) > STALE_MS {
                Status::Stale
            } else {
                e.status
            };
            if status != e.status {
                e.status = status;
                let g = self.group_of.get(e.meter as usize).copied().unwrap_or(0);
                if let Some(g) = self.groups.get_mut(g as usize) {
                    g.changed.push(e.meter);
                }
            }
        }
        for g in &mut self.groups {
            if g.changed.is_empty() {
                continue;
            }
            let seq = g.stream.seq + 1;
            g.changed.sort_unstable();
            g.changed.dedup();
            let mut upsert = Vec::with_capacity(g.changed.len());
            for &m in &g.changed {
                if let (Some(e), Some(c)) =
                    (self.entities.get(m as usize), self.changed_seq.get_mut(m as usize))
                {
                    upsert.push(*e);
                    *c = seq;
                }
            }
            g.changed.clear();
            let d = Delta {
                channel: g.stream.name.clone(),
                epoch: self.epoch,
                seq,
                patch: Patch::Meters { upsert, remove: Vec::new() },
                names: self.names.clone(),
                json: OnceLock::new(),
                binary: OnceLock::new(),
            };
            g.stream.push(d, self.limits.delta_ring);
        }
        self.apply_notices(ts, incidents);
        self.last_ts = ts;
    }

    fn apply_notices(&mut self, ts: u64, incidents: &[Incident]) {
        let mut upsert = Vec::new();
        let mut remove = Vec::new();
        // Ended notices go.
        while let Some(i) = self.held.iter().position(|(n, _)| n.to_ms <= ts) {
            if let Some((n, _)) = self.held.remove(i) {
                remove.push(n.id);
            }
        }
        // A maintenance notice at each new hour.
        if ts / HOUR_MS != self.last_ts / HOUR_MS {
            let hour = ts / HOUR_MS * HOUR_MS;
            let g = (self.rng.next_u64() % self.groups.len().max(1) as u64) as usize;
            let severity = if self.rng.next_u64() % 4 == 0 { "warning" } else { "info" };
            upsert.push(self.notice(
                severity,
                "Scheduled maintenance".to_string(),
                format!("Readings in district {} may arrive late.", group_name(g)),
                hour + MAINTENANCE_AT_MS,
                hour + MAINTENANCE_AT_MS + MAINTENANCE_FOR_MS,
            ));
        }
        // An outage notice when a dropout starts.
        for (k, inc) in incidents.iter().enumerate() {
            let posted = self.incident_posted.get(k).copied().unwrap_or(true);
            if inc.kind != IncidentKind::Dropout || posted || ts < inc.start_ms {
                continue;
            }
            if let Some(p) = self.incident_posted.get_mut(k) {
                *p = true;
            }
            if ts >= inc.end_ms {
                continue;
            }
            let id = self.names.id(inc.meter).to_string();
            upsert.push(self.notice(
                "critical",
                format!("Meter {id} offline"),
                format!("No readings from {id}; the outage is being investigated."),
                inc.start_ms,
                inc.end_ms,
            ));
        }
        if upsert.is_empty() && remove.is_empty() {
            return;
        }
        let seq = self.notices.seq + 1;
        for n in &upsert {
            if self.held.len() >= self.limits.max_notices {
                if let Some((old, _)) = self.held.pop_front() {
                    remove.push(old.id);
                }
            }
            self.held.push_back((n.clone(), seq));
        }
        for id in &remove {
            if self.removed.len() >= self.limits.notice_removals {
                if let Some((s, _)) = self.removed.pop_front() {
                    self.removed_horizon = s;
                }
            }
            self.removed.push_back((seq, id.clone()));
        }
        // A notice evicted in the tick it was posted is only a removal.
        upsert.retain(|n| !remove.contains(&n.id));
        let d = Delta {
            channel: self.notices.name.clone(),
            epoch: self.epoch,
            seq,
            patch: Patch::Notices { upsert, remove },
            names: self.names.clone(),
            json: OnceLock::new(),
            binary: OnceLock::new(),
        };
        self.notices.push(d, self.limits.delta_ring);
    }

    fn notice(
        &mut self,
        severity: &'static str,
        title: String,
        text: String,
        from: u64,
        to: u64,
    ) -> Notice {
        self.next_notice += 1;
        Notice {
            id: format!("n-{}", self.next_notice),
            severity,
            title,
            text,
            from_ms: from,
            to_ms: to,
        }
    }

    /// The snapshot of `channel` (`None`: unknown channel); with `since =
    /// Some((E, N))` a mini-snapshot of the changes after `N` when `E` is this
    /// epoch and `N` is held, else a full one.
    pub fn snapshot(&self, channel: &str, since: Option<(u64, u64)>) -> Option<Snapshot> {
        let stream = self.stream(channel)?;
        let seq = stream.seq;
        let since = since.and_then(|(e, n)| (e == self.epoch && n <= seq).then_some(n));
        if channel == NOTICES {
            let since = since.filter(|&n| n >= self.removed_horizon);
            let after = since.unwrap_or(0);
            let notices =
                self.held.iter().filter(|(_, s)| *s > after).map(|(n, _)| n.clone()).collect();
            let remove = match since {
                Some(n) => {
                    self.removed.iter().filter(|(s, _)| *s > n).map(|(_, id)| id.clone()).collect()
                }
                None => Vec::new(),
            };
            return Some(Snapshot {
                channel: stream.name.clone(),
                epoch: self.epoch,
                snapshot_seq: seq,
                since_seq: since,
                patch: SnapshotBody::Notices { notices, remove },
            });
        }
        let g = self.groups.get(self.group_index(channel)?)?;
        // Meters are never removed: every N of this epoch is held.
        let after = since.unwrap_or(0);
        let meters = g
            .members
            .iter()
            .filter(|&&m| self.changed_seq.get(m as usize).is_some_and(|&c| c > after))
            .filter_map(|&m| self.entities.get(m as usize).copied())
            .collect();
        Some(Snapshot {
            channel: g.stream.name.clone(),
            epoch: self.epoch,
            snapshot_seq: seq,
            since_seq: since,
            patch: SnapshotBody::Meters { meters, remove: Vec::new() },
        })
    }

    /// `{"version":V,"groups":{"north":["w-00001",…],…}}` (`V`: the epoch; the
    /// map never changes within one).
    pub fn groups_json(&self) -> String {
        let mut s = String::with_capacity(64 + self.entities.len() * 12);
        let _ = write!(s, r#"{{"version":{},"groups":{{"#, self.epoch);
        for (i, g) in self.groups.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            write_str(&mut s, g.stream.name.strip_prefix(METERS_PREFIX).unwrap_or(""));
            s.push_str(":[");
            for (j, &m) in g.members.iter().enumerate() {
                if j > 0 {
                    s.push(',');
                }
                write_str(&mut s, self.names.id(m));
            }
            s.push(']');
        }
        s.push_str("}}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::sim::Simulator;
    use super::*;
    use crate::core::decimal::format_units;
    use std::collections::BTreeMap;

    const LIMITS: ChannelLimits =
        ChannelLimits { delta_ring: 64, max_notices: 8, notice_removals: 16 };

    fn model(sim: &Simulator, groups: usize, limits: ChannelLimits) -> ChannelModel {
        let ids: Vec<String> = sim.meters().iter().map(|m| m.id.clone()).collect();
        let res = sim.meters().iter().map(|m| m.resource).collect();
        let g = assign_groups(ids.len(), groups, 5);
        ChannelModel::new(3, ids, res, g, groups, sim.incidents(), 5, sim.start_ms(), limits)
    }

    /// A client's view of a meters channel: entities by meter.
    fn apply_snapshot(state: &mut BTreeMap<u32, Entity>, s: &Snapshot) {
        let SnapshotBody::Meters { meters, remove } = &s.patch else { return };
        if s.since_seq.is_none() {
            state.clear();
        }
        for m in remove {
            state.remove(m);
        }
        for e in meters {
            state.insert(e.meter, *e);
        }
    }

    fn apply_delta(state: &mut BTreeMap<u32, Entity>, d: &Delta) {
        let Patch::Meters { upsert, remove } = &d.patch else { return };
        for m in remove {
            state.remove(m);
        }
        for e in upsert {
            state.insert(e.meter, *e);
        }
    }

    #[test]
    fn groups_are_deterministic_per_seed_and_cover_every_meter() {
        assert_eq!(assign_groups(1_000, 8, 1), assign_groups(1_000, 8, 1));
        assert_ne!(assign_groups(1_000, 8, 1), assign_groups(1_000, 8, 2));
        let g = assign_groups(8_000, 8, 1);
        for i in 0..8u16 {
            let n = g.iter().filter(|&&x| x == i).count();
            assert!((800..1_200).contains(&n), "group {i}: {n}");
        }
        assert!(assign_groups(100, 64, 1).iter().all(|&x| x < 64));
        assert_eq!(group_name(0), "north");
        assert_eq!(group_name(7), "airport");
        assert_eq!(group_name(8), "district-9");
        let sim = Simulator::new(50, 1, 1_764_000_000_000);
        let m = model(&sim, 3, LIMITS);
        let v: serde_json::Value = serde_json::from_str(&m.groups_json()).unwrap_or_default();
        let total: usize = ["north", "south", "east"]
            .iter()
            .map(|g| v["groups"][g].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(total, 50);
        assert_eq!(v["version"], 3);
    }

    #[test]
    fn entity_state_equals_a_recomputation_from_the_generated_readings() -> Result<(), String> {
        // Long enough to go through the dropout (5th incident, 25–30 min in),
        // which ends 5 minutes after the hour turns (20 min in).
        let mut sim = Simulator::new(40, 11, 1_764_000_000_000 - 20 * 60_000);
        let incidents = sim.incidents().to_vec();
        let mut m = model(&sim, 4, LIMITS);
        let dropout = incidents.iter().find(|i| i.kind == IncidentKind::Dropout).copied();
        let mut want: BTreeMap<u32, (u64, i64, u64, i64)> = BTreeMap::new();
        let mut out = Vec::new();
        let mut saw_offline = false;
        for _ in 0..(48 * 120) {
            let ts = sim.step(&mut out);
            for r in &out {
                let w = want.entry(r.meter).or_default();
                *w = (r.ts_ms, r.units, w.2 + 1, w.3 + r.units);
            }
            m.apply(ts, &out, &incidents);
            if let Some(d) = dropout {
                let e = m.entity(d.meter).copied().unwrap_or_default();
                let inside = (d.start_ms..d.end_ms).contains(&ts);
                assert_eq!(e.status == Status::Offline, inside, "at {ts}");
                saw_offline |= inside;
            }
        }
        assert!(saw_offline);
        for (meter, (ts, units, count, total)) in &want {
            let e = m.entity(*meter).copied().unwrap_or_default();
            assert_eq!((e.ts, e.units, e.count, e.total_units), (*ts, *units, *count, *total));
        }
        // The client's view from the full snapshots equals the entities.
        for g in 0..m.groups() {
            let name = format!("meters.{}", group_name(g));
            let s = m.snapshot(&name, None).ok_or_else(|| format!("no channel {name}"))?;
            let SnapshotBody::Meters { meters, .. } = s.patch else {
                return Err("not meters".into());
            };
            assert_eq!(meters.len(), m.members(g).len());
            assert!(meters.iter().all(|e| m.entity(e.meter) == Some(e)));
        }
        // The outage and hourly notices were posted; the hour's maintenance is
        // still held, the ended outage was removed.
        let notices = m.snapshot(NOTICES, None).map(|s| s.patch);
        let Some(SnapshotBody::Notices { notices, .. }) = notices else {
            return Err("no notices".into());
        };
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(m.stream(NOTICES).map(Stream::seq), Some(3));
        Ok(())
    }

    #[test]
    fn an_old_state_plus_a_mini_snapshot_plus_the_deltas_after_equals_the_full_snapshot(
    ) -> Result<(), String> {
        let mut sim = Simulator::new(60, 3, 1_764_000_000_000 - 1_000);
        let incidents = sim.incidents().to_vec();
        let mut m = model(&sim, 2, LIMITS);
        let mut out = Vec::new();
        let ch = "meters.south";
        let mut old = BTreeMap::new();
        let mut rng = SplitMix64::new(9);
        for round in 0..40 {
            // A client that saw N, misses some deltas, then takes since_seq = N.
            let snap = m.snapshot(ch, None).ok_or("no channel")?;
            apply_snapshot(&mut old, &snap);
            let n = snap.snapshot_seq;
            // Every other round misses exactly one delta (the edge of `> N`).
            let missed = if round % 2 == 0 { 1 } else { 1 + rng.next_u64() % 30 };
            for _ in 0..missed {
                let ts = sim.step(&mut out);
                m.apply(ts, &out, &incidents);
            }
            let mini = m.snapshot(ch, Some((3, n))).ok_or("no channel")?;
            assert_eq!(mini.since_seq, Some(n), "round {round}");
            let mut state = old.clone();
            apply_snapshot(&mut state, &mini);
            let mut full = BTreeMap::new();
            apply_snapshot(&mut full, &m.snapshot(ch, None).ok_or("no channel")?);
            assert_eq!(state, full, "round {round}: old + mini");
            // Later deltas on top of the mini-snapshot.
            let at = mini.snapshot_seq;
            for _ in 0..3 {
                let ts = sim.step(&mut out);
                m.apply(ts, &out, &incidents);
            }
            let deltas = m.stream(ch).and_then(|s| s.deltas_after(at, 100)).unwrap_or_default();
            assert_eq!(deltas.len(), 3);
            for d in &deltas {
                apply_delta(&mut state, d);
            }
            let mut full = BTreeMap::new();
            let snap = m.snapshot(ch, None).ok_or("no channel")?;
            apply_snapshot(&mut full, &snap);
            assert_eq!(state, full, "round {round}");
            // A mini one of another epoch is a full one.
            assert_eq!(m.snapshot(ch, Some((2, n))).map(|s| s.since_seq), Some(None));
        }
        Ok(())
    }

    #[test]
    fn notices_stay_bounded_and_mini_snapshots_list_removals() -> Result<(), String> {
        let mut sim = Simulator::new(5, 2, 1_764_000_000_000);
        let incidents = sim.incidents().to_vec();
        let limits = ChannelLimits { delta_ring: 4, max_notices: 2, notice_removals: 3 };
        let mut m = model(&sim, 1, limits);
        let mut out = Vec::new();
        let mut state: BTreeMap<String, Notice> = BTreeMap::new();
        let mut seen = 0;
        // 30 simulated hours with a notice each hour: the store holds ≤ 2.
        for _ in 0..(30 * 7_200) {
            let ts = sim.step(&mut out);
            m.apply(ts, &out, &incidents);
            assert!(m.notices().count() <= 2);
            let seq = m.stream(NOTICES).map_or(0, Stream::seq);
            if seq > seen {
                let s = m.snapshot(NOTICES, Some((3, seen))).ok_or("no notices channel")?;
                let SnapshotBody::Notices { notices, remove } = &s.patch else {
                    return Err("not notices".into());
                };
                if s.since_seq.is_none() {
                    state.clear();
                }
                remove.iter().for_each(|id| {
                    state.remove(id);
                });
                notices.iter().for_each(|n| {
                    state.insert(n.id.clone(), n.clone());
                });
                let want: BTreeMap<String, Notice> =
                    m.notices().map(|n| (n.id.clone(), n.clone())).collect();
                assert_eq!(state, want);
                seen = s.snapshot_seq;
            }
        }
        assert!(seen >= 59, "{seen}");
        assert!(m.stream(NOTICES).is_some_and(|s| s.ring.len() <= 4));
        // N older than the remembered removals: a full snapshot.
        assert_eq!(m.snapshot(NOTICES, Some((3, 1))).map(|s| s.since_seq), Some(None));
        Ok(())
    }

    #[test]
    fn units_are_written_as_format_units_writes_them() {
        for u in
            [0i64, 1, 9, 10, 999, 1_000, 1_001, 12_500, -1, -1_000, -12_345, i64::MAX, i64::MIN]
        {
            let mut s = String::new();
            push_units(&mut s, u);
            assert_eq!(s, format_units(u, DECIMALS), "{u}");
        }
    }

    #[test]
    fn fifty_thousand_meters_stay_within_their_caps() -> Result<(), String> {
        let mut sim = Simulator::new(50_000, 2, 1_764_000_000_000);
        let incidents = sim.incidents().to_vec();
        let limits = ChannelLimits { delta_ring: 4, max_notices: 8, notice_removals: 16 };
        let mut m = model(&sim, 8, limits);
        let mut out = Vec::new();
        for _ in 0..12 {
            let ts = sim.step(&mut out);
            m.apply(ts, &out, &incidents);
        }
        let mut seen = 0;
        for g in 0..8 {
            let name = format!("meters.{}", group_name(g));
            let s = m.stream(&name).ok_or_else(|| format!("no channel {name}"))?;
            assert_eq!((s.seq(), s.ring.len()), (12, 4));
            let held: usize = s.ring.iter().map(|d| d.len()).sum();
            assert!(held <= 4 * m.members(g).len());
            let snap = m.snapshot(&name, None).map(|x| x.patch);
            let Some(SnapshotBody::Meters { meters, .. }) = snap else {
                return Err(format!("{name}: not meters"));
            };
            seen += meters.len();
        }
        assert_eq!(seen, 50_000);
        assert_eq!(m.entities.iter().map(|e| e.count).sum::<u64>(), 12 * 50_000);
        Ok(())
    }

    #[test]
    fn a_delta_and_a_snapshot_encode_as_the_interface_says() {
        let mut sim = Simulator::new(6, 1, 1_764_000_000_000);
        let incidents = sim.incidents().to_vec();
        let mut m = model(&sim, 1, LIMITS);
        let mut out = Vec::new();
        let ts = sim.step(&mut out);
        m.apply(ts, &out, &incidents);
        let d = m.stream("meters.north").and_then(|s| s.deltas_after(0, 1)).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&d[0].json()).unwrap_or_default();
        assert_eq!(v["op"], "DELTA");
        assert_eq!(v["channel"], "meters.north");
        assert_eq!((v["epoch"].as_u64(), v["seq"].as_u64()), (Some(3), Some(1)));
        let e = &v["patch"]["upsert"][0];
        let r = out[0];
        assert_eq!(e["meter"], sim.meters()[0].id.as_str());
        assert_eq!(e["ts"].as_u64(), Some(r.ts_ms));
        assert_eq!(e["value"].as_f64(), Some(r.units as f64 / 1e3));
        assert_eq!((e["status"].as_str(), e["count"].as_u64()), (Some("ok"), Some(1)));
        assert_eq!(e["total"], format_units(r.units, 3));
        assert_eq!(v["patch"]["remove"], serde_json::json!([]));
        let s = m.snapshot("meters.north", Some((3, 0))).map(|s| s.json(m.names()));
        let v: serde_json::Value = serde_json::from_str(&s.unwrap_or_default()).unwrap_or_default();
        assert_eq!((v["snapshot_seq"].as_u64(), v["since_seq"].as_u64()), (Some(1), Some(0)));
        assert_eq!(v["meters"].as_array().map(Vec::len), Some(6));
        assert!(m.snapshot("meters.nowhere", None).is_none());
        assert_eq!(m.group_of(0), Some("north"));
        assert_eq!(m.group_of(6), None);
        assert!(m.snapshot("totals", None).is_none());
    }
}
