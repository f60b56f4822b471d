//! The simulated feed server: channels with epochs, seqs and a ring of recent
//! deltas, a read model (exact hourly totals, meter rows), and one connection
//! speaking stream v2 with faults. Messages are the real server's formats:
//! JSON text, binary kind 2 for some totals frames, and binary kind-4
//! DELTAs on `meters.<group>` for a client that asked `binary_deltas`.
// `stream_sim` and `stream_sim_pending` use different parts (the snapshot
// faults are `stream_sim`'s).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use meterflow::core::decimal::{format_units, Decimal};
use meterflow::core::event::{KeyScope, LiveBinding, LiveFrame};
use meterflow::core::hlc::Hlc;
use meterflow::core::stream::{MeterRowRef, MeterStatus};
use meterflow::wire::binary::{encode_live, encode_meters_delta, TsLayout};
use serde_json::{json, Value};

use super::rng::Rng;

pub const RESOURCES: [&str; 3] = ["water", "energy", "bandwidth"];
pub const HOUR: i64 = 3_600_000;
/// Deltas a channel keeps for resume and mini-snapshots.
const RING: usize = 40;
pub const ENTITY_CHANNELS: [&str; 2] = ["meters.north", "meters.south"];

/// A JSON row as the binary encoder reads it: the values its text decodes to.
fn row_ref(v: &Value) -> MeterRowRef<'_> {
    MeterRowRef {
        meter: v["meter"].as_str().unwrap_or(""),
        resource: v["resource"].as_str().unwrap_or(""),
        ts: v["ts"].as_f64().unwrap_or(f64::NAN),
        value: v["value"].as_f64().unwrap_or(f64::NAN),
        status: MeterStatus::parse(v["status"].as_str().unwrap_or("")).unwrap_or(MeterStatus::Ok),
        count: v["count"].as_u64().unwrap_or(0),
        total: v["total"].as_str().and_then(Decimal::parse).unwrap_or_default(),
    }
}

/// A committed totals frame: its stamp and `(hour, resource, units)` per reading.
pub type LoggedFrame = (u64, Vec<(i64, usize, i64)>);

/// A message in flight to the client.
#[derive(Clone, Debug)]
pub enum Msg {
    Text(String),
    Binary(Vec<u8>),
}

/// One totals frame: `(meter, resource, id, ts, units)` per reading.
#[derive(Clone, Debug)]
pub struct Frame {
    pub seq: u64,
    pub stamp: u64,
    pub readings: Vec<(String, usize, u64, u64, i64)>,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub resource: usize,
    pub ts: u64,
    pub value: f64,
    pub status: &'static str,
    pub count: u64,
    pub units: i64,
}

#[derive(Clone, Debug)]
pub enum Delta {
    Frame(Frame),
    /// Rows as they were written at this seq, and ids removed.
    Patch {
        upsert: Vec<(String, Value)>,
        remove: Vec<String>,
    },
}

/// A channel's stream position and recent history.
#[derive(Clone, Debug)]
pub struct Stream {
    pub epoch: u64,
    pub seq: u64,
    pub ring: VecDeque<(u64, Delta)>,
}

impl Stream {
    fn oldest(&self) -> u64 {
        self.ring.front().map_or(self.seq + 1, |(s, _)| *s)
    }
    fn push(&mut self, d: Delta) {
        self.seq += 1;
        self.ring.push_back((self.seq, d));
        while self.ring.len() > RING {
            self.ring.pop_front();
        }
    }
}

pub struct Sub {
    pub credit: i64,
    pub next: u64,
    pub epoch: u64,
}

pub struct Conn {
    pub greeted: bool,
    /// The client asked for kind-4 binary DELTAs (IDENTIFY/RESUME).
    pub binary_deltas: bool,
    pub subs: BTreeMap<String, Sub>,
    pub out: VecDeque<Msg>,
}

#[derive(Default)]
pub struct Faults {
    pub drop: f64,
    pub dup: f64,
    pub overrun: f64,
    pub resume_fail: f64,
    pub binary: f64,
    /// A totals snapshot whose `snapshot_seq` is the head but whose `asOf`
    /// and buckets stop one to three frames earlier.
    pub seq_ahead: f64,
    /// A totals snapshot with a bucket off the hour (the ledger refuses it).
    pub malformed: f64,
    /// A totals snapshot whose `asOf` is a day in the future (refused).
    pub future: f64,
    /// A snapshot reply delivered twice (same `requestId`).
    pub dup_reply: f64,
    /// A snapshot request answered with an older body of the same channel.
    pub stale_reply: f64,
    /// Frames already covered by a snapshot sent again after it.
    pub replay: f64,
    /// A HELLO, READY or RESUMED pushed at a random point of the connection.
    pub odd_op: f64,
    /// A totals snapshot that omits one frame its `asOf` covers, or counts
    /// one twice: a lie no client can see (`lying_snapshots_...` only).
    pub lie: f64,
}

pub struct Server {
    pub now: u64,
    pub streams: BTreeMap<String, Stream>,
    /// Hour start → units per resource: the truth.
    pub hours: BTreeMap<i64, [i64; 3]>,
    pub start_hour: i64,
    pub last_stamp: u64,
    pub rows: BTreeMap<String, BTreeMap<String, Row>>,
    ids: BTreeMap<String, u64>,
    pub conn: Option<Conn>,
    pub session: u64,
    pub faults: Faults,
    /// Kind-4 DELTAs sent (to a client that asked for them).
    pub binary_deltas_sent: std::cell::Cell<u64>,
    /// Deltas sent beyond credit (overrun faults).
    pub overruns: u64,
    /// Every totals frame ever committed, in order (stamps strictly grow),
    /// across epochs: its stamp and `(hour, resource, units)` per reading.
    pub log: Vec<LoggedFrame>,
    /// `cum[k]`: the hourly totals of the first `k` frames of `log` (non-zero
    /// entries only); `cum[log.len()]` equals `hours`.
    pub cum: Vec<BTreeMap<(i64, usize), i64>>,
}

fn meter_of(channel: &str, i: u64) -> String {
    let base = if channel == "meters.north" { 0 } else { 100 };
    format!("m-{}", base + i)
}

pub fn row_json(meter: &str, r: &Row) -> Value {
    json!({"meter": meter, "resource": RESOURCES[r.resource], "ts": r.ts,
        "value": r.value, "status": r.status, "count": r.count,
        "total": format_units(r.units, 3)})
}

impl Server {
    pub fn new(now: u64) -> Server {
        let mut streams = BTreeMap::new();
        let mut rows = BTreeMap::new();
        for (i, c) in ["totals"].iter().chain(ENTITY_CHANNELS.iter()).enumerate() {
            streams.insert(
                c.to_string(),
                Stream { epoch: 3 + i as u64, seq: 0, ring: VecDeque::new() },
            );
        }
        for c in ENTITY_CHANNELS {
            rows.insert(c.to_string(), BTreeMap::new());
        }
        Server {
            now,
            streams,
            hours: BTreeMap::new(),
            start_hour: now as i64 / HOUR * HOUR,
            last_stamp: now,
            rows,
            ids: BTreeMap::new(),
            conn: None,
            session: 0,
            faults: Faults::default(),
            binary_deltas_sent: std::cell::Cell::new(0),
            overruns: 0,
            log: Vec::new(),
            cum: vec![BTreeMap::new()],
        }
    }

    /// One writer tick: a totals frame and a patch per entity channel it touched.
    pub fn produce(&mut self, rng: &mut Rng) {
        self.last_stamp = self.now;
        let mut readings = Vec::new();
        let mut touched: Vec<(&str, String, u64, usize, i64)> = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let c = ENTITY_CHANNELS[rng.below(2) as usize];
            let meter = meter_of(c, rng.below(6));
            let r = (rng.below(3)) as usize;
            let id = self.ids.entry(meter.clone()).or_insert(0);
            *id += 1;
            let ts = self.now - rng.below(20);
            let units = rng.below(5_000) as i64;
            let hour = ts as i64 / HOUR * HOUR;
            self.hours.entry(hour).or_insert([0; 3])[r] += units;
            readings.push((meter.clone(), r, *id, ts, units));
            touched.push((c, meter, ts, r, units));
        }
        let mut cum = self.cum.last().cloned().unwrap_or_default();
        let mut parts = Vec::new();
        for (_, r, _, ts, u) in &readings {
            let hour = *ts as i64 / HOUR * HOUR;
            parts.push((hour, *r, *u));
            if *u != 0 {
                *cum.entry((hour, *r)).or_insert(0) += u;
            }
        }
        self.log.push((self.now, parts));
        self.cum.push(cum);
        if let Some(s) = self.streams.get_mut("totals") {
            let seq = s.seq + 1;
            s.push(Delta::Frame(Frame { seq, stamp: self.now, readings }));
        }
        for c in ENTITY_CHANNELS {
            let Some(rows) = self.rows.get_mut(c) else { continue };
            let mut upsert = BTreeSet::new();
            let mut remove = BTreeSet::new();
            for (tc, meter, ts, r, units) in &touched {
                if *tc != c {
                    continue;
                }
                let row = rows.entry(meter.clone()).or_insert(Row {
                    resource: *r,
                    ts: 0,
                    value: 0.0,
                    status: "ok",
                    count: 0,
                    units: 0,
                });
                row.resource = *r;
                row.ts = row.ts.max(*ts);
                row.value = *units as f64 / 1000.0;
                row.count += 1;
                row.units += units;
                row.status = ["ok", "stale", "offline"][rng.below(3) as usize];
                upsert.insert(meter.clone());
            }
            if rng.chance(0.1) && !rows.is_empty() {
                let k = rng.below(rows.len() as u64) as usize;
                if let Some(m) = rows.keys().nth(k).cloned() {
                    rows.remove(&m);
                    upsert.remove(&m);
                    remove.insert(m);
                }
            }
            if upsert.is_empty() && remove.is_empty() {
                continue;
            }
            let upsert: Vec<(String, Value)> = upsert
                .into_iter()
                .filter_map(|m| rows.get(&m).map(|r| (m.clone(), row_json(&m, r))))
                .collect();
            if let Some(s) = self.streams.get_mut(c) {
                s.push(Delta::Patch { upsert, remove: remove.into_iter().collect() });
            }
        }
    }

    /// The channel's history is lost: a new epoch (its state stays).
    pub fn bump_epoch(&mut self, channel: &str) {
        if let Some(s) = self.streams.get_mut(channel) {
            s.epoch += 1;
            s.seq = 0;
            s.ring.clear();
        }
    }

    fn message(
        &self,
        epoch: u64,
        seq: u64,
        d: &Delta,
        channel: &str,
        binary_deltas: bool,
        rng: &mut Rng,
    ) -> Msg {
        match d {
            Delta::Frame(f) => {
                if rng.chance(self.faults.binary) {
                    if let Ok(b) = encode_live(&live_frame(f, epoch), 3, TsLayout::PerRecord) {
                        return Msg::Binary(b);
                    }
                }
                let readings: Vec<Value> = f
                    .readings
                    .iter()
                    .map(|(m, r, id, ts, u)| {
                        json!({"meter": m, "resource": RESOURCES[*r], "id": id, "ts": ts,
                            "amount": format_units(*u, 3)})
                    })
                    .collect();
                Msg::Text(
                    json!({"type": "frame", "channel": "totals", "epoch": epoch, "seq": seq,
                        "hlc": {"wallMs": f.stamp, "counter": 0}, "readings": readings})
                    .to_string(),
                )
            }
            Delta::Patch { upsert, remove } if binary_deltas => {
                let rows: Vec<MeterRowRef<'_>> = upsert.iter().map(|(_, v)| row_ref(v)).collect();
                let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
                match encode_meters_delta(channel, epoch, seq, &rows, &remove) {
                    Ok(b) => {
                        self.binary_deltas_sent.set(self.binary_deltas_sent.get() + 1);
                        Msg::Binary(b)
                    }
                    Err(e) => panic!("a simulated row the kind-4 frame cannot carry: {e:?}"),
                }
            }
            Delta::Patch { upsert, remove } => {
                let rows: Vec<&Value> = upsert.iter().map(|(_, v)| v).collect();
                Msg::Text(
                    json!({"op": "DELTA", "channel": channel, "epoch": epoch, "seq": seq,
                        "patch": {"upsert": rows, "remove": remove}})
                    .to_string(),
                )
            }
        }
    }

    /// Sends what credit allows on the open connection, with faults.
    pub fn pump(&mut self, rng: &mut Rng) {
        let Some(mut conn) = self.conn.take() else { return };
        if conn.greeted {
            for (name, sub) in conn.subs.iter_mut() {
                let Some(stream) = self.streams.get(name) else { continue };
                if sub.epoch != stream.epoch {
                    sub.epoch = stream.epoch;
                    sub.next = 1;
                }
                sub.next = sub.next.max(stream.oldest());
                while sub.next <= stream.seq {
                    let overrun = sub.credit <= 0 && rng.chance(self.faults.overrun);
                    if sub.credit <= 0 && !overrun {
                        break;
                    }
                    let Some((_, d)) = stream.ring.iter().find(|(s, _)| *s == sub.next) else {
                        break;
                    };
                    let seq = sub.next;
                    sub.next += 1;
                    if rng.chance(self.faults.drop) {
                        // Lost upstream: skipped, no credit used.
                        continue;
                    }
                    self.overruns += u64::from(overrun);
                    let msg = self.message(stream.epoch, seq, d, name, conn.binary_deltas, rng);
                    conn.out.push_back(msg.clone());
                    // A delta beyond the grant is not counted against it: the
                    // client refuses it, and both sides keep the same credit.
                    if !overrun {
                        sub.credit -= 1;
                    }
                    if sub.credit > 0 && rng.chance(self.faults.dup) {
                        conn.out.push_back(msg);
                        sub.credit -= 1;
                    }
                }
            }
        }
        self.conn = Some(conn);
    }

    /// A new socket: HELLO first.
    pub fn connect(&mut self) {
        let hello = json!({"op": "HELLO", "heartbeat_interval_ms": 1000,
            "session_id": format!("s-{}", self.session + 1), "server_time_ms": self.now});
        let mut out = VecDeque::new();
        out.push_back(Msg::Text(hello.to_string()));
        self.conn = Some(Conn { greeted: false, binary_deltas: false, subs: BTreeMap::new(), out });
    }

    fn send(&mut self, v: Value) {
        if let Some(c) = &mut self.conn {
            c.out.push_back(Msg::Text(v.to_string()));
        }
    }

    fn take_channels(&mut self, msg: &Value, seq_field: &str) {
        let Some(conn) = &mut self.conn else { return };
        conn.subs.clear();
        conn.binary_deltas = msg["binary_deltas"].as_bool().unwrap_or(false);
        for ch in msg["channels"].as_array().cloned().unwrap_or_default() {
            let name = ch["name"].as_str().unwrap_or("").to_string();
            let Some(stream) = self.streams.get(&name) else { continue };
            let credit = ch["credit"].as_i64().unwrap_or(0);
            let next = match (ch["epoch"].as_u64(), ch[seq_field].as_u64()) {
                (Some(e), Some(s)) if e == stream.epoch && s + 1 >= stream.oldest() => s + 1,
                _ => stream.seq + 1,
            };
            conn.subs.insert(name, Sub { credit, next, epoch: stream.epoch });
        }
        conn.greeted = true;
    }

    /// A client text message.
    pub fn on_text(&mut self, text: &str, rng: &mut Rng) -> Result<(), String> {
        let msg: Value =
            serde_json::from_str(text).map_err(|e| format!("client sent bad JSON {text}: {e}"))?;
        match msg["op"].as_str().unwrap_or("") {
            "IDENTIFY" => {
                self.session += 1;
                self.take_channels(&msg, "snapshot_seq");
                self.send(json!({"op": "READY", "session_id": format!("s-{}", self.session)}));
            }
            "RESUME" => {
                let ok = msg["session_id"] == format!("s-{}", self.session)
                    && !rng.chance(self.faults.resume_fail);
                if ok {
                    self.take_channels(&msg, "last_seq");
                    self.send(json!({"op": "RESUMED"}));
                } else {
                    self.send(json!({"op": "INVALID_SESSION", "resumable": false}));
                }
            }
            "HEARTBEAT" => {
                let mut sent = serde_json::Map::new();
                if let Some(c) = &self.conn {
                    for (name, sub) in &c.subs {
                        sent.insert(name.clone(), json!([sub.epoch, sub.next.saturating_sub(1)]));
                    }
                }
                self.send(json!({"op": "HEARTBEAT_ACK", "sent": sent}));
            }
            "CREDIT" => {
                if let (Some(c), Some(m)) = (&mut self.conn, msg["credit"].as_object()) {
                    for (name, n) in m {
                        if let Some(s) = c.subs.get_mut(name) {
                            s.credit += n.as_i64().unwrap_or(0);
                        }
                    }
                }
            }
            "SUBSCRIBE" | "UNSUBSCRIBE" => {}
            other => return Err(format!("client sent unknown op {other}")),
        }
        Ok(())
    }

    /// `GET path` as the real server answers it (JSON).
    pub fn get(&self, path: &str) -> Result<String, String> {
        if path == "/groups" {
            // The worker's meter → group map refresh (docs/LEDGER.md, "Groups").
            return Ok(r#"{"version":1,"groups":{}}"#.to_string());
        }
        if let Some(q) = path.strip_prefix("/catchup?") {
            // The ledger's own catch-up (what the transports fetch for a
            // `fetch` without `requestId`, `FetchRequest::path`): every hour
            // from `from`, as resource totals (this server keeps no
            // per-meter hours, so `meters=1` and `to` change nothing).
            let from = q
                .split('&')
                .find_map(|kv| kv.strip_prefix("from="))
                .and_then(|f| f.parse::<f64>().ok())
                .ok_or_else(|| format!("bad from in {path}"))?;
            // Its watermark is the server's clock, as the real server's
            // (its HLC's last stamp, which heartbeats and hellos move too):
            // every reading stamped by now is in it.
            let to = self.now as i64 / HOUR * HOUR;
            let from = (from as i64 / HOUR * HOUR).min(to);
            let buckets = self
                .hours
                .range(from..=to)
                .flat_map(|(h, units)| {
                    units.iter().enumerate().filter(|(_, u)| **u != 0).map(move |(r, u)| {
                        json!({"resource": RESOURCES[r], "hour": h, "total": format_units(*u, 3)})
                    })
                })
                .collect();
            return Ok(self.body_at(from, None, self.now, to, buckets));
        }
        let q =
            path.strip_prefix("/snapshot-v2?").ok_or_else(|| format!("unexpected fetch {path}"))?;
        let mut channel = "";
        let (mut epoch, mut since) = (None, None);
        for kv in q.split('&') {
            match kv.split_once('=') {
                Some(("channel", c)) => channel = c,
                Some(("epoch", e)) => epoch = e.parse::<u64>().ok(),
                Some(("since_seq", s)) => since = s.parse::<u64>().ok(),
                // Per-meter hours: this server keeps none and answers resource
                // totals, as the feed server does without per-meter slabs.
                Some(("meters", "1")) => {}
                _ => return Err(format!("bad query {path}")),
            }
        }
        let stream =
            self.streams.get(channel).ok_or_else(|| format!("unknown channel {channel}"))?;
        // A mini-snapshot only if `since` is still held in that epoch.
        let mini = match (epoch, since) {
            (Some(e), Some(n))
                if e == stream.epoch && n + 1 >= stream.oldest() && n <= stream.seq =>
            {
                Some(n)
            }
            _ => None,
        };
        if channel == "totals" {
            let as_of = match stream.ring.back() {
                Some((_, Delta::Frame(f))) => f.stamp,
                _ => self.last_stamp,
            };
            let from = match mini {
                Some(n) => stream
                    .ring
                    .iter()
                    .filter(|(s, _)| *s > n)
                    .filter_map(|(_, d)| match d {
                        Delta::Frame(f) => {
                            f.readings.iter().map(|r| r.3 as i64 / HOUR * HOUR).min()
                        }
                        _ => None,
                    })
                    .min()
                    .unwrap_or(as_of as i64 / HOUR * HOUR),
                None => self.start_hour,
            };
            return Ok(self.catchup_body(from, mini));
        }
        let rows = self.rows.get(channel).ok_or_else(|| format!("no rows for {channel}"))?;
        let mut body =
            json!({"channel": channel, "epoch": stream.epoch, "snapshot_seq": stream.seq});
        match mini {
            None => {
                body["meters"] = rows.iter().map(|(m, r)| row_json(m, r)).collect();
            }
            Some(n) => {
                let mut changed = BTreeSet::new();
                for (s, d) in &stream.ring {
                    if let (true, Delta::Patch { upsert, remove }) = (*s > n, d) {
                        changed.extend(upsert.iter().map(|(m, _)| m.clone()));
                        changed.extend(remove.iter().cloned());
                    }
                }
                body["since_seq"] = json!(n);
                body["meters"] =
                    changed.iter().filter_map(|m| rows.get(m).map(|r| row_json(m, r))).collect();
                body["remove"] =
                    changed.iter().filter(|m| !rows.contains_key(*m)).cloned().collect();
            }
        }
        Ok(body.to_string())
    }
}

impl Server {
    /// The totals catch-up from hour `from` to the hour of `asOf` (the newest
    /// frame's stamp), a mini-snapshot `since_seq` if `mini`.
    pub fn catchup_body(&self, from: i64, mini: Option<u64>) -> String {
        let stream = &self.streams["totals"];
        let as_of = match stream.ring.back() {
            Some((_, Delta::Frame(f))) => f.stamp,
            _ => self.last_stamp,
        };
        let to = as_of as i64 / HOUR * HOUR;
        // As the real server: a range never starts after the hour of `asOf`.
        let from = from.min(to);
        let mut buckets = Vec::new();
        for (h, units) in self.hours.range(from..=to) {
            for (r, u) in units.iter().enumerate() {
                if *u != 0 {
                    buckets.push(
                        json!({"resource": RESOURCES[r], "hour": h, "total": format_units(*u, 3)}),
                    );
                }
            }
        }
        self.body_at(from, mini, as_of, to, buckets)
    }

    fn body_at(
        &self,
        from: i64,
        mini: Option<u64>,
        as_of: u64,
        to: i64,
        buckets: Vec<Value>,
    ) -> String {
        let stream = &self.streams["totals"];
        let mut body = json!({"type": "catchup", "channel": "totals", "epoch": stream.epoch,
            "snapshot_seq": stream.seq, "asOf": {"wallMs": as_of, "counter": 0},
            "serverTime": self.now, "from": from, "to": to, "buckets": buckets});
        if let Some(n) = mini {
            body["since_seq"] = json!(n);
        }
        body.to_string()
    }
}

impl Server {
    /// A faulty answer to a totals snapshot request (`honest` is the real
    /// one), or `None` when no fault was drawn. `lies` allows the faults no
    /// client can detect (a total that disagrees with the frames).
    pub fn faulty_totals(&self, honest: &str, rng: &mut Rng, lies: bool) -> Option<String> {
        let v: Value = serde_json::from_str(honest).ok()?;
        let from = v["from"].as_i64()?;
        let mini = v["since_seq"].as_u64();
        let frames = self.log.len();
        let buckets_of = |m: &BTreeMap<(i64, usize), i64>, from: i64, to: i64| -> Vec<Value> {
            m.iter()
                .filter(|((h, _), u)| *h >= from && *h <= to && **u != 0)
                .map(|((h, r), u)| {
                    json!({"resource": RESOURCES[*r], "hour": h, "total": format_units(*u, 3)})
                })
                .collect()
        };
        if rng.chance(self.faults.seq_ahead) && frames > 3 {
            // `snapshot_seq` the head, `asOf` and totals 1-3 frames before it.
            let k = frames - 1 - rng.below(3) as usize;
            let as_of = self.log[k - 1].0;
            let to = as_of as i64 / HOUR * HOUR;
            let from = from.min(to);
            return Some(self.body_at(from, mini, as_of, to, buckets_of(&self.cum[k], from, to)));
        }
        if rng.chance(self.faults.malformed) {
            let mut v = v;
            let hour = v["to"].as_i64()? + 1;
            v["buckets"]
                .as_array_mut()?
                .push(json!({"resource": "water", "hour": hour, "total": "1"}));
            return Some(v.to_string());
        }
        if rng.chance(self.faults.future) {
            let mut v = v;
            v["asOf"]["wallMs"] = json!(v["asOf"]["wallMs"].as_u64()? + 86_400_000);
            return Some(v.to_string());
        }
        if lies && rng.chance(self.faults.lie) && frames > 0 {
            // One frame the watermark covers omitted, or counted twice.
            let (_, parts) = &self.log[rng.below(frames as u64) as usize];
            let sign = if rng.chance(0.5) { -1 } else { 1 };
            let mut m = self
                .hours
                .iter()
                .flat_map(|(h, u)| (0..3).map(move |r| ((*h, r), u[r])))
                .collect::<BTreeMap<_, _>>();
            for (h, r, u) in parts {
                *m.entry((*h, *r)).or_insert(0) += sign * u;
            }
            let to = v["to"].as_i64()?;
            let mut v = v;
            v["buckets"] = json!(buckets_of(&m, from, to));
            return Some(v.to_string());
        }
        None
    }

    /// Frames of the current totals epoch at or before `seq` (the ring's),
    /// as messages: what a server replays after a resync.
    pub fn replay_totals(&self, upto: u64, rng: &mut Rng) -> Vec<Msg> {
        let s = &self.streams["totals"];
        let mut out = Vec::new();
        for (q, d) in &s.ring {
            if *q <= upto && rng.chance(0.3) {
                out.push(self.message(s.epoch, *q, d, "totals", false, rng));
            }
        }
        out
    }
}

fn live_frame(f: &Frame, epoch: u64) -> LiveFrame {
    let mut lf = LiveFrame {
        channel: "totals".into(),
        epoch,
        seq: f.seq,
        stamp: Hlc { wall_ms: f.stamp, counter: 0 },
        scope: KeyScope::Batch,
        ..Default::default()
    };
    for (k, (m, r, id, ts, u)) in f.readings.iter().enumerate() {
        lf.bindings.push(LiveBinding {
            key: k as u32,
            meter: m.clone(),
            resource: RESOURCES[*r].into(),
        });
        lf.keys.push(k as u32);
        lf.ids.push(*id);
        lf.ts.push(*ts as f64);
        lf.amounts.push(Decimal::new(*u, 3));
    }
    lf
}
