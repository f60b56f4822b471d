//! Redis mode (`redis` feature, docs/STREAM.md §8): the feed server as one
//! writer and N gateway instances sharing one Redis Stream.
//!
//! - The **writer** steps the simulation (as the embedded server does), stamps
//!   every tick once (its `seq` and HLC stamp, from a `ReadModel` of its own so
//!   the rule is the embedded one) and `XADD`s it to `{prefix}:readings` with
//!   the entry id `{seq}-0`. Its **durable-write** consumer group persists the
//!   exact hourly totals (the truth) in `{prefix}:totals`, with the last `seq`
//!   persisted, in one `MULTI` with the `XACK`: a tick counts exactly once.
//!   The writer never lets the stream trim a tick the durable consumer has not
//!   persisted: past half of `max_len` ticks ahead of it, it waits.
//! - A **gateway** instance reads the whole stream with its own consumer group
//!   `live-broadcast-{instance}` (immediate `XACK`, as in the seed: live
//!   fan-out is not the durable path), checks every entry (its `seq` follows
//!   the last, its readings name known meters, the HLC stamp it computes is the
//!   writer's) and applies it to its read models exactly as the embedded writer
//!   does; it then serves `/stream`, `/catchup`, `/snapshot-v2`, … to its own
//!   clients. Every instance applies the same ticks in the same order, so the
//!   `seq`s, stamps and deltas of every channel are the same everywhere: a
//!   page that fails over RESUMEs on another instance with the same seqs (an
//!   instance behind waits until it has them), and a RESUME of another epoch
//!   fails cleanly into a re-bootstrap. An entry that fails a check stops the
//!   instance (its clients close with 1001 and go to another): it never serves
//!   a stream that differs from its peers'.
//! - The meter → group map is the one every instance derives from the
//!   writer's seed and group count (`{prefix}:meta`): the same on all of them.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use redis::Value;
use tokio::sync::watch;

use super::model::{ReadModel, HOUR_MS};
use super::sim::{Reading, Simulator, TICK_MS};
use super::{apply_tick, start_with, FeedConfig, Server, Shared, SimClock};
use crate::core::hlc::Hlc;

/// The durable-write consumer group.
pub const DURABLE_GROUP: &str = "durable-write";
/// Bytes of one reading in an entry's `r` field: meter u32, id u64, units i64 (LE).
const READING_BYTES: usize = 20;
/// How long one XREADGROUP blocks (ms) before the loop looks at its stop flag.
const BLOCK_MS: u64 = 100;

/// The Redis mode's settings (`meterflow-feed --redis URL …`).
#[derive(Clone, Debug, PartialEq)]
pub struct RedisConfig {
    /// `redis://HOST:PORT[/DB]` (`FEED_REDIS` or `--redis`).
    pub url: String,
    /// Key prefix: `{prefix}:readings` (the stream), `{prefix}:meta`,
    /// `{prefix}:totals`, `{prefix}:durable`; 1..=64 of `[A-Za-z0-9_.-]` (default `meterflow`).
    pub prefix: String,
    /// Gateway instance name, its group is `live-broadcast-{instance}`;
    /// 1..=64 of `[A-Za-z0-9_.-]` (default `gw-<port>`).
    pub instance: String,
    /// Ticks the stream keeps (`XADD MAXLEN ~`); 16..=10,000,000 (default
    /// 1,200: 10 minutes at 2 Hz, about 23 bytes × meters each). A gateway
    /// starts from the stream's first tick, so it must start while seq 1 is
    /// held; one that finds it trimmed refuses to start (`trimmed`).
    pub max_len: u64,
    /// Entries read per XREADGROUP; 1..=10,000 (default 256).
    pub read_batch: usize,
    /// How long a gateway waits for the writer's `{prefix}:meta` (ms);
    /// 0..=3,600,000 (default 30,000); past it: `no_writer`.
    pub meta_wait_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".to_string(),
            prefix: "meterflow".to_string(),
            instance: "gw".to_string(),
            max_len: 1_200,
            read_batch: 256,
            meta_wait_ms: 30_000,
        }
    }
}

fn name_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl RedisConfig {
    /// Checks every bound; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !self.url.starts_with("redis://") {
            return Err("redis: must be a redis:// URL".into());
        }
        if !name_ok(&self.prefix) {
            return Err("redis_prefix: must be 1..=64 of [A-Za-z0-9_.-]".into());
        }
        if !name_ok(&self.instance) {
            return Err("instance: must be 1..=64 of [A-Za-z0-9_.-]".into());
        }
        if !(16..=10_000_000).contains(&self.max_len) {
            return Err("redis_max_len: must be 16..=10000000".into());
        }
        if !(1..=10_000).contains(&self.read_batch) {
            return Err("redis_read_batch: must be 1..=10000".into());
        }
        if self.meta_wait_ms > 3_600_000 {
            return Err("redis_meta_wait_ms: must be 0..=3600000".into());
        }
        Ok(())
    }

    fn key(&self, what: &str) -> String {
        format!("{}:{what}", self.prefix)
    }

    /// The stream's key.
    pub fn stream_key(&self) -> String {
        self.key("readings")
    }

    /// This instance's consumer group.
    pub fn broadcast_group(&self) -> String {
        format!("live-broadcast-{}", self.instance)
    }
}

/// Why the Redis mode stopped or refused; `code()` is stable.
#[derive(Debug, thiserror::Error)]
pub enum RedisFeedError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("config: {0}")]
    Config(String),
    #[error("no writer: {0} not found in time")]
    NoWriter(String),
    #[error("entry {id}: {why}")]
    BadEntry { id: String, why: &'static str },
    #[error("entry seq {got} where {want} was next")]
    SeqGap { want: u64, got: u64 },
    #[error("the stream no longer holds seq 1 (first held: {0}); a new gateway cannot rebuild the read models (restart the writer, or raise --redis-max-len)")]
    Trimmed(u64),
    #[error("seq {seq}: the stamp computed here differs from the writer's")]
    StampMismatch { seq: u64 },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl RedisFeedError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RedisFeedError::Redis(_) => "redis",
            RedisFeedError::Config(_) => "config",
            RedisFeedError::NoWriter(_) => "no_writer",
            RedisFeedError::BadEntry { .. } => "bad_entry",
            RedisFeedError::SeqGap { .. } => "seq_gap",
            RedisFeedError::Trimmed(_) => "trimmed",
            RedisFeedError::StampMismatch { .. } => "stamp_mismatch",
            RedisFeedError::Io(_) => "io",
        }
    }
}

/// One tick as it travels in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// The tick's simulated end (every reading's `ts`).
    pub ts: u64,
    /// The writer's wall time for the stamp (with its clock-skew fault).
    pub wall: u64,
    pub stamp: Hlc,
    pub readings: Vec<Reading>,
}

/// The `r` field: the readings, [`READING_BYTES`] each.
pub fn encode_readings(readings: &[Reading]) -> Vec<u8> {
    let mut out = Vec::with_capacity(readings.len() * READING_BYTES);
    for r in readings {
        out.extend_from_slice(&r.meter.to_le_bytes());
        out.extend_from_slice(&r.id.to_le_bytes());
        out.extend_from_slice(&r.units.to_le_bytes());
    }
    out
}

fn field_u64(map: &HashMap<String, Value>, name: &str) -> Option<u64> {
    match map.get(name)? {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// Decodes and checks one stream entry (`id` is `{seq}-0`): every field
/// present and in range, at most `meters` readings, each naming a meter below
/// `meters`, with whole units ≥ 0. Allocation follows the checked count.
pub fn decode_entry(
    id: &str,
    map: &HashMap<String, Value>,
    meters: u32,
) -> Result<Entry, RedisFeedError> {
    let bad = |why| RedisFeedError::BadEntry { id: id.to_string(), why };
    let seq = id
        .strip_suffix("-0")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s >= 1)
        .ok_or_else(|| bad("the id is not {seq}-0"))?;
    let ts = field_u64(map, "ts").ok_or_else(|| bad("ts"))?;
    let wall = field_u64(map, "wall").ok_or_else(|| bad("wall"))?;
    let hw = field_u64(map, "hw").ok_or_else(|| bad("hw"))?;
    let hc = field_u64(map, "hc").and_then(|c| u32::try_from(c).ok()).ok_or_else(|| bad("hc"))?;
    let raw = match map.get("r") {
        Some(Value::BulkString(b)) => b.as_slice(),
        _ => return Err(bad("r")),
    };
    if raw.len() % READING_BYTES != 0 {
        return Err(bad("r is not whole readings"));
    }
    let n = raw.len() / READING_BYTES;
    if n > meters as usize {
        return Err(bad("more readings than meters"));
    }
    let mut readings = Vec::new();
    readings.try_reserve_exact(n).map_err(|_| bad("out of memory"))?;
    for c in raw.chunks_exact(READING_BYTES) {
        let (m, rest) = c.split_at(4);
        let (rid, units) = rest.split_at(8);
        let meter = u32::from_le_bytes(m.try_into().map_err(|_| bad("r"))?);
        let rid = u64::from_le_bytes(rid.try_into().map_err(|_| bad("r"))?);
        let units = i64::from_le_bytes(units.try_into().map_err(|_| bad("r"))?);
        if meter >= meters {
            return Err(bad("unknown meter"));
        }
        if !(0..=1i64 << 53).contains(&units) {
            return Err(bad("units out of range"));
        }
        readings.push(Reading { meter, id: rid, ts_ms: ts, units });
    }
    Ok(Entry { seq, ts, wall, stamp: Hlc { wall_ms: hw, counter: hc }, readings })
}

async fn connect(url: &str) -> Result<MultiplexedConnection, RedisFeedError> {
    let client = redis::Client::open(url)?;
    let mut con = client.get_multiplexed_async_connection().await?;
    // XREADGROUP blocks up to BLOCK_MS; a loaded machine answers late, never wrongly.
    con.set_response_timeout(Duration::from_secs(30));
    Ok(con)
}

/// `XGROUP CREATE key group 0 MKSTREAM`; an existing group is kept.
async fn create_group(
    con: &mut MultiplexedConnection,
    key: &str,
    group: &str,
) -> Result<(), RedisFeedError> {
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(con)
        .await;
    match r {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        r => Ok(r?),
    }
}

/// Reads up to `count` new entries of `group` (blocking up to [`BLOCK_MS`]).
async fn read_group(
    con: &mut MultiplexedConnection,
    key: &str,
    group: &str,
    consumer: &str,
    count: usize,
) -> Result<Vec<redis::streams::StreamId>, RedisFeedError> {
    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(BLOCK_MS)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(con)
        .await?;
    Ok(reply.map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect()).unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct WriterState {
    paused: AtomicBool,
    /// The simulation task has seen `paused` with nothing in flight.
    idle: AtomicBool,
    /// The last `seq` added to the stream.
    seq: AtomicU64,
    /// The last `seq` the durable-write consumer persisted.
    durable: AtomicU64,
    stop: watch::Sender<bool>,
}

/// A running writer (`meterflow-feed --redis URL --role writer`).
#[derive(Debug)]
pub struct Writer {
    state: Arc<WriterState>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), RedisFeedError>>>,
    epoch: u64,
}

impl Writer {
    /// Stops (or restarts) the simulation; on resume it catches up with the clock.
    pub fn set_paused(&self, paused: bool) {
        if !paused {
            self.state.idle.store(false, Ordering::SeqCst);
        }
        self.state.paused.store(paused, Ordering::SeqCst);
    }

    /// Pauses and waits until no tick is in flight; the last `seq` added.
    pub async fn pause(&self) -> u64 {
        self.set_paused(true);
        while !self.state.idle.load(Ordering::SeqCst) && !self.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.seq()
    }

    /// The last `seq` added to the stream.
    pub fn seq(&self) -> u64 {
        self.state.seq.load(Ordering::SeqCst)
    }

    /// The last `seq` the durable-write consumer persisted.
    pub fn durable_seq(&self) -> u64 {
        self.state.durable.load(Ordering::SeqCst)
    }

    /// The stream's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A task has ended (with an error, or on stop).
    pub fn is_finished(&self) -> bool {
        self.tasks.iter().any(|t| t.is_finished())
    }

    /// Stops both tasks; the first error either ended with.
    pub async fn shutdown(self) -> Result<(), RedisFeedError> {
        self.state.stop.send_replace(true);
        let mut first = Ok(());
        for t in self.tasks {
            let r = t.await.unwrap_or_else(|e| Err(RedisFeedError::Io(std::io::Error::other(e))));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Starts a writer: a new stream (the keys under the prefix are replaced),
/// `{prefix}:meta` for the gateways, the simulation task and the
/// durable-write consumer.
pub async fn start_writer(cfg: FeedConfig, rc: RedisConfig) -> Result<Writer, RedisFeedError> {
    cfg.validate().map_err(RedisFeedError::Config)?;
    rc.validate().map_err(RedisFeedError::Config)?;
    let mut con = connect(&rc.url).await?;
    let start_ms = cfg.start_ms.unwrap_or_else(unix_ms);
    let sim = Simulator::new(cfg.meters, cfg.seed, start_ms);
    let key = rc.stream_key();
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .arg(rc.key("meta"))
        .arg(rc.key("totals"))
        .arg(rc.key("durable"))
        .query_async(&mut con)
        .await?;
    create_group(&mut con, &key, DURABLE_GROUP).await?;
    let unix_start = unix_ms();
    let _: () = redis::cmd("HSET")
        .arg(rc.key("meta"))
        .arg("epoch")
        .arg(cfg.epoch)
        .arg("seed")
        .arg(cfg.seed)
        .arg("meters")
        .arg(cfg.meters)
        .arg("start_ms")
        .arg(sim.start_ms())
        .arg("groups")
        .arg(cfg.groups)
        .arg("speed")
        .arg(cfg.speed.to_string())
        .arg("unix_start_ms")
        .arg(unix_start)
        .query_async(&mut con)
        .await?;
    let state = Arc::new(WriterState {
        paused: AtomicBool::new(false),
        idle: AtomicBool::new(false),
        seq: AtomicU64::new(0),
        durable: AtomicU64::new(0),
        stop: watch::Sender::new(false),
    });
    let clock = SimClock::since(unix_start, sim.start_ms(), cfg.speed);
    let durable_con = connect(&rc.url).await?;
    let resources: Vec<usize> = sim.meters().iter().map(|m| m.resource).collect();
    let durable =
        tokio::spawn(durable_loop(durable_con, rc.clone(), cfg.meters, resources, state.clone()));
    let epoch = cfg.epoch;
    let writer = tokio::spawn(writer_loop(con, rc, cfg, sim, clock, state.clone()));
    Ok(Writer { state, tasks: vec![writer, durable], epoch })
}

async fn writer_loop(
    mut con: MultiplexedConnection,
    rc: RedisConfig,
    cfg: FeedConfig,
    mut sim: Simulator,
    clock: SimClock,
    state: Arc<WriterState>,
) -> Result<(), RedisFeedError> {
    // The stamps and seqs come from the embedded rule itself (a model that
    // keeps one hour and one frame: only its clock and counter matter).
    let mut stamper = ReadModel::new(
        cfg.epoch,
        sim.start_ms(),
        sim.meters().iter().map(|m| m.id.clone()).collect(),
        sim.meters().iter().map(|m| m.resource).collect(),
        1,
        1,
    )
    .with_ring_readings(1);
    let key = rc.stream_key();
    let mut stop = state.stop.subscribe();
    let mut out = Vec::new();
    let window = rc.max_len / 2;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let mut last = None;
        let paused = state.paused.load(Ordering::SeqCst);
        state.idle.store(paused, Ordering::SeqCst);
        if !paused {
            let now = clock.now_ms();
            let mut n = 0;
            let durable = state.durable.load(Ordering::SeqCst);
            // Never trim a tick the durable consumer has not persisted.
            while sim.next_ts() <= now
                && n < cfg.max_ticks_per_wake
                && stamper.seq() < durable + window
            {
                let ts = sim.step(&mut out);
                let wall = cfg.faults.skewed(ts);
                let frame = stamper.apply_at(ts, wall, std::mem::take(&mut out));
                pipe.cmd("XADD")
                    .arg(&key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(rc.max_len)
                    .arg(format!("{}-0", frame.seq))
                    .arg("ts")
                    .arg(ts)
                    .arg("wall")
                    .arg(wall)
                    .arg("hw")
                    .arg(frame.stamp.wall_ms)
                    .arg("hc")
                    .arg(frame.stamp.counter)
                    .arg("r")
                    .arg(encode_readings(&frame.readings))
                    .ignore();
                last = Some(frame.seq);
                n += 1;
            }
        }
        if let Some(seq) = last {
            let _: () = pipe.query_async(&mut con).await?;
            state.seq.store(seq, Ordering::SeqCst);
            tokio::task::yield_now().await;
            continue;
        }
        let wait = if paused {
            Duration::from_millis(5)
        } else {
            clock
                .real_until(sim.next_ts())
                .clamp(Duration::from_millis(1), Duration::from_millis(TICK_MS))
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The durable-write consumer: per entry, the exact hourly totals (the
/// ledger's bucket: the hour of `min(ts, stamp)`) added in one `MULTI` with
/// the persisted `seq` and the `XACK`.
async fn durable_loop(
    mut con: MultiplexedConnection,
    rc: RedisConfig,
    meters: u32,
    resources: Vec<usize>,
    state: Arc<WriterState>,
) -> Result<(), RedisFeedError> {
    let key = rc.stream_key();
    let mut stop = state.stop.subscribe();
    let mut last = 0u64;
    let mut readings = 0u64;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let ids = tokio::select! {
            r = read_group(&mut con, &key, DURABLE_GROUP, "durable", rc.read_batch) => r?,
            _ = stop.changed() => continue,
        };
        if ids.is_empty() {
            continue;
        }
        let mut sums: BTreeMap<(u64, usize), i64> = BTreeMap::new();
        for id in &ids {
            let e = decode_entry(&id.id, &id.map, meters)?;
            if e.seq != last + 1 {
                return Err(RedisFeedError::SeqGap { want: last + 1, got: e.seq });
            }
            for r in &e.readings {
                let Some(&res) = resources.get(r.meter as usize) else { continue };
                let hour = r.ts_ms.min(e.stamp.wall_ms) / HOUR_MS * HOUR_MS;
                *sums.entry((hour, res)).or_default() += r.units;
            }
            readings += e.readings.len() as u64;
            last = e.seq;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for ((hour, res), units) in &sums {
            pipe.cmd("HINCRBY").arg(rc.key("totals")).arg(format!("{hour}:{res}")).arg(*units);
        }
        pipe.cmd("HSET")
            .arg(rc.key("durable"))
            .arg("seq")
            .arg(last)
            .arg("readings")
            .arg(readings)
            .ignore();
        pipe.cmd("XACK").arg(&key).arg(DURABLE_GROUP);
        for id in &ids {
            pipe.arg(&id.id);
        }
        let _: Value = pipe.query_async(&mut con).await?;
        state.durable.store(last, Ordering::SeqCst);
    }
}

/// What the durable-write consumer has persisted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableTruth {
    /// The last `seq` persisted.
    pub seq: u64,
    /// Readings persisted.
    pub readings: u64,
    /// Units per (hour start ms, resource index).
    pub hours: BTreeMap<(u64, usize), i64>,
}

/// Reads the durable truth (`{prefix}:totals`, `{prefix}:durable`) in one `MULTI`.
pub async fn durable_truth(rc: &RedisConfig) -> Result<DurableTruth, RedisFeedError> {
    let mut con = connect(&rc.url).await?;
    let (totals, durable): (HashMap<String, i64>, HashMap<String, u64>) = redis::pipe()
        .atomic()
        .cmd("HGETALL")
        .arg(rc.key("totals"))
        .cmd("HGETALL")
        .arg(rc.key("durable"))
        .query_async(&mut con)
        .await?;
    let mut hours = BTreeMap::new();
    for (k, v) in totals {
        let parsed = k.split_once(':').and_then(|(h, r)| Some((h.parse().ok()?, r.parse().ok()?)));
        let Some(at) = parsed else {
            return Err(RedisFeedError::BadEntry {
                id: k,
                why: "a totals field is not hour:resource",
            });
        };
        hours.insert(at, v);
    }
    Ok(DurableTruth {
        seq: durable.get("seq").copied().unwrap_or(0),
        readings: durable.get("readings").copied().unwrap_or(0),
        hours,
    })
}

// ---------------------------------------------------------------------------
// Gateway
// ---------------------------------------------------------------------------

/// The writer's `{prefix}:meta`.
#[derive(Clone, Debug, PartialEq)]
struct Meta {
    epoch: u64,
    seed: u64,
    meters: u32,
    start_ms: u64,
    groups: usize,
    speed: f64,
    unix_start_ms: u64,
}

async fn read_meta(
    con: &mut MultiplexedConnection,
    rc: &RedisConfig,
) -> Result<Option<Meta>, RedisFeedError> {
    let m: HashMap<String, String> =
        redis::cmd("HGETALL").arg(rc.key("meta")).query_async(con).await?;
    if m.is_empty() {
        return Ok(None);
    }
    let bad = |why| RedisFeedError::BadEntry { id: rc.key("meta"), why };
    let num = |f: &'static str| m.get(f).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| bad(f));
    Ok(Some(Meta {
        epoch: num("epoch")?,
        seed: num("seed")?,
        meters: u32::try_from(num("meters")?).map_err(|_| bad("meters"))?,
        start_ms: num("start_ms")?,
        groups: usize::try_from(num("groups")?).map_err(|_| bad("groups"))?,
        speed: m.get("speed").and_then(|v| v.parse().ok()).ok_or_else(|| bad("speed"))?,
        unix_start_ms: num("unix_start_ms")?,
    }))
}

/// Starts a gateway instance on `addr`: waits for the writer's meta, takes
/// the stream's meters, seed, epoch, start and groups from it (the rest of
/// `cfg` is this instance's: rings, credit, heartbeat, faults), rebuilds the
/// read models from the stream's first tick and serves.
pub async fn start_gateway(
    cfg: FeedConfig,
    addr: SocketAddr,
    rc: RedisConfig,
) -> Result<Server, RedisFeedError> {
    rc.validate().map_err(RedisFeedError::Config)?;
    let mut con = connect(&rc.url).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(rc.meta_wait_ms);
    let meta = loop {
        if let Some(m) = read_meta(&mut con, &rc).await? {
            break m;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RedisFeedError::NoWriter(rc.key("meta")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cfg = FeedConfig {
        meters: meta.meters,
        seed: meta.seed,
        epoch: meta.epoch,
        start_ms: Some(meta.start_ms),
        groups: meta.groups,
        speed: meta.speed,
        ..cfg
    };
    cfg.validate().map_err(RedisFeedError::Config)?;
    let key = rc.stream_key();
    let group = rc.broadcast_group();
    create_group(&mut con, &key, &group).await?;
    // A (re)started instance has empty read models: it reads from the start.
    let _: () = redis::cmd("XGROUP")
        .arg("SETID")
        .arg(&key)
        .arg(&group)
        .arg("0")
        .query_async(&mut con)
        .await?;
    let sim = Simulator::new(meta.meters, meta.seed, meta.start_ms);
    let clock = SimClock::since(meta.unix_start_ms, sim.start_ms(), meta.speed);
    let instance = Some(rc.instance.clone());
    let server = start_with(cfg, addr, sim, clock, instance, move |shared, _sim| {
        tokio::spawn(async move {
            let instance = rc.instance.clone();
            if let Err(e) = gateway_loop(con, rc, &shared).await {
                eprintln!("meterflow-feed[{instance}]: {}: {e}; stopping this instance", e.code());
                *shared.feed_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.code());
                shared.shutdown.send_replace(true);
            }
        })
    })
    .await?;
    Ok(server)
}

async fn gateway_loop(
    mut con: MultiplexedConnection,
    rc: RedisConfig,
    shared: &Shared,
) -> Result<(), RedisFeedError> {
    let key = rc.stream_key();
    let group = rc.broadcast_group();
    let mut stop = shared.shutdown();
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let ids = tokio::select! {
            r = read_group(&mut con, &key, &group, &rc.instance, rc.read_batch) => r?,
            _ = stop.changed() => continue,
        };
        if ids.is_empty() {
            continue;
        }
        // Immediate ACK (the seed's live-broadcast semantics): nothing is
        // pending for this group; a restarted instance re-reads from the start.
        let mut ack = redis::cmd("XACK");
        ack.arg(&key).arg(&group);
        for id in &ids {
            ack.arg(&id.id);
        }
        let _: Value = ack.query_async(&mut con).await?;
        for id in &ids {
            let e = decode_entry(&id.id, &id.map, shared.cfg.meters)?;
            let head = shared.model().seq();
            if e.seq != head + 1 {
                return Err(if head == 0 {
                    RedisFeedError::Trimmed(e.seq)
                } else {
                    RedisFeedError::SeqGap { want: head + 1, got: e.seq }
                });
            }
            let frame = apply_tick(shared, e.ts, e.wall, e.readings);
            if frame.stamp != e.stamp {
                return Err(RedisFeedError::StampMismatch { seq: e.seq });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: &[(&str, Value)]) -> HashMap<String, Value> {
        fields.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()
    }

    fn num(n: u64) -> Value {
        Value::BulkString(n.to_string().into_bytes())
    }

    fn entry_map(r: Vec<u8>) -> HashMap<String, Value> {
        map(&[
            ("ts", num(1_000)),
            ("wall", num(1_000)),
            ("hw", num(1_000)),
            ("hc", num(2)),
            ("r", Value::BulkString(r)),
        ])
    }

    #[test]
    fn readings_round_trip_through_an_entry() -> Result<(), RedisFeedError> {
        let rs = vec![
            Reading { meter: 0, id: 1, ts_ms: 1_000, units: 0 },
            Reading { meter: 9, id: u64::MAX, ts_ms: 1_000, units: 1 << 53 },
        ];
        let e = decode_entry("7-0", &entry_map(encode_readings(&rs)), 10)?;
        assert_eq!(e.seq, 7);
        assert_eq!(e.stamp, Hlc { wall_ms: 1_000, counter: 2 });
        assert_eq!(e.readings, rs);
        Ok(())
    }

    #[test]
    fn bad_entries_are_refused_with_their_reason() {
        let one = encode_readings(&[Reading { meter: 10, id: 1, ts_ms: 1_000, units: 5 }]);
        let neg = encode_readings(&[Reading { meter: 1, id: 1, ts_ms: 1_000, units: -5 }]);
        let cases: Vec<(&str, HashMap<String, Value>, &str)> = vec![
            ("7-1", entry_map(Vec::new()), "the id is not {seq}-0"),
            ("0-0", entry_map(Vec::new()), "the id is not {seq}-0"),
            ("7-0", entry_map(vec![0; 19]), "r is not whole readings"),
            ("7-0", entry_map(one.repeat(11)), "more readings than meters"),
            ("7-0", entry_map(one), "unknown meter"),
            ("7-0", entry_map(neg), "units out of range"),
            ("7-0", map(&[("ts", num(1))]), "wall"),
        ];
        for (id, m, want) in cases {
            let r = decode_entry(id, &m, 10);
            assert!(
                matches!(&r, Err(RedisFeedError::BadEntry { why, .. }) if *why == want),
                "{id}: {r:?}"
            );
        }
    }

    #[test]
    fn config_bounds_name_the_field() {
        let ok = RedisConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let bad = [
            RedisConfig { url: "http://x".into(), ..ok.clone() },
            RedisConfig { instance: "a b".into(), ..ok.clone() },
            RedisConfig { prefix: String::new(), ..ok.clone() },
            RedisConfig { max_len: 15, ..ok.clone() },
            RedisConfig { read_batch: 0, ..ok.clone() },
            RedisConfig { meta_wait_ms: 3_600_001, ..ok.clone() },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
