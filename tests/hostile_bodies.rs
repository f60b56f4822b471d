#![cfg(not(target_arch = "wasm32"))]
//! Hostile bodies: well-formed JSON within `maxPayloadBytes`, shaped so that
//! a decoder whose work grows faster than the bytes would stall the worker
//! (one payload, every meter's state frozen behind it). Each is decoded
//! through the path the page's message takes, and the answer is checked
//! against what the body says, so a test is a correctness check as well.
//!
//! - An object of many distinct keys where each key is checked against the
//!   others: a `HEARTBEAT_ACK`'s `sent` map from the socket, a `config` from
//!   the page.
//!
//! The sizes are a few MB: at these sizes the quadratic scans these tests
//! were written against ran for minutes (hours at 16 MiB; see
//! docs/PERFORMANCE.md, "Hostile bodies"), while a linear decoder takes
//! milliseconds. Nothing here is timed: a regression shows as a test that
//! does not finish.

use meterflow::core::config::Config;
use meterflow::core::error::ErrorCode;
use meterflow::core::event::Inbound;
use meterflow::core::session::{ServerOp, SessionInput};
use meterflow::wire::{decode_message_text, decode_socket_text, Arrival};

/// Distinct keys in each body (a few MB of text).
const KEYS: usize = 300_000;

/// Every `REPEAT`-th key is written a second time, later, with another value.
const REPEAT: usize = 1_000;

fn key(i: usize) -> String {
    format!("c{i:07}")
}

/// `{"<key 0>":<value(0, first)>,...}`, then the repeated keys again.
fn object(value: impl Fn(usize, bool) -> String) -> String {
    let mut s = String::with_capacity(KEYS * 24);
    s.push('{');
    for i in 0..KEYS {
        s.push_str(&format!("\"{}\":{},", key(i), value(i, true)));
    }
    for i in (0..KEYS).step_by(REPEAT) {
        s.push_str(&format!("\"{}\":{},", key(i), value(i, false)));
    }
    s.pop();
    s.push('}');
    s
}

#[test]
fn heartbeat_ack_with_many_channels_is_read_in_key_order_last_position_winning() {
    let sent = object(|i, first| format!("[{},{i}]", if first { 1 } else { 2 }));
    let text = format!("{{\"op\":\"HEARTBEAT_ACK\",\"sent\":{sent}}}");
    let cfg = Config::default();
    assert!(text.len() < cfg.max_payload_bytes as usize);
    let Inbound::Stream(SessionInput::Server(ServerOp::HeartbeatAck { sent })) =
        decode_socket_text(&text, Arrival::default(), &cfg)
    else {
        panic!("not a HEARTBEAT_ACK");
    };
    assert_eq!(sent.len(), KEYS);
    for (i, p) in sent.iter().enumerate() {
        assert_eq!(p.channel, key(i));
        let epoch = if i % REPEAT == 0 { 2 } else { 1 };
        assert_eq!((p.epoch, p.seq), (epoch, i as u64), "{}", p.channel);
    }
}

#[test]
fn config_with_many_fields_names_the_first_unknown_one_and_repeats_keep_the_last() {
    // Every key unknown: refused, naming the first in key order.
    let fields = object(|_, _| "1".into());
    let text = format!("{{\"type\":\"config\",\"config\":{fields}}}");
    match decode_message_text(&text, &Config::default()) {
        Inbound::Rejected(e) => {
            assert_eq!(e.code, ErrorCode::BadConfig);
            assert!(e.message.contains(&key(0)), "{}", e.message);
        }
        other => panic!("accepted: {other:?}"),
    }

    // One known key repeated: the last value is the one that applies.
    let mut fields = String::from("{");
    for i in 0..KEYS {
        fields.push_str(&format!("\"window\":{},", 100 + i));
    }
    fields.pop();
    fields.push('}');
    let text = format!("{{\"type\":\"config\",\"config\":{fields}}}");
    match decode_message_text(&text, &Config::default()) {
        Inbound::Config(p) => assert_eq!(p.window, Some((100 + KEYS - 1) as u32)),
        other => panic!("not a config: {other:?}"),
    }
}
