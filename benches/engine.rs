//! Native criterion benchmarks of the core engine.
//!
//! - `ingest_cpu/N`: `ingest/N` at 5,000 and 50,000 meters timed by the
//!   thread's CPU time (one reading per meter per batch: at 50,000 every
//!   meter's ring, moments and detector state are past the caches).
//! - `ingest/N`: readings/s through `Engine::handle(Inbound::Readings)` for a
//!   decoded stream-keyed batch, one reading per meter, windows full.
//! - `tick/N`: one evaluation tick with every one of N meters dirty (one new
//!   reading each since the last tick), windows full, window 1,200, every
//!   meter **trained**: it has learned from `baselineReadings` readings (7,200
//!   by default), so drift, variance and stuck are judged, as they are for
//!   every meter of a page that has run for an hour. The noise is uniform, so
//!   no reading breaches: the common case.
//! - `tick_untrained/N`: the same on meters that never finish learning
//!   (`baselineReadings` at its maximum): the learned rules are skipped, so
//!   this flatters the cost (issue 8: `tick/N` measured this before); kept as
//!   a separate row to show the difference.
//! - `tick_outliers/N`: as `tick/N` with 1% of readings 35 sd outliers. Each one
//!   breaches and opens a spike vote, which freezes the meter's threshold
//!   until the vote history is clear again.
//!
//! - `tick_cpu/N`: `tick/N` (trained) at 5,000 and 50,000 meters timed by the
//!   thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`, exact at each read), so a
//!   loaded machine's preemption does not count: the figure to compare old
//!   and new binaries with (issue 9). `tick/N` stays wall time.
//!
//! Every tick group trains its engine inside the benchmark, so a filter such
//! as `'tick_cpu/5000$'` sets up (and trains) only the sizes it selects.
//!
//! - `moments/{replace,remove_add}`: one full-window update of a meter's
//!   moments per reading, the fixed-n replace against remove then add, over
//!   5,000 meters' moments in turn (both arms in one run, same data).
//!
//! Run: `cargo bench --bench engine` (add `-- --quick` for a short run).

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::event::{HostStats, Inbound, KeyScope, ReadingBatch};
use meterflow::core::moments::Moments;
use meterflow::core::Engine;
use std::hint::black_box;
use std::time::{Duration, Instant};

const T0: f64 = 1.7e12;
/// The readings' spacing in engine time (2 Hz).
const STEP_MS: f64 = 500.0;

/// An engine with `meters` meters bound to stream keys 0..meters, windows
/// full, with the default config but for `baseline_readings` if given.
fn full_engine(meters: usize, baseline_readings: Option<u32>) -> (Engine, ReadingBatch) {
    let patch = ConfigPatch {
        max_meters: Some(meters as u32),
        memory_ceiling_bytes: Some(4e9),
        baseline_readings,
        ..Default::default()
    };
    let mut engine = Engine::new(Config::default().apply(&patch).unwrap()).unwrap();
    let bind = ReadingBatch {
        scope: KeyScope::Stream,
        bindings: (0..meters as u32).map(|k| (k, format!("meter-{k:06}"))).collect(),
        ..Default::default()
    };
    engine.handle(Inbound::Readings(bind), T0);
    let mut frame = ReadingBatch {
        scope: KeyScope::Stream,
        keys: (0..meters as u32).collect(),
        ts: vec![T0; meters],
        values: vec![0.0; meters],
        ..Default::default()
    };
    let mut seed = 1u64;
    for _ in 0..1_200 {
        fill(&mut frame, &mut seed);
        engine.handle(Inbound::Readings(frame.clone()), T0);
    }
    (engine, frame)
}

/// Readings per meter between two ticks while a bench trains its meters: the
/// learning sees batches of this many readings (as a page whose meters send
/// faster than it ticks), and the training takes a tenth of the ticks.
const TRAIN_READINGS_PER_TICK: u32 = 10;

/// `baselineReadings` for the untrained arm: the largest the config allows.
const UNREACHED_BASELINE: u32 = 100_000_000;

/// Pushes frames (one reading per meter each, `STEP_MS` apart) with a tick
/// after every [`TRAIN_READINGS_PER_TICK`] until every meter has been
/// evaluated over at least `baselineReadings` readings, counting the
/// `already` readings each meter has had (all unevaluated), from engine time
/// `now`; returns the engine time reached.
fn train(engine: &mut Engine, frame: &mut ReadingBatch, already: u32, mut now: f64) -> f64 {
    let baseline = engine.config().baseline_readings;
    let mut seed = 5u64;
    let mut seen = already;
    while seen < baseline {
        for _ in 0..TRAIN_READINGS_PER_TICK {
            fill(frame, &mut seed);
            now += STEP_MS;
            frame.ts.fill(now);
            engine.handle(Inbound::Readings(frame.clone()), now);
        }
        seen += TRAIN_READINGS_PER_TICK;
        engine.handle(Inbound::Tick(HostStats::default()), now);
    }
    now
}

/// New values: level 100 per meter plus cheap noise (an LCG).
fn fill(frame: &mut ReadingBatch, seed: &mut u64) {
    fill_with_outliers(frame, seed, 0.0);
}

/// As [`fill`], with a fraction `rate` of readings 40 above the level (the
/// uniform noise of ±2 has a standard deviation of 1.15).
fn fill_with_outliers(frame: &mut ReadingBatch, seed: &mut u64, rate: f64) {
    for (m, v) in frame.values.iter_mut().enumerate() {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let u = (*seed >> 40) as f64 / (1u64 << 24) as f64;
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let outlier = if ((*seed >> 40) as f64 / (1u64 << 24) as f64) < rate { 40.0 } else { 0.0 };
        *v = 100.0 + (m % 50) as f64 + (u - 0.5) * 4.0 + outlier;
    }
}

fn ingest(c: &mut Criterion) {
    ingest_group(c, "ingest", &[5_000, 50_000], Clock::Wall);
    // `ingest/5000` timed by this thread's CPU time, so a loaded machine's
    // waits do not count: the per-reading cost of a detection rule in
    // `observe` is a few ns, below the wall-clock noise on 2 shared cores.
    ingest_group(c, "ingest_cpu", &[5_000, 50_000], Clock::ThreadCpu);
}

/// One full frame (a reading for every meter) into an engine with full
/// windows, per sample, at each size of `sizes`, timed by `clock`.
fn ingest_group(c: &mut Criterion, name: &str, sizes: &[usize], clock: Clock) {
    let mut g = c.benchmark_group(name);
    g.sample_size(20);
    for &meters in sizes {
        let (mut engine, mut frame) = full_engine(meters, None);
        let mut seed = 7u64;
        fill(&mut frame, &mut seed);
        g.throughput(Throughput::Elements(meters as u64));
        g.bench_with_input(BenchmarkId::from_parameter(meters), &meters, |b, _| {
            b.iter_custom(|iters| {
                let wall = Instant::now();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let input = Inbound::Readings(frame.clone()); // not timed
                    let t = now_by(clock, wall);
                    black_box(engine.handle(input, T0));
                    total += now_by(clock, wall).saturating_sub(t);
                }
                total
            })
        });
    }
    g.finish();
}

fn tick(c: &mut Criterion) {
    tick_group(c, "tick", &[5_000, 20_000, 50_000], 0.0, true, Clock::Wall);
    tick_group(c, "tick_untrained", &[5_000, 50_000], 0.0, false, Clock::Wall);
    tick_group(c, "tick_outliers", &[5_000], 0.01, true, Clock::Wall);
    tick_group(c, "tick_cpu", &[5_000, 50_000], 0.0, true, Clock::ThreadCpu);
}

/// What a tick group's samples are timed by.
#[derive(Clone, Copy, PartialEq)]
enum Clock {
    Wall,
    /// `CLOCK_THREAD_CPUTIME_ID`: this thread's CPU time, read exactly (the
    /// kernel accounts the running slice at each read, unlike
    /// `/proc/thread-self/schedstat`, which lags by up to a scheduler tick
    /// and so cannot time 0.2 ms between untimed frames).
    ThreadCpu,
}

/// Now by `clock`.
fn now_by(clock: Clock, wall: Instant) -> Duration {
    if clock == Clock::ThreadCpu {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `t` is a valid, writable timespec for the call's duration.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0 {
            return Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
        }
    }
    wall.elapsed()
}

/// An engine ready for timed ticks: windows full, trained (`trained`, see
/// [`train`]) or not, with outliers at `rate` in steady state; the frame that
/// makes every meter dirty, its seed and the engine time reached.
struct TickState {
    engine: Engine,
    frame: ReadingBatch,
    seed: u64,
    now: f64,
}

fn tick_state(meters: usize, rate: f64, trained: bool) -> TickState {
    // Untrained: a baseline no run reaches, or the timed ticks themselves
    // (thousands of readings per meter) would train the meters mid-run.
    let baseline = if trained { None } else { Some(UNREACHED_BASELINE) };
    let (mut engine, mut frame) = full_engine(meters, baseline);
    let mut seed = 11u64;
    let mut now = T0;
    if trained {
        now = train(&mut engine, &mut frame, 1_200, now);
    }
    // Let the outliers reach their steady state before timing.
    for _ in 0..200 {
        fill_with_outliers(&mut frame, &mut seed, rate);
        now += STEP_MS;
        frame.ts.fill(now);
        engine.handle(Inbound::Readings(frame.clone()), now);
        engine.handle(Inbound::Tick(HostStats::default()), now);
    }
    TickState { engine, frame, seed, now }
}

/// Times `handle(Tick)` alone, after an untimed frame that makes every meter
/// dirty, with a fraction `rate` of outliers in each frame, on meters trained
/// first (`trained`, see [`train`]) or not. The engine is built on the first
/// call of a size's routine, so sizes a filter skips cost nothing.
fn tick_group(
    c: &mut Criterion,
    name: &str,
    sizes: &[usize],
    rate: f64,
    trained: bool,
    clock: Clock,
) {
    let mut g = c.benchmark_group(name);
    g.sample_size(20);
    if clock == Clock::ThreadCpu {
        g.sampling_mode(SamplingMode::Flat);
    }
    for &meters in sizes {
        let mut state: Option<TickState> = None;
        g.bench_with_input(BenchmarkId::from_parameter(meters), &meters, |b, _| {
            let s = state.get_or_insert_with(|| tick_state(meters, rate, trained));
            b.iter_custom(|iters| {
                let wall = Instant::now();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Make every meter dirty again (not timed).
                    fill_with_outliers(&mut s.frame, &mut s.seed, rate);
                    s.now += STEP_MS;
                    s.frame.ts.fill(s.now);
                    s.engine.handle(Inbound::Readings(s.frame.clone()), s.now);
                    let t = now_by(clock, wall);
                    black_box(s.engine.handle(Inbound::Tick(HostStats::default()), s.now));
                    total += now_by(clock, wall).saturating_sub(t);
                }
                total
            })
        });
    }
    g.finish();
}

/// The moments update alone: `replace` against `remove` + `add`.
fn moments(c: &mut Criterion) {
    const METERS: usize = 5_000;
    const WINDOW: usize = 1_200;
    let mut g = c.benchmark_group("moments");
    let mut seed = 3u64;
    let mut noise = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        100.0 + (seed >> 40) as f64 / (1u64 << 24) as f64
    };
    // Per meter: its window's samples, oldest replaced next (in step for all meters).
    let samples: Vec<f64> = (0..METERS * WINDOW).map(|_| noise()).collect();
    let fresh: Vec<f64> = (0..METERS * 16).map(|_| noise()).collect();
    let start: Vec<Moments> = samples.chunks(WINDOW).map(|w| Moments::recompute(w, &[])).collect();
    g.throughput(Throughput::Elements((METERS * 16) as u64));
    let inv = 1.0 / WINDOW as f64;
    for arm in ["replace", "remove_add"] {
        g.bench_function(arm, |b| {
            let mut mo = start.clone();
            let mut slot = 0usize;
            b.iter(|| {
                for r in 0..16 {
                    for (m, mo) in mo.iter_mut().enumerate() {
                        let old = samples[m * WINDOW + slot];
                        let x = fresh[r * METERS + m];
                        if arm == "replace" {
                            mo.replace(old, x, inv);
                        } else {
                            mo.remove(old);
                            mo.add(x);
                        }
                    }
                    slot = (slot + 1) % WINDOW;
                }
                black_box(&mo);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ingest, tick, moments);
criterion_main!(benches);
