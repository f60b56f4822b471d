//! Native criterion benchmarks of the consumption ledger.
//!
//! - `ledger/frame/5000`: one live frame of 1,000 readings over 5,000 meters
//!   (binary keys, already bound), through `Engine::handle`; throughput in
//!   readings, so criterion prints the per-reading cost. Anomaly feeding is off
//!   (`detectLive: false`) to isolate the ledger; `ledger+detect` turns it on.
//! - `ledger/rest_merge`: applying one REST result of 7 hours x 3 resources
//!   while 60 s of live readings (10,000/s) are pending, so retirement is timed too.
//! - `ledger/rest_merge/json_5000_meters_x7h_x3r`: decoding and merging a REST
//!   body of per-meter totals, 5,000 meters x 7 hours x 3 resources (105,000 entries).
//! - `ledger/rest_merge/binary_5000_meters_x7h_x3r`: the same body as a binary
//!   kind-3 frame, decoded and merged.
//! - Before the groups run, the memory the ledger holds for pending readings
//!   after 60 s at 10,000 readings/s (no REST result in between) is printed.
//!
//! Run: `cargo bench --bench ledger` (add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{Catchup, CatchupBucket, Inbound, KeyScope, LiveBinding, LiveFrame};
use meterflow::core::hlc::Hlc;
use meterflow::core::ledger::HOUR_MS;
use meterflow::core::Engine;
use std::hint::black_box;
use std::time::{Duration, Instant};

const H10: f64 = 1_764_064_800_000.0;
const NOW: f64 = H10 + 1_800_000.0;
const METERS: u32 = 5_000;
const PER_FRAME: usize = 1_000;
const RESOURCES: [&str; 3] = ["water", "energy", "bandwidth"];

struct Feed {
    engine: Engine,
    seq: u64,
    t: f64,
    ids: Vec<u64>,
    frame: LiveFrame,
}

impl Feed {
    fn new(detect_live: bool) -> Feed {
        let patch = ConfigPatch {
            max_meters: Some(METERS),
            detect_live: Some(detect_live),
            memory_ceiling_bytes: Some(4e9),
            ..Default::default()
        };
        let engine = Engine::new(Config::default().apply(&patch).unwrap()).unwrap();
        let frame = LiveFrame {
            epoch: 1,
            scope: KeyScope::Stream,
            bindings: (0..METERS)
                .map(|m| LiveBinding {
                    key: m,
                    meter: format!("meter-{m:05}"),
                    resource: RESOURCES[m as usize % 3].into(),
                })
                .collect(),
            ..Default::default()
        };
        let mut f = Feed { engine, seq: 0, t: NOW, ids: vec![0; METERS as usize], frame };
        f.engine.handle(Inbound::Catchup(rest(NOW - 1.0)), NOW);
        f.next_frame();
        f.engine.handle(Inbound::Live(f.frame.clone()), f.t);
        f.frame.bindings.clear();
        f
    }

    /// The next frame: 1,000 readings, meters in a rotating stripe, 100 ms later.
    fn next_frame(&mut self) {
        self.t += 100.0;
        let f = &mut self.frame;
        f.seq = self.seq;
        self.seq += 1;
        f.stamp = Hlc { wall_ms: self.t as u64, counter: 0 };
        f.keys.clear();
        f.ids.clear();
        f.ts.clear();
        f.amounts.clear();
        let base = (self.seq as usize * PER_FRAME) % METERS as usize;
        for k in 0..PER_FRAME {
            let m = (base + k) % METERS as usize;
            self.ids[m] += 1;
            f.keys.push(m as u32);
            f.ids.push(self.ids[m]);
            f.ts.push(self.t - 50.0);
            f.amounts.push(Decimal::new(((m * 7 + k) % 900) as i64, 3));
        }
    }
}

fn rest(as_of_ms: f64) -> Catchup {
    let mut buckets = Vec::new();
    for (r, name) in RESOURCES.iter().enumerate() {
        for h in 0..7 {
            buckets.push(CatchupBucket {
                meter: None,
                resource: (*name).into(),
                hour_ms: H10 - f64::from(6 - h) * HOUR_MS,
                total: Decimal::new(1_000_000 + r as i64 + i64::from(h), 3),
                position: buckets.len() as u32,
            });
        }
    }
    Catchup {
        as_of: Hlc { wall_ms: as_of_ms as u64, counter: 0 },
        from_hour_ms: Some(H10 - 6.0 * HOUR_MS),
        to_hour_ms: Some(H10),
        buckets,
        ..Default::default()
    }
}

fn frame(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger");
    g.sample_size(30);
    g.throughput(Throughput::Elements(PER_FRAME as u64));
    for (name, detect) in [("frame", false), ("frame+detect", true)] {
        let mut feed = Feed::new(detect);
        g.bench_function(BenchmarkId::new(name, METERS), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    feed.next_frame();
                    let input = Inbound::Live(feed.frame.clone()); // not timed
                    let t = Instant::now();
                    black_box(feed.engine.handle(input, feed.t + 5.0));
                    total += t.elapsed();
                    if feed.seq % 600 == 0 {
                        // A catch-up every 60 s of stream keeps pending bounded.
                        let c = Inbound::Catchup(rest(feed.t));
                        feed.engine.handle(c, feed.t + 10.0);
                    }
                }
                total
            })
        });
    }
    g.finish();
}

fn rest_merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger");
    g.sample_size(20);
    g.bench_function("rest_merge/7x3_with_60s_pending", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut feed = Feed::new(false); // not timed
                for _ in 0..600 {
                    feed.next_frame();
                    feed.engine.handle(Inbound::Live(feed.frame.clone()), feed.t + 5.0);
                }
                let input = Inbound::Catchup(rest(feed.t - 30_000.0));
                let t = Instant::now();
                black_box(feed.engine.handle(input, feed.t + 10.0));
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// Prints the ledger's memory after 60 s at 10,000 readings/s with no REST result.
fn pending_memory(_: &mut Criterion) {
    let mut feed = Feed::new(false);
    // One pass over all 5,000 meters first, so their dedup windows exist.
    for _ in 0..4 {
        feed.next_frame();
        feed.engine.handle(Inbound::Live(feed.frame.clone()), feed.t + 5.0);
    }
    // The row log (live readings kept for rebuilds, up to `maxRowLogReadings`)
    // aside: it fills whatever holds the pending readings.
    let held = |e: &Engine| e.ledger().bytes() - e.ledger().row_log().bytes();
    let before = held(&feed.engine);
    let pending0 = feed.engine.ledger().counters().live_pending;
    for _ in 0..600 {
        feed.next_frame();
        feed.engine.handle(Inbound::Live(feed.frame.clone()), feed.t + 5.0);
    }
    let c = feed.engine.ledger().counters();
    let after = held(&feed.engine);
    println!(
        "ledger memory: {} pending readings (60 s at 10,000/s) hold {} bytes ({:.1} bytes/reading); {} bytes of it before any reading (dedup windows and buckets)",
        c.live_pending,
        after,
        (after - before) as f64 / (c.live_pending - pending0).max(1) as f64,
        before
    );
}

/// A REST body listing per-meter totals: 5,000 meters x 7 hours x 3 resources
/// (105,000 entries, as issue 3 sizes it).
fn per_meter_body(as_of_ms: f64) -> String {
    let mut body = format!(
        r#"{{"type":"catchup","asOf":{{"wallMs":{},"counter":0}},"from":{},"to":{},"buckets":["#,
        as_of_ms as u64,
        H10 - 6.0 * HOUR_MS,
        H10
    );
    for m in 0..METERS {
        for h in 0..7 {
            for (r, name) in RESOURCES.iter().enumerate() {
                if m + h + r as u32 > 0 {
                    body.push(',');
                }
                body.push_str(&format!(
                    r#"{{"meter":"meter-{m:05}","resource":"{name}","hour":{},"total":"{}.{:03}"}}"#,
                    H10 - f64::from(6 - h) * HOUR_MS,
                    m % 97,
                    h * 7 + r as u32
                ));
            }
        }
    }
    body.push_str("]}");
    body
}

fn rest_merge_per_meter(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger");
    g.sample_size(10);
    let cfg = Config::default();
    let mut as_of = NOW;
    let mut feed = Feed::new(false);
    g.throughput(Throughput::Elements(u64::from(METERS) * 7 * 3));
    g.bench_function("rest_merge/json_5000_meters_x7h_x3r", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                as_of += 1_000.0;
                let body = per_meter_body(as_of); // not timed
                let t = Instant::now();
                let input = meterflow::wire::decode_text(
                    meterflow::wire::Envelope::Catchup,
                    &body,
                    Default::default(),
                    &cfg,
                );
                black_box(feed.engine.handle(input, as_of + 10.0));
                total += t.elapsed();
            }
            total
        })
    });
    let body = per_meter_body(as_of + 1e6);
    let Inbound::Catchup(c) = meterflow::wire::decode_text(
        meterflow::wire::Envelope::Catchup,
        &body,
        Default::default(),
        &cfg,
    ) else {
        panic!("the per-meter body must decode")
    };
    g.bench_function("rest_merge/binary_5000_meters_x7h_x3r", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                as_of += 1_000.0;
                let mut next = c.clone(); // not timed
                next.as_of = Hlc { wall_ms: as_of as u64, counter: 0 };
                let frame = meterflow::wire::binary::encode_catchup(&next, 3).unwrap();
                let t = Instant::now();
                let input = meterflow::wire::decode_binary(
                    meterflow::wire::Envelope::Catchup,
                    &frame,
                    &cfg,
                );
                black_box(feed.engine.handle(input, as_of + 10.0));
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, pending_memory, frame, rest_merge, rest_merge_per_meter);
criterion_main!(benches);
