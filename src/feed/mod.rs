//! The feed server (native, `feed` feature): a seeded simulation of N meters,
//! one writer that stamps every reading once and keeps an incremental read
//! model (seed §5, Option A), and axum endpoints on one port: `/stream`
//! (stream v2 WebSocket, docs/STREAM.md), `/catchup` and `/snapshot-v2`
//! (PROTOCOL.md 3.6/3.8), `/truth`, `/meters/{id}`, static files.
//!
//! - `sim.rs`: the simulator (pure, seeded). `model.rs`: the `totals` read
//!   model (pure). `channels.rs`: the `meters.<group>` and `notices` read model
//!   (pure). `faults.rs`: fault settings and the send planner (pure).
//! - `http.rs`: REST handlers and bodies. `ws.rs`: one WebSocket session.
//! - this file: `FeedConfig`, the shared state, the writer task, `start`.

pub mod channels;
pub mod faults;
pub mod http;
pub mod model;
#[cfg(feature = "redis")]
pub mod redis;
pub mod sim;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::core::session::rng::SplitMix64;

use channels::{ChannelLimits, ChannelModel};
use faults::{Command, Faults};
use model::ReadModel;
use sim::{Incident, MeterSpec, Simulator, TICK_MS};

/// Every limit of the feed server, with defaults (`meterflow-feed --help`).
#[derive(Clone, Debug, PartialEq)]
pub struct FeedConfig {
    /// Simulated meters; 1..=1,000,000 (default 5,000).
    pub meters: u32,
    /// Seed of the simulation.
    pub seed: u64,
    /// Simulated time runs `speed` × real time; > 0 and ≤ 10,000 (default 1).
    pub speed: f64,
    /// Simulated start (ms since the Unix epoch); default: the wall clock at start.
    pub start_ms: Option<u64>,
    /// Epoch of the `totals` stream; ≥ 1, ≤ 2^53 (default: a new one per process).
    pub epoch: u64,
    /// Hours of exact totals kept; 1..=8,784 (default 168).
    pub history_hours: usize,
    /// Newest hours of exact totals kept per meter, for catch-ups asked with
    /// `meters=1` (the worker's row rebuild); 0..=168 (default 8: the
    /// worker's 7 kept hours at its defaults, plus one for the rollover).
    /// Memory: 8 bytes × meters × hours (3.2 MB at 50,000 meters).
    pub meter_history_hours: usize,
    /// Most non-zero per-meter totals one `meters=1` catch-up lists; the
    /// newest hours that fit are listed per meter, older ones as resource
    /// totals; 0..=10,000,000 (default 150,000: about 10.7 MB of JSON, under
    /// the worker's 16 MiB `maxPayloadBytes`; 5,000 meters × 8 hours fit
    /// whole, 50,000 meters about 3 hours).
    pub catchup_meter_entries: usize,
    /// Recent `totals` frames kept for resume; 1..=100,000 (default 240).
    pub ring_frames: usize,
    /// Readings those frames may hold in all (fewer frames are kept when
    /// meters are many: 32 bytes a reading, plus its JSON/binary once sent);
    /// 1..=100,000,000 (default 1,200,000: 240 frames at 5,000 meters, 24 at 50,000).
    pub ring_readings: usize,
    /// HELLO's heartbeat interval (real ms); 100..=600,000 (default 15,000).
    /// A connection silent for twice that is closed with 4009.
    pub heartbeat_interval_ms: u64,
    /// Session ids remembered for RESUME (oldest forgotten first); 1..=1,000,000 (default 4,096).
    pub max_sessions: usize,
    /// Most credit a channel may hold; 1..=1,000,000 (default 65,536). More is capped.
    pub max_credit: u64,
    /// Largest client message accepted (bytes); 256..=1 MiB (default 64 KiB).
    pub max_client_message_bytes: usize,
    /// Ticks the writer applies per wake-up before it yields; 1..=100,000 (default 256).
    pub max_ticks_per_wake: u32,
    /// Directory of the static files served at other paths (default `www`).
    pub www: PathBuf,
    /// District groups, each a `meters.<group>` channel; 1..=64 (default 8).
    pub groups: usize,
    /// Recent deltas kept per `meters.<group>` / `notices` channel for the
    /// stream; 1..=10,000 (default 32). Memory: about 40 bytes × the group's
    /// meters per delta, plus its JSON once sent.
    pub delta_ring: usize,
    /// Notices held at once (the oldest is removed past it); 1..=10,000 (default 64).
    pub max_notices: usize,
    /// Notice removals remembered for `since_seq` mini-snapshots (an older
    /// `since_seq` gets a full snapshot); 1..=100,000 (default 256).
    pub notice_removals: usize,
    /// Faults at start (all off by default; `POST /admin/faults` changes them).
    pub faults: Faults,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            meters: 5_000,
            seed: 1,
            speed: 1.0,
            start_ms: None,
            epoch: 1,
            history_hours: 168,
            meter_history_hours: 8,
            catchup_meter_entries: 150_000,
            ring_frames: 240,
            ring_readings: 1_200_000,
            heartbeat_interval_ms: 15_000,
            max_sessions: 4_096,
            max_credit: 65_536,
            max_client_message_bytes: 64 << 10,
            max_ticks_per_wake: 256,
            www: PathBuf::from("www"),
            groups: 8,
            delta_ring: 32,
            max_notices: 64,
            notice_removals: 256,
            faults: Faults::default(),
        }
    }
}

impl FeedConfig {
    /// Checks every bound; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |f: &str, b: &str| Err(format!("{f}: must be {b}"));
        if !(1..=1_000_000).contains(&self.meters) {
            return bad("meters", "1..=1000000");
        }
        if !(self.speed > 0.0 && self.speed <= 10_000.0) {
            return bad("speed", "> 0 and <= 10000");
        }
        if !(1..=1u64 << 53).contains(&self.epoch) {
            return bad("epoch", "1..=2^53");
        }
        if self.start_ms.is_some_and(|s| s > 1u64 << 46) {
            return bad("start_ms", "<= 2^46");
        }
        if !(1..=8_784).contains(&self.history_hours) {
            return bad("history_hours", "1..=8784");
        }
        if self.meter_history_hours > 168 {
            return bad("meter_history_hours", "0..=168");
        }
        if self.catchup_meter_entries > 10_000_000 {
            return bad("catchup_meter_entries", "0..=10000000");
        }
        if !(1..=100_000).contains(&self.ring_frames) {
            return bad("ring_frames", "1..=100000");
        }
        if !(1..=100_000_000).contains(&self.ring_readings) {
            return bad("ring_readings", "1..=100000000");
        }
        if !(100..=600_000).contains(&self.heartbeat_interval_ms) {
            return bad("heartbeat_interval_ms", "100..=600000");
        }
        if !(1..=1_000_000).contains(&self.max_sessions) {
            return bad("max_sessions", "1..=1000000");
        }
        if !(1..=1_000_000).contains(&self.max_credit) {
            return bad("max_credit", "1..=1000000");
        }
        if !(256..=1 << 20).contains(&self.max_client_message_bytes) {
            return bad("max_client_message_bytes", "256..=1048576");
        }
        if !(1..=100_000).contains(&self.max_ticks_per_wake) {
            return bad("max_ticks_per_wake", "1..=100000");
        }
        if !(1..=64).contains(&self.groups) {
            return bad("groups", "1..=64");
        }
        if !(1..=10_000).contains(&self.delta_ring) {
            return bad("delta_ring", "1..=10000");
        }
        if !(1..=10_000).contains(&self.max_notices) {
            return bad("max_notices", "1..=10000");
        }
        if !(1..=100_000).contains(&self.notice_removals) {
            return bad("notice_removals", "1..=100000");
        }
        self.faults.validate()
    }
}

/// Simulated time: `start_ms` plus `speed` × the real time elapsed.
#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    real_start: Instant,
    start_ms: u64,
    speed: f64,
}

impl SimClock {
    /// The clock of a process that started simulated time `start_ms` at Unix
    /// time `unix_start_ms` (a gateway instance follows its writer's clock).
    pub fn since(unix_start_ms: u64, start_ms: u64, speed: f64) -> SimClock {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let ago = Duration::from_millis(now.saturating_sub(unix_start_ms));
        let real_start = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
        SimClock { real_start, start_ms, speed }
    }

    /// Simulated ms now.
    pub fn now_ms(&self) -> u64 {
        self.start_ms + (self.real_start.elapsed().as_secs_f64() * 1e3 * self.speed) as u64
    }

    /// Real time until simulated time reaches `sim_ms` (zero if it has).
    pub fn real_until(&self, sim_ms: u64) -> Duration {
        let ahead = sim_ms.saturating_sub(self.now_ms()) as f64 / self.speed;
        Duration::from_secs_f64(ahead / 1e3)
    }
}

/// Simulated time stopped by the admin API: where it stopped, and how much of
/// the raw clock it has stood still in all (subtracted once it runs again).
#[derive(Clone, Copy, Debug, Default)]
struct Frozen {
    at_ms: Option<u64>,
    lost_ms: u64,
}

/// Session ids handed out, remembered for RESUME, oldest forgotten first.
///
/// An id names the server's epoch (`s-<epoch>-<n>`, hex): a restarted server
/// (a new epoch) never takes an id of the process before it for its own, so a
/// client resuming across a restart is told its session is gone.
#[derive(Debug, Default)]
pub struct Sessions {
    ids: std::collections::VecDeque<String>,
    next: u64,
}

impl Sessions {
    /// A gateway instance (Redis mode) puts its name in the id: `s-<epoch>-<instance>-<n>`.
    fn create(&mut self, cap: usize, epoch: u64, instance: Option<&str>) -> String {
        self.next += 1;
        let id = match instance {
            Some(i) => format!("s-{epoch:x}-{i}-{:x}", self.next),
            None => format!("s-{epoch:x}-{:x}", self.next),
        };
        if self.ids.len() >= cap {
            self.ids.pop_front();
        }
        self.ids.push_back(id.clone());
        id
    }

    fn known(&self, id: &str) -> bool {
        self.ids.iter().any(|s| s == id)
    }

    fn forget(&mut self, id: &str) {
        self.ids.retain(|s| s != id);
    }
}

/// What every task shares.
#[derive(Debug)]
pub struct Shared {
    pub cfg: FeedConfig,
    pub clock: SimClock,
    pub meters: Vec<MeterSpec>,
    pub incidents: Vec<Incident>,
    model: RwLock<ReadModel>,
    channels: RwLock<ChannelModel>,
    faults: RwLock<Faults>,
    commands: broadcast::Sender<Command>,
    /// Seeds per-connection fault generators; drives REST delays.
    rng: Mutex<SplitMix64>,
    /// The last `seq` applied; connection tasks wait on it.
    head: watch::Sender<u64>,
    sessions: Mutex<Sessions>,
    shutdown: watch::Sender<bool>,
    paused: AtomicBool,
    /// Simulated time stopped by the admin API (`{"pause": true}`).
    frozen: Mutex<Frozen>,
    /// The simulated time of the writer's next tick (published after each wake).
    next_tick_ms: AtomicU64,
    /// Origins allowed to open `/stream` (the server's own).
    pub origins: Vec<String>,
    /// Catch-up and snapshot bodies served.
    pub catchups_served: AtomicU64,
    /// `GET /catchup` requests (the ledger's own catch-ups, not session
    /// snapshots): all, and those asking `meters=1` (`/truth` reports both,
    /// so a test can tell which a transport asked).
    pub catchup_requests: AtomicU64,
    pub catchup_requests_per_meter: AtomicU64,
    /// The instance name when this is one of several gateway instances of one
    /// stream (Redis mode): a RESUME with any session id of this epoch is
    /// taken (every instance applies the same ticks in the same order, so the
    /// seqs are the same everywhere), and a position ahead of this instance's
    /// head waits for it.
    pub fleet: Option<String>,
    /// The code of the error that stopped the feed task (Redis mode), if any.
    feed_error: Mutex<Option<&'static str>>,
}

impl Shared {
    /// The read model, for a short read (a poisoned lock still reads: the
    /// writer never leaves the model half-updated across a panic point).
    pub fn model(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.model.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The `meters.<group>` and `notices` read model, for a short read.
    pub fn channels(&self) -> RwLockReadGuard<'_, ChannelModel> {
        self.channels.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The faults now.
    pub fn faults(&self) -> Faults {
        *self.faults.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the faults (already validated).
    pub fn set_faults(&self, f: Faults) {
        *self.faults.write().unwrap_or_else(|e| e.into_inner()) = f;
    }

    /// Orders every open connection (RECONNECT, INVALID_SESSION); returns how many heard it.
    pub fn command(&self, c: Command) -> usize {
        self.commands.send(c).unwrap_or(0)
    }

    fn commands(&self) -> broadcast::Receiver<Command> {
        self.commands.subscribe()
    }

    /// The next seed for a per-connection generator, or a REST delay draw.
    pub fn next_random(&self) -> u64 {
        self.rng.lock().unwrap_or_else(|e| e.into_inner()).next_u64()
    }

    /// The server clock as clients see it (simulated, with the skew fault).
    pub fn server_time_ms(&self) -> u64 {
        self.faults().skewed(self.now_ms())
    }

    /// Simulated ms now: the clock, less the time it stood still (or the
    /// moment it stopped, while it stands still).
    pub fn now_ms(&self) -> u64 {
        let f = *self.frozen.lock().unwrap_or_else(|e| e.into_inner());
        f.at_ms.unwrap_or_else(|| self.clock.now_ms().saturating_sub(f.lost_ms))
    }

    /// Real time until simulated time reaches `sim_ms` (`None` while it stands still).
    fn real_until(&self, sim_ms: u64) -> Option<Duration> {
        let f = *self.frozen.lock().unwrap_or_else(|e| e.into_inner());
        match f.at_ms {
            Some(_) => None,
            None => Some(self.clock.real_until(sim_ms.saturating_add(f.lost_ms))),
        }
    }

    /// Stops simulated time (`true`: no reading is made and the server's
    /// clock reads the same until it restarts) or restarts it where it stopped
    /// (`false`), so a test can compare a page with the truth at one instant.
    /// Answers whether it stands still now. Not with Redis (the writer process
    /// owns the clock).
    pub fn set_frozen(&self, stop: bool) -> bool {
        let mut f = self.frozen.lock().unwrap_or_else(|e| e.into_inner());
        let raw = self.clock.now_ms();
        match (stop, f.at_ms) {
            (true, None) => f.at_ms = Some(raw.saturating_sub(f.lost_ms)),
            (false, Some(at)) => *f = Frozen { at_ms: None, lost_ms: raw.saturating_sub(at) },
            _ => {}
        }
        f.at_ms.is_some()
    }

    /// Once simulated time stands still, whether the writer has made every
    /// tick up to where it stopped (the truth no longer moves).
    pub fn settled(&self) -> bool {
        let at = self.frozen.lock().unwrap_or_else(|e| e.into_inner()).at_ms;
        at.is_some_and(|at| self.next_tick_ms.load(Ordering::SeqCst) > at)
    }

    /// Whether simulated time stands still.
    pub fn frozen(&self) -> bool {
        self.frozen.lock().unwrap_or_else(|e| e.into_inner()).at_ms.is_some()
    }

    /// Waits on the head `seq`.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// Resolves when the server is shutting down.
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The code of the error that stopped the feed task (Redis mode), if any.
    pub fn feed_error(&self) -> Option<&'static str> {
        *self.feed_error.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_session(&self) -> String {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.create(self.cfg.max_sessions, self.cfg.epoch, self.fleet.as_deref())
    }

    fn session_known(&self, id: &str) -> bool {
        if self.fleet.is_some() && id.starts_with(&format!("s-{:x}-", self.cfg.epoch)) {
            return true;
        }
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).known(id)
    }

    fn forget_session(&self, id: &str) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).forget(id)
    }
}

/// A running feed server.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
    writer: tokio::task::JoinHandle<()>,
}

impl Server {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (read model, clock, incidents).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops (or restarts) the writer: no new ticks while paused; on resume the
    /// simulation catches up with the simulated clock.
    pub fn set_paused(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::SeqCst);
    }

    /// Stops accepting, closes every WebSocket with 1001 and waits for the tasks.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.shared.shutdown.send_replace(true);
        let _ = self.writer.await;
        match self.serve.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Binds `addr`, starts the writer and the server.
pub async fn start(cfg: FeedConfig, addr: SocketAddr) -> std::io::Result<Server> {
    let start_ms = cfg.start_ms.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    });
    let sim = Simulator::new(cfg.meters, cfg.seed, start_ms);
    let clock = SimClock { real_start: Instant::now(), start_ms: sim.start_ms(), speed: cfg.speed };
    start_with(cfg, addr, sim, clock, None, |shared, sim| tokio::spawn(write_loop(shared, sim)))
        .await
}

/// [`start`] with the simulated clock given and the task that feeds the read
/// models (the embedded writer, or a Redis Stream consumer).
pub(crate) async fn start_with(
    cfg: FeedConfig,
    addr: SocketAddr,
    sim: Simulator,
    clock: SimClock,
    fleet: Option<String>,
    feed: impl FnOnce(Arc<Shared>, Simulator) -> tokio::task::JoinHandle<()>,
) -> std::io::Result<Server> {
    cfg.validate().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let model = ReadModel::new(
        cfg.epoch,
        sim.start_ms(),
        sim.meters().iter().map(|m| m.id.clone()).collect(),
        sim.meters().iter().map(|m| m.resource).collect(),
        cfg.history_hours,
        cfg.ring_frames,
    )
    .with_ring_readings(cfg.ring_readings)
    .with_meter_hours(cfg.meter_history_hours)
    .with_catchup_meter_entries(cfg.catchup_meter_entries);
    let channels = ChannelModel::new(
        cfg.epoch,
        sim.meters().iter().map(|m| m.id.clone()).collect(),
        sim.meters().iter().map(|m| m.resource).collect(),
        channels::assign_groups(sim.meters().len(), cfg.groups, cfg.seed),
        cfg.groups,
        sim.incidents(),
        cfg.seed,
        sim.start_ms(),
        ChannelLimits {
            delta_ring: cfg.delta_ring,
            max_notices: cfg.max_notices,
            notice_removals: cfg.notice_removals,
        },
    );
    let mut origins = vec![format!("http://{addr}")];
    if addr.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", addr.port()));
    }
    let shared = Arc::new(Shared {
        clock,
        meters: sim.meters().to_vec(),
        incidents: sim.incidents().to_vec(),
        model: RwLock::new(model),
        channels: RwLock::new(channels),
        faults: RwLock::new(cfg.faults),
        commands: broadcast::channel(16).0,
        rng: Mutex::new(SplitMix64::new(cfg.seed ^ 0x6661_756c_7473_0001)),
        head: watch::Sender::new(0),
        sessions: Mutex::new(Sessions::default()),
        shutdown: watch::Sender::new(false),
        paused: AtomicBool::new(false),
        frozen: Mutex::new(Frozen::default()),
        next_tick_ms: AtomicU64::new(0),
        origins,
        catchups_served: AtomicU64::new(0),
        catchup_requests: AtomicU64::new(0),
        catchup_requests_per_meter: AtomicU64::new(0),
        fleet,
        feed_error: Mutex::new(None),
        cfg,
    });
    let writer = feed(shared.clone(), sim);
    let app = http::router(shared.clone());
    let mut stop = shared.shutdown();
    let serve = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    Ok(Server { addr, shared, serve, writer })
}

/// The one writer: steps the simulation up to the simulated clock, applies each
/// tick to the read model, publishes the head `seq`.
async fn write_loop(shared: Arc<Shared>, mut sim: Simulator) {
    let mut stop = shared.shutdown();
    let mut out = Vec::new();
    loop {
        if *stop.borrow() {
            return;
        }
        if !shared.paused.load(Ordering::SeqCst) {
            let now = shared.now_ms();
            let mut n = 0;
            while sim.next_ts() <= now && n < shared.cfg.max_ticks_per_wake {
                let ts = sim.step(&mut out);
                let wall = shared.faults().skewed(ts);
                apply_tick(&shared, ts, wall, std::mem::take(&mut out));
                n += 1;
            }
            shared.next_tick_ms.store(sim.next_ts(), Ordering::SeqCst);
            if n == shared.cfg.max_ticks_per_wake {
                tokio::task::yield_now().await;
                continue;
            }
        }
        let wait = if shared.paused.load(Ordering::SeqCst) {
            Duration::from_millis(5)
        } else {
            shared
                .real_until(sim.next_ts())
                .unwrap_or(Duration::from_millis(5))
                .clamp(Duration::from_millis(1), Duration::from_millis(TICK_MS))
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Applies one tick to both read models and publishes the head `seq`; returns
/// the `totals` frame (its `seq` and HLC stamp).
pub(crate) fn apply_tick(
    shared: &Shared,
    ts: u64,
    wall: u64,
    readings: Vec<sim::Reading>,
) -> Arc<model::Frame> {
    {
        let mut c = shared.channels.write().unwrap_or_else(|e| e.into_inner());
        c.apply(ts, &readings, &shared.incidents);
    }
    let frame = {
        let mut m = shared.model.write().unwrap_or_else(|e| e.into_inner());
        m.apply_at(ts, wall, readings)
    };
    shared.head.send_replace(frame.seq);
    frame
}

#[cfg(test)]
mod session_id_tests {
    use super::Sessions;

    #[test]
    fn a_restarted_server_never_knows_the_ids_of_the_process_before_it() {
        let (mut before, mut after) = (Sessions::default(), Sessions::default());
        let old: Vec<String> = (0..5).map(|_| before.create(16, 1_764_064_800, None)).collect();
        let new: Vec<String> = (0..5).map(|_| after.create(16, 1_764_064_801, None)).collect();
        assert!(old.iter().all(|id| !after.known(id)), "{old:?} vs {new:?}");
        assert!(new.iter().all(|id| after.known(id)));
    }
}
