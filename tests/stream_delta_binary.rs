#![cfg(not(target_arch = "wasm32"))]
//! The binary kind-4 DELTA (PROTOCOL.md 3.10) against the JSON text DELTA it
//! stands for: on generated patches (ids with escapes and non-ASCII, resource
//! names past 64 characters, totals with trailing zeros, every status), the
//! text decoded by `decode_socket_text` and the frame decoded by
//! `decode_socket_binary` give the same op: channel, epoch, seq and the very
//! same rows and removes. A frame is refused whole on a bad row, as the text
//! is, with the same code. Engine-level agreement (stores and page messages over faulty
//! schedules) is `stream_sim`'s `text_and_binary_deltas_give_the_same_page_and_stores`.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/meter_rows.rs"]
mod meter_rows;
use meter_rows::{row_ref, RowParts};

use meterflow::core::config::Config;
use meterflow::core::decimal::{format_units, Decimal};
use meterflow::core::event::Inbound;
use meterflow::core::session::{Payload, ServerOp, SessionInput};
use meterflow::core::stream::{MeterPatch, MeterRowRef, MeterStatus};
use meterflow::wire::binary::encode_meters_delta;
use meterflow::wire::{decode_socket_binary, decode_socket_text, Arrival};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::json;

fn cases() -> u32 {
    cases::cases_from("DELTA_BINARY_CASES", 1_000)
}

/// `(channel, epoch, seq, patch)` of a decoded socket message.
fn op(input: Inbound) -> Result<(String, u64, u64, MeterPatch), String> {
    match input {
        Inbound::Stream(SessionInput::Server(ServerOp::Delta {
            channel,
            epoch,
            seq,
            body,
            ..
        })) => match body {
            Payload::Meters(p) => Ok((channel, epoch, seq, *p)),
            Payload::MeterColumns(c) => Ok((channel, epoch, seq, c.to_patch())),
            other => Err(format!("not a meters body: {other:?}")),
        },
        Inbound::Rejected(e) => Err(e.code.as_str().to_string()),
        other => Err(format!("{other:?}")),
    }
}

fn text(channel: &str, epoch: u64, seq: u64, rows: &[MeterRowRef<'_>], remove: &[&str]) -> String {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"meter": r.meter, "resource": r.resource, "ts": r.ts, "value": r.value,
                "status": r.status.as_str(), "count": r.count,
                "total": format_units(r.total.mantissa, r.total.scale)})
        })
        .collect();
    json!({"op": "DELTA", "channel": channel, "epoch": epoch, "seq": seq,
        "patch": {"upsert": rows, "remove": remove}})
    .to_string()
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof!["m-[0-9]{1,6}", "[a-zé\"\\\\/ ]{1,12}", "[\u{1F600}-\u{1F610}x]{1,4}"]
}

fn resource() -> impl Strategy<Value = String> {
    prop_oneof![Just("water".to_string()), Just(String::new()), "[a-zé]{60,70}"]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0u64..1 << 53).prop_map(|x| x as f64),
        (-1e6f64..1e6),
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
    ]
}

fn parts() -> impl Strategy<Value = RowParts> {
    (id(), resource(), number(), number(), 0usize..3, 0u64..=1 << 53, (any::<i64>(), 0u8..=18))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn text_and_binary_deltas_decode_to_the_same_op(
        epoch in 0u64..=1 << 53,
        seq in 0u64..=1 << 53,
        rows in prop::collection::vec(parts(), 0..40),
        remove in prop::collection::vec(id(), 0..8),
    ) {
        let rows: Vec<MeterRowRef<'_>> = rows.iter().map(row_ref).collect();
        let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
        let cfg = Config::default();
        let frame = encode_meters_delta("meters.north", epoch, seq, &rows, &remove).unwrap();
        let from_text = op(decode_socket_text(&text("meters.north", epoch, seq, &rows, &remove), Arrival::default(), &cfg));
        let from_binary = op(decode_socket_binary(&frame, Arrival::default(), &cfg));
        match (&from_text, &from_binary) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            // Both refuse (a bad meter id, say), with the same code.
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            _ => prop_assert!(false, "text {:?} vs binary {:?}", from_text, from_binary),
        }
    }
}

#[test]
fn a_known_frame_decodes_and_a_bad_row_refuses_it_whole() {
    let cfg = Config::default();
    let row = |meter, status, total| MeterRowRef {
        meter,
        resource: "water",
        ts: 1_764_064_800_000.0,
        value: 12.5,
        status,
        count: 3,
        total,
    };
    let rows = [
        row("m-1", MeterStatus::Ok, Decimal::new(1250, 2)),
        row("m-2", MeterStatus::Stale, Decimal::new(7, 0)),
    ];
    let frame = encode_meters_delta("meters.north", 2, 14, &rows, &["m-9"]).unwrap();
    let (channel, epoch, seq, patch) =
        op(decode_socket_binary(&frame, Arrival::default(), &cfg)).unwrap();
    assert_eq!((channel.as_str(), epoch, seq), ("meters.north", 2, 14));
    // 12.50 is normalised as `Decimal::parse` leaves it.
    assert_eq!(patch.upsert[0].total, Decimal::new(125, 1));
    assert_eq!(patch.upsert[1].status, MeterStatus::Stale);
    assert_eq!(patch.remove, vec!["m-9".to_string()]);
    // A status byte past 2 in the last row: the whole frame is refused.
    let mut bad = frame.clone();
    let at = status_offset(&frame, 2) + 1;
    bad[at] = 3;
    assert_eq!(op(decode_socket_binary(&bad, Arrival::default(), &cfg)), Err("bad_value".into()));
    // A kind-4 frame posted as a `live` binary message is not a live frame.
    let live = meterflow::wire::decode_binary(meterflow::wire::Envelope::Live, &frame, &cfg);
    assert!(matches!(live, Inbound::Rejected(e) if e.code.as_str() == "unknown_type"));
}

/// Byte offset of the status column of a frame with `rows` rows: the
/// columns (36 bytes a row) start 8-aligned and end the frame but for the
/// zero padding to a multiple of 8; status is the last column.
fn status_offset(frame: &[u8], rows: usize) -> usize {
    let columns = rows * (8 * 4 + 2 + 1 + 1);
    let start = frame.len() - columns.next_multiple_of(8);
    start + rows * (8 * 4 + 2 + 1)
}

/// The example of PROTOCOL.md 3.10, byte for byte.
#[test]
fn the_documented_example_is_what_the_encoder_writes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md");
    let section = doc.split("### 3.10 ").nth(1).expect("section 3.10");
    let block = section.split("```").nth(1).expect("the example block");
    let want: Vec<u8> = block
        .lines()
        .flat_map(|l| l.split("   ").next().unwrap_or("").split_whitespace().skip(1))
        .map(|h| u8::from_str_radix(h, 16).expect("hex"))
        .collect();
    let row = water_row();
    let frame = encode_meters_delta("meters.n", 2, 14, &[row], &["m-9"]).unwrap();
    assert_eq!(frame, want);
    let (_, _, _, patch) =
        op(decode_socket_binary(&frame, Arrival::default(), &Config::default())).unwrap();
    assert_eq!(patch.upsert, vec![row.to_row()]);
}

/// Meter `m-1`'s water row: 12.5 at a count of 3, status ok.
fn water_row() -> MeterRowRef<'static> {
    MeterRowRef {
        meter: "m-1",
        resource: "water",
        ts: 1_764_064_800_000.0,
        value: 12.5,
        status: MeterStatus::Ok,
        count: 3,
        total: Decimal::new(125, 1),
    }
}

/// A row value out of range is refused with the same code whichever form the
/// DELTA took (PROTOCOL.md 3.10: "as for a JSON DELTA"): a total finer than 18
/// decimals, a count past 2^53, a non-finite `value` or `ts`, an unknown
/// status, a bad meter id. Each case is one row, written as text and as a
/// kind-4 frame whose column is patched to the same value.
#[test]
fn a_bad_row_is_refused_with_the_same_code_on_both_paths() {
    let cfg = Config::default();
    let good = water_row();
    // One row: the columns start at `start`, each 8 bytes but the last three.
    let frame = encode_meters_delta("meters.north", 2, 14, &[good], &[]).unwrap();
    let start = frame.len() - 40;
    let (ts, value, count, total, scale, status) =
        (start, start + 8, start + 16, start + 24, start + 34, start + 35);
    let patched = |at: usize, bytes: &[u8]| {
        let mut f = frame.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        f
    };
    let text = |field: &str, raw: &str| {
        let row = r#"{"meter":"m-1","resource":"water","ts":1764064800000,"value":12.5,"status":"ok","count":3,"total":"12.5"}"#;
        let want = match field {
            "total" => r#""total":"12.5""#.to_string(),
            "status" => r#""status":"ok""#.to_string(),
            "meter" => r#""meter":"m-1""#.to_string(),
            "ts" => r#""ts":1764064800000"#.to_string(),
            "value" => r#""value":12.5"#.to_string(),
            _ => r#""count":3"#.to_string(),
        };
        let row = row.replace(&want, &format!("\"{field}\":{raw}"));
        format!(
            r#"{{"op":"DELTA","channel":"meters.north","epoch":2,"seq":14,"patch":{{"upsert":[{row}],"remove":[]}}}}"#
        )
    };
    let mut one = [0u8; 8];
    one[0] = 1;
    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        // 1e-19: mantissa 1 at scale 19.
        (
            "total",
            r#""1e-19""#.into(),
            patched(scale, &[19])
                .iter()
                .enumerate()
                .map(|(i, &b)| if (total..total + 8).contains(&i) { one[i - total] } else { b })
                .collect(),
            "bad_value",
        ),
        (
            "count",
            "18014398509481984".into(),
            patched(count, &(2f64.powi(54)).to_le_bytes()),
            "bad_value",
        ),
        ("value", "1e999".into(), patched(value, &f64::INFINITY.to_le_bytes()), "bad_value"),
        ("ts", "1e999".into(), patched(ts, &f64::INFINITY.to_le_bytes()), "bad_timestamp"),
        ("status", r#""gone""#.into(), patched(status, &[3]), "bad_value"),
    ];
    for (field, raw, bytes, code) in cases {
        let from_text = op(decode_socket_text(&text(field, &raw), Arrival::default(), &cfg));
        let from_binary = op(decode_socket_binary(&bytes, Arrival::default(), &cfg));
        assert_eq!(from_binary, Err(code.to_string()), "{field} {raw}: binary");
        assert_eq!(from_text, Err(code.to_string()), "{field} {raw}: text");
    }
    // A meter id of control characters: `bad_meter_id` both ways.
    let bad_id = MeterRowRef { meter: "m\u{1}", ..good };
    let bytes = encode_meters_delta("meters.north", 2, 14, &[bad_id], &[]).unwrap();
    let from_text =
        op(decode_socket_text(&text("meter", r#""m\u0001""#), Arrival::default(), &cfg));
    assert_eq!(
        op(decode_socket_binary(&bytes, Arrival::default(), &cfg)),
        Err("bad_meter_id".into())
    );
    assert_eq!(from_text, Err("bad_meter_id".into()));
}
