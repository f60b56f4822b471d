#![cfg(not(target_arch = "wasm32"))]
//! `stats.memory` (docs/PROTOCOL.md 4, `stats`): the per-store breakdown of
//! `engineBytes`, checked after seeded runs of live frames, a group map,
//! flushes, series queries and catch-ups.
//!
//! The oracle is the allocator: a counting global allocator measures the heap
//! the engine holds (bytes allocated since just before it was built, with
//! every output dropped), and `engineBytes` must match it within a small
//! tolerance, so a store left out of the estimate (as the row log was, about
//! 2 MiB at the default `maxRowLogReadings`) fails the test. Besides, on the
//! wire the parts sum to `engineBytes`, and each part stays within the bound
//! its config caps give it (`Config::worst_case_bytes`'s terms).
//!
//! One test function: the allocator's count is process-wide.

use std::sync::atomic::Ordering::Relaxed;

use meterflow::core::config::{
    Config, ConfigPatch, METER_FIXED_BYTES, SERIES_BLOCK_SLACK_BYTES, SERIES_PAIR_BYTES,
};
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{
    Catchup, CatchupBucket, Inbound, KeyScope, LiveBinding, LiveFrame, MemoryBytes, Outbound,
    Query, StreamHello, StreamRequest,
};
use meterflow::core::groups::{RowChange, CHANGE_LOG_CAP};
use meterflow::core::hlc::Hlc;
use meterflow::core::Engine;
use meterflow::wire::{decode_fetched, decode_message, encode, Arrival, FetchedBody};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

#[path = "common/counting.rs"]
mod counting;
use counting::{Counting, LIVE};

#[global_allocator]
static ALLOC: Counting = Counting;

/// 10:30 on an hour boundary.
const NOW: f64 = 1_764_064_800_000.0 + 1_800_000.0;
const RESOURCES: [&str; 3] = ["water", "energy", "bandwidth"];

/// The `/groups` body: `groups` groups, each meter of `ids` in `per_meter`
/// of them (drawn), some meters in none.
fn map_body(rng: &mut Rng, ids: usize, groups: usize, per_meter: usize, version: u64) -> String {
    let mut members: Vec<Vec<String>> = vec![Vec::new(); groups];
    for m in 0..ids {
        if rng.chance(0.1) {
            continue;
        }
        for _ in 0..per_meter {
            let g = rng.below(groups as u64) as usize;
            let id = format!("\"m-{m:04}\"");
            if !members[g].contains(&id) {
                members[g].push(id);
            }
        }
    }
    let body: Vec<String> =
        members.iter().enumerate().map(|(g, ms)| format!("\"g{g}\":[{}]", ms.join(","))).collect();
    format!(r#"{{"version":{version},"groups":{{{}}}}}"#, body.join(","))
}

struct Run {
    engine: Engine,
    cfg: Config,
    rng: Rng,
    ids: Vec<u64>,
    seq: u64,
    t: f64,
    meters: usize,
    version: u64,
}

impl Run {
    fn new(seed: u64, patch: ConfigPatch, meters: usize) -> Run {
        let cfg = Config::default().apply(&patch).unwrap();
        let engine = Engine::new(cfg.clone()).unwrap();
        let mut run = Run {
            engine,
            cfg,
            rng: Rng(seed),
            ids: vec![0; meters],
            seq: 0,
            t: NOW,
            meters,
            version: 0,
        };
        let start = serde_json::json!({"type": "session", "v": 1, "op": "start"});
        drop(run.engine.handle(decode_message(&start, &run.cfg), run.t));
        let hello = StreamHello {
            channel: String::new(),
            epoch: 1,
            next_seq: Some(0),
            stamp: Some(Hlc { wall_ms: NOW as u64 - 1, counter: 0 }),
            server_time_ms: Some(NOW),
        };
        drop(run.engine.handle(Inbound::Hello(hello), run.t));
        run
    }

    /// Ticks until the groups ask for a map, and answers with a new one.
    fn new_map(&mut self) {
        for _ in 0..100 {
            self.t += 1_000.0;
            let out = self.engine.handle(Inbound::Tick(Default::default()), self.t);
            let id = out.iter().find_map(|o| match o {
                Outbound::Stream(StreamRequest::Fetch { request_id, path })
                    if path == "/groups" =>
                {
                    Some(*request_id)
                }
                _ => None,
            });
            drop(out);
            if let Some(id) = id {
                self.version += 1;
                let per = 1 + self.rng.below(3) as usize;
                let body = map_body(&mut self.rng, self.meters, 12, per, self.version);
                let input =
                    decode_fetched(id, FetchedBody::Text(&body), Arrival::default(), &self.cfg);
                drop(body);
                drop(self.engine.handle(input, self.t));
                return;
            }
        }
        panic!("no /groups fetch in 100 ticks");
    }

    /// A live frame of `n` readings of drawn meters (some late, some repeated).
    fn frame(&mut self, n: usize) {
        self.t += 100.0;
        let mut f = LiveFrame {
            epoch: 1,
            seq: self.seq,
            stamp: Hlc { wall_ms: self.t as u64, counter: 0 },
            scope: KeyScope::Stream,
            ..Default::default()
        };
        if self.seq == 0 {
            f.bindings = (0..self.meters as u32)
                .map(|m| LiveBinding {
                    key: m,
                    meter: format!("m-{m:04}"),
                    resource: RESOURCES[m as usize % 3].into(),
                })
                .collect();
        }
        self.seq += 1;
        for _ in 0..n {
            let m = self.rng.below(self.meters as u64) as usize;
            if !self.rng.chance(0.05) {
                self.ids[m] += 1;
            }
            let late = if self.rng.chance(0.1) { self.rng.range(0.0, 3_000_000.0) } else { 0.0 };
            f.keys.push(m as u32);
            f.ids.push(self.ids[m].max(1));
            f.ts.push(self.t - 50.0 - late.floor());
            f.amounts.push(Decimal::new(self.rng.below(1_000) as i64, 3));
        }
        drop(self.engine.handle(Inbound::Live(f), self.t));
    }

    fn series(&mut self, group: &str) {
        let q = serde_json::json!({"type": "query", "query": "series", "id": 1, "group": group,
            "resource": "energy", "spanMs": 21_600_000, "resolution": "5m"});
        let input = decode_message(&q, &self.cfg);
        drop(self.engine.handle(input, self.t));
        for _ in 0..3 {
            self.t += 500.0;
            drop(self.engine.handle(Inbound::Tick(Default::default()), self.t));
        }
    }

    fn catchup(&mut self) {
        let hour = (self.t / 3_600_000.0).floor() * 3_600_000.0;
        let c = Catchup {
            as_of: Hlc { wall_ms: self.t as u64 - 200, counter: 0 },
            server_time_ms: Some(self.t),
            buckets: RESOURCES
                .iter()
                .map(|r| CatchupBucket {
                    resource: (*r).into(),
                    hour_ms: hour,
                    total: Decimal::new(self.rng.below(1_000_000) as i64, 3),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        drop(self.engine.handle(Inbound::Catchup(c), self.t));
    }

    fn step(&mut self, frame: usize) {
        match self.rng.below(20) {
            0 => self.new_map(),
            1 => {
                let g = format!("g{}", self.rng.below(12));
                self.series(&g)
            }
            2 => self.catchup(),
            3 | 4 => drop(self.engine.handle(Inbound::Flush, self.t)),
            _ => self.frame(frame),
        }
    }
}

/// Each part within what its caps allow (the terms of `Config::worst_case_bytes`).
fn check_caps(m: &MemoryBytes, cfg: &Config, meters_seen: usize, label: &str) {
    let n = |x: u32| u64::from(x);
    let max_meters = n(cfg.max_meters).min(meters_seen as u64);
    let resources = cfg.resources.len() as u64;
    let slots = resources * (n(cfg.history_hours) + 2);
    let per_meter = n(cfg.window) * 8 + n(cfg.dedup_window) / 8 + METER_FIXED_BYTES as u64;
    let checks = [
        (
            "windows + detector + meterIds + dedup",
            m.windows + m.detector + m.meter_ids + m.dedup,
            // A ring chunk holds a wasm page of meters: up to one chunk unused.
            max_meters * per_meter + 64 * 1024 + n(cfg.window) * 8 * 8,
        ),
        // Grown by doubling: up to twice the rows seen...
        ("rows", m.rows, 2 * max_meters * (slots * 8 + 24) + slots * 64 + 4_096),
        // ...but never past `maxMeters` rows, what `worst_case_bytes` charges.
        ("rows at maxMeters", m.rows, n(cfg.max_meters) * (slots * 8 + 24) + slots * 64 + 4_096),
        ("changeLog", m.change_log, (CHANGE_LOG_CAP * std::mem::size_of::<RowChange>()) as u64),
        ("rowLog", m.row_log, u64::from(cfg.max_row_log_readings).next_power_of_two() * 32),
        (
            "series",
            m.series,
            u64::from(cfg.series_pairs()) * SERIES_PAIR_BYTES as u64
                + SERIES_BLOCK_SLACK_BYTES as u64
                + max_meters * resources * 4
                + 64 * 24,
        ),
        (
            // The index and heads stop growing at their bounds.
            "series at its bounds",
            m.series,
            u64::from(cfg.series_pairs()) * SERIES_PAIR_BYTES as u64
                + SERIES_BLOCK_SLACK_BYTES as u64
                + n(cfg.max_meters) * resources * 4
                + 64 * 16,
        ),
        (
            "seriesCache",
            m.series_cache,
            n(cfg.max_series_subscriptions) * (120 * 48 + n(cfg.max_meters) * 4 + 120 * 40),
        ),
        (
            "groups",
            m.groups,
            max_meters * (n(cfg.max_groups_per_meter) * 2 + 8)
                + (n(cfg.max_groups) + 1) * slots * 8 * 2
                + n(cfg.max_payload_bytes) * 4,
        ),
    ];
    for (name, got, cap) in checks {
        assert!(got <= cap, "{label}: {name} holds {got} B, past its bound {cap} B ({m:?})");
    }
    assert!(u128::from(m.total()) <= cfg.worst_case_bytes(), "{label}: {m:?}");
}

/// `stats` through the wire: the parts sum to `engineBytes`.
fn wire_parts(engine: &mut Engine, t: f64) -> (u64, u64) {
    let out = engine.handle(Inbound::Query(Query::Stats), t);
    let stats = out.iter().find(|o| matches!(o, Outbound::Stats(_))).expect("stats");
    let v: serde_json::Value = serde_json::to_value(encode(stats)).unwrap();
    let memory = v["memory"].as_object().expect("stats.memory");
    assert_eq!(memory.len(), 14, "{memory:?}");
    let sum = memory.values().map(|x| x.as_u64().expect("bytes")).sum();
    (sum, v["engineBytes"].as_f64().unwrap() as u64)
}

#[test]
fn engine_bytes_is_the_sum_of_the_stores_and_matches_the_heap() {
    let cases = [
        // The defaults' caps, a few hundred meters: the row log (65,536) fills.
        (1, ConfigPatch { max_meters: Some(400), ..Default::default() }, 350, 1_000, 400),
        // Small caps, more meters than `maxMeters`, more readings than the logs hold.
        (
            2,
            ConfigPatch {
                max_meters: Some(200),
                max_series_pairs: Some(150),
                max_row_log_readings: Some(3_000),
                window: Some(300),
                reduced_window: Some(150),
                ..Default::default()
            },
            260,
            500,
            300,
        ),
        (
            3,
            ConfigPatch {
                max_meters: Some(1_000),
                max_row_log_readings: Some(0),
                max_groups: Some(6),
                ..Default::default()
            },
            1_000,
            2_000,
            200,
        ),
    ];
    for (seed, patch, meters, per_frame, steps) in cases {
        let before = LIVE.load(Relaxed);
        let mut run = Run::new(seed, patch, meters);
        run.new_map();
        for _ in 0..steps {
            run.step(per_frame);
        }
        let label = format!("seed {seed}");
        let memory = run.engine.memory();
        let (wire_sum, wire_total) = wire_parts(&mut run.engine, run.t);
        assert_eq!(wire_sum, wire_total, "{label}: the wire's parts sum to engineBytes");
        assert_eq!(wire_total, memory.total(), "{label}");
        check_caps(&memory, &run.cfg, meters, &label);
        assert!(memory.row_log > 0 || run.cfg.max_row_log_readings == 0, "{label}: {memory:?}");
        assert!(memory.series > 0 && memory.groups > 0, "{label}: {memory:?}");
        // The oracle: the heap the engine holds (its config and run state
        // aside: `Run`'s ids, the config's resources).
        let Run { engine, cfg, ids, .. } = run;
        let heap = (LIVE.load(Relaxed) - before) as f64
            - (ids.capacity() * 8) as f64
            - 2.0 * (cfg.resources.capacity() * 64) as f64;
        let estimate = (memory.total() - memory.fixed) as f64;
        let ratio = estimate / heap;
        println!("{label}: heap {heap} B, engineBytes without the record {estimate} B ({ratio:.4}); {memory:?}");
        assert!(
            (0.96..=1.04).contains(&ratio),
            "{label}: engineBytes {estimate} B against {heap} B held on the heap ({ratio:.3}): {memory:?}"
        );
        drop(engine);
        drop(cfg);
    }
}
