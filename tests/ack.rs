#![cfg(not(target_arch = "wasm32"))]
//! The `ack` answer to a payload message with an `id` (PROTOCOL.md 2 and 4),
//! through the path a page message takes: JSON message → `decode_message` →
//! engine → wire shape.

use meterflow::core::config::Config;
use meterflow::core::error::ErrorCode;
use meterflow::core::event::{AckEvent, Inbound, Outbound};
use meterflow::core::Engine;
use meterflow::wire::{decode_message, encode};
use serde_json::{json, Value};

const NOW: f64 = 1.7e12;

fn run(msg: Value) -> Result<Vec<Outbound>, String> {
    let cfg = Config::default();
    let mut engine = Engine::new(cfg.clone()).map_err(|e| e.to_string())?;
    Ok(engine.handle(decode_message(&msg, &cfg), NOW))
}

fn acks(out: &[Outbound]) -> Vec<AckEvent> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Ack(a) => Some(*a),
            _ => None,
        })
        .collect()
}

fn readings(items: Value) -> String {
    json!({ "type": "readings", "readings": items }).to_string()
}

#[test]
fn readings_with_an_id_are_acked_last_with_their_counts() -> Result<(), String> {
    let data = readings(json!([
        { "meter": "m-1", "ts": NOW - 1000.0, "value": 1.5 },
        { "meter": "m-2", "ts": NOW - 1000.0, "value": "x" },
        { "meter": "m-1", "ts": NOW - 500.0, "value": 2.5 },
    ]));
    let out = run(json!({ "type": "readings", "id": 7, "data": data }))?;
    assert_eq!(acks(&out), vec![AckEvent { id: 7.0, accepted: 2.0, refused: 1.0, ms: 0.0 }]);
    assert!(matches!(out.last(), Some(Outbound::Ack(_))), "{out:?}");
    let wire = serde_json::to_value(encode(&out[out.len() - 1])).map_err(|e| e.to_string())?;
    assert_eq!(
        wire,
        json!({ "type": "ack", "v": 1, "id": 7.0, "accepted": 2.0, "refused": 1.0, "ms": 0.0 })
    );
    Ok(())
}

#[test]
fn without_an_id_there_is_no_ack() -> Result<(), String> {
    let data = readings(json!([{ "meter": "m-1", "ts": NOW - 1000.0, "value": 1.5 }]));
    let out = run(json!({ "type": "readings", "data": data }))?;
    assert!(acks(&out).is_empty(), "{out:?}");
    let out = run(json!({ "type": "readings", "id": null, "data": data }))?;
    assert!(acks(&out).is_empty(), "{out:?}");
    Ok(())
}

#[test]
fn a_refused_payload_is_still_acked() -> Result<(), String> {
    // Malformed JSON, then a bad `sentAt`: both refused whole, both answered.
    for msg in [
        json!({ "type": "readings", "id": 1, "data": "{not json" }),
        json!({ "type": "catchup", "id": 2, "sentAt": "soon", "data": "{}" }),
        json!({ "type": "live", "id": 3 }),
    ] {
        let out = run(msg.clone())?;
        let a = acks(&out);
        assert_eq!(a.len(), 1, "{msg}: {out:?}");
        assert_eq!((a[0].accepted, a[0].refused), (0.0, 1.0), "{msg}");
        assert!(out.iter().any(|o| matches!(o, Outbound::Error(_))), "{msg}: {out:?}");
    }
    Ok(())
}

#[test]
fn a_bad_id_is_bad_field_and_not_acked() -> Result<(), String> {
    for id in [json!("seven"), json!(true), json!([1])] {
        let msg = json!({ "type": "readings", "id": id, "data": readings(json!([])) });
        let out = run(msg)?;
        assert!(acks(&out).is_empty(), "{out:?}");
        assert!(
            out.iter().any(|o| matches!(o, Outbound::Error(e) if e.code == ErrorCode::BadField)),
            "{out:?}"
        );
    }
    Ok(())
}

#[test]
fn control_messages_are_never_acked() -> Result<(), String> {
    let out = run(json!({ "type": "query", "query": "stats", "id": 4 }))?;
    assert!(acks(&out).is_empty(), "{out:?}");
    assert!(matches!(
        decode_message(&json!({ "type": "reset", "id": 4 }), &Config::default()),
        Inbound::Reset(_)
    ));
    Ok(())
}
