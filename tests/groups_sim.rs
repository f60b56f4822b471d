#![cfg(not(target_arch = "wasm32"))]
//! Meter groups against an oracle, every message through the wire: seeded
//! schedules of live frames (JSON, `live` envelope) with drops, duplicates
//! and reordering, hour rollovers, and `/groups` refreshes answered with
//! random maps (multi-membership, unassigned meters, maps past `maxGroups`
//! and `maxGroupsPerMeter`), HTTP failures, malformed bodies and fetches
//! left unanswered. After every flush the `groups` event, serialised as the
//! page gets it, must show for every group, resource and kept hour exactly
//! the sum of the delivered readings of the meters the map in force lists in
//! it (`unassigned`: those it lists nowhere); and, for every hour from
//! `completeFrom` on, the sum of every reading the server sent up to the
//! newest frame delivered. At every check, the groups' 6-hour 5-minute
//! series and some meters' 2-hour 1-minute series, asked for with `query`,
//! equal the oracle bucket by bucket (the sums exactly).
//!
//! REST catch-ups (per resource or per meter, built from every reading the
//! server stamped up to a sent frame's stamp) arrive in any order: before the
//! first frame (no `hello`), held and delivered after newer ones, twice, or
//! stale; some readings come late (hours old, within the kept hours) and a few
//! beyond them. Per-resource catch-ups fill the resource totals only, so the
//! group totals of hours never rebuilt must still be exactly the delivered
//! readings, and wherever the engine says
//! complete (hours from `completeFrom`, a series answer without `incomplete`)
//! they must equal every reading the server sent up to the newest frame
//! delivered: nothing lost, nothing counted twice, or `incomplete` says so.
//!
//! Catch-ups listing per-meter hours rebuild the rows (docs/LEDGER.md,
//! "Rebuilding rows from a catch-up"): from then on the group totals of a
//! rebuilt hour must be the truth at its watermark plus the delivered
//! readings stamped after it, checked group by group right after every
//! rebuild; a third of the schedules keep a tiny row log so some rebuilds
//! are refused (`rebuild_refused`, the hours left `incomplete`). At
//! quiescence a last per-meter catch-up covering every frame sent must
//! rebuild every kept hour: every group total equals every reading sent,
//! and no group is `incomplete`.
//!
//! `METERFLOW_GROUPS_SCHEDULES` sets the number of schedules (default 150).

#[path = "common/rng.rs"]
mod rng;

use std::collections::{BTreeMap, HashMap, HashSet};

use meterflow::core::config::Config;
use meterflow::core::event::{Inbound, Outbound, StreamRequest};
use meterflow::core::Engine;
use meterflow::wire::{
    decode_fetched, decode_message, decode_text, encode, Arrival, Envelope, FetchedBody,
};
use rng::Rng;
use serde_json::Value;

const HOUR: f64 = 3_600_000.0;
const RESOURCES: [&str; 3] = ["water", "energy", "bandwidth"];
const NAMES: [&str; 9] =
    ["north", "south", "east", "west", "centre", "harbour", "hills", "airport", "site.7"];

/// `(group name, member meters)` in body order.
type MapBody = Vec<(String, Vec<usize>)>;
/// `(group, resource, hour) -> total`.
type Totals = BTreeMap<(String, String, i64), i64>;
/// `(meter, resource, hour) -> units` a row must hold.
type RowsWant = HashMap<(usize, usize, i64), i64>;
/// A series bucket: count, sum, min, max, (tick, amount) of the last.
type OracleBucket = (u64, i64, f32, f32, (f64, f32));

#[derive(Clone, Debug)]
struct Reading {
    /// The frame it was sent in (stamps increase with it).
    seq: u64,
    /// Sent beyond the kept hours: refused as late, never counted.
    beyond: bool,
    meter: usize,
    resource: usize,
    id: u64,
    hour: i64,
    ts: f64,
    units: i64,
}

/// A catch-up body and what the oracle needs of it.
#[derive(Clone)]
struct CatchupBody {
    text: String,
    /// The frame whose stamp is its `asOf`.
    seq: u64,
    /// Lists per-meter hours (at least one bucket, each with a meter).
    per_meter: bool,
    from: i64,
    to: i64,
}

struct Frame {
    seq: u64,
    text: String,
    readings: Vec<Reading>,
}

/// The map as the engine must hold it after applying `groups` (body order,
/// `maxGroups`, `maxGroupsPerMeter`).
fn effective(
    groups: &[(String, Vec<usize>)],
    cfg: &Config,
) -> (Vec<String>, HashMap<usize, Vec<usize>>) {
    let mut names = Vec::new();
    let mut of: HashMap<usize, Vec<usize>> = HashMap::new();
    for (name, members) in groups {
        if names.len() >= cfg.max_groups as usize {
            continue;
        }
        let g = names.len();
        names.push(name.clone());
        for &m in members {
            let list = of.entry(m).or_default();
            if !list.contains(&g) && list.len() < cfg.max_groups_per_meter as usize {
                list.push(g);
            }
        }
    }
    (names, of)
}

fn map_json(version: u64, groups: &[(String, Vec<usize>)]) -> String {
    // Written by hand to keep body order (the order decides which groups pass the bounds).
    let mut s = format!(r#"{{"version":{version},"groups":{{"#);
    for (i, (g, ms)) in groups.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let members: Vec<String> = ms.iter().map(|m| format!("\"m-{m}\"")).collect();
        s.push_str(&format!("\"{g}\":[{}]", members.join(",")));
    }
    s.push_str("}}");
    s
}

fn random_map(rng: &mut Rng, meters: usize) -> Vec<(String, Vec<usize>)> {
    let n = 1 + rng.below(NAMES.len() as u64) as usize;
    let mut names: Vec<&str> = NAMES.to_vec();
    // A random order of a random subset.
    for i in (1..names.len()).rev() {
        names.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut groups: Vec<(String, Vec<usize>)> =
        names[..n].iter().map(|s| (s.to_string(), Vec::new())).collect();
    for m in 0..meters {
        // 0 to 4 groups per meter; some meters in none (unassigned).
        let k = rng.below(5) as usize;
        for _ in 0..k {
            let g = rng.below(n as u64) as usize;
            groups[g].1.push(m);
        }
    }
    groups
}

fn units_of(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(i64::MIN),
        Value::String(s) => s.parse().unwrap_or(i64::MIN),
        _ => i64::MIN,
    }
}

/// `(group or "" for unassigned) -> resource -> hour -> total` from a serialised `groups` event.
fn totals_of(ev: &Value) -> (i64, Option<f64>, Totals) {
    let mut t = BTreeMap::new();
    let current = (ev["currentHour"].as_f64().unwrap_or(f64::NAN) / HOUR) as i64;
    let complete_from = ev["completeFrom"].as_f64();
    let mut all: Vec<&Value> =
        ev["groups"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    all.push(&ev["unassigned"]);
    for g in all {
        let name = g["group"].as_str().unwrap_or("?").to_string();
        for r in g["resources"].as_array().into_iter().flatten() {
            let res = r["resource"].as_str().unwrap_or("?").to_string();
            for b in r["buckets"].as_array().into_iter().flatten() {
                let hour = (b["hour"].as_f64().unwrap_or(f64::NAN) / HOUR) as i64;
                t.insert((name.clone(), res.clone(), hour), units_of(&b["total"]));
            }
        }
    }
    (current, complete_from, t)
}

struct Run {
    rng: Rng,
    cfg: Config,
    engine: Engine,
    now: f64,
    meters: usize,
    next_id: Vec<u64>,
    seq: u64,
    last_wall: u64,
    counter: u16,
    /// Every reading sent, by frame seq.
    sent: Vec<(u64, Reading)>,
    /// Each sent frame's HLC stamp `(wallMs, counter)`, by seq.
    stamps: Vec<(u64, u16)>,
    /// Whether some readings come beyond the kept hours.
    late_beyond: bool,
    /// Catch-up bodies built but not delivered yet.
    held_catchups: Vec<(f64, CatchupBody)>,
    /// The newest catch-up watermark delivered (as a frame seq).
    applied_seq: Option<u64>,
    /// `(resource, hour)` -> the frame seq of the watermark its rows were
    /// last rebuilt at, and whether no catch-up applied since without
    /// rebuilding them (a covered reading of a meter not tracked yet could
    /// then be missing from a row, and its hour says `incomplete`).
    rebuilt: HashMap<(usize, i64), (u64, bool)>,
    /// Rebuilds seen, those checked group by group right after, refusals.
    rebuilds: u64,
    rebuilds_checked: u64,
    refusals: u64,
    /// The newest `groups` event, serialised.
    last_groups: Option<Value>,
    catchups: u64,
    /// Series answers compared with every reading sent (complete) and with the
    /// delivered ones only (`incomplete`).
    series_complete: u64,
    series_incomplete: u64,
    delivered: HashSet<(usize, u64)>,
    delivered_readings: Vec<Reading>,
    max_delivered_seq: Option<u64>,
    held: Vec<Frame>,
    /// The server's map and version.
    server_map: MapBody,
    server_version: u64,
    /// The map the engine must hold (after a successful refresh).
    engine_map: Option<(u64, MapBody)>,
    outstanding: Vec<u64>,
    consecutive_failures: u32,
    checks: u64,
    /// Series buckets with readings compared, and those more than 2 h old.
    series_buckets: u64,
    series_old_buckets: u64,
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut rng = Rng(seed);
        let meters = 2 + rng.below(30) as usize;
        let cfg = Config {
            max_meters: 64,
            max_groups: 1 + rng.below(9) as u32,
            max_groups_per_meter: 1 + rng.below(4) as u32,
            // Held frames may come back after many newer readings of their meter.
            dedup_window: 65_536,
            // Late frames would only be kept out of the anomaly windows (and say so).
            detect_live: false,
            // A third of the schedules keep so few live readings for rebuilds
            // that some rebuilds must be refused.
            max_row_log_readings: if rng.chance(0.3) { rng.below(40) as u32 } else { 65_536 },
            ..Config::default()
        };
        let mut engine = Engine::new(cfg.clone()).unwrap_or_default();
        let start = serde_json::json!({"type": "session", "v": 1, "op": "start"});
        engine.handle(decode_message(&start, &cfg), 0.0);
        let now = 1_764_064_800_000.0 + rng.range(0.0, HOUR);
        let server_map = random_map(&mut rng, meters);
        Run {
            cfg,
            engine,
            now,
            meters,
            next_id: vec![0; meters],
            seq: 0,
            last_wall: 0,
            counter: 0,
            sent: Vec::new(),
            stamps: Vec::new(),
            late_beyond: rng.chance(0.2),
            held_catchups: Vec::new(),
            applied_seq: None,
            rebuilt: HashMap::new(),
            rebuilds: 0,
            rebuilds_checked: 0,
            refusals: 0,
            last_groups: None,
            catchups: 0,
            series_complete: 0,
            series_incomplete: 0,
            delivered: HashSet::new(),
            delivered_readings: Vec::new(),
            max_delivered_seq: None,
            held: Vec::new(),
            server_map,
            server_version: 1,
            engine_map: None,
            outstanding: Vec::new(),
            consecutive_failures: 0,
            checks: 0,
            series_buckets: 0,
            series_old_buckets: 0,
            rng,
        }
    }

    /// The stream's greeting with the server's clock, so a late frame cannot
    /// pass for the clock (the ledger's clock handling is proven elsewhere).
    fn hello(&mut self) {
        let text = format!(r#"{{"type":"hello","epoch":1,"nextSeq":0,"serverTime":{}}}"#, self.now);
        let arrival = Arrival { sent_at_ms: None, received_at_ms: Some(self.now) };
        let input = decode_text(Envelope::Live, &text, arrival, &self.cfg);
        self.handle(input);
    }

    fn handle(&mut self, input: Inbound) -> Vec<Outbound> {
        let out = self.engine.handle(input, self.now);
        for o in &out {
            match o {
                Outbound::Stream(StreamRequest::Fetch { request_id, path })
                    if path == "/groups" =>
                {
                    assert!(
                        self.outstanding.is_empty(),
                        "a second /groups fetch while one is outstanding"
                    );
                    self.outstanding.push(*request_id);
                }
                Outbound::Warning(w) if w.code.as_str() == "groups_refresh_failed" => {
                    self.consecutive_failures += 1;
                    // Expired fetches are dropped by the engine.
                    self.outstanding.clear();
                    let want = format!("{} failure(s) in a row", self.consecutive_failures);
                    assert!(w.message.contains(&want), "{} lacks {want}", w.message);
                }
                Outbound::Groups(_) => {
                    self.last_groups = serde_json::to_value(encode(o)).ok();
                }
                Outbound::Error(e) => {
                    // Only the map's bounds may complain, and frames held past
                    // their hour's roll-off; frames are otherwise honest.
                    assert!(matches!(e.code.as_str(), "group_limit" | "late_reading"), "{e:?}");
                }
                _ => {}
            }
        }
        out
    }

    fn frame(&mut self) -> Frame {
        let wall = self.now as u64;
        if wall == self.last_wall {
            self.counter += 1;
        } else {
            self.counter = 0;
        }
        self.last_wall = wall;
        let stamp_hour = (wall as f64 / HOUR).floor() as i64;
        let mut readings = Vec::new();
        let mut items = Vec::new();
        for _ in 0..1 + self.rng.below(8) {
            let meter = self.rng.below(self.meters as u64) as usize;
            let resource = self.rng.below(3) as usize;
            let id = self.next_id[meter];
            self.next_id[meter] += 1;
            let late = match self.rng.below(100) {
                // Late within the kept hours (and within each series' 6 hours).
                0..=3 => self.rng.range(HOUR, 5.0 * HOUR),
                // Beyond the kept hours: refused as late, never counted anywhere
                // (in some schedules only, to keep the others' checks plain).
                4 if self.late_beyond => self.rng.range(7.5 * HOUR, 9.0 * HOUR),
                _ => self.rng.range(0.0, 5_000.0),
            };
            let ts = (self.now - late).floor();
            let units = self.rng.below(100_000) as i64;
            let hour = ((ts / HOUR).floor() as i64).min(stamp_hour);
            items.push(format!(
                r#"{{"meter":"m-{meter}","resource":"{}","id":{id},"ts":{ts},"amount":"{}.{:03}"}}"#,
                RESOURCES[resource],
                units / 1000,
                units % 1000
            ));
            let beyond = late >= 7.0 * HOUR;
            readings.push(Reading { seq: self.seq, beyond, meter, resource, id, hour, ts, units });
        }
        let seq = self.seq;
        self.seq += 1;
        self.stamps.push((wall, self.counter));
        let text = format!(
            r#"{{"type":"frame","epoch":1,"seq":{seq},"hlc":{{"wallMs":{wall},"counter":{}}},"readings":[{}]}}"#,
            self.counter,
            items.join(",")
        );
        for r in &readings {
            self.sent.push((seq, r.clone()));
        }
        Frame { seq, text, readings }
    }

    fn deliver(&mut self, f: &Frame) {
        let arrival = Arrival { sent_at_ms: None, received_at_ms: Some(self.now) };
        let input = decode_text(Envelope::Live, &f.text, arrival, &self.cfg);
        assert!(!matches!(input, Inbound::Rejected(_)), "{input:?}");
        self.handle(input);
        for r in &f.readings {
            if self.delivered.insert((r.meter, r.id)) {
                self.delivered_readings.push(r.clone());
            }
        }
        self.max_delivered_seq = self.max_delivered_seq.max(Some(f.seq));
    }

    fn answer(&mut self) {
        let Some(request_id) = self.outstanding.pop() else { return };
        let arrival = Arrival::default();
        let input = match self.rng.below(10) {
            0 | 1 => {
                decode_fetched(request_id, FetchedBody::Failed { status: 503 }, arrival, &self.cfg)
            }
            2 => decode_fetched(
                request_id,
                FetchedBody::Text(r#"{"version":2,"groups":["#),
                arrival,
                &self.cfg,
            ),
            3 => decode_fetched(
                request_id,
                FetchedBody::Text(r#"{"version":2,"groups":{"a":["m-1"],"a":[]}}"#),
                arrival,
                &self.cfg,
            ),
            4 => {
                // Left unanswered: it expires after groupsRefreshMs.
                self.outstanding.push(request_id);
                return;
            }
            _ => {
                if self.rng.chance(0.4) {
                    self.server_map = random_map(&mut self.rng, self.meters);
                    self.server_version += 1;
                }
                let text = map_json(self.server_version, &self.server_map);
                let input =
                    decode_fetched(request_id, FetchedBody::Text(&text), arrival, &self.cfg);
                self.handle(input);
                self.engine_map = Some((self.server_version, self.server_map.clone()));
                self.consecutive_failures = 0;
                return;
            }
        };
        self.handle(input);
    }

    /// A REST catch-up as the server answers it: every reading of the frames
    /// up to `seq`, bucketed by hour (per resource, or per meter), with that
    /// frame's stamp as `asOf`, over the kept hours up to `asOf`'s.
    fn catchup_body(&mut self, seq: u64) -> Option<CatchupBody> {
        let per_meter = self.rng.chance(0.5);
        self.catchup_body_as(seq, per_meter)
    }

    fn catchup_body_as(&mut self, seq: u64, per_meter: bool) -> Option<CatchupBody> {
        let &(wall, counter) = self.stamps.get(seq as usize)?;
        let to = (wall as f64 / HOUR).floor() as i64;
        let from = to - self.cfg.history_hours as i64;
        let mut sums: BTreeMap<(usize, usize, i64), i64> = BTreeMap::new();
        for (s, r) in &self.sent {
            if *s <= seq && (from..=to).contains(&r.hour) {
                let m = if per_meter { r.meter } else { usize::MAX };
                *sums.entry((r.resource, m, r.hour)).or_default() += r.units;
            }
        }
        let buckets: Vec<String> = sums
            .iter()
            .map(|(&(r, m, h), &u)| {
                let meter =
                    if m == usize::MAX { String::new() } else { format!(r#""meter":"m-{m}","#) };
                format!(
                    r#"{{{meter}"resource":"{}","hour":{},"total":"{}.{:03}"}}"#,
                    RESOURCES[r],
                    h as f64 * HOUR,
                    u / 1000,
                    u % 1000
                )
            })
            .collect();
        let text = format!(
            r#"{{"type":"catchup","asOf":{{"wallMs":{wall},"counter":{counter}}},"serverTime":{},"from":{},"to":{},"buckets":[{}]}}"#,
            self.now,
            from as f64 * HOUR,
            to as f64 * HOUR,
            buckets.join(",")
        );
        Some(CatchupBody { text, seq, per_meter: per_meter && !buckets.is_empty(), from, to })
    }

    /// Delivers a catch-up asked for at `sent_at` (when its body was built,
    /// its `serverTime`): a held one is a slow round trip.
    ///
    /// The oracle of the rows: a catch-up newer than every one delivered
    /// applies; one listing per-meter hours then rebuilds (or, with a
    /// `rebuild_refused` warning, leaves) the rows of its kept hours, and
    /// the groups' totals of a rebuilt `(resource, hour)` must from then on
    /// be its truth at the watermark plus the delivered readings after it
    /// (checked at once, group by group).
    fn deliver_catchup(&mut self, sent_at: f64, body: &CatchupBody) {
        let arrival = Arrival { sent_at_ms: Some(sent_at), received_at_ms: Some(self.now) };
        let input = decode_text(Envelope::Catchup, &body.text, arrival, &self.cfg);
        assert!(!matches!(input, Inbound::Rejected(_)), "{input:?}");
        let before = self.engine.ledger().rebuilds();
        let out = self.handle(input);
        self.catchups += 1;
        let after = self.engine.ledger().rebuilds();
        let warned = out
            .iter()
            .any(|o| matches!(o, Outbound::Warning(w) if w.code.as_str() == "rebuild_refused"));
        let (rebuilt, refused) = (after.0 - before.0, after.1 - before.1);
        assert_eq!(refused > 0, warned, "a refused rebuild says so, and only then");
        assert!(rebuilt + refused <= 1);
        if refused > 0 {
            // Refused only when the log really is short (in these schedules).
            assert!(self.cfg.max_row_log_readings < 65_536, "rebuild refused at the default log");
            self.refusals += 1;
        }
        let newer = self.applied_seq.is_none_or(|a| body.seq > a);
        if rebuilt + refused > 0 {
            assert!(body.per_meter, "only a per-meter catch-up rebuilds");
            assert!(self.applied_seq.is_none_or(|a| body.seq >= a), "a stale catch-up rebuilt");
        }
        let first_kept = (self.now / HOUR).floor() as i64 - self.cfg.history_hours as i64;
        if body.per_meter && newer && body.to > first_kept {
            assert_eq!(
                rebuilt + refused,
                1,
                "a newer per-meter catch-up neither rebuilt nor refused"
            );
        }
        if newer {
            self.applied_seq = Some(body.seq);
        }
        if rebuilt > 0 {
            for r in 0..RESOURCES.len() {
                for h in body.from..=body.to {
                    self.rebuilt.insert((r, h), (body.seq, true));
                }
            }
            self.rebuilds += 1;
            if self.engine_map.is_some() {
                self.check();
                self.rebuilds_checked += 1;
            }
        } else if newer {
            // Applied without rebuilding: the rows of its hours stay, but a
            // covered reading of a meter not tracked yet may now miss them.
            for r in 0..RESOURCES.len() {
                for h in body.from..=body.to {
                    if let Some(c) = self.rebuilt.get_mut(&(r, h)) {
                        c.1 = false;
                    }
                }
            }
        }
    }

    /// What meter `m`'s row of `(r, h)` must hold: its truth at the
    /// watermark it was rebuilt at plus its delivered readings after it, or
    /// its delivered readings; and whether it must hold exactly that.
    fn row_oracle(&self) -> (RowsWant, HashSet<(usize, i64)>) {
        let mut want: RowsWant = HashMap::new();
        for (seq, r) in &self.sent {
            if let Some(&(w, _)) = self.rebuilt.get(&(r.resource, r.hour)) {
                if *seq <= w {
                    *want.entry((r.meter, r.resource, r.hour)).or_default() += r.units;
                }
            }
        }
        for r in &self.delivered_readings {
            let after = self.rebuilt.get(&(r.resource, r.hour)).is_none_or(|&(w, _)| r.seq > w);
            if after {
                *want.entry((r.meter, r.resource, r.hour)).or_default() += r.units;
            }
        }
        let pure = self.rebuilt.iter().filter(|(_, &(_, p))| p).map(|(&k, _)| k).collect();
        (want, pure)
    }

    /// A catch-up up to a recent or an older frame: delivered now (sometimes
    /// twice), or held for later.
    fn catchup(&mut self) {
        if self.seq == 0 {
            return;
        }
        let back = if self.rng.chance(0.7) { self.rng.below(3) } else { self.rng.below(self.seq) };
        let Some(body) = self.catchup_body(self.seq - 1 - back.min(self.seq - 1)) else { return };
        let now = self.now;
        match self.rng.below(6) {
            0 | 1 => self.held_catchups.push((now, body)),
            2 => {
                self.deliver_catchup(now, &body);
                self.deliver_catchup(now, &body);
            }
            _ => self.deliver_catchup(now, &body),
        }
    }

    fn check(&mut self) {
        // The engine posts `groups` when something shown changed: the newest
        // one is what the page shows.
        self.handle(Inbound::Flush);
        let Some(ev) = self.last_groups.clone() else {
            return;
        };
        let Some((version, groups)) = &self.engine_map else {
            panic!("a groups event before any map applied");
        };
        assert_eq!(ev["version"].as_u64(), Some(*version));
        let (names, of) = effective(groups, &self.cfg);
        let (current, complete_from, totals) = totals_of(&ev);
        let kept = current - self.cfg.history_hours as i64..=current;
        let key = |g: &str, r: usize, h: i64| (g.to_string(), RESOURCES[r].to_string(), h);
        let mut want_rows: Totals = BTreeMap::new();
        let mut want_all: Totals = BTreeMap::new();
        let (rows, pure) = self.row_oracle();
        let targets = |m: usize| -> Vec<String> {
            match of.get(&m).filter(|l| !l.is_empty()) {
                Some(l) => l.iter().map(|&g| names[g].clone()).collect(),
                None => vec![String::new()],
            }
        };
        for (&(m, r, h), &u) in &rows {
            for g in targets(m) {
                *want_rows.entry(key(&g, r, h)).or_default() += u;
            }
        }
        // Complete means every reading stamped up to the newest frame
        // delivered, and for a rebuilt hour up to its watermark too.
        for (seq, r) in &self.sent {
            let rebuilt = self.rebuilt.get(&(r.resource, r.hour)).is_some_and(|&(w, _)| *seq <= w);
            if rebuilt || self.max_delivered_seq.is_some_and(|m| *seq <= m) {
                for g in targets(r.meter) {
                    *want_all.entry(key(&g, r.resource, r.hour)).or_default() += r.units;
                }
            }
        }
        let mut group_names: Vec<String> = names.clone();
        group_names.push(String::new());
        for g in &group_names {
            for (r, name) in RESOURCES.iter().enumerate() {
                for h in kept.clone() {
                    let k = key(g, r, h);
                    let got = totals.get(&k).copied();
                    let want = want_rows.get(&k).copied().unwrap_or(0);
                    // After a catch-up, a covered reading of a meter not tracked
                    // yet is left out of the rows (its hour is marked missed): an
                    // incomplete hour then holds at most the delivered readings
                    // (after a rebuild: the truth at its watermark and the
                    // delivered readings after it), unless it was just rebuilt.
                    let complete = complete_from.is_none_or(|c| h as f64 * HOUR >= c);
                    if complete || self.catchups == 0 || pure.contains(&(r, h)) {
                        assert_eq!(got, Some(want), "group {g:?} {name} hour {h}: row oracle");
                    } else {
                        let got = got.unwrap_or(i64::MAX);
                        assert!(
                            got <= want,
                            "group {g:?} {name} hour {h}: {got} > delivered {want}"
                        );
                    }
                    if complete {
                        let all = want_all.get(&k).copied().unwrap_or(0);
                        assert_eq!(
                            want, all,
                            "group {g:?} {name} hour {h} says complete but lacks readings"
                        );
                    }
                }
            }
        }
        assert_eq!(totals.len(), group_names.len() * 3 * (self.cfg.history_hours as usize + 1));
        // `incomplete` says exactly whether a kept hour lies before `completeFrom`.
        let first_kept = (current - self.cfg.history_hours as i64) as f64 * HOUR;
        let want_incomplete = complete_from.is_some_and(|c| c > first_kept);
        let mut all: Vec<&Value> =
            ev["groups"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        all.push(&ev["unassigned"]);
        for g in all {
            assert_eq!(g["incomplete"].as_bool(), Some(want_incomplete), "{g}");
        }
        self.check_series(&names, &of, current);
        self.checks += 1;
    }

    /// Every group's 6-hour 5-minute series and some meters' 2-hour 1-minute
    /// series, asked for as the page does (`query`, through the wire), equal
    /// the oracle bucket by bucket (count, exact sum, min, max; a meter's
    /// last) over the kept hours, within each meter's 6-hour horizon.
    fn check_series(&mut self, names: &[String], of: &HashMap<usize, Vec<usize>>, current: i64) {
        let first_kept = current - self.cfg.history_hours as i64;
        // Each (meter, resource)'s newest minute: its series keeps the 48
        // five-minute periods before its last 120 minutes, and those minutes.
        let mut head: HashMap<(usize, usize), i64> = HashMap::new();
        for r in &self.delivered_readings {
            let minute = (r.ts / 60_000.0).floor() as i64;
            let h = head.entry((r.meter, r.resource)).or_insert(minute);
            *h = (*h).max(minute);
        }
        let kept = |r: &Reading, step: f64| -> Option<i64> {
            let k = (r.ts / step).floor() as i64;
            let h = *head.get(&(r.meter, r.resource))?;
            let oldest_minute = ((h - 120).div_euclid(5) - 47) * 5;
            ((r.ts / 60_000.0).floor() as i64 >= oldest_minute && r.hour >= first_kept).then_some(k)
        };
        let mut asks: Vec<(String, Option<usize>, usize, f64)> = Vec::new();
        for (g, name) in names.iter().enumerate() {
            let r = self.rng.below(3) as usize;
            asks.push((format!(r#""group":"{name}""#), None, r, 6.0 * HOUR));
            let _ = g;
        }
        for _ in 0..2 {
            let m = self.rng.below(self.meters as u64) as usize;
            let r = self.rng.below(3) as usize;
            asks.push((format!(r#""meter":"m-{m}""#), Some(m), r, 2.0 * HOUR));
        }
        for (n, (target, meter, r, span)) in asks.into_iter().enumerate() {
            let id = 1000 + n;
            let text = format!(
                r#"{{"type":"query","query":"series",{target},"resource":"{}","spanMs":{span},"id":{id}}}"#,
                RESOURCES[r]
            );
            let msg: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let out = self.engine.handle(decode_message(&msg, &self.cfg), self.now);
            let answers: Vec<Value> =
                out.iter().filter_map(|o| serde_json::to_value(encode(o)).ok()).collect();
            let Some(ev) = answers.iter().find(|a| a["id"].as_f64() == Some(id as f64)) else {
                panic!("no answer to {text}: {answers:?}");
            };
            // A meter whose only readings came covered by a catch-up (or
            // beyond the kept hours) is not tracked, unless a catch-up
            // listing it rebuilt its rows.
            if ev["code"] == "unknown_meter" {
                let counted =
                    |m: usize| self.delivered_readings.iter().any(|x| x.meter == m && !x.beyond);
                assert!(self.catchups > 0 || meter.is_some_and(|m| !counted(m)), "{ev}");
                continue;
            }
            assert_eq!(ev["type"], "series", "{text}: {ev}");
            let step = ev["stepMs"].as_f64().unwrap_or(f64::NAN);
            assert_eq!(step, if span > 2.0 * HOUR { 300_000.0 } else { 60_000.0 });
            let ts: Vec<f64> =
                ev["ts"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
            assert_eq!(ts.len() as f64, span / step, "{text}");
            let gname = names.iter().position(|x| target == format!(r#""group":"{x}""#));
            let member = |m: usize| match (meter, gname) {
                (Some(want), _) => m == want,
                (None, Some(g)) => of.get(&m).is_some_and(|l| l.contains(&g)),
                _ => false,
            };
            // Oracle: bucket start -> (count, sum, min, max, last by ts). An
            // answer that does not say `incomplete` must hold every reading the
            // server sent up to the newest frame delivered; one that does, the
            // delivered readings (what it holds is still exact).
            let complete = ev["incomplete"] == Value::Bool(false);
            let truth: Vec<Reading> = if complete {
                self.series_complete += 1;
                self.sent
                    .iter()
                    .filter(|(s, _)| self.max_delivered_seq.is_some_and(|m| *s <= m))
                    .map(|(_, x)| x.clone())
                    .collect()
            } else {
                self.series_incomplete += 1;
                self.delivered_readings.clone()
            };
            let mut want: BTreeMap<i64, OracleBucket> = BTreeMap::new();
            for x in truth.iter().filter(|x| x.resource == r && member(x.meter)) {
                let Some(k) = kept(x, step) else { continue };
                let v = x.units as f32;
                let e = want.entry(k).or_insert((
                    0,
                    0,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    (f64::MIN, 0.0),
                ));
                e.0 += 1;
                e.1 += x.units;
                e.2 = e.2.min(v);
                e.3 = e.3.max(v);
                // `last` orders by 5 ms ticks, the later arrival on a tie.
                let tick = (x.ts / 5.0).floor();
                if tick >= e.4 .0 {
                    e.4 = (tick, v);
                }
            }
            let col = |name: &str, i: usize| ev[name].get(i).and_then(Value::as_f64);
            for (i, &t) in ts.iter().enumerate() {
                let k = (t / step) as i64;
                // Only kept hours are compared (older ones the rows no longer hold).
                if ((t / HOUR).floor() as i64) < first_kept {
                    continue;
                }
                let (count, sum, min, max, last) =
                    want.get(&k).copied().unwrap_or((0, 0, 0.0, 0.0, (0.0, 0.0)));
                // As for the totals: after a catch-up an incomplete answer may
                // lack covered readings of meters not tracked yet, never more.
                if !complete && self.catchups > 0 {
                    let got_count = col("count", i).unwrap_or(f64::NAN);
                    let got_sum = (col("sum", i).unwrap_or(f64::NAN) * 1000.0).round() as i64;
                    assert!(got_count <= count as f64 && got_sum <= sum, "{text} bucket {t}");
                    if got_count < count as f64 {
                        continue;
                    }
                }
                assert_eq!(
                    col("count", i),
                    Some(count as f64),
                    "{text} bucket {t}: count (complete: {complete})"
                );
                let got_sum = (col("sum", i).unwrap_or(f64::NAN) * 1000.0).round() as i64;
                assert_eq!(got_sum, sum, "{text} bucket {t}: sum (complete: {complete})");
                if count > 0 {
                    self.series_buckets += 1;
                    if t < self.now - 2.0 * HOUR {
                        self.series_old_buckets += 1;
                    }
                    assert_eq!(
                        col("min", i).map(|x| (x * 1000.0).round()),
                        Some(f64::from(min).round()),
                        "{text} min"
                    );
                    assert_eq!(
                        col("max", i).map(|x| (x * 1000.0).round()),
                        Some(f64::from(max).round()),
                        "{text} max"
                    );
                    if meter.is_some() {
                        assert_eq!(
                            col("last", i).map(|x| (x * 1000.0).round()),
                            Some(f64::from(last.1).round()),
                            "{text} last"
                        );
                    }
                } else {
                    assert!(
                        ev["min"][i].is_null() && ev["last"][i].is_null(),
                        "{text}: empty bucket {t}"
                    );
                }
            }
        }
    }

    /// Quiescence: a last frame, delivered, then a per-meter catch-up at its
    /// stamp (every frame sent, dropped ones too): it rebuilds every kept
    /// hour, so every group total is the truth and no group is incomplete.
    fn quiesce(&mut self) {
        self.now += 1_000.0;
        let f = self.frame();
        self.deliver(&f);
        let Some(body) = self.catchup_body_as(f.seq, true) else { return };
        let before = self.rebuilds;
        let now = self.now;
        self.deliver_catchup(now, &body);
        assert_eq!(self.rebuilds, before + 1, "the last catch-up must rebuild");
        self.check();
        let Some(ev) = self.last_groups.clone() else { return };
        let (current, complete_from, totals) = totals_of(&ev);
        let first_kept = current - self.cfg.history_hours as i64;
        assert!(complete_from.is_none_or(|c| c <= first_kept as f64 * HOUR), "{complete_from:?}");
        let (names, of) =
            effective(&self.engine_map.as_ref().map_or(Vec::new(), |m| m.1.clone()), &self.cfg);
        let mut truth: Totals = BTreeMap::new();
        for (_, r) in &self.sent {
            if r.hour < first_kept {
                continue;
            }
            let gs: Vec<String> = match of.get(&r.meter).filter(|l| !l.is_empty()) {
                Some(l) => l.iter().map(|&g| names[g].clone()).collect(),
                None => vec![String::new()],
            };
            for g in gs {
                *truth.entry((g, RESOURCES[r.resource].to_string(), r.hour)).or_default() +=
                    r.units;
            }
        }
        for (k, got) in &totals {
            assert_eq!(*got, truth.get(k).copied().unwrap_or(0), "{k:?} at quiescence");
        }
        let mut all: Vec<&Value> =
            ev["groups"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        all.push(&ev["unassigned"]);
        for g in all {
            assert_eq!(g["incomplete"].as_bool(), Some(false), "{g}");
        }
    }

    fn step(&mut self) {
        self.now += match self.rng.below(20) {
            0 => self.rng.range(600_000.0, 2.0 * HOUR),
            1..=4 => self.rng.range(1_000.0, 40_000.0),
            _ => self.rng.range(0.0, 500.0).floor(),
        };
        self.now = self.now.floor();
        match self.rng.below(10) {
            0..=4 => {
                let f = self.frame();
                match self.rng.below(20) {
                    0 => {} // dropped
                    1 => {
                        self.deliver(&f);
                        self.deliver(&f);
                    }
                    2 | 3 => self.held.push(f),
                    _ => self.deliver(&f),
                }
            }
            5 if !self.held.is_empty() => {
                let i = self.rng.below(self.held.len() as u64) as usize;
                let f = self.held.swap_remove(i);
                self.deliver(&f);
                // Some come again later, after catch-ups that cover them.
                if self.rng.chance(0.3) {
                    self.held.push(f);
                }
            }
            6 | 7 => {
                self.handle(Inbound::Tick(Default::default()));
            }
            8 => self.answer(),
            9 if self.rng.chance(0.3) => self.catchup(),
            9 if self.rng.chance(0.2) && !self.held_catchups.is_empty() => {
                let i = self.rng.below(self.held_catchups.len() as u64) as usize;
                let (at, body) = self.held_catchups.swap_remove(i);
                self.deliver_catchup(at, &body);
            }
            _ => self.check(),
        }
    }

    /// How the schedule starts: a `hello`, or a catch-up before any frame (no
    /// `hello`: its `serverTime` sets the clock) covering a first frame that
    /// comes later or never.
    fn start(&mut self) {
        if self.rng.chance(0.5) {
            self.hello();
            return;
        }
        let f = self.frame();
        if let Some(body) = self.catchup_body(f.seq) {
            let now = self.now;
            self.deliver_catchup(now, &body);
        }
        if self.rng.chance(0.5) {
            self.held.push(f);
        }
    }
}

#[test]
fn group_totals_equal_the_oracle_through_the_wire() {
    let n: u64 = std::env::var("METERFLOW_GROUPS_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    let (mut checks, mut applied, mut multi) = (0u64, 0u64, 0u64);
    let (mut buckets, mut old) = (0u64, 0u64);
    let (mut catchups, mut complete, mut incomplete) = (0u64, 0u64, 0u64);
    let (mut rebuilds, mut rebuilds_checked, mut refusals) = (0u64, 0u64, 0u64);
    for seed in 0..n {
        let mut run = Run::new(0x6A0_0000 + seed);
        run.start();
        for _ in 0..400 {
            run.step();
        }
        // Quiescence: every held frame delivered, a map applied, a final check.
        while let Some(f) = run.held.pop() {
            run.deliver(&f);
        }
        while let Some((at, body)) = run.held_catchups.pop() {
            run.deliver_catchup(at, &body);
        }
        run.check();
        // Then one more frame, and a per-meter catch-up covering every frame
        // sent (dropped ones too): it must rebuild every kept hour, and every
        // group total must be the truth, complete.
        run.quiesce();
        checks += run.checks;
        rebuilds += run.rebuilds;
        rebuilds_checked += run.rebuilds_checked;
        refusals += run.refusals;
        catchups += run.catchups;
        complete += run.series_complete;
        incomplete += run.series_incomplete;
        buckets += run.series_buckets;
        old += run.series_old_buckets;
        if run.engine_map.is_some() {
            applied += 1;
        }
        if run.engine_map.as_ref().is_some_and(|(_, g)| {
            let (_, of) = effective(g, &run.cfg);
            of.values().any(|l| l.len() > 1)
        }) {
            multi += 1;
        }
    }
    // The schedules exercise what they claim to.
    assert!(checks > n * 5, "only {checks} checks");
    assert!(applied > n / 2, "a map applied in only {applied} schedules");
    assert!(multi > n / 4, "multi-membership in only {multi} schedules");
    assert!(
        buckets > n * 50 && old > n,
        "series: {buckets} buckets compared, {old} older than 2 h"
    );
    assert!(catchups > n * 5, "only {catchups} catch-ups");
    eprintln!(
        "{n} schedules: {rebuilds} rebuilds ({rebuilds_checked} checked group by group at once), {refusals} refused"
    );
    assert!(
        rebuilds > n * 2 && rebuilds_checked > n && refusals > n / 20,
        "rebuilds: {rebuilds}, checked {rebuilds_checked}, refused {refusals}"
    );
    assert!(
        complete > n * 5 && incomplete > n * 5,
        "series answers: {complete} complete, {incomplete} incomplete"
    );
}
