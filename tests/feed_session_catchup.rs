//! The worker's per-meter catch-up rebuild through the real path
//! (`--features feed`): the feed server runs in-process on 127.0.0.1:0 at 60×
//! across an hour rollover with its faults on (dropped, duplicated and
//! reordered deltas, disconnects, REST answers delayed out of order, a skewed
//! clock); the engine's stream v2 session subscribes to `totals` over a real
//! WebSocket and real HTTP, fetches the meter → group map from `/groups`, and
//! its `totals` snapshots ask for per-meter hours (`meters=1`). After the
//! faults stop, a non-resumable INVALID_SESSION makes the session bootstrap
//! afresh (a full per-meter catch-up); once it stands at the server's head
//! (the server paused), every meter row of every kept hour equals the
//! server's per-meter truth (`/truth?meters=1`) exactly, every group total
//! equals the sum of its members' truth, `stats.groups.rebuilds > 0`, and no
//! group is `incomplete`.
#![cfg(feature = "feed")]
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{Inbound, Outbound, Query};
use meterflow::core::Engine;
use meterflow::feed::sim::RESOURCES;
use meterflow::feed::{start, FeedConfig, Server};
use meterflow::wire;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const SPEED: f64 = 60.0;
/// Two simulated minutes before an hour: the rollover comes 2 s (real) in.
const START_MS: u64 = 1_764_064_800_000 - 2 * 60_000;
/// Real time spent with the faults on (8 simulated minutes at 60×).
const FAULTY_FOR: Duration = Duration::from_millis(8_000);
/// Real time of clean streaming after the reset, before the server pauses.
const CLEAN_FOR: Duration = Duration::from_millis(1_500);
/// A bound on the whole run, so a session that never converges fails instead of hanging.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One HTTP request over a fresh connection: status and body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let Ok(buf) = attempt.await else { return (0, String::new()) };
    let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, String::new());
    };
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, String::from_utf8_lossy(&buf[split + 4..]).to_string())
}

async fn admin(server: &Server, patch: Value) {
    let (status, body) = http(server.addr, "POST", "/admin/faults", &patch.to_string()).await;
    assert_eq!(status, 200, "POST /admin/faults {patch}: {body}");
}

/// A meter row compared exactly: meter, resource, ts, value, status, count, total (units).
type Row = (String, String, u64, u64, String, u64, i64);

fn row(v: &Value) -> Row {
    let units = Decimal::parse(v["total"].as_str().unwrap_or(""))
        .and_then(|d| d.to_units(3).ok())
        .unwrap_or(i64::MIN);
    (
        v["meter"].as_str().unwrap_or("").to_string(),
        v["resource"].as_str().unwrap_or("").to_string(),
        v["ts"].as_f64().map_or(u64::MAX, |t| t as u64),
        v["value"].as_f64().map_or(u64::MAX, f64::to_bits),
        v["status"].as_str().unwrap_or("").to_string(),
        v["count"].as_u64().unwrap_or(u64::MAX),
        units,
    )
}

/// A notice compared exactly (the `notices` message and the snapshot share field names).
fn notice(v: &Value) -> String {
    json!({"id": v["id"], "severity": v["severity"], "title": v["title"], "text": v["text"],
        "fromMs": v["fromMs"].as_f64(), "toMs": v["toMs"].as_f64()})
    .to_string()
}

struct Page {
    engine: Engine,
    server: Server,
    ws: Option<Ws>,
    fetched_tx: mpsc::UnboundedSender<Value>,
    connects: u32,
    fetches: u32,
    errors: Vec<String>,
    /// What the page renders: rows per `meters.<group>` channel, notices by id.
    rows: BTreeMap<String, BTreeMap<String, Row>>,
    notices: BTreeMap<String, String>,
    /// The newest `groups` event, as posted to the page.
    last_groups: Option<Value>,
}

impl Page {
    /// Carries out the engine's requests and renders its updates.
    async fn run(&mut self, outs: Vec<Outbound>) {
        let mut queue = outs;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for o in queue {
                let v = serde_json::to_value(wire::encode(&o)).unwrap_or(Value::Null);
                match v["type"].as_str().unwrap_or("") {
                    "connect" => {
                        self.connects += 1;
                        let url = format!("ws://{}/stream", self.server.addr);
                        match tokio_tungstenite::connect_async(url).await {
                            Ok((ws, _)) => self.ws = Some(ws),
                            Err(_) => next.extend(self.closed(1006)),
                        }
                    }
                    "send" => {
                        if let Some(ws) = &mut self.ws {
                            let data = v["data"].as_str().unwrap_or("").to_string();
                            let _ = ws.send(Message::Text(data.into())).await;
                        }
                    }
                    "close" => {
                        if let Some(mut ws) = self.ws.take() {
                            let _ = ws.close(None).await;
                        }
                    }
                    "fetch" if v.get("requestId").is_some() => {
                        // Each fetch runs on its own: answers delayed at random
                        // by the server come back in the order they finish.
                        self.fetches += 1;
                        let rid = v["requestId"].as_u64().unwrap_or(0);
                        let path = v["path"].as_str().unwrap_or("").to_string();
                        let (addr, tx) = (self.server.addr, self.fetched_tx.clone());
                        tokio::spawn(async move {
                            let (status, body) = http(addr, "GET", &path, "").await;
                            let _ = tx.send(json!({"type": "fetched", "requestId": rid,
                                "ok": status == 200, "status": status, "data": body}));
                        });
                    }
                    "meters" => {
                        let ch = v["channel"].as_str().unwrap_or("").to_string();
                        let table = self.rows.entry(ch).or_default();
                        for r in v["upsert"].as_array().into_iter().flatten() {
                            let r = row(r);
                            table.insert(r.0.clone(), r);
                        }
                        for id in v["remove"].as_array().into_iter().flatten() {
                            table.remove(id.as_str().unwrap_or(""));
                        }
                    }
                    "notices" => {
                        for n in v["upsert"].as_array().into_iter().flatten() {
                            self.notices.insert(n["id"].as_str().unwrap_or("").into(), notice(n));
                        }
                        for id in v["remove"].as_array().into_iter().flatten() {
                            self.notices.remove(id.as_str().unwrap_or(""));
                        }
                    }
                    "groups" => self.last_groups = Some(v.clone()),
                    "error" => self.errors.push(v.to_string()),
                    _ => {}
                }
            }
            queue = next;
        }
    }

    fn closed(&mut self, code: u16) -> Vec<Outbound> {
        self.ws = None;
        self.post(json!({"type": "socket", "event": "close", "code": code, "reason": ""}))
    }

    /// A page message through the worker's decoder into the engine.
    fn post(&mut self, msg: Value) -> Vec<Outbound> {
        let now = self.now();
        let inbound = wire::decode_message(&msg, self.engine.config());
        self.engine.handle(inbound, now)
    }

    /// Engine time is the server's accelerated clock (without its skew: the
    /// skew is what the server claims, not what the page's clock says).
    fn now(&self) -> f64 {
        self.server.shared().clock.now_ms() as f64
    }

    /// A `stats` event now, encoded.
    fn stats(&mut self) -> Value {
        self.handle(Inbound::Query(Query::Stats))
            .into_iter()
            .find_map(|o| match &o {
                Outbound::Stats(_) => serde_json::to_value(wire::encode(&o)).ok(),
                _ => None,
            })
            .unwrap_or(Value::Null)
    }

    fn handle(&mut self, inbound: Inbound) -> Vec<Outbound> {
        let now = self.now();
        self.engine.handle(inbound, now)
    }

    /// The page renders what was delivered (acknowledging it), the engine ticks and flushes.
    fn timer(&mut self) -> Vec<Outbound> {
        let mut outs = Vec::new();
        for c in self.engine.session().channels() {
            if c.outstanding > 0 {
                outs.extend(
                    self.post(
                        json!({"type": "rendered", "channel": c.name, "frames": c.outstanding}),
                    ),
                );
            }
        }
        outs.extend(self.handle(Inbound::Tick(Default::default())));
        outs.extend(self.handle(Inbound::Flush));
        outs
    }

    /// One step: a socket message, a fetch answer or the 10 ms page timer.
    async fn step(
        &mut self,
        fetched: &mut mpsc::UnboundedReceiver<Value>,
        timer: &mut tokio::time::Interval,
    ) {
        enum Got {
            Socket(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
            Fetched(Value),
            Timer,
        }
        let got = match self.ws.as_mut() {
            Some(ws) => tokio::select! {
                m = ws.next() => Got::Socket(m),
                Some(f) = fetched.recv() => Got::Fetched(f),
                _ = timer.tick() => Got::Timer,
            },
            None => tokio::select! {
                Some(f) = fetched.recv() => Got::Fetched(f),
                _ = timer.tick() => Got::Timer,
            },
        };
        let outs = match got {
            Got::Socket(Some(Ok(Message::Text(t)))) => {
                self.post(json!({"type": "socket", "event": "message", "data": t.as_str()}))
            }
            Got::Socket(Some(Ok(Message::Close(f)))) => {
                self.closed(f.map_or(1006, |f| u16::from(f.code)))
            }
            Got::Socket(Some(Ok(_))) => Vec::new(),
            // Cut without a close frame (the disconnect fault): the browser says 1006.
            Got::Socket(Some(Err(_)) | None) => self.closed(1006),
            Got::Fetched(f) => self.post(f),
            Got::Timer => self.timer(),
        };
        self.run(outs).await;
    }

    /// Whether every subscribed channel stands at `heads` (epoch, seq), live and with nothing buffered.
    fn at(&self, heads: &BTreeMap<String, (u64, u64)>) -> bool {
        let live = self.engine.session().channels();
        heads.iter().all(|(name, head)| {
            live.iter().any(|c| {
                c.name == *name && c.position == Some(*head) && !c.paused && c.buffered == 0
            })
        })
    }
}

fn engine_config() -> Config {
    // At 60× a few ms of real scheduling jitter are seconds of simulated time,
    // and the server's clock is skewed on purpose.
    Config { max_offset_ms: 120_000.0, hello_timeout_ms: 120_000.0, ..Config::default() }
}

/// Units of an exact decimal string (3 decimals), `i64::MIN` if not one.
fn units(v: &Value) -> i64 {
    Decimal::parse(v.as_str().unwrap_or("")).and_then(|d| d.to_units(3).ok()).unwrap_or(i64::MIN)
}

/// `(group, resource, hour ms) -> units` from an encoded `groups` event
/// (`""` for unassigned), zeros left out.
type GroupTotals = BTreeMap<(String, String, u64), i64>;

fn group_totals(ev: &Value) -> GroupTotals {
    let mut t = BTreeMap::new();
    let mut all: Vec<&Value> =
        ev["groups"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    all.push(&ev["unassigned"]);
    for g in all {
        let name = g["group"].as_str().unwrap_or("?").to_string();
        for r in g["resources"].as_array().into_iter().flatten() {
            let res = r["resource"].as_str().unwrap_or("?").to_string();
            for b in r["buckets"].as_array().into_iter().flatten() {
                // Totals in events are whole resolution units (a string past 2^53).
                let u = match &b["total"] {
                    Value::Number(n) => n.as_i64().unwrap_or(i64::MIN),
                    Value::String(s) => s.parse().unwrap_or(i64::MIN),
                    _ => i64::MIN,
                };
                if u != 0 {
                    t.insert(
                        (name.clone(), res.clone(), b["hour"].as_f64().unwrap_or(0.0) as u64),
                        u,
                    );
                }
            }
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_meter_catch_up_rebuilds_every_row_and_group_exactly_after_faults() {
    let cfg = FeedConfig {
        meters: 300,
        seed: 31,
        speed: SPEED,
        start_ms: Some(START_MS),
        epoch: 4,
        ring_frames: 8_192,
        heartbeat_interval_ms: 120_000,
        groups: 4,
        ..FeedConfig::default()
    };
    let server = start(cfg, "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let (status, groups) = http(server.addr, "GET", "/groups", "").await;
    assert_eq!(status, 200, "{groups}");
    let groups: Value = serde_json::from_str(&groups).expect("groups json");
    // Meter id -> the groups it belongs to.
    let mut member_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (g, ids) in groups["groups"].as_object().into_iter().flatten() {
        for id in ids.as_array().into_iter().flatten() {
            member_of.entry(id.as_str().unwrap_or("").to_string()).or_default().push(g.clone());
        }
    }
    assert!(member_of.len() >= 100, "a map over the meters: {groups}");
    let subscribed = vec!["totals".to_string()];

    admin(
        &server,
        json!({"dropPct": 3.0, "duplicatePct": 3.0, "reorderWindow": 4, "disconnectEveryMs": 1_500,
            "restDelayMs": 150, "restOutOfOrder": true, "clockSkewMs": 1_500}),
    )
    .await;

    let (fetched_tx, mut fetched) = mpsc::unbounded_channel();
    let mut page = Page {
        engine: Engine::new(engine_config()).expect("engine"),
        server,
        ws: None,
        fetched_tx,
        connects: 0,
        fetches: 0,
        errors: Vec::new(),
        rows: BTreeMap::new(),
        notices: BTreeMap::new(),
        last_groups: None,
    };
    let outs = page.post(json!({"type": "session", "op": "start", "channels": subscribed}));
    page.run(outs).await;
    let mut timer = tokio::time::interval(Duration::from_millis(10));
    let real_start = tokio::time::Instant::now();
    while real_start.elapsed() < FAULTY_FOR {
        page.step(&mut fetched, &mut timer).await;
    }
    let faulty = page.engine.session().counters();

    // Faults off; the session is forgotten: it bootstraps with a full
    // per-meter catch-up; a little clean streaming, then the server pauses.
    admin(&page.server, json!({"reset": true})).await;
    admin(&page.server, json!({"invalidSession": {"resumable": false}})).await;
    let clean_start = tokio::time::Instant::now();
    while clean_start.elapsed() < CLEAN_FOR {
        page.step(&mut fetched, &mut timer).await;
    }
    page.server.set_paused(true);
    let pause_start = tokio::time::Instant::now();
    while pause_start.elapsed() < Duration::from_millis(200) {
        page.step(&mut fetched, &mut timer).await;
    }
    let (status, truth) = http(page.server.addr, "GET", "/truth?meters=1", "").await;
    assert_eq!(status, 200, "{truth}");
    let truth: Value = serde_json::from_str(&truth).expect("truth json");
    let heads: BTreeMap<String, (u64, u64)> = subscribed
        .iter()
        .map(|c| {
            let t = &truth["channels"][c.as_str()];
            (c.clone(), (t["epoch"].as_u64().unwrap_or(0), t["seq"].as_u64().unwrap_or(0)))
        })
        .collect();
    while !page.at(&heads) {
        assert!(
            real_start.elapsed() < GIVE_UP_AFTER,
            "no convergence to {heads:?}: {:?}",
            page.engine.session().channels()
        );
        page.step(&mut fetched, &mut timer).await;
    }
    let outs = page.timer();
    page.run(outs).await;
    assert!(page.errors.is_empty(), "{:?}", page.errors);
    assert!(faulty.gaps >= 1, "dropped deltas were found as gaps: {faulty:?}");
    assert!(faulty.duplicates >= 1, "duplicates were seen and ignored: {faulty:?}");

    // The server's per-meter truth: (meter, hour) -> units.
    let mut meter_truth: BTreeMap<(String, u64), i64> = BTreeMap::new();
    let truth_hours: Vec<u64> = truth["meterHours"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let hour = h["hour"].as_u64().unwrap_or(0);
            for (id, t) in h["meters"].as_object().into_iter().flatten() {
                meter_truth.insert((id.clone(), hour), units(t));
            }
            hour
        })
        .collect();
    assert!(truth_hours.len() >= 2, "an hour rollover: {truth_hours:?}");
    // Per-meter truth sums to the resource totals of `/truth`.
    let resource_of: BTreeMap<&str, &str> = page
        .server
        .shared()
        .meters
        .iter()
        .map(|m| (m.id.as_str(), RESOURCES.get(m.resource).map_or("", |x| x.0)))
        .collect();
    for r in truth["resources"].as_array().expect("resources") {
        for b in r["buckets"].as_array().into_iter().flatten() {
            let hour = b["hour"].as_u64().unwrap_or(0);
            if truth_hours.contains(&hour) {
                let name = r["resource"].as_str().unwrap_or("");
                let sum: i64 = meter_truth
                    .iter()
                    .filter(|((id, h), _)| {
                        *h == hour && resource_of.get(id.as_str()) == Some(&name)
                    })
                    .map(|(_, u)| u)
                    .sum();
                assert_eq!(sum, units(&b["total"]), "{name} hour {hour}: per-meter truth");
            }
        }
    }

    // Every meter row of every kept hour the server lists per meter.
    let resources: Vec<String> =
        page.engine.config().resources.iter().map(|r| r.name.clone()).collect();
    let mh = page.engine.ledger().meter_hours();
    let mut rows_compared = 0;
    let mut want_groups: GroupTotals = BTreeMap::new();
    for spec in page.server.shared().meters.iter() {
        let res = RESOURCES.get(spec.resource).map_or("", |x| x.0);
        let r = resources.iter().position(|x| x == res).expect("resource configured");
        for &hour in &truth_hours {
            let want = meter_truth.get(&(spec.id.clone(), hour)).copied().unwrap_or(0);
            let h = (hour / 3_600_000) as i64;
            let got = match (page.engine.meter_index(&spec.id), mh.column(r, h)) {
                (Some(m), Some(col)) => mh.at(m as usize, col),
                _ => 0,
            };
            assert_eq!(got, want, "meter {} {res} hour {hour}: row", spec.id);
            rows_compared += 1;
            if want != 0 {
                let gs = member_of.get(&spec.id).cloned().unwrap_or_else(|| vec![String::new()]);
                for g in gs {
                    *want_groups.entry((g, res.to_string(), hour)).or_default() += want;
                }
            }
        }
    }
    assert!(rows_compared >= 600, "{rows_compared} rows");

    // Every group total, and none incomplete.
    let outs = page.handle(Inbound::Flush);
    page.run(outs).await;
    let ev = page.last_groups.clone().expect("a groups event");
    let got = group_totals(&ev);
    let kept: Vec<u64> = truth_hours.clone();
    let got: GroupTotals = got.into_iter().filter(|((_, _, h), _)| kept.contains(h)).collect();
    assert_eq!(got, want_groups, "group totals against the per-meter truth");
    let mut all: Vec<&Value> =
        ev["groups"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    assert!(all.len() >= 4, "every group: {ev}");
    all.push(&ev["unassigned"]);
    eprintln!(
        "completeFrom {} currentHour {} truth hours {truth_hours:?} stats.groups {}",
        ev["completeFrom"],
        ev["currentHour"],
        page.stats()["groups"]
    );
    for g in all {
        assert_eq!(g["incomplete"].as_bool(), Some(false), "{g}");
    }
    let stats = page.stats();
    let rebuilds = stats["groups"]["rebuilds"].as_u64().unwrap_or(0);
    eprintln!(
        "{} connects, {} fetches, faulty phase {faulty:?}, rebuilds {rebuilds}, refused {}, {:?} real",
        page.connects,
        page.fetches,
        stats["groups"]["rebuildsRefused"],
        real_start.elapsed()
    );
    assert!(rebuilds > 0, "a per-meter catch-up rebuilt the rows: {}", stats["groups"]);
    tokio::time::timeout(Duration::from_secs(10), page.server.shutdown())
        .await
        .expect("shutdown hangs")
        .expect("server error");
}
