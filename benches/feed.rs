//! Catch-up (= `totals` snapshot) serve time for 5,000 meters over 7 simulated
//! hours: one read of the read model plus the JSON or binary body, as
//! `/catchup` does (target ≤ 20 ms p99). The body's size follows the hours and
//! resources held, never the readings behind them.
//!
//! The same with `meters=1` at 50,000 meters (binary, the per-meter hours).
//!
//! `meters.<group>` snapshot-v2 for 5,000 meters (one group holding all of
//! them, the worst case; and one of 8 districts), full and `since_seq` mini, as
//! `/snapshot-v2` does: copy under the read lock, encode outside it. And the
//! writer's tick of the channel model at 5,000 meters.

use criterion::{criterion_group, criterion_main, Criterion};
use meterflow::feed::channels::{assign_groups, ChannelLimits, ChannelModel};
use meterflow::feed::http::{catchup_binary, catchup_json};
use meterflow::feed::model::{ReadModel, HOUR_MS};
use meterflow::feed::sim::Simulator;

fn bench(c: &mut Criterion) {
    let mut sim = Simulator::new(5_000, 1, 1_764_000_000_000);
    let mut m = ReadModel::new(
        1,
        sim.start_ms(),
        sim.meters().iter().map(|x| x.id.clone()).collect(),
        sim.meters().iter().map(|x| x.resource).collect(),
        168,
        240,
    );
    let mut out = Vec::new();
    // 7 hours, 100 ticks of 5,000 readings in each (shifted by whole hours).
    for h in 0..7u64 {
        for _ in 0..100 {
            let ts = sim.step(&mut out) + h * HOUR_MS;
            let readings = out.drain(..).map(|mut r| {
                r.ts_ms += h * HOUR_MS;
                r
            });
            m.apply(ts, readings.collect());
        }
    }
    let from = m.hours().front().map_or(0, |h| h.hour_ms);
    c.bench_function("feed catchup json 5000 meters 7 hours", |b| {
        b.iter(|| m.catchup(from).ok().map(|v| catchup_json(&v, 0).len()))
    });
    c.bench_function("feed catchup binary 5000 meters 7 hours", |b| {
        b.iter(|| m.catchup(from).ok().map(|v| catchup_binary(&v, 0).map(|b| b.len())))
    });
}

/// A `meters=1` binary catch-up at 50,000 meters over 6 simulated hours with
/// the feed's default cap (`--catchup-meter-entries` 150,000: the newest 3
/// hours listed per meter, the rest as resource totals): the read model's copy
/// plus the body, as `/catchup?meters=1&format=binary` does.
fn bench_per_meter(c: &mut Criterion) {
    let meters = 50_000;
    let mut sim = Simulator::new(meters, 1, 1_764_000_000_000);
    let mut m = ReadModel::new(
        1,
        sim.start_ms(),
        sim.meters().iter().map(|x| x.id.clone()).collect(),
        sim.meters().iter().map(|x| x.resource).collect(),
        168,
        4,
    )
    .with_meter_hours(8)
    .with_catchup_meter_entries(150_000);
    let mut out = Vec::new();
    // 6 hours, 10 ticks of 50,000 readings in each (shifted by whole hours).
    for h in 0..6u64 {
        for _ in 0..10 {
            let ts = sim.step(&mut out) + h * HOUR_MS;
            let readings = out.drain(..).map(|mut r| {
                r.ts_ms += h * HOUR_MS;
                r
            });
            m.apply(ts, readings.collect());
        }
    }
    let from = m.hours().front().map_or(0, |h| h.hour_ms);
    c.bench_function("feed catchup binary per-meter 50000 meters 6 hours", |b| {
        b.iter(|| {
            m.catchup_per_meter(from, true).ok().map(|v| catchup_binary(&v, 0).map(|b| b.len()))
        })
    });
}

fn channels(groups: usize) -> (Simulator, ChannelModel) {
    let mut sim = Simulator::new(5_000, 1, 1_764_000_000_000);
    let incidents = sim.incidents().to_vec();
    let mut c = ChannelModel::new(
        1,
        sim.meters().iter().map(|x| x.id.clone()).collect(),
        sim.meters().iter().map(|x| x.resource).collect(),
        assign_groups(5_000, groups, 1),
        groups,
        &incidents,
        1,
        sim.start_ms(),
        ChannelLimits { delta_ring: 32, max_notices: 64, notice_removals: 256 },
    );
    let mut out = Vec::new();
    for _ in 0..100 {
        let ts = sim.step(&mut out);
        c.apply(ts, &out, &incidents);
    }
    (sim, c)
}

fn bench_channels(c: &mut Criterion) {
    for groups in [1usize, 8] {
        let (_, m) = channels(groups);
        let seq = m.stream("meters.north").map_or(0, |s| s.seq());
        let n = m.members(0).len();
        c.bench_function(&format!("feed snapshot-v2 meters.north json {n} meters"), |b| {
            b.iter(|| m.snapshot("meters.north", None).map(|s| s.json(m.names()).len()))
        });
        c.bench_function(
            &format!("feed snapshot-v2 meters.north since_seq json {n} meters"),
            |b| {
                b.iter(|| {
                    m.snapshot("meters.north", Some((1, seq - 1))).map(|s| s.json(m.names()).len())
                })
            },
        );
    }
    let (mut sim, mut m) = channels(8);
    let incidents = sim.incidents().to_vec();
    let mut out = Vec::new();
    c.bench_function("feed sim step + channel model tick 5000 meters 8 groups", |b| {
        b.iter(|| {
            let ts = sim.step(&mut out);
            m.apply(ts, &out, &incidents);
        })
    });
}

criterion_group!(benches, bench, bench_per_meter, bench_channels);
criterion_main!(benches);
