//! The binary kind-1 path of `make bench-browser` natively, stage by stage
//! (issue 9): where a reading's time goes between the frame and its window.
//!
//! The workload is `www/bench/path.js`'s: 5,000 meters with full windows of
//! 1,200, frames of 10,000 records over keys `i % 5000` (each meter twice a
//! frame) with one shared timestamp. Every figure is timed by the thread's CPU
//! time, so a loaded machine's preemption does not count; throughput is per
//! reading.
//!
//! - `path_cpu/decode`: the frame into a `ReadingBatch` (`wire::decode_binary`).
//! - `path_cpu/keys`: the key → meter lookups alone (`KeyTable::get`).
//! - `path_cpu/ring_push`: the ring push alone (`RingSlab::push`).
//! - `path_cpu/windows_push`: ring + moments (+ the exact rebuilds), `Windows::push`.
//! - `path_cpu/observe`: the detector's scoring against the moments before the
//!   reading (`Detector::observe`), the windows left unchanged.
//! - `path_cpu/decode_handle`: the frame through `wire::decode_binary` and
//!   `Engine::handle`: what the worker does per message, less the copy out of
//!   JavaScript and the ack.
//!
//! - `join_cpu/first_frame/N`: the first frame of a fresh engine
//!   (`maxMeters: 50000`): one kind-1 frame binding `N` meters (ids
//!   `meter-000000`…) with one reading each, through `wire::decode_binary`
//!   and `Engine::handle`: what a meter's first reading costs (interning, its
//!   ring, moments and detector slots, the first touch of their memory). The
//!   engine is made and dropped outside the timing.
//!
//! The per-stage benches run each stage on its own state of the same shape, so
//! they do not add up exactly to `decode_handle` (caches are shared there).
//!
//! Run: `cargo bench --bench path` (add `-- --quick` for a short run).

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::detect::Detector;
use meterflow::core::event::{Inbound, KeyScope, ReadingBatch};
use meterflow::core::keys::KeyTable;
use meterflow::core::ring::RingSlab;
use meterflow::core::windows::Windows;
use meterflow::core::Engine;
use meterflow::wire::binary::{encode_readings, TsLayout};
use meterflow::wire::{decode_binary, Envelope};
use std::hint::black_box;
use std::time::{Duration, Instant};

const T0: f64 = 1.7e12;
/// Meters and records per frame, as `www/bench/path.js`.
const METERS: usize = 5_000;
const BATCH: usize = 10_000;
const WINDOW: usize = 1_200;

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

/// A batch of `BATCH` records over keys `i % METERS` at `T0`, values 0.
fn batch() -> ReadingBatch {
    ReadingBatch {
        scope: KeyScope::Stream,
        keys: (0..BATCH).map(|i| (i % METERS) as u32).collect(),
        ts: vec![T0; BATCH],
        values: vec![0.0; BATCH],
        ..Default::default()
    }
}

/// New values: a level of 100 + m % 50 per meter plus uniform noise of ±2 (an LCG).
fn fill(values: &mut [f64], seed: &mut u64) {
    for (i, v) in values.iter_mut().enumerate() {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let u = (*seed >> 40) as f64 / (1u64 << 24) as f64;
        *v = 100.0 + ((i % METERS) % 50) as f64 + (u - 0.5) * 4.0;
    }
}

/// Eight frames (kind 1, shared ts) and one more batch's values.
fn frames() -> (Vec<Vec<u8>>, Vec<f64>) {
    let mut b = batch();
    let mut seed = 11u64;
    let frames = (0..8)
        .map(|_| {
            fill(&mut b.values, &mut seed);
            encode_readings(&b, TsLayout::Shared).expect("a valid batch")
        })
        .collect();
    fill(&mut b.values, &mut seed);
    (frames, b.values)
}

/// An engine with `METERS` meters bound to stream keys 0..METERS, windows full.
fn full_engine() -> Engine {
    let patch = ConfigPatch {
        max_meters: Some(METERS as u32),
        memory_ceiling_bytes: Some(4e9),
        ..Default::default()
    };
    let mut engine =
        Engine::new(Config::default().apply(&patch).expect("a valid patch")).expect("an engine");
    let bind = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: (0..METERS as u32).map(|k| (k, format!("meter-{k:06}"))).collect(),
        ..Default::default()
    };
    engine.handle(Inbound::Readings(bind), T0);
    let mut b = batch();
    let mut seed = 1u64;
    for _ in 0..WINDOW * METERS / BATCH + 1 {
        fill(&mut b.values, &mut seed);
        engine.handle(Inbound::Readings(b.clone()), T0);
    }
    engine
}

fn path(c: &mut Criterion) {
    let mut g = c.benchmark_group("path_cpu");
    // The kernel updates a running thread's CPU time at each scheduler tick
    // (1–4 ms): few long samples of equal size.
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH as u64));
    let (frames, values) = frames();
    let keys: Vec<u32> = (0..BATCH).map(|i| (i % METERS) as u32).collect();
    let cfg = Config::default();
    let mut next = 0usize;
    g.bench_function(BenchmarkId::new("decode", BATCH), |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                next = (next + 1) % frames.len();
                black_box(decode_binary(Envelope::Readings, &frames[next], &cfg));
            })
        })
    });
    g.bench_function(BenchmarkId::new("keys", BATCH), |b| {
        let mut table = KeyTable::new(u32::MAX);
        for k in 0..METERS as u32 {
            table.bind(k, k, u32::MAX).expect("memory");
        }
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut sum = 0u64;
                for &k in black_box(&keys) {
                    sum += u64::from(table.get(k));
                }
                black_box(sum);
            })
        })
    });
    g.bench_function(BenchmarkId::new("ring_push", BATCH), |b| {
        let mut ring = RingSlab::new(WINDOW);
        for m in 0..METERS {
            ring.add_meter(METERS);
            for i in 0..WINDOW {
                ring.push(m, values[(m + i) % BATCH]);
            }
        }
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                for (&k, &x) in keys.iter().zip(&values) {
                    black_box(ring.push(k as usize, x));
                }
            })
        })
    });
    let mut windows = Windows::new(WINDOW, cfg.recompute_every);
    for m in 0..METERS {
        windows.add_meter(METERS);
        for i in 0..WINDOW {
            windows.push(m, values[(m + i) % BATCH]);
        }
    }
    g.bench_function(BenchmarkId::new("windows_push", BATCH), |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                for (&k, &x) in keys.iter().zip(&values) {
                    windows.push(k as usize, x);
                }
            })
        })
    });
    g.bench_function(BenchmarkId::new("observe", BATCH), |b| {
        let mut detector = Detector::default();
        for _ in 0..METERS {
            detector.add_meter(METERS);
        }
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                for (&k, &x) in keys.iter().zip(&values) {
                    let before = windows.moments(k as usize);
                    detector.observe(k as usize, x, T0, &before, &cfg);
                }
            })
        })
    });
    drop(windows);
    g.bench_function(BenchmarkId::new("decode_handle", BATCH), |b| {
        let mut engine = full_engine();
        let cfg = engine.config().clone();
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                next = (next + 1) % frames.len();
                let input = decode_binary(Envelope::Readings, &frames[next], &cfg);
                black_box(engine.handle(input, T0));
            })
        })
    });
    g.finish();
}

/// A kind-1 frame binding `n` meters (stream keys 0..n) with one reading each.
fn join_frame(n: usize) -> Vec<u8> {
    let mut seed = 5u64;
    let mut values = vec![0.0; n];
    fill(&mut values, &mut seed);
    let b = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: (0..n as u32).map(|k| (k, format!("meter-{k:06}"))).collect(),
        keys: (0..n as u32).collect(),
        ts: vec![T0; n],
        values,
        ..Default::default()
    };
    encode_readings(&b, TsLayout::Shared).expect("a valid batch")
}

/// A fresh engine as the browser's `maxMeters: 50000` one.
fn empty_engine() -> Engine {
    let patch = ConfigPatch {
        max_meters: Some(50_000),
        memory_ceiling_bytes: Some(4e9),
        ..Default::default()
    };
    Engine::new(Config::default().apply(&patch).expect("a valid patch")).expect("an engine")
}

fn join(c: &mut Criterion) {
    let mut g = c.benchmark_group("join_cpu");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    for n in [5_000usize, 50_000] {
        let frame = join_frame(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("first_frame", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut engine = empty_engine();
                    let cfg = engine.config().clone();
                    total += cpu_time(1, || {
                        let input = decode_binary(Envelope::Readings, &frame, &cfg);
                        black_box(engine.handle(input, T0));
                    });
                    assert_eq!(engine.stats().meters as usize, n);
                    drop(engine);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, path, join);
criterion_main!(benches);
