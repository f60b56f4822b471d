//! The evaluation tick after a burst (issue 9): the tick that follows
//! hundreds of readings per meter, as after a page's stall, a resync or the
//! path benchmark's ingest bursts, when the seasonal scans of most meters
//! fall due at once (`season::scan_due`: once per window of readings, so a
//! burst of half a window makes half the meters due).
//!
//! - `tick_burst_cpu/noise`: 5,000 meters with full windows of uniform noise
//!   about a level (no cycle: a scan stops after the block means' step).
//! - `tick_burst_cpu/cycles`: the same with a daily-like cycle per meter
//!   (periods 24–108 readings), which every scan finds and refines.
//!
//! Each iteration feeds 600 readings per meter (untimed), then times one
//! tick by the thread's CPU time, so a loaded machine's preemption does not
//! count.
//!
//! Run: `cargo bench --bench detect` (add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::event::{HostStats, Inbound, KeyScope, ReadingBatch};
use meterflow::core::Engine;
use std::hint::black_box;
use std::time::{Duration, Instant};

const T0: f64 = 1.7e12;
const METERS: usize = 5_000;
const WINDOW: usize = 1_200;
const BURST: usize = 600;

/// Nanoseconds this thread has run on a CPU, if the kernel says.
fn on_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Meter `m`'s `k`-th reading: a level, noise, and a cycle if `cycles`.
fn value(m: usize, k: usize, cycles: bool, seed: &mut u64) -> f64 {
    *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let u = (*seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
    let level = 100.0 + (m % 50) as f64;
    let cycle = if cycles {
        let p = 24 + 12 * (m % 8);
        20.0 * (std::f64::consts::TAU * (k % p) as f64 / p as f64).sin()
    } else {
        0.0
    };
    level + cycle + 4.0 * u
}

/// Feeds `per` readings to each meter, meter by meter within each round.
fn feed(e: &mut Engine, per: usize, from: &mut usize, cycles: bool, seed: &mut u64) {
    let rounds_per_batch = 2;
    let mut left = per;
    while left > 0 {
        let r = rounds_per_batch.min(left);
        let mut b = ReadingBatch { scope: KeyScope::Stream, ..Default::default() };
        for k in *from..*from + r {
            for m in 0..METERS {
                b.keys.push(m as u32);
                b.ts.push(T0);
                b.values.push(value(m, k, cycles, seed));
            }
        }
        e.handle(Inbound::Readings(b), T0);
        *from += r;
        left -= r;
    }
}

fn engine(cycles: bool, seed: &mut u64) -> (Engine, usize) {
    let patch = ConfigPatch {
        max_meters: Some(METERS as u32),
        memory_ceiling_bytes: Some(4e9),
        ..Default::default()
    };
    let mut e =
        Engine::new(Config::default().apply(&patch).expect("a valid patch")).expect("an engine");
    let bind = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: (0..METERS as u32).map(|k| (k, format!("meter-{k:06}"))).collect(),
        ..Default::default()
    };
    e.handle(Inbound::Readings(bind), T0);
    let mut from = 0;
    feed(&mut e, WINDOW, &mut from, cycles, seed);
    e.handle(Inbound::Tick(HostStats::default()), T0);
    (e, from)
}

fn tick_burst(c: &mut Criterion) {
    let mut g = c.benchmark_group("tick_burst_cpu");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(4));
    for (name, cycles) in [("noise", false), ("cycles", true)] {
        let mut seed = 7u64;
        let (mut e, mut from) = engine(cycles, &mut seed);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    feed(&mut e, BURST, &mut from, cycles, &mut seed);
                    let (c0, t0) = (on_cpu_ns(), Instant::now());
                    black_box(e.handle(Inbound::Tick(HostStats::default()), T0));
                    spent += match (c0, on_cpu_ns()) {
                        (Some(a), Some(b)) => Duration::from_nanos(b.saturating_sub(a)),
                        _ => t0.elapsed(),
                    };
                }
                spent
            });
        });
    }
    g.finish();
}

criterion_group!(benches, tick_burst);
criterion_main!(benches);
