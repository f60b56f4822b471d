//! Catch-up (= `totals` snapshot) serve time for 5,000 meters over 7 simulated
//! hours: one read of the read model plus the JSON or binary body, as
//! `/catchup` does (target ≤ 20 ms p99). The body's size follows the hours and
//! resources held, never the readings behind them.

use criterion::{criterion_group, criterion_main, Criterion};
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

criterion_group!(benches, bench);
criterion_main!(benches);
