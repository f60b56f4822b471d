#![cfg(not(target_arch = "wasm32"))]
//! Seeded simulation of the stream v2 session against a faulty server: drops,
//! duplicates, reorders, disconnects, epoch changes, resume failures, credit
//! overruns, failed and reordered fetches, and a slow page. At quiescence every
//! channel's deliveries equal the server's stream (no gap, no duplicate, in
//! order), accepted deltas never exceed granted credit on any connection, and
//! every store stays within its cap throughout.
//!
//! `METERFLOW_SESSION_SCHEDULES` sets the number of schedules (default 5,000).

#[path = "common/cases.rs"]
mod cases;
#[path = "common/rng.rs"]
mod rng;

use meterflow::core::session::{
    ClientOp, ConnectionState, Delivery, FetchWhat, Payload, ServerOp, Session, SessionConfig,
    SessionInput as In, SessionOutput as Out, SnapshotReply,
};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use rng::Rng;
use std::collections::{BTreeMap, VecDeque};

const CHANNELS: [&str; 3] = ["totals", "meters.north", "notices"];

/// Fault rates of one schedule.
#[derive(Clone, Copy, Debug)]
struct Faults {
    drop: f64,
    dup: f64,
    reorder: usize,
    disconnect: f64,
    overrun: f64,
    epoch: f64,
    expire: f64,
    fetch_fail: f64,
    render: f64,
}

impl Faults {
    fn draw(r: &mut Rng) -> Faults {
        Faults {
            drop: r.range(0.0, 0.1),
            dup: r.range(0.0, 0.1),
            reorder: r.below(4) as usize,
            disconnect: r.range(0.0, 0.01),
            overrun: r.range(0.0, 0.02),
            epoch: r.range(0.0, 0.005),
            expire: r.range(0.0, 0.3),
            fetch_fail: r.range(0.0, 0.2),
            render: r.range(0.05, 1.0),
        }
    }
    fn none() -> Faults {
        Faults {
            drop: 0.0,
            dup: 0.0,
            reorder: 0,
            disconnect: 0.0,
            overrun: 0.0,
            epoch: 0.0,
            expire: 0.0,
            fetch_fail: 0.0,
            render: 1.0,
        }
    }
}

/// The server's side of one channel on one connection.
#[derive(Default)]
struct Stream {
    credit: u64,
    /// Next seq to send, in `epoch`.
    next: u64,
    epoch: u64,
    subscribed: bool,
    /// Credit the client granted and deltas it accepted on this connection.
    granted: u64,
    accepted: u64,
}

struct Conn {
    streams: BTreeMap<String, Stream>,
    wire: VecDeque<ServerOp>,
    greeted: bool,
}

struct Sim {
    r: Rng,
    f: Faults,
    now: f64,
    client: Session,
    /// Server: (epoch, head) per channel.
    head: BTreeMap<String, (u64, u64)>,
    session: Option<String>,
    sessions: u64,
    conn: Option<Conn>,
    closed_events: VecDeque<u16>,
    fetches: Vec<(u64, FetchWhat)>,
    /// Consumer: (epoch, last) per channel, and deliveries awaiting render.
    consumer: BTreeMap<String, (u64, u64)>,
    unrendered: BTreeMap<String, u32>,
    cfg: SessionConfig,
}

fn body(epoch: u64, seq: u64) -> Payload {
    Payload::Text(format!("{epoch}/{seq}"))
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut r = Rng(seed);
        let f = Faults::draw(&mut r);
        let cfg = SessionConfig {
            credit_window: 1 + r.below(16) as u32,
            max_buffered_deltas: 1 + r.below(20) as u32,
            backoff_base_ms: 50.0,
            backoff_cap_ms: 2_000.0,
            hello_timeout_ms: 1_000.0,
            fetch_retry_ms: 200.0,
            seed: r.next_u64(),
            ..SessionConfig::default()
        };
        let head =
            CHANNELS.iter().map(|c| (c.to_string(), (1 + r.below(3), r.below(50)))).collect();
        Sim {
            r,
            f,
            now: 0.0,
            client: Session::new(cfg.clone()).expect("valid config"),
            head,
            session: None,
            sessions: 0,
            conn: None,
            closed_events: VecDeque::new(),
            fetches: Vec::new(),
            consumer: BTreeMap::new(),
            unrendered: BTreeMap::new(),
            cfg,
        }
    }

    fn input(&mut self, input: In) {
        let delta = match &input {
            In::Server(ServerOp::Delta { channel, .. }) => Some(channel.clone()),
            _ => None,
        };
        let overruns = self.client.counters().credit_overruns;
        let out = self.client.handle(input, self.now);
        if let Some(ch) = delta {
            // Refusals are counted each; only an episode's first is reported.
            let refused = self.client.counters().credit_overruns > overruns;
            if let Some(s) = self.conn.as_mut().and_then(|c| c.streams.get_mut(&ch)) {
                if !refused {
                    s.accepted += 1;
                    assert!(
                        s.accepted <= s.granted,
                        "{ch}: accepted {} > granted {}",
                        s.accepted,
                        s.granted
                    );
                }
            }
        }
        for o in out {
            self.output(o);
        }
        self.check_bounds();
    }

    fn check_bounds(&self) {
        let cap = self.cfg.max_buffered_deltas.min(self.cfg.credit_window) as usize;
        let views = self.client.channels();
        assert!(views.len() <= self.cfg.max_channels as usize);
        for v in views {
            assert!(v.buffered <= cap, "{}: {} buffered > {cap}", v.name, v.buffered);
            assert!(v.outstanding <= self.cfg.credit_window);
            assert!(v.accepted <= v.granted);
        }
    }

    fn output(&mut self, o: Out) {
        match o {
            Out::Connect { .. } => {
                if self.r.chance(0.1) {
                    self.closed_events.push_back(1006);
                } else {
                    let sid = format!("s{}", self.sessions + 1);
                    let mut wire = VecDeque::new();
                    wire.push_back(ServerOp::Hello {
                        heartbeat_interval_ms: 1_000.0,
                        session_id: sid,
                        server_time_ms: self.now,
                        resume_url: None,
                    });
                    self.conn = Some(Conn { streams: BTreeMap::new(), wire, greeted: false });
                }
            }
            Out::Close { code, .. } => {
                self.conn = None;
                if code == 1000 {
                    self.session = None;
                }
            }
            Out::Send(op) => self.server_receives(op),
            Out::Fetch { request_id, what } => self.fetches.push((request_id, what)),
            Out::Deliver { channel, item } => self.consume(&channel, item),
            // Not part of the in-order stream: the consumer may check it.
            Out::Covered { .. } => {}
            Out::Connection(s) => assert_ne!(s.state, ConnectionState::Stopped),
            Out::Error(_) => {}
        }
    }

    fn consume(&mut self, ch: &str, item: Delivery) {
        let cur = self.consumer.get(ch).copied();
        match item {
            Delivery::Snapshot { epoch, snapshot_seq, since_seq: None, body: b } => {
                assert_eq!(b, body(epoch, snapshot_seq));
                if let Some(c) = cur {
                    assert!(
                        (epoch, snapshot_seq) >= c,
                        "{ch}: snapshot {epoch}/{snapshot_seq} behind {c:?}"
                    );
                }
                self.consumer.insert(ch.into(), (epoch, snapshot_seq));
            }
            Delivery::Snapshot { epoch, snapshot_seq, since_seq: Some(n), body: b } => {
                assert_eq!(b, body(epoch, snapshot_seq));
                assert_eq!(
                    cur,
                    Some((epoch, n)),
                    "{ch}: mini-snapshot since {n} does not continue"
                );
                assert!(snapshot_seq >= n);
                self.consumer.insert(ch.into(), (epoch, snapshot_seq));
            }
            Delivery::Delta { epoch, seq, body: b } => {
                assert_eq!(b, body(epoch, seq));
                assert_eq!(cur, Some((epoch, seq - 1)), "{ch}: delta {epoch}/{seq} out of order");
                self.consumer.insert(ch.into(), (epoch, seq));
                *self.unrendered.entry(ch.into()).or_default() += 1;
            }
        }
    }

    /// Where a stream starts for a client at `pos`: after it if the server holds it.
    fn start(&self, ch: &str, pos: Option<(u64, u64)>) -> (u64, u64) {
        let (epoch, head) = self.head[ch];
        match pos {
            Some((e, s)) if e == epoch && s <= head => (epoch, s + 1),
            Some((e, _)) if e < epoch => (epoch, 1),
            _ => (epoch, head + 1),
        }
    }

    fn server_receives(&mut self, op: ClientOp) {
        let Some(mut conn) = self.conn.take() else { return };
        match op {
            ClientOp::Identify { channels, .. } | ClientOp::Resume { channels, .. } => {
                conn.greeted = true;
                for c in &channels {
                    let (epoch, next) = self.start(&c.name, c.position);
                    let credit = u64::from(c.credit);
                    let s = Stream {
                        credit,
                        next,
                        epoch,
                        subscribed: true,
                        granted: credit,
                        accepted: 0,
                    };
                    conn.streams.insert(c.name.clone(), s);
                }
                conn.wire.push_back(ServerOp::Ready { session_id: String::new() });
            }
            ClientOp::Heartbeat { .. } => {
                let sent = conn
                    .streams
                    .iter()
                    .filter(|(_, s)| s.next > 1)
                    .map(|(c, s)| meterflow::core::session::ChannelPos {
                        channel: c.clone(),
                        epoch: s.epoch,
                        seq: s.next - 1,
                    })
                    .collect();
                if !self.r.chance(self.f.drop / 2.0) {
                    conn.wire.push_back(ServerOp::HeartbeatAck { sent });
                }
            }
            ClientOp::Subscribe { channel, credit } => {
                let (epoch, next) = self.start(&channel, None);
                let credit = u64::from(credit);
                let s =
                    Stream { credit, next, epoch, subscribed: true, granted: credit, accepted: 0 };
                conn.streams.insert(channel, s);
            }
            ClientOp::Unsubscribe { channel } => {
                conn.streams.remove(&channel);
            }
            ClientOp::Credit { grants } => {
                for (c, n) in grants {
                    if let Some(s) = conn.streams.get_mut(&c) {
                        s.credit += u64::from(n);
                        s.granted += u64::from(n);
                    }
                }
            }
        }
        self.conn = Some(conn);
        self.fix_handshake();
    }

    /// Turns the placeholder READY into READY/RESUMED/INVALID_SESSION as the
    /// server's session state says.
    fn fix_handshake(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        let Some(ServerOp::Ready { session_id }) = conn.wire.back() else { return };
        if !session_id.is_empty() {
            return;
        }
        conn.wire.pop_back();
        let resuming = self.client.state() == ConnectionState::Resuming;
        let op = if resuming {
            let ok = self.session.is_some()
                && self.client.session_id() == self.session.as_deref()
                && !self.r.chance(self.f.expire);
            if ok {
                ServerOp::Resumed
            } else {
                conn.streams.clear();
                ServerOp::InvalidSession { resumable: false }
            }
        } else {
            self.sessions += 1;
            let id = format!("s{}", self.sessions);
            self.session = Some(id.clone());
            ServerOp::Ready { session_id: id }
        };
        conn.wire.push_back(op);
    }

    /// The server produces one delta on a random channel (or starts a new epoch).
    fn produce(&mut self) {
        let ch = CHANNELS[self.r.below(3) as usize];
        let h = self.head.get_mut(ch).expect("channel");
        if self.r.chance(self.f.epoch) {
            *h = (h.0 + 1, 0);
        } else {
            h.1 += 1;
        }
    }

    /// Sends what credit allows (and, on an overrun fault, more).
    fn pump(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        for (ch, s) in conn.streams.iter_mut() {
            let (epoch, head) = self.head[ch.as_str()];
            if s.epoch < epoch {
                s.epoch = epoch;
                s.next = 1;
            }
            while s.next <= head && s.subscribed {
                // A delta lost upstream of the socket is skipped: never sent, never
                // charged (frames on one WebSocket are not lost; they die with it).
                if self.r.chance(self.f.drop) {
                    s.next += 1;
                    continue;
                }
                let overrun = self.r.chance(self.f.overrun);
                if s.credit == 0 && !overrun {
                    break;
                }
                s.credit = s.credit.saturating_sub(1);
                let op = ServerOp::Delta {
                    channel: ch.clone(),
                    epoch,
                    seq: s.next,
                    body: body(epoch, s.next),
                    wire_bytes: 64,
                };
                s.next += 1;
                if self.r.chance(self.f.dup) && s.credit > 0 {
                    s.credit -= 1;
                    conn.wire.push_back(op.clone());
                }
                conn.wire.push_back(op);
            }
        }
    }

    /// Delivers one message from the wire, maybe out of order.
    fn deliver(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        let k = conn.wire.len().min(1 + self.f.reorder);
        if k == 0 {
            return;
        }
        // Only deltas are reordered; control messages keep their place.
        let mut i = self.r.below(k as u64) as usize;
        if !(0..=i).all(|j| matches!(conn.wire[j], ServerOp::Delta { .. })) {
            i = 0;
        }
        let Some(op) = conn.wire.remove(i) else { return };
        self.input(In::Server(op));
    }

    fn answer_fetch(&mut self) {
        if self.fetches.is_empty() {
            return;
        }
        let i = self.r.below(self.fetches.len() as u64) as usize;
        let (request_id, what) = self.fetches.swap_remove(i);
        if self.r.chance(self.f.fetch_fail) {
            return self.input(In::FetchFailed { request_id });
        }
        let (channel, since) = match what {
            FetchWhat::Snapshot { channel } => (channel, None),
            FetchWhat::Detail { .. } => return,
            FetchWhat::MiniSnapshot { channel, epoch, since_seq } => {
                let (e, head) = self.head[channel.as_str()];
                let since = (e == epoch && since_seq <= head).then_some(since_seq);
                (channel, since)
            }
        };
        let (epoch, head) = self.head[channel.as_str()];
        let reply = SnapshotReply {
            request_id,
            channel,
            epoch,
            snapshot_seq: head,
            since_seq: since,
            body: body(epoch, head),
        };
        self.input(In::Snapshot(reply));
    }

    fn render(&mut self, all: bool) {
        let chans: Vec<String> = self.unrendered.keys().cloned().collect();
        for ch in chans {
            let n = self.unrendered[&ch];
            let k = if all { n } else { self.r.below(u64::from(n) + 1) as u32 };
            if k > 0 {
                *self.unrendered.get_mut(&ch).expect("key") -= k;
                self.input(In::Rendered { channel: ch, frames: k });
            }
        }
    }

    fn disconnect(&mut self) {
        if self.conn.take().is_some() {
            let codes = [1001u16, 1006, 4000, 4008, 4009];
            self.closed_events.push_back(codes[self.r.below(codes.len() as u64) as usize]);
        }
    }

    fn step(&mut self, chaos: bool) {
        if chaos {
            match self.r.below(100) {
                0..=24 => self.produce(),
                25..=27 if self.r.chance(self.f.disconnect * 30.0) => self.disconnect(),
                28 if self.conn.as_ref().is_some_and(|c| c.greeted) => {
                    let op = match self.r.below(3) {
                        0 => ServerOp::Reconnect,
                        1 => ServerOp::InvalidSession { resumable: true },
                        _ => ServerOp::InvalidSession { resumable: false },
                    };
                    if matches!(op, ServerOp::InvalidSession { resumable: false }) {
                        self.session = None;
                    }
                    if let Some(c) = self.conn.as_mut() {
                        c.wire.push_back(op);
                    }
                }
                _ => {}
            }
        }
        self.pump();
        for _ in 0..3 {
            self.deliver();
        }
        if self.r.chance(0.3) {
            self.answer_fetch();
        }
        if self.r.chance(self.f.render) {
            self.render(!chaos);
        }
        if let Some(code) = self.closed_events.pop_front() {
            self.input(In::Closed { code, reason: String::new() });
        }
        self.now += self.r.range(0.0, 150.0);
        self.input(In::Tick);
    }

    fn run(&mut self, steps: usize) {
        self.input(In::Start);
        for ch in CHANNELS {
            self.input(In::Subscribe { channel: ch.into() });
        }
        for _ in 0..steps {
            self.step(true);
        }
        self.f = Faults::none();
        // One last delta per channel, then quiet until the client has caught up.
        for ch in CHANNELS {
            self.head.get_mut(ch).expect("channel").1 += 1;
        }
        for _ in 0..3_000 {
            self.step(false);
            if self.caught_up() {
                break;
            }
        }
        assert!(
            self.caught_up(),
            "not caught up: client {:?} server {:?} state {:?} {:?}",
            self.consumer,
            self.head,
            self.client.state(),
            self.client.channels()
        );
        assert_eq!(self.client.queue_depth(), 0);
    }

    fn caught_up(&self) -> bool {
        self.client.state() == ConnectionState::Ready
            && self.fetches.is_empty()
            && CHANNELS.iter().all(|c| self.consumer.get(*c) == Some(&self.head[*c]))
    }
}

fn schedules() -> u32 {
    cases::cases_from("METERFLOW_SESSION_SCHEDULES", 5_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: schedules(),
        rng_seed: RngSeed::Fixed(0x5e55_1011),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn faulty_server_schedules_converge_exactly(seed in any::<u64>()) {
        Sim::new(seed).run(600);
    }
}

/// The schedules exercise every path they claim to: without this a fault that
/// never fires would leave the property vacuous.
#[test]
fn schedules_exercise_every_recovery_path() {
    let mut total = meterflow::core::session::SessionCounters::default();
    for seed in 0..300 {
        let mut sim = Sim::new(seed);
        sim.run(600);
        let c = sim.client.counters();
        total.gaps += c.gaps;
        total.resumes_ok += c.resumes_ok;
        total.resumes_failed += c.resumes_failed;
        total.credit_exhausted += c.credit_exhausted;
        total.credit_overruns += c.credit_overruns;
        total.zombies += c.zombies;
        total.duplicates += c.duplicates;
        total.epoch_changes += c.epoch_changes;
        total.buffer_overflows += c.buffer_overflows;
        total.stale_replies += c.stale_replies;
        total.reconnect_attempts += c.reconnect_attempts;
    }
    eprintln!("{total:?}");
    let t = total;
    for (name, n) in [
        ("gaps", t.gaps),
        ("resumes_ok", t.resumes_ok),
        ("resumes_failed", t.resumes_failed),
        ("credit_exhausted", t.credit_exhausted),
        ("credit_overruns", t.credit_overruns),
        ("zombies", t.zombies),
        ("duplicates", t.duplicates),
        ("epoch_changes", t.epoch_changes),
        ("buffer_overflows", t.buffer_overflows),
        ("stale_replies", t.stale_replies),
        ("reconnect_attempts", t.reconnect_attempts),
    ] {
        assert!(n > 0, "no schedule exercised {name}");
    }
}
