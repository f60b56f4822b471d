//! The feed's binary catch-up body (`feed::http::catchup_binary`, written
//! straight from the view's columns) against the general encoder given the
//! same buckets, which is what the feed did before (a `CatchupBucket` with its
//! own strings per entry through `wire::binary::encode_catchup`): byte for byte,
//! over seeded runs with and without per-meter hours, with and without the
//! per-catch-up cap, with skewed stamps (readings in an older hour) and meters
//! silent in some hours; and each body decodes to exactly the buckets listed.
#![cfg(feature = "feed")]

use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{Catchup, CatchupBucket, Inbound};
use meterflow::feed::http::catchup_binary;
use meterflow::feed::model::{CatchupView, ReadModel, HOUR_MS};
use meterflow::feed::sim::{Simulator, DECIMALS, RESOURCES};
use meterflow::wire::binary::encode_catchup;
use meterflow::wire::{decode_binary, Envelope};

/// The buckets a view lists: resource totals, then per meter, oldest hour first.
fn buckets(c: &CatchupView) -> Vec<CatchupBucket> {
    let mut out = Vec::new();
    for h in &c.hours {
        for (r, units) in h.units.iter().enumerate() {
            if *units != 0 {
                out.push(CatchupBucket {
                    meter: None,
                    resource: RESOURCES[r].0.to_string(),
                    hour_ms: h.hour_ms as f64,
                    total: Decimal::new(*units, DECIMALS),
                    position: out.len() as u32,
                });
            }
        }
    }
    if let Some(m) = &c.meters {
        for (hour, units) in &m.hours {
            for (i, u) in units.iter().enumerate() {
                if *u != 0 {
                    out.push(CatchupBucket {
                        meter: Some(m.meter_ids[i].clone()),
                        resource: RESOURCES[m.meter_resources[i]].0.to_string(),
                        hour_ms: *hour as f64,
                        total: Decimal::new(*u, DECIMALS),
                        position: out.len() as u32,
                    });
                }
            }
        }
    }
    out
}

/// The body as the feed encoded it before: through the general encoder.
fn oracle(c: &CatchupView, server_time_ms: u64) -> Vec<u8> {
    let body = Catchup {
        as_of: c.as_of,
        from_hour_ms: Some(c.from_hour_ms as f64),
        to_hour_ms: Some(c.to_hour_ms as f64),
        buckets: buckets(c),
        server_time_ms: Some(server_time_ms as f64),
        sent_at_ms: None,
        received_at_ms: None,
        errors: Vec::new(),
    };
    encode_catchup(&body, DECIMALS).expect("the oracle encodes the view")
}

/// A model after `hours` simulated hours of `meters` meters; meter `m` is
/// silent in hour `h` when `(m + h) % 5 == 0`, every 7th tick is stamped 90 s
/// early (its readings of the hour's first 90 s go to the hour before).
fn model(seed: u64, meters: u32, hours: u64, meter_hours: usize, cap: usize) -> ReadModel {
    let start = 1_764_000_000_000 - 20 * 60_000;
    let mut sim = Simulator::new(meters, seed, start);
    let mut m = ReadModel::new(
        1,
        sim.start_ms(),
        sim.meters().iter().map(|x| x.id.clone()).collect(),
        sim.meters().iter().map(|x| x.resource).collect(),
        48,
        4,
    )
    .with_meter_hours(meter_hours)
    .with_catchup_meter_entries(cap);
    let mut out = Vec::new();
    // 2 ticks per simulated minute: the sim's tick is 500 ms, so shift.
    for i in 0..(hours * 120) {
        let ts = sim.step(&mut out) + i * 30_000;
        let hour = ts / HOUR_MS;
        let readings: Vec<_> = out
            .drain(..)
            .map(|mut r| {
                r.ts_ms += i * 30_000;
                r
            })
            .filter(|r| (u64::from(r.meter) + hour) % 5 != 0)
            .collect();
        let wall = if i % 7 == 0 { ts.saturating_sub(90_000) } else { ts };
        m.apply_at(ts, wall, readings);
    }
    m
}

#[test]
fn the_column_encoder_writes_the_general_encoders_bytes() {
    let cfg = Config::default();
    let mut bodies = 0;
    let mut per_meter_bodies = 0;
    for seed in 1..=4u64 {
        for (meter_hours, cap) in
            [(0, usize::MAX), (3, usize::MAX), (8, usize::MAX), (8, 250), (2, 1)]
        {
            let m = model(seed, 40 + 37 * seed as u32, 5, meter_hours, cap);
            let oldest = m.hours().front().map_or(0, |h| h.hour_ms);
            for from in [oldest, oldest + HOUR_MS, oldest + 3 * HOUR_MS, oldest + 9 * HOUR_MS] {
                for per_meter in [false, true] {
                    let view = m.catchup_per_meter(from, per_meter).expect("a catch-up");
                    let got = catchup_binary(&view, 1_764_000_123_456).expect("encodes");
                    let want = oracle(&view, 1_764_000_123_456);
                    assert!(
                        got == want,
                        "seed {seed} meter_hours {meter_hours} cap {cap} from {from} per_meter {per_meter}: {} vs {} bytes, first difference at {:?}",
                        got.len(),
                        want.len(),
                        got.iter().zip(&want).position(|(a, b)| a != b)
                    );
                    let Inbound::Catchup(c) = decode_binary(Envelope::Catchup, &got, &cfg) else {
                        panic!("not a catch-up");
                    };
                    assert!(c.errors.is_empty(), "{:?}", c.errors);
                    assert_eq!(c.buckets, buckets(&view));
                    bodies += 1;
                    per_meter_bodies += usize::from(view.meters.is_some());
                }
            }
        }
    }
    // The runs did list hours per meter, capped or not.
    assert_eq!(bodies, 4 * 5 * 4 * 2);
    assert!(per_meter_bodies >= 40, "{per_meter_bodies} bodies listed hours per meter");
}
