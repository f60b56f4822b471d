//! Native criterion benchmarks of the wire layer.
//!
//! - `decode/*`: readings/s decoding one 5,000-record payload: binary kind 1
//!   (per-record and shared timestamps, keys already bound; and a first frame
//!   binding all 5,000 meters), binary kind 2 (likewise), JSON readings (5,000
//!   distinct meters) through the scanner (`json_readings`, from bytes:
//!   `json_readings_bytes`) and through the general serde decoder alone
//!   (`json_readings_general`, what every JSON payload took before the
//!   scanner), JSON live frame (amounts as decimal strings); the general
//!   decoder and the frame also through `wire::serde_oracle` (`*_serde`, the
//!   serde_json decoder `wire::lite` replaced, issue 9), in the same run.
//! - `decode_ingest/*`: readings/s for decode + `Engine::handle` of one
//!   5,000-record payload at 5,000 meters (one reading per meter, keys already
//!   bound for binary, windows full).
//!
//! Run: `cargo bench --bench wire` (add `-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterflow::core::config::{Config, ConfigPatch};
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{KeyScope, LiveBinding, LiveFrame, ReadingBatch};
use meterflow::core::hlc::Hlc;
use meterflow::core::Engine;
use meterflow::wire::binary::{encode_live, encode_readings, TsLayout};
use meterflow::wire::json::decode_general;
use meterflow::wire::{decode_binary, decode_bytes, decode_text, serde_oracle, Arrival, Envelope};
use std::hint::black_box;

const T0: f64 = 1.7e12;
const N: usize = 5_000;

fn meter(m: usize) -> String {
    format!("meter-{m:06}")
}

/// Values around 100 with cheap noise (an LCG), one per meter.
fn values(seed: &mut u64) -> Vec<f64> {
    (0..N)
        .map(|m| {
            *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            100.0 + (m % 50) as f64 + ((*seed >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 4.0
        })
        .collect()
}

fn kind1(bind: bool, layout: TsLayout, seed: &mut u64) -> Vec<u8> {
    let b = ReadingBatch {
        bindings: if bind { (0..N).map(|m| (m as u32, meter(m))).collect() } else { Vec::new() },
        keys: (0..N as u32).collect(),
        ts: (0..N).map(|i| if layout == TsLayout::Shared { T0 } else { T0 + i as f64 }).collect(),
        values: values(seed),
        ..Default::default()
    };
    encode_readings(&b, layout).expect("encodable")
}

fn kind2(bind: bool) -> Vec<u8> {
    let f = LiveFrame {
        epoch: 1,
        seq: 1,
        stamp: Hlc { wall_ms: T0 as u64, counter: 0 },
        scope: KeyScope::Stream,
        bindings: if bind {
            (0..N)
                .map(|m| LiveBinding { key: m as u32, meter: meter(m), resource: "water".into() })
                .collect()
        } else {
            Vec::new()
        },
        keys: (0..N as u32).collect(),
        ids: (0..N as u64).collect(),
        ts: vec![T0; N],
        amounts: (0..N as i64).map(|i| Decimal::new(i % 1000, 3)).collect(),
        ..Default::default()
    };
    encode_live(&f, 3, TsLayout::PerRecord).expect("encodable")
}

fn json_readings(seed: &mut u64) -> String {
    let items: Vec<String> = values(seed)
        .iter()
        .enumerate()
        .map(|(m, v)| format!(r#"{{"meter":"{}","ts":{},"value":{v}}}"#, meter(m), T0 + m as f64))
        .collect();
    format!(r#"{{"type":"readings","readings":[{}]}}"#, items.join(","))
}

fn json_frame() -> String {
    let items: Vec<String> = (0..N)
        .map(|m| {
            format!(
                r#"{{"meter":"{}","resource":"water","id":{m},"ts":{T0},"amount":"{}.{:03}"}}"#,
                meter(m),
                m / 1000,
                m % 1000
            )
        })
        .collect();
    format!(
        r#"{{"type":"frame","epoch":1,"seq":1,"hlc":{{"wallMs":{},"counter":0}},"readings":[{}]}}"#,
        T0 as u64,
        items.join(",")
    )
}

fn decode(c: &mut Criterion) {
    let cfg = Config::default();
    let mut seed = 1u64;
    let k1 = kind1(false, TsLayout::PerRecord, &mut seed);
    let k1_shared = kind1(false, TsLayout::Shared, &mut seed);
    let k1_bind = kind1(true, TsLayout::PerRecord, &mut seed);
    let k2 = kind2(false);
    let k2_bind = kind2(true);
    let jr = json_readings(&mut seed);
    let jf = json_frame();
    let mut g = c.benchmark_group("decode");
    g.sample_size(30);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("binary_kind1", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Readings, black_box(&k1), &cfg)))
    });
    g.bench_function("binary_kind1_shared_ts", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Readings, black_box(&k1_shared), &cfg)))
    });
    g.bench_function("binary_kind1_binding_5000_meters", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Readings, black_box(&k1_bind), &cfg)))
    });
    g.bench_function("binary_kind2", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Live, black_box(&k2), &cfg)))
    });
    g.bench_function("binary_kind2_binding_5000_pairs", |b| {
        b.iter(|| black_box(decode_binary(Envelope::Live, black_box(&k2_bind), &cfg)))
    });
    g.bench_function("json_readings", |b| {
        b.iter(|| {
            black_box(decode_text(Envelope::Readings, black_box(&jr), Arrival::default(), &cfg))
        })
    });
    g.bench_function("json_readings_general", |b| {
        b.iter(|| {
            black_box(decode_general(Envelope::Readings, black_box(&jr), Arrival::default(), &cfg))
        })
    });
    g.bench_function("json_readings_general_serde", |b| {
        b.iter(|| {
            black_box(serde_oracle::decode_general(
                Envelope::Readings,
                black_box(&jr),
                Arrival::default(),
                &cfg,
            ))
        })
    });
    g.bench_function("json_readings_bytes", |b| {
        b.iter(|| {
            black_box(decode_bytes(
                Envelope::Readings,
                black_box(jr.as_bytes()),
                Arrival::default(),
                &cfg,
            ))
        })
    });
    g.bench_function("json_frame", |b| {
        b.iter(|| black_box(decode_text(Envelope::Live, black_box(&jf), Arrival::default(), &cfg)))
    });
    g.bench_function("json_frame_serde", |b| {
        b.iter(|| {
            black_box(serde_oracle::decode_general(
                Envelope::Live,
                black_box(&jf),
                Arrival::default(),
                &cfg,
            ))
        })
    });
    g.finish();
}

/// An engine with N meters bound to stream keys 0..N and full windows.
fn full_engine() -> Engine {
    let patch = ConfigPatch { memory_ceiling_bytes: Some(4e9), ..Default::default() };
    let cfg = Config::default().apply(&patch).expect("valid config");
    let mut engine = Engine::new(cfg.clone()).expect("valid config");
    let mut seed = 3u64;
    let first = kind1(true, TsLayout::Shared, &mut seed);
    engine.handle(decode_binary(Envelope::Readings, &first, &cfg), T0);
    for _ in 0..1_200 {
        let frame = kind1(false, TsLayout::Shared, &mut seed);
        engine.handle(decode_binary(Envelope::Readings, &frame, &cfg), T0);
    }
    engine
}

fn decode_ingest(c: &mut Criterion) {
    let mut engine = full_engine();
    let cfg = engine.config().clone();
    let mut seed = 7u64;
    let binary = kind1(false, TsLayout::Shared, &mut seed);
    let binary_per_record = kind1(false, TsLayout::PerRecord, &mut seed);
    let json = json_readings(&mut seed);
    let mut g = c.benchmark_group("decode_ingest");
    g.sample_size(30);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("binary_kind1_5000_meters", |b| {
        b.iter(|| {
            let input = decode_binary(Envelope::Readings, black_box(&binary), &cfg);
            black_box(engine.handle(input, T0))
        })
    });
    g.bench_function("binary_kind1_per_record_ts_5000_meters", |b| {
        b.iter(|| {
            let input = decode_binary(Envelope::Readings, black_box(&binary_per_record), &cfg);
            black_box(engine.handle(input, T0))
        })
    });
    g.bench_function("json_readings_5000_meters", |b| {
        b.iter(|| {
            let input = decode_text(Envelope::Readings, black_box(&json), Arrival::default(), &cfg);
            black_box(engine.handle(input, T0))
        })
    });
    g.finish();
}

criterion_group!(benches, decode, decode_ingest);
criterion_main!(benches);
