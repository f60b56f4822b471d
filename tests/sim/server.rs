//! The simulated feed server: meters report to it, it stamps every reading with
//! its HLC once, streams frames, and answers REST catch-ups at closed watermarks.

use meterflow::core::decimal::Decimal;
use meterflow::core::event::{
    Catchup, CatchupBucket, KeyScope, LiveBinding, LiveFrame, StreamHello,
};
use meterflow::core::hlc::{Hlc, HybridClock, MAX_COUNTER};
use meterflow::core::ledger::{hour_of, HOUR_MS};
use std::collections::{BTreeMap, HashSet};

use super::rng::Rng;

/// Resource names in the engine's default configuration.
pub const RESOURCES: [&str; 3] = ["water", "energy", "bandwidth"];

/// One reading as the server stored it.
#[derive(Clone, Debug)]
pub struct Reading {
    pub meter: u32,
    pub resource: usize,
    pub id: u64,
    pub ts: f64,
    pub units: i64,
    pub stamp: Hlc,
    /// The hour it is bucketed in: of `ts`, or of the stamp if earlier.
    pub hour: i64,
}

/// The server's state.
pub struct Server {
    pub hlc: HybridClock,
    /// Every reading ever stamped, in stamp order.
    pub readings: Vec<Reading>,
    next_id: Vec<u64>,
    pub epoch: u64,
    seq: u64,
    bound: HashSet<u32>,
    meters: u32,
    binary_keys: bool,
    /// Results answered before, for the "old asOf" fault.
    pub answered: Vec<Catchup>,
}

impl Server {
    pub fn new(meters: u32, binary_keys: bool) -> Self {
        Server {
            hlc: HybridClock::default(),
            readings: Vec::new(),
            next_id: vec![1; meters as usize],
            epoch: 1,
            seq: 0,
            bound: HashSet::new(),
            meters,
            binary_keys,
            answered: Vec::new(),
        }
    }

    fn stamp_reading(&mut self, rng: &mut Rng, t: f64, stamp: Hlc, ts_jitter: bool) -> usize {
        self.stamp_reading_backfill(rng, t, stamp, ts_jitter, 0.0)
    }

    fn stamp_reading_backfill(
        &mut self,
        rng: &mut Rng,
        t: f64,
        stamp: Hlc,
        ts_jitter: bool,
        backfill_p: f64,
    ) -> usize {
        let meter = rng.below(u64::from(self.meters)) as u32;
        let id = self.next_id[meter as usize];
        self.next_id[meter as usize] += 1;
        // Meter clocks: mostly a little behind the server, sometimes ahead.
        let ts = if rng.chance(backfill_p) {
            // A meter back online uploads old readings: some in kept hours, some
            // so old their hour has rolled off (late).
            t - rng.range(HOUR_MS, 7.5 * HOUR_MS)
        } else if ts_jitter {
            t - rng.below(2_000) as f64 + if rng.chance(0.05) { 3_000.0 } else { 0.0 }
        } else {
            t
        };
        let stamp_hour = hour_of(stamp.wall_ms as f64).unwrap();
        let hour = hour_of(ts).unwrap().min(stamp_hour);
        self.readings.push(Reading {
            meter,
            resource: meter as usize % RESOURCES.len(),
            id,
            ts,
            units: rng.below(5_000) as i64,
            stamp,
            hour,
        });
        self.readings.len() - 1
    }

    /// History before the page opened: readings only REST will ever carry.
    pub fn history(&mut self, rng: &mut Rng, from: f64, to: f64, count: usize) {
        for k in 0..count {
            let t = from + (to - from) * k as f64 / count as f64;
            let stamp = self.hlc.now(t as u64);
            self.stamp_reading(rng, t, stamp, false);
        }
    }

    /// Stamps `n` new readings at server time `t` and builds their frame (sent
    /// or not: meters report whether or not a dashboard is connected).
    pub fn produce(
        &mut self,
        rng: &mut Rng,
        t: f64,
        n: usize,
        backfill_p: f64,
    ) -> (LiveFrame, Vec<usize>) {
        let stamp = self.hlc.now(t as u64);
        let idx: Vec<usize> =
            (0..n).map(|_| self.stamp_reading_backfill(rng, t, stamp, true, backfill_p)).collect();
        let mut f = LiveFrame {
            epoch: self.epoch,
            seq: self.seq,
            stamp,
            scope: if self.binary_keys { KeyScope::Stream } else { KeyScope::Batch },
            ..Default::default()
        };
        self.seq += 1;
        let mut local: BTreeMap<u32, u32> = BTreeMap::new();
        for &i in &idx {
            let r = &self.readings[i];
            let key = if self.binary_keys {
                if self.bound.insert(r.meter) {
                    f.bindings.push(binding(r.meter, r.meter));
                }
                r.meter
            } else {
                let next = local.len() as u32;
                *local.entry(r.meter).or_insert_with(|| {
                    f.bindings.push(binding(next, r.meter));
                    next
                })
            };
            f.keys.push(key);
            f.ids.push(r.id);
            f.ts.push(r.ts);
            f.amounts.push(Decimal::new(r.units, 3));
        }
        (f, idx)
    }

    /// A new connection: a new epoch and its greeting.
    pub fn reconnect(&mut self, t: f64) -> StreamHello {
        self.epoch += 1;
        self.seq = 0;
        self.bound.clear();
        StreamHello {
            channel: String::new(),
            epoch: self.epoch,
            next_seq: Some(0),
            stamp: Some(self.hlc.now(t as u64)),
            server_time_ms: Some(t),
        }
    }

    /// A REST result at server time `t`, its watermark lagging `lag_ms` behind
    /// (a read replica), hourly totals of the past `history` hours and the current.
    /// `recent` limits the result to the current and previous hour (an endpoint
    /// variant that cannot clear needs for older hours).
    pub fn catchup(&mut self, t: f64, lag_ms: f64, history: i64, recent: bool) -> Catchup {
        let as_of = if lag_ms > 0.0 {
            // Any watermark at or below the clock's last stamp is closed.
            let lagged = Hlc { wall_ms: (t - lag_ms).max(0.0) as u64, counter: MAX_COUNTER };
            lagged.min(self.hlc.last())
        } else if t as u64 % 2 == 0 {
            // The newest stamp given so far is closed too: every later stamp exceeds it.
            self.hlc.last()
        } else {
            self.hlc.now(t as u64)
        };
        let now_hour = hour_of(t).unwrap();
        let from = if recent { now_hour - 1 } else { now_hour - history };
        let to = now_hour.max(hour_of(as_of.wall_ms as f64).unwrap());
        let covered = self.readings.partition_point(|r| r.stamp <= as_of);
        let mut totals: BTreeMap<(usize, i64), i64> = BTreeMap::new();
        for r in &self.readings[..covered] {
            if (from..=to).contains(&r.hour) {
                *totals.entry((r.resource, r.hour)).or_default() += r.units;
            }
        }
        let buckets = totals
            .into_iter()
            .enumerate()
            .map(|(i, ((r, h), units))| CatchupBucket {
                meter: None,
                resource: RESOURCES[r].to_string(),
                hour_ms: h as f64 * HOUR_MS,
                total: Decimal::new(units, 3),
                position: i as u32,
            })
            .collect();
        let c = Catchup {
            as_of,
            from_hour_ms: Some(from as f64 * HOUR_MS),
            to_hour_ms: Some(to as f64 * HOUR_MS),
            buckets,
            server_time_ms: Some(t),
            ..Default::default()
        };
        self.answered.push(c.clone());
        c
    }
}

fn binding(key: u32, meter: u32) -> LiveBinding {
    LiveBinding {
        key,
        meter: format!("m{meter}"),
        resource: RESOURCES[meter as usize % RESOURCES.len()].to_string(),
    }
}
