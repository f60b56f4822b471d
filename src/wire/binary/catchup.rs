//! Binary frames of kind 3: a REST catch-up result (PROTOCOL.md 3.8).
//!
//! The same information as the JSON body of 3.6 in columns: the watermark, the
//! hour range and the server time in the kind header; bindings naming
//! `(meter, resource)` pairs (an empty meter name is a resource total), local to
//! the frame since a catch-up is self-contained; then `keys`, `hours` and
//! `totals` (whole mantissas of `10^-scale`) columns.
//!
//! Items are checked as the JSON decoder checks them: a bucket whose key is
//! unbound, whose resource is not configured, whose hour is not an hour start,
//! or whose total is not a whole mantissa or finer than the resolution becomes
//! an error with its position (the ledger then refuses the result whole, see
//! `Ledger::on_catchup`, except for unknown resources, which it ignores).

use super::{bad_frame, le_f64, le_u32, whole, Header, Reader, HEADER_BYTES};
use crate::core::config::{Config, ResourceSpec};
use crate::core::decimal::{Decimal, MAX_SCALE};
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::{Catchup, CatchupBucket};
use crate::core::hlc::Hlc;
use crate::core::ledger::HOUR_MS;
use crate::wire::{record_text, Arrival};

/// Bytes of the kind-3 header after the common header.
pub const CATCHUP_HEADER_BYTES: usize = 40;

/// Whether `x` is a whole number of ms in `0..=2^53` that starts an hour.
/// On the whole number: a whole `x` is exactly `m`, so `x % HOUR_MS` is 0
/// exactly when `m % 3,600,000` is, and the integer remainder is no call to
/// `fmod`: 4 % of a large frame's decode, and a frame of `f64::MAX` hours
/// decoded 40 % faster without it (a float remainder has no side effects,
/// so the optimiser may compute it before the whole-number test, and
/// `fmod` of a huge number is slow).
fn is_hour_start(x: f64) -> bool {
    whole(x).is_some_and(|m| m % HOUR_MS as u64 == 0)
}

/// An hour start in `0..=2^53` ms, or `None` for NaN (absent).
fn hour(x: f64, what: &str) -> Result<Option<f64>, CoreError> {
    if x.is_nan() {
        return Ok(None);
    }
    match x {
        x if is_hour_start(x) => Ok(Some(x)),
        _ => Err(CoreError::new(
            ErrorCode::BadTimestamp,
            format!("binary catch-up: {what} {x} is not an hour start (a multiple of 3600000 ms)"),
        )),
    }
}

/// `(meter, resource)` of a binding; an empty meter is a resource total.
type Binding = (Option<String>, String);

/// A kind-3 frame's bindings: `order` is `key << 32 | index into bindings`,
/// sorted; `specs` the configured resource each binding names, found once
/// per binding rather than once per bucket.
#[derive(Clone, Copy)]
struct Table<'a> {
    order: &'a [u64],
    bindings: &'a [Binding],
    specs: &'a [Option<&'a ResourceSpec>],
}

pub(super) fn decode(
    h: &Header,
    bytes: &[u8],
    arrival: Arrival,
    cfg: &Config,
) -> Result<Catchup, CoreError> {
    if h.shared_ts {
        return Err(bad_frame("binary catch-up: flag SHARED_TS does not apply to kind 3"));
    }
    let mut r = Reader { buf: bytes, pos: HEADER_BYTES };
    let what = "kind-3 header";
    let (wall_ms, counter) = (r.f64(what)?, r.u32(what)?);
    let (scale, reserved) = (r.u8(what)?, [r.u8(what)?, r.u8(what)?, r.u8(what)?]);
    let (from, to, server_time) = (r.f64(what)?, r.f64(what)?, r.f64(what)?);
    let as_of = Hlc::from_f64(wall_ms, f64::from(counter)).ok_or_else(|| {
        CoreError::new(
            ErrorCode::BadTimestamp,
            format!("binary catch-up: asOf wallMs {wall_ms} counter {counter} out of range"),
        )
    })?;
    if scale > MAX_SCALE {
        return Err(bad_frame(format!(
            "binary catch-up: total scale {scale} is above {MAX_SCALE}"
        )));
    }
    if reserved != [0; 3] {
        return Err(bad_frame("binary catch-up: reserved kind-3 header bytes are not zero"));
    }
    let (from_hour_ms, to_hour_ms) = (hour(from, "from")?, hour(to, "to")?);
    if let (Some(f), Some(t)) = (from_hour_ms, to_hour_ms) {
        if f > t {
            return Err(CoreError::new(
                ErrorCode::BadTimestamp,
                format!("binary catch-up: from {f} is after to {t}"),
            ));
        }
    }
    let server_time_ms = if server_time.is_nan() {
        None
    } else if server_time.is_finite() {
        Some(server_time)
    } else {
        return Err(CoreError::new(
            ErrorCode::BadTimestamp,
            format!("binary catch-up: serverTime {server_time} is not finite"),
        ));
    };

    // Bindings are local to the frame: key -> (meter, resource), sorted by key
    // so the table holds exactly what the frame carries whatever keys it names
    // (PROTOCOL.md 3.8), and no chosen set of keys can slow the lookups.
    // `order` holds `key << 32 | position in the frame`, all distinct, so an
    // unstable sort keeps a twice-bound key's bindings in frame order and the
    // later one wins (found last below). A plain `[u64]` sort is one the module
    // already has (wasm::timing): the stable sort this replaced linked about
    // 9 KB of merge-sort code into the .wasm for this cold path (docs/SIZE.md).
    let fit = super::bindings_fit(h.bindings, &r, 7)?;
    let (mut bindings, mut order): (Vec<Binding>, Vec<u64>) =
        (Vec::with_capacity(fit), Vec::with_capacity(fit));
    for position in 0..h.bindings {
        let (key, meter, resource) = r.pair_binding(true)?;
        if key >= cfg.max_stream_keys {
            return Err(CoreError::new(
                ErrorCode::KeyOutOfRange,
                format!("binary catch-up: key {key} >= maxStreamKeys {}", cfg.max_stream_keys),
            ));
        }
        let meter = (!meter.is_empty()).then(|| meter.to_owned());
        bindings.push((meter, resource.to_owned()));
        order.push(u64::from(key) << 32 | u64::from(position));
    }
    order.sort_unstable();
    let specs: Vec<Option<&ResourceSpec>> =
        bindings.iter().map(|(_, r)| cfg.resources.iter().find(|s| &s.name == r)).collect();
    let table = Table { order: &order, bindings: &bindings, specs: &specs };
    r.pad8("padding after the bindings")?;
    let keys = r.column(h.records, 4, "keys column")?;
    r.pad8("padding after the keys")?;
    let hours = r.column(h.records, 8, "hours column")?;
    let totals = r.column(h.records, 8, "totals column")?;
    r.finish()?;

    let mut c = Catchup {
        as_of,
        from_hour_ms,
        to_hour_ms,
        buckets: Vec::with_capacity(h.records as usize),
        server_time_ms,
        sent_at_ms: arrival.sent_at_ms.filter(|x| x.is_finite()),
        received_at_ms: arrival.received_at_ms.filter(|x| x.is_finite()),
        errors: Vec::new(),
    };
    let columns = keys.chunks_exact(4).zip(hours.chunks_exact(8)).zip(totals.chunks_exact(8));
    for (i, ((key, hour_ms), total)) in columns.enumerate() {
        let shown = c.errors.len();
        let record = (le_u32(key), le_f64(hour_ms), le_f64(total));
        match bucket(i, record, scale, table, cfg, shown) {
            Ok(b) => c.buckets.push(b),
            Err(e) => c.errors.push(e),
        }
    }
    Ok(c)
}

/// Bucket `i`: its `(key, hour, total mantissa)` as the frame has them.
fn bucket(
    i: usize,
    (key, hour_ms, total): (u32, f64, f64),
    scale: u8,
    table: Table<'_>,
    cfg: &Config,
    shown: usize,
) -> Result<CatchupBucket, CoreError> {
    // Each refusal's text is made only under the cap (`wire::record_text`).
    let text = |make: &dyn Fn() -> String| record_text(shown, cfg, make);
    let bound = |entry: u64| (entry >> 32) as u32;
    let last = table.order.partition_point(|&e| bound(e) <= key).checked_sub(1);
    let found = last.and_then(|i| table.order.get(i)).filter(|&&e| bound(e) == key);
    let at = found.map(|&e| (e & 0xffff_ffff) as usize);
    let found = at.and_then(|at| Some((table.bindings.get(at)?, table.specs.get(at)?)));
    let Some(((meter, resource), spec)) = found else {
        return Err(CoreError::at(
            ErrorCode::UnknownKey,
            i,
            text(&|| {
                format!("bucket {i}: key {key} is bound to no meter and resource in this frame")
            }),
        ));
    };
    // `hour`'s test without its error (made and dropped here, it cost a text
    // per refused bucket).
    let hour_ms = Some(hour_ms).filter(|&x| is_hour_start(x)).ok_or_else(|| {
        CoreError::at(
            ErrorCode::BadTimestamp,
            i,
            text(&|| format!("bucket {i}: hour {hour_ms} is not an hour start")),
        )
    })?;
    let mantissa = whole(total).ok_or_else(|| {
        CoreError::at(
            ErrorCode::BadValue,
            i,
            text(&|| {
                format!("bucket {i}: total mantissa {total} is not a whole number in 0..=2^53")
            }),
        )
    })?;
    let total = Decimal::new(mantissa as i64, scale);
    // The grammar first (as the JSON decoder): a malformed bucket refuses the
    // body even when its resource is one this dashboard ignores.
    let Some(spec) = spec else {
        return Err(CoreError::at(
            ErrorCode::UnknownResource,
            i,
            text(&|| format!("bucket {i}: '{resource}' is not a configured resource")),
        ));
    };
    if total.to_units(spec.decimals).is_err() {
        return Err(CoreError::at(
            ErrorCode::BadValue,
            i,
            text(&|| {
                format!(
                    "bucket {i}: total is finer than the resolution of '{}' ({} decimals)",
                    spec.name, spec.decimals
                )
            }),
        ));
    }
    Ok(CatchupBucket {
        meter: meter.clone(),
        resource: resource.clone(),
        hour_ms,
        total,
        position: i as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_integer_hour_test_is_the_float_one() {
        let float = |x: f64| whole(x).is_some() && x % HOUR_MS == 0.0;
        let mut xs = vec![0.0, -0.0, f64::NAN, f64::INFINITY, -f64::INFINITY, f64::MAX, -HOUR_MS];
        xs.extend([1.0, 0.5, 2f64.powi(53), 2f64.powi(53) + 2.0, 2f64.powi(60), -1.0]);
        for h in [1u64, 490_018, 2_501_999_792] {
            let x = h as f64 * HOUR_MS;
            xs.extend([x, x + 1.0, x - 1.0, x + 0.5, f64::from_bits(x.to_bits() + 1)]);
        }
        let mut bits: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            xs.push(f64::from_bits(bits));
            xs.push((bits % (1 << 40)) as f64 * 3_600.0);
        }
        for x in xs {
            assert_eq!(is_hour_start(x), float(x), "{x}");
        }
    }
}
