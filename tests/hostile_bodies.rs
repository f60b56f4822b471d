#![cfg(not(target_arch = "wasm32"))]
//! Hostile bodies: well-formed JSON within `maxPayloadBytes`, shaped so that
//! a decoder whose work grows faster than the bytes would stall the worker
//! (one payload, every meter's state frozen behind it). Each is decoded
//! through the path the page's message takes, and the answer is checked
//! against what the body says, so a test is a correctness check as well.
//!
//! - An object of many distinct keys where each key is checked against the
//!   others: a `HEARTBEAT_ACK`'s `sent` map from the socket, a `config` from
//!   the page, a `/groups` body's group names from the server.
//! - A `/groups` body of groups past `maxGroups`: each refused group is an
//!   error, at most `maxErrorsPerBatch` of them formatted.
//! - A text `meters.<group>` DELTA whose rows each name another resource:
//!   each row's resource was looked up among all the names before it.
//! - A `HEARTBEAT_ACK` of many positions against many subscribed channels:
//!   each position was looked up among every subscribed channel
//!   (`Session::tail_gaps`).
//!
//! The sizes are a few MB: at these sizes the quadratic scans these tests
//! were written against ran for minutes (hours at 16 MiB; see
//! docs/PERFORMANCE.md, "Hostile bodies"), while a linear decoder takes
//! milliseconds. Nothing here is timed: a regression shows as a test that
//! does not finish.

#[path = "common/cases.rs"]
mod cases;
use std::collections::BTreeMap;

use meterflow::core::config::Config;
use meterflow::core::error::ErrorCode;
use meterflow::core::event::Inbound;
use meterflow::core::groups::GroupMap;
use meterflow::core::session::{Payload, ServerOp, SessionInput};
use meterflow::core::stream::columns::MAX_TEXT_RESOURCES;
use meterflow::wire::groups::decode_groups_text;
use meterflow::wire::{
    decode_message_text, decode_socket_text, decode_socket_text_general, Arrival,
};

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

#[test]
fn groups_body_with_many_groups_is_read_whole_and_a_repeat_refuses_it() {
    let groups = |repeat: bool| {
        let mut s = String::from("{\"version\":1,\"groups\":{");
        for i in 0..KEYS {
            s.push_str(&format!("\"{}\":[],", key(i)));
        }
        if repeat {
            s.push_str(&format!("\"{}\":[],", key(KEYS / 2)));
        }
        s.pop();
        s.push_str("}}");
        s
    };
    let cfg = Config::default();
    let body = decode_groups_text(&groups(false), &cfg).map_err(|e| e.message);
    let body = body.unwrap_or_else(|e| panic!("refused: {e}"));
    // Read whole, copied up to what the build can keep or show: `maxGroups`
    // groups, then `maxErrorsPerBatch` refused ones; the rest counted.
    let copied = (cfg.max_groups + cfg.max_errors_per_batch) as usize;
    assert_eq!((body.groups.len(), body.uncopied), (copied, KEYS - copied));
    assert!(body.groups.iter().enumerate().all(|(i, (name, m))| *name == key(i) && m.is_empty()));

    match decode_groups_text(&groups(true), &cfg) {
        Err(e) => assert!(e.message.contains("listed twice"), "{}", e.message),
        Ok(_) => panic!("a group listed twice was accepted"),
    }

    // Built: `maxGroups` kept, each refused one checked for a repeat in
    // constant time, `maxErrorsPerBatch` errors formatted and the rest counted.
    let (map, errors) = GroupMap::build(&body, &cfg);
    assert_eq!(map.names().len(), cfg.max_groups as usize);
    let max = cfg.max_errors_per_batch as usize;
    assert_eq!(errors.len(), max + 1);
    assert!(errors[..max].iter().all(|e| e.code == ErrorCode::GroupLimit));
    let rest = KEYS - cfg.max_groups as usize - max;
    assert_eq!(errors[max].code, ErrorCode::ErrorsSuppressed);
    assert!(
        errors[max].message.starts_with(&format!("{rest} more errors")),
        "{}",
        errors[max].message
    );
}

#[test]
fn delta_rows_naming_many_resources_are_read_whole_and_alike_on_both_paths() {
    let cfg = Config::default();
    let delta = |n: usize| {
        let rows: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"meter":"m{i}","resource":"r{i:06}","ts":{i},"value":2,"status":"ok","count":3,"total":"4"}}"#
                )
            })
            .collect();
        format!(
            r#"{{"op":"DELTA","channel":"meters.north","epoch":1,"seq":2,"patch":{{"upsert":[{}],"remove":[]}}}}"#,
            rows.join(",")
        )
    };
    for n in [MAX_TEXT_RESOURCES, MAX_TEXT_RESOURCES + 1, KEYS / 3] {
        let text = delta(n);
        assert!(text.len() < cfg.max_payload_bytes as usize);
        let got = decode_socket_text(&text, Arrival::default(), &cfg);
        assert_eq!(got, decode_socket_text_general(&text, Arrival::default(), &cfg), "{n} rows");
        let Inbound::Stream(SessionInput::Server(ServerOp::Delta { body, .. })) = got else {
            panic!("{n} rows: not a DELTA");
        };
        let rows: Vec<(String, String, f64)> = match body {
            Payload::MeterColumns(c) => {
                assert!(n <= MAX_TEXT_RESOURCES, "{n} resources held in columns");
                c.upserts().map(|r| (r.meter.to_string(), r.resource.to_string(), r.ts)).collect()
            }
            Payload::Meters(p) => {
                assert!(n > MAX_TEXT_RESOURCES, "{n} resources left in rows");
                p.upsert.iter().map(|r| (r.meter.clone(), r.resource.clone(), r.ts)).collect()
            }
            _ => panic!("{n} rows: not a meters patch"),
        };
        assert_eq!(rows.len(), n);
        for (i, (meter, resource, ts)) in rows.iter().enumerate() {
            assert_eq!((meter, resource, *ts), (&format!("m{i}"), &format!("r{i:06}"), i as f64));
        }
    }
}

/// A `HEARTBEAT_ACK` listing many channels, against a session of
/// `maxSubscriptions` (256) live channels: each listed position was looked up
/// among every subscribed channel by name (entries x channels; at 16 MiB of
/// short names, about 800,000 x 256 string comparisons). The answer is
/// checked: every subscribed channel the server says it sent past is fetched
/// (from its position on a gap, whole on a new epoch), no other is, and the
/// unknown names change nothing.
#[test]
fn heartbeat_ack_listing_many_channels_against_many_subscriptions_fetches_exactly_the_lost_tails() {
    use meterflow::core::Engine;
    use meterflow::wire;
    use serde_json::{json, Value};

    const SUBS: usize = 256;
    // The buffers held at this many channels fit wasm32 only if each is smaller.
    let cfg =
        Config { max_subscriptions: SUBS as u32, max_buffered_bytes: 1 << 20, ..Config::default() };
    let mut engine = Engine::new(cfg.clone()).expect("config");
    let now = 1_764_064_800_000.0;
    // Names of one length, so comparing two is not settled by their lengths.
    let name = |i: usize| format!("meters.{i:04}");
    let decoy = |i: usize| format!("meters{i:05}");
    assert_eq!(name(0).len(), decoy(0).len());

    let post = |engine: &mut Engine, msg: Value| -> Vec<Value> {
        let inbound = wire::decode_message(&msg, engine.config());
        let outs = engine.handle(inbound, now);
        outs.iter().map(|o| serde_json::to_value(wire::encode(o)).expect("json")).collect()
    };
    let socket = |engine: &mut Engine, op: Value| {
        post(engine, json!({"type": "socket", "event": "message", "data": op.to_string()}))
    };
    let channels: Vec<String> = (0..SUBS).map(name).collect();
    // The channel a snapshot fetch names.
    let channel_of = |v: &Value| -> Option<String> {
        let path = v["path"].as_str()?;
        let rest = path.strip_prefix("/snapshot-v2?channel=")?;
        Some(rest.split('&').next()?.to_string())
    };
    let mut outs =
        post(&mut engine, json!({"type": "session", "op": "start", "channels": channels}));
    outs.extend(post(&mut engine, json!({"type": "socket", "event": "open"})));
    let hello = json!({"op": "HELLO", "heartbeat_interval_ms": 60_000, "session_id": "s-1",
        "server_time_ms": now});
    outs.extend(socket(&mut engine, hello));
    outs.extend(socket(&mut engine, json!({"op": "READY", "session_id": "s-1"})));
    // Every channel bootstraps: its snapshot at (1, 5) makes it live.
    let mut answered = 0;
    while let Some(v) = outs.pop() {
        if v["type"] != "fetch" {
            continue;
        }
        let Some(ch) = channel_of(&v) else { continue };
        let body = json!({"channel": &ch, "epoch": 1, "snapshot_seq": 5, "meters": []});
        let rid = v["requestId"].clone();
        outs.extend(post(
            &mut engine,
            json!({"type": "fetched", "requestId": rid, "ok": true, "status": 200,
                "data": body.to_string()}),
        ));
        answered += 1;
    }
    assert_eq!(answered, SUBS, "every channel fetched its snapshot once");
    assert!(engine.session().channels().iter().all(|c| c.position == Some((1, 5)) && !c.paused));

    // The ACK: decoys up to the payload bound, the subscribed channels among
    // them. Channel i % 3 == 0 is behind (seq 9), 1 is at a new epoch, 2 is
    // level.
    let mut sent = String::from("{");
    let mut want = BTreeMap::new();
    let mut i = 0;
    let budget = cfg.max_payload_bytes as usize - 4096;
    while sent.len() + 32 < budget {
        sent.push_str(&format!("\"{}\":[1,9],", decoy(i)));
        if i % 3_000 == 0 && i / 3_000 < SUBS {
            let k = i / 3_000;
            let (e, s, fetch) = match k % 3 {
                0 => (1, 9, Some("since_seq=5")),
                1 => (2, 1, Some("")),
                _ => (1, 5, None),
            };
            sent.push_str(&format!("\"{}\":[{e},{s}],", name(k)));
            if let Some(f) = fetch {
                want.insert(name(k), f);
            }
        }
        i += 1;
    }
    assert!(i / 3_000 >= SUBS, "every channel listed: {i} decoys");
    sent.pop();
    sent.push('}');
    let text = format!("{{\"op\":\"HEARTBEAT_ACK\",\"sent\":{sent}}}");
    assert!(text.len() <= cfg.max_payload_bytes as usize);
    let inbound = wire::decode_socket_text(&text, Arrival::default(), &cfg);
    let outs: Vec<Value> = engine
        .handle(inbound, now)
        .iter()
        .map(|o| serde_json::to_value(wire::encode(o)).expect("json"))
        .collect();
    let mut got = BTreeMap::new();
    for v in &outs {
        assert_ne!(v["type"], "error", "{v}");
        if v["type"] != "fetch" {
            continue;
        }
        let path = v["path"].as_str().unwrap_or("");
        let ch = channel_of(v).filter(|c| channels.contains(c));
        let ch = ch.unwrap_or_else(|| panic!("fetch of no subscribed channel: {path}"));
        let since = if path.contains("since_seq=5") { "since_seq=5" } else { "" };
        assert!(got.insert(ch.clone(), since).is_none(), "{ch} fetched twice");
    }
    assert_eq!(got, want);
}

mod groups_past_the_cap {
    //! A `/groups` body through the engine (a tick's fetch answered) gives the
    //! errors and the map a build of the whole body gives, though the decoder
    //! copies no group past the `maxGroups`-th valid one and the
    //! `maxErrorsPerBatch` after it (`GroupMapBody::uncopied`).
    use super::*;
    use meterflow::core::event::{Outbound, StreamRequest};
    use meterflow::core::groups::GroupMapBody;
    use meterflow::core::Engine;
    use meterflow::wire::{decode_fetched, decode_message, FetchedBody};
    use proptest::prelude::*;

    const T: f64 = 1_764_064_800_000.0;

    /// A group's name: valid, with a character a name may not hold, or too
    /// long; unique by `i` (a repeat refuses the whole body, tested above).
    fn name(i: usize, kind: u8) -> String {
        match kind {
            0 => format!("g{i}"),
            1 => format!("bad name {i}"),
            _ => format!("{}{i}", "x".repeat(64)),
        }
    }

    /// A member: one of eight meters, or a bad id.
    fn member(m: u8) -> String {
        match m {
            0..=7 => format!("m{m}"),
            8 => String::new(),
            _ => "m\u{1}".into(),
        }
    }

    fn text(groups: &[(String, Vec<String>)]) -> String {
        let items: Vec<String> = groups
            .iter()
            .map(|(g, ms)| {
                let ms: Vec<String> =
                    ms.iter().map(|m| serde_json::Value::from(m.as_str()).to_string()).collect();
                format!("{}:[{}]", serde_json::Value::from(g.as_str()), ms.join(","))
            })
            .collect();
        format!(r#"{{"version":3,"groups":{{{}}}}}"#, items.join(","))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases::cases_or(256), ..ProptestConfig::default() })]
        #[test]
        fn the_engine_answers_as_the_whole_body_built(
            spec in proptest::collection::vec(
                (0u8..3, proptest::collection::vec(0u8..10, 0..4)), 0..40),
            max_groups in 1u32..6,
            max_errors in 1u32..6,
            per_meter in 1u32..3,
        ) {
            let cfg = Config {
                max_groups,
                max_errors_per_batch: max_errors,
                max_groups_per_meter: per_meter,
                ..Config::default()
            };
            let whole: Vec<(String, Vec<String>)> = spec
                .iter()
                .enumerate()
                .map(|(i, (kind, ms))| (name(i, *kind), ms.iter().map(|&m| member(m)).collect()))
                .collect();
            let body = text(&whole);
            let oracle = GroupMapBody { version: 3, groups: whole.clone(), uncopied: 0 };
            let (map, errors) = GroupMap::build(&oracle, &cfg);

            let decoded = decode_groups_text(&body, &cfg).map_err(|e| e.message);
            prop_assert!(decoded.is_ok(), "{decoded:?}");
            let decoded = decoded.unwrap_or_default();
            prop_assert_eq!(decoded.groups.len() + decoded.uncopied, whole.len());
            prop_assert_eq!(&decoded.groups[..], &whole[..decoded.groups.len()]);
            prop_assert_eq!(GroupMap::build(&decoded, &cfg), (map, errors.clone()));

            // Through the engine: the tick's `/groups` fetch answered.
            let e = Engine::new(cfg.clone()).map_err(|e| e.message);
            prop_assert!(e.is_ok(), "{e:?}");
            let mut e = e.unwrap_or_default();
            let start = serde_json::json!({"type": "session", "v": 1, "op": "start"});
            e.handle(decode_message(&start, &cfg), T);
            let out = e.handle(Inbound::Tick(Default::default()), T);
            let id = out.iter().find_map(|o| match o {
                Outbound::Stream(StreamRequest::Fetch { request_id, path }) if path == "/groups" => {
                    Some(*request_id)
                }
                _ => None,
            });
            prop_assert!(id.is_some(), "no /groups fetch: {out:?}");
            let input =
                decode_fetched(id.unwrap_or(0), FetchedBody::Text(&body), Arrival::default(), &cfg);
            let shown: Vec<_> = e
                .handle(input, T + 40.0)
                .into_iter()
                .filter_map(|o| if let Outbound::Error(e) = o { Some(e) } else { None })
                .collect();
            prop_assert_eq!(shown, errors);
        }
    }
}

mod heartbeat_ack_in_any_order {
    //! A `HEARTBEAT_ACK`'s `sent` map in any order, with repeats and bad
    //! entries, decodes as a map keeps it: by channel name, the last position
    //! of each, and a body with a bad entry refused naming the first one in
    //! name order. The decoder reads the positions in document order and
    //! sorts the names by an 8-byte prefix first; names here share prefixes
    //! of every length up to past 8 bytes.
    use super::*;
    use meterflow::core::session::ChannelPos;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn channel(stem: u8, n: u8) -> String {
        match stem {
            0 => format!("c{n}"),
            1 => format!("meters.north.{n}"),
            2 => format!("meters.n{n}"),
            3 => format!("bad name {n}"),
            _ => format!("meters.nort{}", "h".repeat(usize::from(n % 4))),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases::cases_or(256), ..ProptestConfig::default() })]
        #[test]
        fn sent_is_read_as_a_map_keeps_it(
            entries in proptest::collection::vec(
                ((0u8..5, 0u8..6), 0u8..8, 0u64..4, 0u64..100), 0..40),
        ) {
            let mut oracle: BTreeMap<String, Option<(u64, u64)>> = BTreeMap::new();
            let mut items = Vec::new();
            for ((stem, n), shape, epoch, seq) in entries {
                let name = channel(stem, n);
                // Mostly a valid `[epoch, seq]`; sometimes not.
                let (text, pos) = match shape {
                    0 => (format!("[{epoch}]"), None),
                    1 => (format!("[{epoch},-1]"), None),
                    2 => (format!("\"{epoch}\""), None),
                    _ => (format!("[{epoch},{seq}]"), Some((epoch, seq))),
                };
                items.push(format!("{}:{text}", serde_json::Value::from(name.as_str())));
                oracle.insert(name, pos);
            }
            let text = format!(r#"{{"op":"HEARTBEAT_ACK","sent":{{{}}}}}"#, items.join(","));
            let first_bad = oracle.iter().find(|(name, pos)| {
                pos.is_none() || name.starts_with("bad")
            });
            let got = decode_socket_text(&text, Arrival::default(), &Config::default());
            match (first_bad, got) {
                (None, Inbound::Stream(SessionInput::Server(ServerOp::HeartbeatAck { sent }))) => {
                    let want: Vec<ChannelPos> = oracle
                        .iter()
                        .filter_map(|(c, p)| p.map(|(epoch, seq)| ChannelPos { channel: c.clone(), epoch, seq }))
                        .collect();
                    prop_assert_eq!(sent, want);
                }
                (Some((name, _)), Inbound::Rejected(e)) => {
                    prop_assert_eq!(e.code, ErrorCode::BadField);
                    prop_assert!(
                        e.message.contains(&format!("sent.{name}:")),
                        "{} does not name {name}", e.message
                    );
                }
                (want, got) => prop_assert!(false, "{want:?}: {got:?}"),
            }
        }
    }
}
