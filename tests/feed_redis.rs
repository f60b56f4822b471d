//! The feed server's Redis mode (`--features redis`, docs/STREAM.md §9)
//! against a real `redis-server` the test starts on a free loopback port
//! (`--save '' --appendonly no`) and stops at the end.
//!
//! One writer XADDs every tick; two gateway instances (A and B) read the
//! stream with their own consumer groups; WebSocket clients on each subscribe
//! `totals` and one `meters.<group>` from seq 1. Midway one client moves from
//! A to B (RESUME with its A session id and last seqs); later A is shut down
//! and its clients RESUME on B. At the end the writer pauses, and:
//! - every client saw every `totals` frame and every delta of its group
//!   exactly once, in seq order, whichever instance sent it (per meter, the
//!   reading ids and entity counts go up by one at a time);
//! - the same (channel, seq) is byte-identical on A and on B;
//! - every client's hourly totals (summed from the frames it received, by the
//!   ledger's bucket rule) equal the durable-write consumer's truth in Redis
//!   exactly, and so do the gateway's read model totals;
//! - a RESUME with a session id of another epoch is refused cleanly
//!   (INVALID_SESSION, not resumable: the page re-bootstraps);
//! - a RESUME whose `last_seq` is ahead of the instance's head waits for the
//!   next seq (never resends older ones nor skips).
#![cfg(not(target_arch = "wasm32"))]
#![cfg(feature = "redis")]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meterflow::core::decimal::Decimal;
use meterflow::feed::model::HOUR_MS;
use meterflow::feed::redis::{durable_truth, start_gateway, start_writer, RedisConfig};
use meterflow::feed::sim::RESOURCES;
use meterflow::feed::{FeedConfig, Server};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Two and a half simulated minutes before an hour: the run crosses it.
const START_MS: u64 = 1_764_064_800_000 - 150_000;
const EPOCH: u64 = 77;
const CREDIT: u64 = 65_536;
/// Ticks at which the mover moves, A stops, the writer pauses.
const MOVE_AT: u64 = 150;
const KILL_AT: u64 = 300;
const PAUSE_AT: u64 = 450;
/// A guard against a hang (never an assertion about speed).
const STUCK: Duration = Duration::from_secs(120);

/// `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/install-deps.sh installs it)");
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let client = redis::Client::open(self.url()).expect("url");
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
                if pong.is_ok() {
                    return;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "redis-server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn feed_config() -> FeedConfig {
    FeedConfig {
        meters: 60,
        seed: 5,
        speed: 60.0,
        start_ms: Some(START_MS),
        epoch: EPOCH,
        ring_frames: 10_000,
        delta_ring: 10_000,
        groups: 4,
        heartbeat_interval_ms: 600_000,
        ..FeedConfig::default()
    }
}

fn redis_config(url: &str, instance: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_string(),
        prefix: "mftest".into(),
        instance: instance.into(),
        ..RedisConfig::default()
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    session: String,
    /// Last seq per channel.
    last: BTreeMap<String, u64>,
    /// Units per (hour, resource index), from the `totals` frames.
    totals: BTreeMap<(u64, usize), i64>,
    readings: u64,
    /// Per meter: last reading id (totals) and last entity count (meters.<group>).
    last_id: HashMap<String, u64>,
    last_count: HashMap<String, u64>,
    /// Every message of every channel by (channel, seq): compared across clients.
    texts: BTreeMap<(String, u64), String>,
    /// Instances this client was connected to, in order.
    path: Vec<char>,
}

struct Client {
    name: &'static str,
    channels: Vec<String>,
    seen: Seen,
}

async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(STUCK, ws.next()).await.expect("a client was stuck")? {
            Ok(Message::Text(t)) => {
                return Some(serde_json::from_str(&t).expect("json"));
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

impl Client {
    /// Connects to `addr`: IDENTIFY from seq 1 the first time, RESUME after.
    async fn open(&mut self, addr: SocketAddr, which: char) -> Ws {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/stream")).await.expect("ws");
        let hello = recv(&mut ws).await.expect("HELLO");
        assert_eq!(hello["op"], "HELLO");
        let resume = !self.seen.session.is_empty();
        let channels: Vec<Value> = self
            .channels
            .iter()
            .map(|c| {
                let pos = if resume { "last_seq" } else { "snapshot_seq" };
                let at = self.seen.last.get(c).copied().unwrap_or(0);
                json!({ "name": c, "epoch": EPOCH, pos: at, "credit": CREDIT })
            })
            .collect();
        let msg = if resume {
            json!({ "op": "RESUME", "session_id": self.seen.session, "channels": channels })
        } else {
            self.seen.session = hello["session_id"].as_str().expect("session id").to_string();
            json!({ "op": "IDENTIFY", "channels": channels })
        };
        ws.send(Message::Text(msg.to_string().into())).await.expect("send");
        let answer = recv(&mut ws).await.expect("an answer");
        let want = if resume { "RESUMED" } else { "READY" };
        assert_eq!(answer["op"], want, "{}: {answer}", self.name);
        self.seen.path.push(which);
        ws
    }

    /// Takes one message; checks order and exactly-once.
    fn take(&mut self, v: &Value) {
        let channel = v["channel"].as_str().expect("a channel").to_string();
        let seq = v["seq"].as_u64().expect("seq");
        assert_eq!(v["epoch"], EPOCH);
        let last = self.seen.last.entry(channel.clone()).or_insert(0);
        assert_eq!(seq, *last + 1, "{}: {channel} seq {seq} after {last}", self.name);
        *last = seq;
        self.seen.texts.insert((channel.clone(), seq), v.to_string());
        if channel == "totals" {
            let hlc = v["hlc"]["wallMs"].as_u64().expect("hlc");
            for r in v["readings"].as_array().expect("readings") {
                let meter = r["meter"].as_str().expect("meter").to_string();
                let id = r["id"].as_u64().expect("id");
                let last_id = self.seen.last_id.entry(meter.clone()).or_insert(0);
                assert_eq!(id, *last_id + 1, "{}: {meter} reading {id} after {last_id}", self.name);
                *last_id = id;
                let ts = r["ts"].as_u64().expect("ts");
                let name = r["resource"].as_str().expect("resource");
                let res = RESOURCES.iter().position(|x| x.0 == name).expect("a resource");
                let units = Decimal::parse(r["amount"].as_str().expect("amount"))
                    .and_then(|d| d.to_units(3).ok())
                    .expect("an exact amount");
                *self.seen.totals.entry((ts.min(hlc) / HOUR_MS * HOUR_MS, res)).or_default() +=
                    units;
                self.seen.readings += 1;
            }
        } else {
            assert_eq!(v["op"], "DELTA");
            for e in v["patch"]["upsert"].as_array().expect("upsert") {
                let meter = e["meter"].as_str().expect("meter").to_string();
                let count = e["count"].as_u64().expect("count");
                let last = self.seen.last_count.entry(meter.clone()).or_insert(0);
                // A status change repeats the count; a reading adds exactly one.
                assert!(
                    count == *last || count == *last + 1,
                    "{}: {meter} count {count} after {last}",
                    self.name
                );
                *last = count;
            }
        }
    }
}

/// The ends: per channel, the seq every client must reach.
type Targets = Arc<Mutex<Option<BTreeMap<String, u64>>>>;

fn done(c: &Client, targets: &Option<BTreeMap<String, u64>>) -> bool {
    targets.as_ref().is_some_and(|t| {
        c.channels.iter().all(|ch| c.seen.last.get(ch).copied().unwrap_or(0) >= t[ch])
    })
}

/// Reads until the targets are reached; on a close, RESUMEs on B; the mover
/// leaves A for B once it has `move_at` totals frames.
async fn run(
    mut c: Client,
    start: (SocketAddr, char),
    b: SocketAddr,
    move_at: Option<u64>,
    targets: Targets,
) -> Client {
    let mut ws = c.open(start.0, start.1).await;
    let mut moved = false;
    loop {
        if done(&c, &*targets.lock().await) {
            return c;
        }
        let next = tokio::time::timeout(Duration::from_millis(200), recv(&mut ws)).await;
        let Ok(msg) = next else { continue };
        match msg {
            Some(v) if v.get("channel").is_some() => c.take(&v),
            Some(v) => assert!(v["op"] == "HEARTBEAT_ACK", "{}: {v}", c.name),
            None => ws = c.open(b, 'B').await,
        }
        let totals = c.seen.last.get("totals").copied().unwrap_or(0);
        if !moved && move_at.is_some_and(|m| totals >= m) {
            moved = true;
            let _ = ws.close(None).await;
            ws = c.open(b, 'B').await;
        }
    }
}

fn client(name: &'static str, group: &str) -> Client {
    Client {
        name,
        channels: vec!["totals".into(), format!("meters.{group}")],
        seen: Seen::default(),
    }
}

fn nonzero(m: &BTreeMap<(u64, usize), i64>) -> BTreeMap<(u64, usize), i64> {
    m.iter().filter(|(_, u)| **u != 0).map(|(k, u)| (*k, *u)).collect()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STUCK;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "stuck waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gateway(url: &str, name: &str) -> Server {
    let addr = "127.0.0.1:0".parse().expect("addr");
    // Meters, seed, epoch, start and groups come from the writer; the rings
    // are the instance's own: large enough to hold the whole run.
    start_gateway(feed_config(), addr, redis_config(url, name)).await.expect("gateway")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_fan_out_every_reading_once_and_fail_over_to_exact_totals() {
    let redis = Redis::start();
    redis.ready().await;
    let url = redis.url();
    let writer = start_writer(feed_config(), redis_config(&url, "writer")).await.expect("writer");
    let (a, b) = (gateway(&url, "a").await, gateway(&url, "b").await);
    assert_eq!(b.shared().cfg.epoch, EPOCH, "the gateway takes the writer's epoch");
    let targets: Targets = Arc::new(Mutex::new(None));
    let runs = vec![
        // On A, then (A stopped) on B.
        tokio::spawn(run(client("a-north", "north"), (a.addr, 'A'), b.addr, None, targets.clone())),
        tokio::spawn(run(client("a-south", "south"), (a.addr, 'A'), b.addr, None, targets.clone())),
        // On B throughout.
        tokio::spawn(run(client("b-south", "south"), (b.addr, 'B'), b.addr, None, targets.clone())),
        tokio::spawn(run(client("b-east", "east"), (b.addr, 'B'), b.addr, None, targets.clone())),
        // Moves from A to B midway (RESUME with its A session).
        tokio::spawn(run(
            client("mover", "west"),
            (a.addr, 'A'),
            b.addr,
            Some(MOVE_AT),
            targets.clone(),
        )),
    ];

    // A RESUME of another epoch is refused, not resumable: a re-bootstrap.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/stream", b.addr)).await.expect("ws");
    recv(&mut ws).await.expect("HELLO");
    let resume = json!({ "op": "RESUME", "session_id": "s-1-1", "channels": [] });
    ws.send(Message::Text(resume.to_string().into())).await.expect("send");
    let answer = recv(&mut ws).await.expect("an answer");
    assert_eq!(answer, json!({ "op": "INVALID_SESSION", "resumable": false }));
    drop(ws);

    // A page coming from an instance ahead of B (its last_seq beyond B's head):
    // B takes the id of the epoch and waits for that seq, it never resends
    // older ones (nor skips).
    let ahead = writer.seq() + 40;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/stream", b.addr)).await.expect("ws");
    recv(&mut ws).await.expect("HELLO");
    let channels = json!([{ "name": "totals", "epoch": EPOCH, "last_seq": ahead, "credit": 3 }]);
    let id = format!("s-{EPOCH:x}-a-999");
    let resume = json!({ "op": "RESUME", "session_id": id, "channels": channels });
    ws.send(Message::Text(resume.to_string().into())).await.expect("send");
    assert_eq!(recv(&mut ws).await.expect("an answer"), json!({ "op": "RESUMED" }));
    for want in ahead + 1..=ahead + 3 {
        let frame = recv(&mut ws).await.expect("a frame");
        assert_eq!(frame["seq"], want, "after a RESUME ahead of the instance's head");
    }
    drop(ws);

    wait_for("the kill point", || writer.seq() >= KILL_AT).await;
    a.shutdown().await.expect("A stops");
    wait_for("the pause point", || writer.seq() >= PAUSE_AT).await;
    let last = writer.pause().await;
    wait_for("the durable consumer", || writer.durable_seq() == last).await;
    wait_for("gateway B", || b.shared().model().seq() == last).await;
    let mut t = BTreeMap::from([("totals".to_string(), last)]);
    for s in b.shared().channels().streams() {
        t.insert(s.name.to_string(), s.seq());
    }
    *targets.lock().await = Some(t.clone());
    let mut clients = Vec::new();
    for r in runs {
        clients.push(r.await.expect("a client task"));
    }

    let truth = durable_truth(&redis_config(&url, "writer")).await.expect("durable truth");
    assert_eq!(truth.seq, last);
    let truth_hours = nonzero(&truth.hours);
    assert!(truth_hours.len() >= 6, "two hours of 3 resources: {truth_hours:?}");
    let model_hours: BTreeMap<(u64, usize), i64> = b
        .shared()
        .model()
        .hours()
        .iter()
        .flat_map(|h| (0..3).map(move |r| ((h.hour_ms, r), h.units[r])))
        .filter(|(_, u)| *u != 0)
        .collect();
    assert_eq!(model_hours, truth_hours, "gateway B's read model vs the durable truth");

    let mut by_seq: BTreeMap<(String, u64), (&str, &String)> = BTreeMap::new();
    for c in &clients {
        let s = &c.seen;
        assert_eq!(nonzero(&s.totals), truth_hours, "{}: totals vs the durable truth", c.name);
        assert_eq!(s.readings, truth.readings, "{}", c.name);
        for ch in &c.channels {
            assert_eq!(s.last.get(ch), t.get(ch), "{}: {ch}", c.name);
            // Every seq from 1, once (take() checked the order).
            assert_eq!(s.texts.keys().filter(|(x, _)| x == ch).count() as u64, t[ch]);
        }
        for (k, text) in &s.texts {
            match by_seq.get(k) {
                Some((other, t0)) => {
                    assert_eq!(*t0, text, "{k:?} differs between {other} and {}", c.name)
                }
                None => {
                    by_seq.insert(k.clone(), (c.name, text));
                }
            }
        }
        // The group's entity counts reach B's.
        let ch = b.shared().channels();
        for (meter, count) in &s.last_count {
            let i = b.shared().model().meter(meter).map(|m| m.0).expect("a known meter");
            let entity = ch.entity(i as u32).expect("an entity");
            assert_eq!(*count, entity.count, "{}: {meter}", c.name);
        }
    }
    let path = |n: &str| clients.iter().find(|c| c.name == n).map(|c| c.seen.path.clone());
    assert_eq!(path("mover"), Some(vec!['A', 'B']));
    assert_eq!(path("a-north"), Some(vec!['A', 'B']));
    assert_eq!(path("b-east"), Some(vec!['B']));
    b.shutdown().await.expect("B stops");
    writer.shutdown().await.expect("the writer stops cleanly");
}

/// A gateway that starts after the stream has trimmed its first tick cannot
/// rebuild the read models: it stops with `trimmed` (its sockets close with
/// 1001) rather than serve seqs that differ from its peers'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_cannot_rebuild_from_seq_1_stops_with_a_clear_error() {
    let redis = Redis::start();
    redis.ready().await;
    let url = redis.url();
    // Approximate trimming drops whole stream nodes (100 entries each).
    let rc = RedisConfig { max_len: 16, ..redis_config(&url, "late") };
    let writer = start_writer(feed_config(), rc.clone()).await.expect("writer");
    let first_held = || async {
        let client = redis::Client::open(url.clone()).expect("url");
        let mut c = client.get_multiplexed_async_connection().await.expect("connect");
        let first: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg("mftest:readings")
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut c)
            .await
            .expect("XRANGE");
        first.ids.first().map(|e| e.id.clone())
    };
    let deadline = tokio::time::Instant::now() + STUCK;
    while first_held().await.is_none_or(|id| id == "1-0") {
        assert!(tokio::time::Instant::now() < deadline, "the stream never trimmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = start_gateway(feed_config(), "127.0.0.1:0".parse().expect("addr"), rc)
        .await
        .expect("the gateway binds");
    let mut stopped = late.shared().shutdown();
    tokio::time::timeout(STUCK, stopped.wait_for(|s| *s))
        .await
        .expect("the late gateway stops")
        .expect("a shutdown flag");
    assert_eq!(late.shared().feed_error(), Some("trimmed"));
    assert_eq!(late.shared().model().seq(), 0, "nothing applied");
    let _ = late.shutdown().await;
    writer.shutdown().await.expect("the writer stops cleanly");
}
