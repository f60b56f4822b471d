//! One series answer: the plan (resource, buckets, resolution) checked from a
//! query, and the accumulation over a set of meters, which a large group does
//! in chunks.

use super::{Resolution, SeriesQuery, SeriesSlab, SeriesTarget, MAX_SPAN_MS, MINUTE_SPAN_MS};
use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode};

/// A checked query: which resource and which buckets.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The query as asked.
    pub query: SeriesQuery,
    /// Resource index.
    pub resource: usize,
    /// Resource decimals.
    pub decimals: u8,
    /// Bucket width.
    pub resolution: Resolution,
    /// The first bucket number (`from / step`).
    pub first: i64,
    /// Buckets.
    pub len: usize,
}

/// Checks `q` and places its buckets so that the last one holds `newest_ms`.
pub fn plan(q: &SeriesQuery, newest_ms: f64, cfg: &Config) -> Result<Plan, CoreError> {
    let bad = |why: String| CoreError::new(ErrorCode::BadField, why);
    let Some(resource) = cfg.resources.iter().position(|s| s.name == q.resource) else {
        let shown: String = q.resource.chars().take(64).collect();
        return Err(CoreError::new(
            ErrorCode::UnknownResource,
            format!("resource: '{shown}' is not a configured resource"),
        ));
    };
    let span = q.span_ms.unwrap_or(MINUTE_SPAN_MS);
    if !(span.is_finite() && span > 0.0 && span <= MAX_SPAN_MS) {
        return Err(bad(format!("spanMs: must be in (0, {MAX_SPAN_MS}] (6 h)")));
    }
    let resolution = q.resolution.unwrap_or(if span <= MINUTE_SPAN_MS {
        Resolution::Minute
    } else {
        Resolution::FiveMinutes
    });
    if resolution == Resolution::Minute && span > MINUTE_SPAN_MS {
        return Err(bad(format!("resolution: 1m covers at most {MINUTE_SPAN_MS} ms (2 h)")));
    }
    let step = resolution.step_ms();
    let len = (span / step).ceil().max(1.0) as usize;
    let last = (newest_ms / step).floor();
    if !last.is_finite() || last.abs() > 1e13 {
        return Err(bad("series: no valid time to end at".into()));
    }
    Ok(Plan {
        query: q.clone(),
        resource,
        decimals: cfg.resources.get(resource).map_or(0, |s| s.decimals),
        resolution,
        first: last as i64 - len as i64 + 1,
        len,
    })
}

/// A series answer: `ts` bucket starts (ms), per bucket count, exact sum
/// (integer units), min, max and last (units; NaN when empty).
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesData {
    /// What the series is of.
    pub target: SeriesTarget,
    /// Resource name.
    pub resource: String,
    /// Resource decimals (the wire gives amounts in resource units).
    pub decimals: u8,
    /// Bucket width.
    pub resolution: Resolution,
    /// Bucket starts, ms.
    pub ts: Vec<f64>,
    /// Readings per bucket.
    pub count: Vec<f64>,
    /// Exact sums, integer units.
    pub sum_units: Vec<i64>,
    /// Smallest amount, units (NaN when empty).
    pub min: Vec<f64>,
    /// Largest amount, units (NaN when empty).
    pub max: Vec<f64>,
    /// Latest amount, units; for a group the sum of its members' latest
    /// (NaN when empty).
    pub last: Vec<f64>,
    /// The newest HLC wall (ms) of a frame the series holds a reading of.
    pub source_watermark: Option<f64>,
    /// Whether a reading of the span may be missing.
    pub incomplete: bool,
}

impl SeriesData {
    /// First bucket start, ms.
    pub fn from_ms(&self) -> f64 {
        self.ts.first().copied().unwrap_or(0.0)
    }

    /// End of the last bucket, ms.
    pub fn to_ms(&self) -> f64 {
        self.ts.last().map_or(0.0, |t| t + self.resolution.step_ms())
    }
}

/// Sums of the buckets of a set of meters, fed a meter (or a chunk) at a time.
#[derive(Clone, Debug, PartialEq)]
pub struct Accumulator {
    count: Vec<u64>,
    sum: Vec<i64>,
    min: Vec<f64>,
    max: Vec<f64>,
    last: Vec<f64>,
    watermark: Option<f64>,
    /// A bucket's sum over the meters passed `i64` (each meter's is within
    /// 48 bits, so only past 65,536 meters at the extreme): the answer is
    /// `incomplete`, never wrapped.
    overflow: bool,
}

impl Accumulator {
    /// Empty, for `len` buckets. `None` if the memory cannot be had.
    pub fn new(len: usize) -> Option<Accumulator> {
        fn filled<T: Clone>(len: usize, v: T) -> Option<Vec<T>> {
            let mut x = Vec::new();
            x.try_reserve_exact(len).ok()?;
            x.resize(len, v);
            Some(x)
        }
        Some(Accumulator {
            count: filled(len, 0)?,
            sum: filled(len, 0)?,
            min: filled(len, f64::INFINITY)?,
            max: filled(len, f64::NEG_INFINITY)?,
            last: filled(len, 0.0)?,
            watermark: None,
            overflow: false,
        })
    }

    /// Adds meter `m`'s buckets of the plan.
    #[inline]
    pub fn add_meter(&mut self, slab: &SeriesSlab, m: usize, p: &Plan) {
        let Some((_, watermark)) = slab.source(m, p.resource) else { return };
        if watermark.is_finite() {
            self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        }
        let five = p.resolution == Resolution::FiveMinutes;
        for i in 0..p.len {
            let Some(b) = slab.bucket(m, p.resource, p.first + i as i64, five) else { return };
            if b.count == 0 {
                continue;
            }
            if let Some(c) = self.count.get_mut(i) {
                *c += u64::from(b.count);
            }
            if let Some(s) = self.sum.get_mut(i) {
                match s.checked_add(b.sum) {
                    Some(x) => *s = x,
                    None => (*s, self.overflow) = (s.saturating_add(b.sum), true),
                }
            }
            if let Some(x) = self.min.get_mut(i) {
                *x = x.min(f64::from(b.min));
            }
            if let Some(x) = self.max.get_mut(i) {
                *x = x.max(f64::from(b.max));
            }
            if let Some(x) = self.last.get_mut(i) {
                *x += f64::from(b.last);
            }
        }
    }

    /// The answer, with `incomplete` as the caller found it.
    pub fn finish(self, p: &Plan, incomplete: bool) -> SeriesData {
        let step = p.resolution.step_ms();
        let empty = |c: &u64, v: f64| if *c == 0 { f64::NAN } else { v };
        SeriesData {
            target: p.query.target.clone(),
            resource: p.query.resource.clone(),
            decimals: p.decimals,
            resolution: p.resolution,
            ts: (0..p.len).map(|i| (p.first + i as i64) as f64 * step).collect(),
            min: self.count.iter().zip(&self.min).map(|(c, &v)| empty(c, v)).collect(),
            max: self.count.iter().zip(&self.max).map(|(c, &v)| empty(c, v)).collect(),
            last: self.count.iter().zip(&self.last).map(|(c, &v)| empty(c, v)).collect(),
            count: self.count.iter().map(|&c| c as f64).collect(),
            sum_units: self.sum,
            source_watermark: self.watermark,
            incomplete: incomplete || self.overflow,
        }
    }
}
