//! A `meters.<group>` row as generated parts, and the borrowed row the
//! encoders take: shared by the kind-4 fuzz generator and the text/binary
//! differential test.
#![allow(dead_code)]

use meterflow::core::decimal::Decimal;
use meterflow::core::stream::{MeterRowRef, MeterStatus};

/// meter, resource, ts, value, status index (0..3), count, total (mantissa, scale).
pub type RowParts = (String, String, f64, f64, usize, u64, (i64, u8));

pub const STATUS: [MeterStatus; 3] = [MeterStatus::Ok, MeterStatus::Stale, MeterStatus::Offline];

/// The row `p` describes (a status index past 2 wraps).
pub fn row_ref(p: &RowParts) -> MeterRowRef<'_> {
    let (meter, resource, ts, value, status, count, (mantissa, scale)) = p;
    MeterRowRef {
        meter,
        resource,
        ts: *ts,
        value: *value,
        status: STATUS[*status % STATUS.len()],
        count: *count,
        total: Decimal::new(*mantissa, *scale),
    }
}
