//! Native criterion benchmarks of meter groups at 5,000 meters, 3 groups per
//! meter (a district of 8, a region of 2, a tariff of 4).
//!
//! - `groups/frame/5000x3`: one live frame of 1,000 readings through
//!   `Engine::handle` with the map applied (ledger + per-meter rows);
//!   throughput in readings, so criterion prints the per-reading cost.
//! - `groups/rows_add/1000`: the per-reading work groups add to that path:
//!   `MeterHours::add` for the same 1,000 readings.
//! - `groups/flush/5000x3` and `groups/flush/no_map`: a flush after one such
//!   frame, with the map (the groups' sums of the changed hours, rates,
//!   alerts, and the event) and without one (the ledger's `totals` alone).
//!   Their difference, spread over the readings of one flush interval
//!   (2,500 at 10,000 readings/s and 250 ms), is the groups' flush cost per
//!   reading.
//!
//! - `groups/rows_add_series/1000`: `MeterHours::add_reading`, the rows and
//!   the series (docs/LEDGER.md "Series") for the same readings: its
//!   difference to `rows_add` is the series' per-reading cost.
//! - `series/group_5m_6h/fresh` and `series/group_5m_6h/recomputed`: a 6-hour
//!   5-minute series query (through the wire: `decode_message` → engine) for
//!   a group of all 5,000 meters with 6 hours of readings, answered from the
//!   cache, and summed again after one member's new reading. The memory per
//!   `(meter, resource)` series is printed.
//!
//! - `groups/rows_add_series_log/1000`: the same, plus the row log
//!   (`RowLog::push` at its default 65,536, full, so every push also drops
//!   the oldest): what a live reading stamped after the applied watermark
//!   costs with rebuilds possible (docs/LEDGER.md "Rebuilding rows from a
//!   catch-up").
//! - `groups_cpu/rows_add/1000`, `groups_cpu/rows_add_series/1000` and
//!   `groups_cpu/rows_add_series_log/1000`: the same three loops timed by the thread's time on a CPU
//!   (`/proc/thread-self/schedstat`, wall time where it is missing) instead
//!   of wall time, so a shared machine's other processes do not count (their
//!   cache pollution still does): the figure to read on a loaded machine.
//!
//! - `groups_cpu/frames_flushes/5000x3` and `groups_cpu/frames_flushes/no_map`:
//!   five frames of 1,000 readings through `Engine::handle` and two flushes
//!   (10,000 readings/s flushed every 250 ms) by thread CPU time, with and
//!   without the map: their difference per reading is what groups cost a
//!   reading in all (row change log and flush; the rows and series are
//!   kept either way, see `rows_add_series`).
//!
//! Run: `cargo bench --bench groups` (add `-- --quick` for a short run).

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{Inbound, KeyScope, LiveBinding, LiveFrame, Outbound, StreamRequest};
use meterflow::core::groups::{LoggedReading, MeterHours, RowLog};
use meterflow::core::hlc::Hlc;
use meterflow::core::Engine;
use meterflow::wire::{decode_fetched, decode_message, Arrival, FetchedBody};
use std::hint::black_box;
use std::time::{Duration, Instant};

const NOW: f64 = 1_764_064_800_000.0 + 1_800_000.0;
const METERS: u32 = 5_000;
const PER_FRAME: usize = 1_000;
const RESOURCES: [&str; 3] = ["water", "energy", "bandwidth"];

fn map_json() -> String {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (prefix, n) in [("district", 8), ("region", 2), ("tariff", 4)] {
        for g in 0..n {
            let members =
                (0..METERS).filter(|m| m % n == g).map(|m| format!("\"meter-{m:05}\"")).collect();
            groups.push((format!("{prefix}-{g}"), members));
        }
    }
    let body: Vec<String> =
        groups.iter().map(|(g, ms)| format!("\"{g}\":[{}]", ms.join(","))).collect();
    let all: Vec<String> = (0..METERS).map(|m| format!("\"meter-{m:05}\"")).collect();
    format!(r#"{{"version":1,"groups":{{{},"all":[{}]}}}}"#, body.join(","), all.join(","))
}

struct Feed {
    engine: Engine,
    seq: u64,
    t: f64,
    ids: Vec<u64>,
    frame: LiveFrame,
}

impl Feed {
    fn new(with_map: bool) -> Feed {
        let patch = ConfigPatch {
            max_meters: Some(METERS),
            detect_live: Some(false),
            memory_ceiling_bytes: Some(4e9),
            max_series_pairs: Some(METERS),
            ..Default::default()
        };
        let cfg = Config::default().apply(&patch).unwrap();
        let mut engine = Engine::new(cfg.clone()).unwrap();
        if with_map {
            let start = serde_json::json!({"type": "session", "v": 1, "op": "start"});
            engine.handle(decode_message(&start, &cfg), NOW);
            let out = engine.handle(Inbound::Tick(Default::default()), NOW);
            let id = out
                .iter()
                .find_map(|o| match o {
                    Outbound::Stream(StreamRequest::Fetch { request_id, path })
                        if path == "/groups" =>
                    {
                        Some(*request_id)
                    }
                    _ => None,
                })
                .unwrap();
            let text = map_json();
            let input = decode_fetched(id, FetchedBody::Text(&text), Arrival::default(), &cfg);
            engine.handle(input, NOW);
            assert_eq!(engine.groups().map().names().len(), 15);
        }
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
        // Every meter gets a reading first, so all are interned.
        for _ in 0..METERS as usize / PER_FRAME {
            f.next_frame();
            f.engine.handle(Inbound::Live(f.frame.clone()), f.t);
            f.frame.bindings.clear();
        }
        f.engine.handle(Inbound::Flush, f.t);
        f
    }

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

/// One batch of `PER_FRAME` readings into rows, series and the row log.
fn rows_series_log(rows: &mut MeterHours, log: &mut RowLog, base: &mut usize, t: &mut f64) {
    *base = (*base + PER_FRAME) % METERS as usize;
    *t += 100.0;
    let hour = (*t / 3_600_000.0).floor() as i64;
    let stamp = Hlc { wall_ms: *t as u64, counter: 0 }.packed();
    for k in 0..PER_FRAME {
        let m = ((*base + k) % METERS as usize) as u32;
        let units = (k % 900) as i64;
        let r = m as usize % 3;
        if black_box(rows.add_reading(m, r, hour, *t, units, *t)) {
            log.push(LoggedReading { meter: m, resource: r as u8, hour, units, stamp });
        }
    }
}

/// A full row log at the default `maxRowLogReadings`.
fn full_log() -> RowLog {
    let mut log = RowLog::new(Config::default().max_row_log_readings);
    let stamp = 0;
    for _ in 0..log.cap() {
        log.push(LoggedReading { meter: 0, resource: 0, hour: 0, units: 1, stamp });
    }
    log
}

fn frame(c: &mut Criterion) {
    let mut g = c.benchmark_group("groups");
    g.sample_size(30);
    g.throughput(Throughput::Elements(PER_FRAME as u64));
    let mut feed = Feed::new(true);
    g.bench_function(BenchmarkId::new("frame", "5000x3"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                feed.next_frame();
                let input = Inbound::Live(feed.frame.clone()); // not timed
                let t = Instant::now();
                black_box(feed.engine.handle(input, feed.t + 5.0));
                total += t.elapsed();
            }
            total
        })
    });
    let mut rows = MeterHours::new(3, 6);
    let hour = (NOW / 3_600_000.0) as i64;
    g.bench_function(BenchmarkId::new("rows_add", PER_FRAME), |b| {
        let mut base = 0usize;
        b.iter(|| {
            base = (base + PER_FRAME) % METERS as usize;
            for k in 0..PER_FRAME {
                let m = ((base + k) % METERS as usize) as u32;
                black_box(rows.add(m, m as usize % 3, hour, (k % 900) as i64));
            }
        })
    });
    let mut rows = MeterHours::new(3, 6);
    g.bench_function(BenchmarkId::new("rows_add_series", PER_FRAME), |b| {
        let mut base = 0usize;
        let mut t = NOW;
        b.iter(|| {
            base = (base + PER_FRAME) % METERS as usize;
            t += 100.0;
            // The hour follows the clock: a fixed one would clamp every reading
            // to its last minute once the run passes it.
            let hour = (t / 3_600_000.0).floor() as i64;
            for k in 0..PER_FRAME {
                let m = ((base + k) % METERS as usize) as u32;
                let units = (k % 900) as i64;
                black_box(rows.add_reading(m, m as usize % 3, hour, t, units, t));
            }
        })
    });
    let (mut rows, mut log) = (MeterHours::new(3, 6), full_log());
    let (mut base, mut t) = (0usize, NOW);
    g.bench_function(BenchmarkId::new("rows_add_series_log", PER_FRAME), |b| {
        b.iter(|| rows_series_log(&mut rows, &mut log, &mut base, &mut t))
    });
    g.finish();
}

fn series(c: &mut Criterion) {
    let mut g = c.benchmark_group("series");
    g.sample_size(30);
    let mut feed = Feed::new(true);
    // Six hours of readings, every meter every 5 minutes, oldest first.
    let end = feed.t;
    for step in (0..72).rev() {
        for chunk in 0..METERS as usize / PER_FRAME {
            feed.next_frame();
            let f = &mut feed.frame;
            f.stamp = Hlc { wall_ms: end as u64, counter: (72 - step) * 8 + chunk as u32 };
            for (k, ts) in f.ts.iter_mut().enumerate() {
                *ts = end - step as f64 * 300_000.0 - 1_000.0 - k as f64;
            }
            feed.engine.handle(Inbound::Live(feed.frame.clone()), end);
        }
    }
    let cfg = Config { max_meters: METERS, max_series_pairs: Some(METERS), ..Config::default() };
    let q = serde_json::json!({"type":"query","query":"series","group":"all","resource":"energy","spanMs":21_600_000});
    let out = feed.engine.handle(decode_message(&q, &cfg), end);
    let stats = feed
        .engine
        .handle(decode_message(&serde_json::json!({"type":"query","query":"stats"}), &cfg), end);
    for o in stats {
        if let Outbound::Stats(s) = o {
            if let Some(x) = s.series {
                eprintln!(
                    "series: {} (meter, resource) pairs, {} bytes per pair (+4 per meter and resource of index); first answer {:?}",
                    x.pairs,
                    x.bytes_per_pair,
                    out.first().map(|o| matches!(o, Outbound::Series(_)))
                );
            }
        }
    }
    g.bench_function(BenchmarkId::new("group_5m_6h", "fresh"), |b| {
        b.iter(|| black_box(feed.engine.handle(decode_message(&q, &cfg), end)))
    });
    g.bench_function(BenchmarkId::new("group_5m_6h", "recomputed"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                feed.next_frame();
                feed.frame.keys.truncate(1);
                feed.frame.ids.truncate(1);
                feed.frame.ts.truncate(1);
                feed.frame.amounts.truncate(1);
                feed.engine.handle(Inbound::Live(feed.frame.clone()), feed.t);
                let input = decode_message(&q, &cfg);
                let t = Instant::now();
                black_box(feed.engine.handle(input, feed.t));
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn flush(c: &mut Criterion) {
    let mut g = c.benchmark_group("groups");
    g.sample_size(30);
    for (name, with_map) in [("5000x3", true), ("no_map", false)] {
        let mut feed = Feed::new(with_map);
        g.bench_function(BenchmarkId::new("flush", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    feed.next_frame();
                    feed.engine.handle(Inbound::Live(feed.frame.clone()), feed.t + 5.0);
                    let t = Instant::now();
                    black_box(feed.engine.handle(Inbound::Flush, feed.t + 6.0));
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

/// Nanoseconds this thread has run on a CPU, if the kernel says.
fn on_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// `iters` runs of `body`, timed by CPU time (wall time if unavailable).
fn cpu_time(iters: u64, mut body: impl FnMut()) -> Duration {
    let (c0, t0) = (on_cpu_ns(), Instant::now());
    for _ in 0..iters {
        body();
    }
    match (c0, on_cpu_ns()) {
        (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
        _ => t0.elapsed(),
    }
}

fn cpu(c: &mut Criterion) {
    let mut g = c.benchmark_group("groups_cpu");
    // The kernel updates a running thread's CPU time at each scheduler tick
    // (1–4 ms): few long samples of equal size.
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(PER_FRAME as u64));
    let hour = (NOW / 3_600_000.0) as i64;
    let mut rows = MeterHours::new(3, 6);
    let mut base = 0usize;
    g.bench_function(BenchmarkId::new("rows_add", PER_FRAME), |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                base = (base + PER_FRAME) % METERS as usize;
                for k in 0..PER_FRAME {
                    let m = ((base + k) % METERS as usize) as u32;
                    black_box(rows.add(m, m as usize % 3, hour, (k % 900) as i64));
                }
            })
        })
    });
    let mut rows = MeterHours::new(3, 6);
    let (mut base, mut t) = (0usize, NOW);
    g.bench_function(BenchmarkId::new("rows_add_series", PER_FRAME), |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                base = (base + PER_FRAME) % METERS as usize;
                t += 100.0;
                let hour = (t / 3_600_000.0).floor() as i64;
                for k in 0..PER_FRAME {
                    let m = ((base + k) % METERS as usize) as u32;
                    let units = (k % 900) as i64;
                    black_box(rows.add_reading(m, m as usize % 3, hour, t, units, t));
                }
            })
        })
    });
    let (mut rows, mut log) = (MeterHours::new(3, 6), full_log());
    let (mut base, mut t) = (0usize, NOW);
    g.bench_function(BenchmarkId::new("rows_add_series_log", PER_FRAME), |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || rows_series_log(&mut rows, &mut log, &mut base, &mut t))
        })
    });
    g.finish();
    // Whole engine, 10,000 readings/s flushed every 250 ms: 5 frames of
    // 1,000 readings and 2 flushes per iteration, with and without the map.
    let mut g = c.benchmark_group("groups_cpu");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(5 * PER_FRAME as u64));
    for (name, with_map) in [("5000x3", true), ("no_map", false)] {
        let mut feed = Feed::new(with_map);
        g.bench_function(BenchmarkId::new("frames_flushes", name), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for k in 0..5 {
                        feed.next_frame();
                        black_box(
                            feed.engine.handle(Inbound::Live(feed.frame.clone()), feed.t + 5.0),
                        );
                        if k == 2 || k == 4 {
                            black_box(feed.engine.handle(Inbound::Flush, feed.t + 6.0));
                        }
                    }
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, frame, flush, series, cpu);
criterion_main!(benches);
