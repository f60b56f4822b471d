#![cfg(not(target_arch = "wasm32"))]
//! Memory stays flat: hours of a 5,000-meter stream (totals frames at 2 Hz per
//! meter, `meters.<group>` deltas, notices, detail requests) through the
//! engine's session, checking every store's size and `engine_bytes` after
//! warm-up. Bodies enter decoded, as `wire::stream` hands them to the core
//! (the wire path itself is covered by `tests/stream_sim.rs`).
//!
//! `STREAM_BOUNDS_HOURS` (default 6) and `STREAM_BOUNDS_TICK_MS` (default 500:
//! every meter reads every 500 ms, i.e. 2 Hz) set the run.

use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{Catchup, StreamRequest};
use meterflow::core::event::{HostStats, Inbound, KeyScope, LiveBinding, LiveFrame, Outbound};
use meterflow::core::hlc::Hlc;
use meterflow::core::session::{Payload, ServerOp, SessionInput, SnapshotReply};
use meterflow::core::stream::{
    MeterPatch, MeterRow, MeterStatus, Notice, NoticePatch, NoticeSeverity,
};
use meterflow::core::Engine;
use meterflow::wire::{self, Arrival, FetchedBody};

const METERS: usize = 5_000;
const GROUPS: [&str; 8] =
    ["north", "south", "east", "west", "centre", "harbour", "hills", "airport"];
const T0: u64 = 1_764_064_800_000;

fn env(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn stream(input: SessionInput) -> Inbound {
    Inbound::Stream(input)
}

struct Run {
    engine: Engine,
    now: u64,
    /// Next seq per channel (index 0: totals, 1..=8 groups, 9 notices).
    seq: Vec<u64>,
    fetches: Vec<(u64, String)>,
    /// `/groups` refreshes (docs/LEDGER.md, "Groups"), answered with an empty map.
    group_fetches: Vec<u64>,
    heartbeats: u32,
    errors: u64,
    /// Ledger catch-ups asked for (`fetch` without a request id).
    catchups: u32,
    /// Hour → units of water: the truth a catch-up reports.
    hours: std::collections::BTreeMap<u64, i64>,
}

impl Run {
    fn handle(&mut self, i: Inbound) {
        for o in self.engine.handle(i, self.now as f64) {
            match o {
                Outbound::Stream(StreamRequest::Fetch { request_id, path })
                    if path == "/groups" =>
                {
                    self.group_fetches.push(request_id)
                }
                Outbound::Stream(StreamRequest::Fetch { request_id, path }) => {
                    self.fetches.push((request_id, path))
                }
                Outbound::Stream(StreamRequest::Send { text }) if text.contains("HEARTBEAT") => {
                    self.heartbeats += 1
                }
                Outbound::Fetch(_) => self.catchups += 1,
                Outbound::Error(e) => {
                    self.errors += 1;
                    assert!(self.errors < 20, "unexpected error: {e}");
                }
                _ => {}
            }
        }
    }

    /// Answers the group map refreshes through the wire, as the page would.
    fn answer_groups(&mut self) {
        for rid in std::mem::take(&mut self.group_fetches) {
            let body = FetchedBody::Text(r#"{"version":1,"groups":{}}"#);
            let input = wire::decode_fetched(rid, body, Arrival::default(), self.engine.config());
            self.handle(input);
        }
    }

    fn delta(&mut self, ch: usize, channel: &str, body: Payload) {
        self.seq[ch] += 1;
        let seq = self.seq[ch];
        self.handle(stream(SessionInput::Server(ServerOp::Delta {
            channel: channel.into(),
            epoch: 1,
            seq,
            body,
            wire_bytes: 256,
        })));
        // The page renders at once: credit comes back.
        self.handle(stream(SessionInput::Rendered { channel: channel.into(), frames: 1 }));
    }
}

fn row(m: usize, ts: u64, count: u64) -> MeterRow {
    MeterRow {
        meter: format!("m-{m}"),
        resource: "water".into(),
        ts: ts as f64,
        value: (m % 17) as f64 + (count % 5) as f64,
        status: MeterStatus::Ok,
        count,
        total: Decimal::new(count as i64 * 125, 3),
    }
}

#[test]
fn six_hours_at_5000_meters_2hz_keep_every_store_and_the_engine_flat() {
    let hours = env("STREAM_BOUNDS_HOURS", 6.0);
    let tick = env("STREAM_BOUNDS_TICK_MS", 500.0) as u64;
    let cfg = Config { max_meters: 6_000, window: 64, reduced_window: 64, ..Config::default() };
    let mut run = Run {
        engine: Engine::new(cfg).expect("config"),
        now: T0,
        seq: vec![0; 10],
        fetches: Vec::new(),
        group_fetches: Vec::new(),
        heartbeats: 0,
        errors: 0,
        catchups: 0,
        hours: Default::default(),
    };
    let mut channels = vec!["totals".to_string(), "notices".to_string()];
    channels.extend(GROUPS.iter().map(|g| format!("meters.{g}")));
    run.handle(stream(SessionInput::StartWith { channels: channels.clone() }));
    run.handle(stream(SessionInput::Server(ServerOp::Hello {
        heartbeat_interval_ms: 15_000.0,
        session_id: "s-1".into(),
        server_time_ms: T0 as f64,
        resume_url: None,
    })));
    run.handle(stream(SessionInput::Server(ServerOp::Ready { session_id: "s-1".into() })));
    // Snapshots: everything at seq 0.
    for (rid, path) in std::mem::take(&mut run.fetches) {
        let query = path.trim_start_matches("/snapshot-v2?channel=");
        let channel = query.split('&').next().unwrap_or("").to_string();
        let body = if channel == "totals" {
            Payload::Catchup(Box::new(Catchup {
                as_of: Hlc { wall_ms: T0, counter: 0 },
                from_hour_ms: Some(T0 as f64),
                to_hour_ms: Some(T0 as f64),
                ..Default::default()
            }))
        } else if channel == "notices" {
            Payload::Notices(Box::default())
        } else {
            Payload::Meters(Box::default())
        };
        run.handle(stream(SessionInput::Snapshot(SnapshotReply {
            request_id: rid,
            channel,
            epoch: 1,
            snapshot_seq: 0,
            since_seq: None,
            body,
        })));
    }
    // One frame carries every meter's reading of the tick (ids grow per meter).
    let mut frame = LiveFrame {
        channel: "totals".into(),
        epoch: 1,
        // Stream-scoped keys (as binary kind 2): bound once, in the first frame.
        scope: KeyScope::Stream,
        ..Default::default()
    };
    for m in 0..METERS {
        frame.bindings.push(LiveBinding {
            key: m as u32,
            meter: format!("m-{m}"),
            resource: "water".into(),
        });
        frame.keys.push(m as u32);
    }
    let ticks = (hours * 3_600_000.0 / tick as f64) as u64;
    let warm = ticks / 6;
    let (mut warm_bytes, mut max_bytes) = (0usize, 0usize);
    let mut max_store = 0usize;
    let started = std::time::Instant::now();
    for t in 1..=ticks {
        run.now = T0 + t * tick;
        frame.seq = run.seq[0] + 1;
        frame.stamp = Hlc { wall_ms: run.now, counter: 0 };
        frame.ids = vec![t; METERS];
        frame.ts = vec![run.now as f64 - 5.0; METERS];
        frame.amounts =
            (0..METERS).map(|m| Decimal::new(((m + t as usize) % 7) as i64, 3)).collect();
        let hour = (run.now - 5) / 3_600_000 * 3_600_000;
        *run.hours.entry(hour).or_default() +=
            frame.amounts.iter().map(|a| a.mantissa).sum::<i64>();
        run.delta(0, "totals", Payload::Frame(Box::new(frame.clone())));
        frame.bindings.clear();
        if run.catchups > 0 {
            // The page answers the ledger's own catch-up: every kept hour at `asOf` now.
            run.catchups = 0;
            let to = run.now / 3_600_000 * 3_600_000;
            let from = to.saturating_sub(6 * 3_600_000).max(T0 / 3_600_000 * 3_600_000);
            let buckets = run
                .hours
                .range(from..=to)
                .map(|(h, u)| meterflow::core::event::CatchupBucket {
                    meter: None,
                    resource: "water".into(),
                    hour_ms: *h as f64,
                    total: Decimal::new(*u, 3),
                    position: 0,
                })
                .collect();
            let c = Catchup {
                as_of: Hlc { wall_ms: run.now, counter: 0 },
                from_hour_ms: Some(from as f64),
                to_hour_ms: Some(to as f64),
                buckets,
                ..Default::default()
            };
            run.handle(Inbound::Catchup(c));
            let old: Vec<u64> = run.hours.range(..from).map(|(h, _)| *h).collect();
            for h in old {
                run.hours.remove(&h);
            }
        }
        // One group per tick reports its meters' latest rows (each group every 8 ticks).
        let g = (t % GROUPS.len() as u64) as usize;
        {
            let upsert = (0..METERS)
                .filter(|m| m % GROUPS.len() == g)
                .map(|m| row(m, run.now - 5, t))
                .collect();
            let channel = format!("meters.{}", GROUPS[g]);
            run.delta(
                1 + g,
                &channel,
                Payload::Meters(Box::new(MeterPatch { upsert, remove: vec![] })),
            );
        }
        if t % 120 == 0 {
            let id = format!("n-{}", t / 120);
            let upsert = vec![Notice {
                id,
                severity: NoticeSeverity::Info,
                title: "maintenance".into(),
                text: "pump station".into(),
                from_ms: run.now as f64,
                to_ms: run.now as f64 + 3_600_000.0,
            }];
            // Old notices expire on the server: it removes them.
            let remove = if t / 120 > 20 { vec![format!("n-{}", t / 120 - 20)] } else { vec![] };
            run.delta(9, "notices", Payload::Notices(Box::new(NoticePatch { upsert, remove })));
        }
        if t % 40 == 0 {
            let meter = format!("m-{}", (t / 40) % METERS as u64);
            run.handle(stream(SessionInput::FetchDetail { meter: meter.clone() }));
            for (rid, _) in std::mem::take(&mut run.fetches) {
                let body = format!(r#"{{"meter":"{meter}","total":"1.5"}}"#);
                run.handle(stream(SessionInput::DetailReply { request_id: rid, body }));
            }
        }
        run.handle(Inbound::Tick(HostStats::default()));
        run.answer_groups();
        // Heartbeats are answered.
        for _ in 0..std::mem::take(&mut run.heartbeats) {
            run.handle(stream(SessionInput::Server(ServerOp::HeartbeatAck { sent: vec![] })));
        }
        if t % 2 == 0 {
            run.handle(Inbound::Flush);
        }
        let e = &run.engine;
        let store = e.meter_store().len();
        assert!(store <= METERS, "meter store {store}");
        assert!(e.notice_store().len() <= 21, "notices {}", e.notice_store().len());
        assert!(e.detail_cache().len() <= e.config().detail_cache_size as usize + 1);
        assert!(e.session().queue_depth() == 0, "nothing buffered on a live, honest stream");
        max_store = max_store.max(store);
        if t == warm {
            warm_bytes = e.engine_bytes();
        }
        if t > warm {
            max_bytes = max_bytes.max(e.engine_bytes());
        }
    }
    let e = &run.engine;
    assert_eq!(e.session().state().as_str(), "ready");
    assert_eq!(e.meter_count(), METERS);
    assert_eq!(max_store, METERS);
    assert!(warm_bytes > 0);
    // Flat: past warm-up the estimate grows by at most 10% (hourly buckets roll).
    assert!(
        max_bytes <= warm_bytes + warm_bytes / 10,
        "engine_bytes grew after warm-up: {warm_bytes} -> {max_bytes}"
    );
    eprintln!(
        "{ticks} ticks ({hours} h at {tick} ms, {} readings): engine_bytes {warm_bytes} at warm-up, max {max_bytes} after; {:.1} s",
        ticks * METERS as u64,
        started.elapsed().as_secs_f64()
    );
}
