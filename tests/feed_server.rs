//! The feed server end to end (`--features feed`): started in-process on
//! 127.0.0.1:0, a native WebSocket client does HELLO/IDENTIFY, takes live
//! `totals` frames for a few seconds of accelerated time (one client in JSON,
//! one in binary kind 2) within its credit, fetches a catch-up over HTTP, and
//! feeds everything through `meterflow::wire` into a `core::Engine` running on
//! the server's clock. Once a catch-up covering the last frame is applied, the
//! engine's totals equal `/truth` exactly and are complete.
#![cfg(feature = "feed")]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meterflow::core::config::Config;
use meterflow::core::event::{Inbound, Outbound, Query};
use meterflow::core::Engine;
use meterflow::feed::model::HOUR_MS;
use meterflow::feed::{start, FeedConfig, Server};
use meterflow::wire::{decode_binary_at, decode_text, Arrival, Envelope};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Seconds of real time the clients stream for (× `SPEED` simulated).
const STREAM_FOR: Duration = Duration::from_millis(2_000);
const SPEED: f64 = 300.0;
/// Simulated start: 5 minutes before an hour, so the run crosses into the next.
const START_MS: u64 = 1_764_064_800_000 - 5 * 60_000;

/// The engine's config: at `SPEED`× a few ms of real network and scheduling
/// jitter are seconds of simulated time, so the clock allowance is widened
/// accordingly (a dashboard against an accelerated feed needs the same).
fn engine_config() -> Config {
    Config { max_offset_ms: 60_000.0, ..Config::default() }
}

fn config() -> FeedConfig {
    FeedConfig {
        meters: 300,
        seed: 7,
        speed: SPEED,
        start_ms: Some(START_MS),
        epoch: 9,
        ring_frames: 8_192,
        // Long: on a loaded machine (2 cores, many builds) a test process can
        // stall for seconds, and a 4 s silence deadline closed a live client
        // with 4009 (seen once in ~10 runs). The 4009 test sets its own.
        heartbeat_interval_ms: 10_000,
        ..FeedConfig::default()
    }
}

/// `GET path` over a fresh connection: status, headers (lower-case names), body.
async fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    assert!(!headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")));
    (status, headers, buf[split + 4..].to_vec())
}

fn header(h: &[(String, String)], name: &str) -> Option<u64> {
    h.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse().ok())
}

/// What one client saw.
struct Client {
    engine: Engine,
    frames: u64,
    last_seq: u64,
    last_stamp: (u64, u32),
    acks: u64,
}

async fn stream(server: &Server, binary: bool) -> Client {
    let shared = server.shared().clone();
    let url = format!("ws://{}/stream{}", server.addr, if binary { "?format=binary" } else { "" });
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws connect");
    let hello: Value = match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).expect("HELLO json"),
        other => panic!("expected HELLO, got {other:?}"),
    };
    assert_eq!(hello["op"], "HELLO");
    assert_eq!(hello["heartbeat_interval_ms"], 10_000);
    let session = hello["session_id"].as_str().expect("session id").to_string();
    let credit = 64u64;
    let identify =
        json!({ "op": "IDENTIFY", "channels": [ { "name": "totals", "credit": credit } ] });
    ws.send(Message::Text(identify.to_string().into())).await.expect("send");
    let ready: Value = match ws.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).expect("READY json"),
        other => panic!("expected READY, got {other:?}"),
    };
    assert_eq!(ready, json!({ "op": "READY", "session_id": session }));

    let cfg = engine_config();
    let mut c = Client {
        engine: Engine::new(cfg.clone()).expect("engine"),
        frames: 0,
        last_seq: 0,
        last_stamp: (0, 0),
        acks: 0,
    };
    let (mut outstanding, mut unreturned) = (credit, 0u64);
    let real_start = tokio::time::Instant::now();
    let mut next_beat = real_start;
    let mut paused_head = None;
    let mut silent = 0u32;
    loop {
        if paused_head.is_none() && real_start.elapsed() >= STREAM_FOR {
            server.set_paused(true);
            paused_head = Some(shared.model().seq());
        }
        if paused_head.is_some_and(|h| c.last_seq >= h && h > 0) {
            break;
        }
        if tokio::time::Instant::now() >= next_beat {
            let beat = json!({ "op": "HEARTBEAT", "seqs": { "totals": [9, c.last_seq] } });
            ws.send(Message::Text(beat.to_string().into())).await.expect("heartbeat");
            next_beat += Duration::from_millis(300);
        }
        // Wait in short steps so heartbeats keep going while the stream is
        // quiet (a loaded machine can hold a frame back for seconds); give up
        // only after a long silence, saying where each side stood.
        let msg = match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            Ok(m) => m.expect("stream ended").expect("ws error"),
            Err(_) => {
                silent += 1;
                assert!(
                    silent < 30,
                    "the stream went silent for 60 s: client at seq {}, server head {}, paused at {:?}",
                    c.last_seq,
                    shared.model().seq(),
                    paused_head
                );
                continue;
            }
        };
        silent = 0;
        let now = shared.clock.now_ms() as f64;
        let arrival = Arrival { sent_at_ms: None, received_at_ms: Some(now) };
        let inbound = match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                if let Some(op) = v.get("op") {
                    assert_eq!(op, "HEARTBEAT_ACK", "{v}");
                    let sent = &v["sent"]["totals"];
                    assert_eq!(sent[0], 9);
                    assert!(sent[1].as_u64().is_some_and(|s| s >= c.last_seq));
                    c.acks += 1;
                    continue;
                }
                assert!(!binary, "a JSON frame on a binary connection");
                decode_text(Envelope::Live, &t, arrival, &cfg)
            }
            Message::Binary(b) => {
                assert!(binary, "a binary frame on a JSON connection");
                decode_binary_at(Envelope::Live, &b, arrival, &cfg)
            }
            other => panic!("unexpected message {other:?}"),
        };
        let Inbound::Live(f) = &inbound else { panic!("not a live frame: {inbound:?}") };
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!((f.channel.as_str(), f.epoch), ("totals", 9));
        assert!(c.last_seq == 0 || f.seq == c.last_seq + 1, "gap: {} after {}", f.seq, c.last_seq);
        c.last_seq = f.seq;
        c.last_stamp = (f.stamp.wall_ms, f.stamp.counter);
        c.frames += 1;
        outstanding -= 1;
        unreturned += 1;
        for out in c.engine.handle(inbound, now) {
            if let Outbound::Error(e) = out {
                panic!("engine error on a live frame: {e:?}");
            }
        }
        // Credit back in quarters of the window, as the session client does.
        if unreturned >= credit / 4 {
            let msg = json!({ "op": "CREDIT", "credit": { "totals": unreturned } });
            ws.send(Message::Text(msg.to_string().into())).await.expect("credit");
            outstanding += unreturned;
            unreturned = 0;
        }
        assert!(outstanding <= credit, "the server sent past the credit");
    }
    c
}

/// Fetches a catch-up from the engine's oldest kept hour, applies it, and checks
/// the engine's totals against `/truth`.
async fn settle(server: &Server, c: &mut Client, binary: bool) {
    let cfg = engine_config();
    let now = server.shared().clock.now_ms() as f64;
    let from = (now as u64 / HOUR_MS - u64::from(cfg.history_hours)) * HOUR_MS;
    let fmt = if binary { "&format=binary" } else { "" };
    let (status, headers, body) = get(server.addr, &format!("/catchup?from={from}{fmt}")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&headers, "x-meterflow-snapshot-seq"), Some(c.last_seq));
    assert_eq!(header(&headers, "x-meterflow-epoch"), Some(9));
    let arrival = Arrival { sent_at_ms: Some(now), received_at_ms: Some(now) };
    let inbound = if binary {
        decode_binary_at(Envelope::Catchup, &body, arrival, &cfg)
    } else {
        let text = std::str::from_utf8(&body).expect("utf-8");
        let v: Value = serde_json::from_str(text).expect("json");
        assert_eq!(v["snapshot_seq"], c.last_seq);
        decode_text(Envelope::Catchup, text, arrival, &cfg)
    };
    let Inbound::Catchup(cu) = &inbound else { panic!("not a catch-up: {inbound:?}") };
    assert!(cu.errors.is_empty(), "{:?}", cu.errors);
    // The closed asOf is the last frame's stamp: everything streamed is covered.
    assert_eq!((cu.as_of.wall_ms, cu.as_of.counter), c.last_stamp);
    for out in c.engine.handle(inbound, now) {
        if let Outbound::Error(e) = out {
            panic!("engine error on the catch-up: {e:?}");
        }
    }
    let (status, _, truth) = get(server.addr, "/truth").await;
    assert_eq!(status, 200);
    let truth: Value = serde_json::from_slice(&truth).expect("truth json");
    assert_eq!(truth["channels"]["totals"]["seq"], c.last_seq);
    let totals = c
        .engine
        .handle(Inbound::Query(Query::Totals), now)
        .into_iter()
        .find_map(|o| if let Outbound::Totals(t) = o { Some(t) } else { None })
        .expect("a totals event");
    assert!(
        !totals.incomplete,
        "totals still incomplete after a covering catch-up: {:?}",
        totals.counters
    );
    let mut compared = 0;
    for r in truth["resources"].as_array().expect("resources") {
        let name = r["resource"].as_str().expect("name");
        let mine = totals.resources.iter().find(|x| x.resource == name).expect("resource");
        for b in r["buckets"].as_array().expect("buckets") {
            let hour = b["hour"].as_u64().expect("hour") as f64;
            let want =
                meterflow::core::decimal::Decimal::parse(b["total"].as_str().expect("total"))
                    .and_then(|d| d.to_units(3).ok())
                    .expect("exact total");
            let got = mine.buckets.iter().find(|x| x.hour_ms == hour).map(|x| x.total);
            assert_eq!(got, Some(want), "{name} at hour {hour}");
            compared += 1;
        }
        // Hours the truth does not list total 0.
        let listed: Vec<f64> = r["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["hour"].as_f64())
            .collect();
        assert!(mine.buckets.iter().all(|x| listed.contains(&x.hour_ms) || x.total == 0));
    }
    assert!(compared >= 6, "the run should cover two hours of 3 resources: {compared}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_frames_and_a_catchup_reach_the_truth_exactly() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let (mut json_client, mut bin_client) =
        tokio::join!(stream(&server, false), stream(&server, true));
    assert!(
        json_client.frames > 100 && bin_client.frames > 100,
        "{} {}",
        json_client.frames,
        bin_client.frames
    );
    assert!(json_client.acks > 0 && bin_client.acks > 0);
    // Both saw every frame up to the paused head.
    assert_eq!(json_client.last_seq, bin_client.last_seq);
    settle(&server, &mut json_client, false).await;
    settle(&server, &mut bin_client, true).await;
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown hangs")
        .expect("server error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_from_another_origin_are_refused_and_the_own_origin_is_not() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let url = format!("ws://{}/stream", server.addr);
    let mut req = url.clone().into_client_request().expect("request");
    req.headers_mut().insert("origin", "http://evil.example".parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a foreign origin was not refused: {:?}", other.map(|_| ())),
    }
    let mut req = url.into_client_request().expect("request");
    let own = format!("http://{}", server.addr);
    req.headers_mut().insert("origin", own.parse().expect("header"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("own origin");
    assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));
    // Shutting down closes the open socket with 1001.
    let stop = tokio::spawn(server.shutdown());
    let closed = loop {
        match ws.next().await {
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(closed, Some(1001));
    stop.await.expect("join").expect("server error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_endpoints_answer_and_refuse_what_they_cannot_serve() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let id = server.shared().meters[0].id.clone();
    let (status, _, body) = get(server.addr, &format!("/meters/{id}")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["meter"], id.as_str());
    let groups = get_json(server.addr, "/groups").await;
    let group = v["group"].as_str().expect("group");
    assert!(groups["groups"][group].as_array().expect("listed").contains(&json!(id)));
    assert_eq!(get(server.addr, "/meters/nope").await.0, 404);
    // The simulated clock the page reads to widen its clock allowances.
    let clock = get_json(server.addr, "/clock").await;
    assert_eq!(clock["speed"].as_f64(), Some(SPEED));
    assert_eq!(clock["start"].as_u64(), Some(START_MS));
    let now = clock["serverTime"].as_u64().expect("serverTime");
    assert!(now >= START_MS && now <= server.shared().clock.now_ms(), "{now}");
    assert_eq!(get(server.addr, "/catchup").await.0, 400);
    assert_eq!(get(server.addr, "/catchup?from=0").await.0, 400, "more than 366 days");
    assert_eq!(get(server.addr, &format!("/catchup?from={START_MS}&format=xml")).await.0, 400);
    assert_eq!(get(server.addr, "/snapshot-v2?channel=meters.nowhere").await.0, 404);
    assert_eq!(get(server.addr, "/snapshot-v2").await.0, 400);
    assert_eq!(get(server.addr, "/snapshot-v2?channel=notices&since_seq=x").await.0, 400);
    assert_eq!(get(server.addr, "/snapshot-v2?channel=meters.north").await.0, 200);
    assert_eq!(get(server.addr, "/snapshot-v2?channel=notices").await.0, 200);
    assert_eq!(get(server.addr, "/snapshot-v2?channel=totals").await.0, 200);
    assert_eq!(get(server.addr, "/../Cargo.toml").await.0, 404);
    let (_, _, truth) = get(server.addr, "/truth").await;
    let truth: Value = serde_json::from_slice(&truth).expect("json");
    let kinds: Vec<&str> = truth["incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["spike", "burst_pipe", "stuck", "drift", "dropout", "leak", "stuck_zero"]);
    server.shutdown().await.expect("server error");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.expect("send");
}

/// The next text op (frames skipped), or the close code.
async fn next_op(ws: &mut Ws) -> Result<Value, Option<u16>> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("silent");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v.get("op").is_some() {
                    return Ok(v);
                }
            }
            Some(Ok(Message::Close(f))) => return Err(f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            _ => return Err(None),
        }
    }
}

/// The next live frame's seq.
async fn next_seq(ws: &mut Ws) -> u64 {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("silent");
        if let Some(Ok(Message::Text(t))) = msg {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v.get("op").is_none() {
                return v["seq"].as_u64().expect("seq");
            }
        } else {
            panic!("no frame: {msg:?}");
        }
    }
}

async fn connect(server: &Server) -> (Ws, String) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/stream", server.addr)).await.expect("ws");
    let hello = next_op(&mut ws).await.expect("hello");
    let id = hello["session_id"].as_str().expect("id").to_string();
    (ws, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_continues_after_last_seq_and_bad_ops_close_with_their_codes() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    // A session that takes 3 frames and goes away.
    let (mut ws, session) = connect(&server).await;
    send(&mut ws, json!({ "op": "IDENTIFY", "channels": [ { "name": "totals", "credit": 3 } ] }))
        .await;
    assert_eq!(next_op(&mut ws).await.expect("ready")["op"], "READY");
    let first = next_seq(&mut ws).await;
    assert_eq!(next_seq(&mut ws).await, first + 1);
    let last = next_seq(&mut ws).await;
    assert_eq!(last, first + 2);
    drop(ws);
    // Resumed, it continues right after `last_seq`.
    let (mut ws, _) = connect(&server).await;
    send(
        &mut ws,
        json!({ "op": "RESUME", "session_id": session,
        "channels": [ { "name": "totals", "credit": 2, "epoch": 9, "last_seq": last } ] }),
    )
    .await;
    assert_eq!(next_op(&mut ws).await.expect("resumed"), json!({ "op": "RESUMED" }));
    assert_eq!(next_seq(&mut ws).await, last + 1);
    // Credit exhausted: the ACK says how far the stream went.
    assert_eq!(next_seq(&mut ws).await, last + 2);
    send(&mut ws, json!({ "op": "HEARTBEAT", "seqs": { "totals": [9, last + 2] } })).await;
    assert_eq!(next_op(&mut ws).await.expect("ack")["sent"]["totals"], json!([9, last + 2]));
    // IDENTIFY on an identified connection: 4005.
    send(&mut ws, json!({ "op": "IDENTIFY", "channels": [] })).await;
    assert_eq!(next_op(&mut ws).await, Err(Some(4005)));

    // An unknown session cannot resume.
    let (mut ws, _) = connect(&server).await;
    send(&mut ws, json!({ "op": "RESUME", "session_id": "s-nope", "channels": [] })).await;
    assert_eq!(
        next_op(&mut ws).await.expect("invalid"),
        json!({ "op": "INVALID_SESSION", "resumable": false })
    );
    // An unknown channel is fatal (4010).
    send(&mut ws, json!({ "op": "IDENTIFY", "channels": [ { "name": "meters.x", "credit": 1 } ] }))
        .await;
    assert_eq!(next_op(&mut ws).await, Err(Some(4010)));
    // An unknown op: 4001; no op: 4002; CREDIT before IDENTIFY: 4003.
    for (msg, code) in [
        (json!({ "op": "DANCE" }), 4001),
        (json!({ "hello": 1 }), 4002),
        (json!({ "op": "CREDIT", "credit": { "totals": 1 } }), 4003),
    ] {
        let (mut ws, _) = connect(&server).await;
        send(&mut ws, msg).await;
        assert_eq!(next_op(&mut ws).await, Err(Some(code)));
    }
    server.shutdown().await.expect("server error");
}

/// Catch-up (= `totals` snapshot) serve time at 5,000 meters over HTTP,
/// connection included; printed, not asserted (the target is ≤ 20 ms p99:
/// `cargo test --release --features feed --test feed_server -- --nocapture serve_time`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchup_serve_time_at_5000_meters() {
    // Slow enough that the writer (10,000 readings per simulated second × 20)
    // does not starve the tests running beside this one.
    let cfg = FeedConfig { meters: 5_000, speed: 20.0, ..config() };
    let server = start(cfg, "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from = START_MS - HOUR_MS;
    for format in ["", "&format=binary"] {
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = std::time::Instant::now();
            let (status, _, body) =
                get(server.addr, &format!("/catchup?from={from}{format}")).await;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, 200);
            assert!(!body.is_empty());
        }
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!("catch-up{format} at 5000 meters: p50 {:.3} ms, p99 {:.3} ms", p(0.5), p(0.99));
    }
    server.shutdown().await.expect("server error");
}

/// `meters.<group>` snapshot-v2 serve time with all 5,000 meters in one group
/// (the worst case) over HTTP, connection included, full and `since_seq`;
/// printed, not asserted (the target is ≤ 20 ms p99: `cargo test --features
/// feed --test feed_server -- --nocapture --test-threads=1 snapshot_serve_time`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_snapshot_serve_time_at_5000_meters() {
    let cfg = FeedConfig { meters: 5_000, speed: 20.0, groups: 1, ..config() };
    let server = start(cfg, "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seq = server.shared().channels().stream("meters.north").map_or(0, |s| s.seq());
    assert!(seq > 2);
    for query in ["", "&epoch=9&since_seq=1"] {
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = std::time::Instant::now();
            let (status, _, body) =
                get(server.addr, &format!("/snapshot-v2?channel=meters.north{query}")).await;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(status, 200);
            assert!(body.len() > 5_000 * 60);
        }
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "snapshot-v2 meters.north{query} at 5000 meters: p50 {:.3} ms, p99 {:.3} ms",
            p(0.5),
            p(0.99)
        );
    }
    server.shutdown().await.expect("server error");
}

/// A backlog longer than one send batch drains without waiting for the next
/// tick: with the writer paused, every held frame after `snapshot_seq` arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_beyond_one_batch_drains_without_new_ticks() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    while server.shared().model().seq() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.set_paused(true);
    let head = server.shared().model().seq();
    let (mut ws, _) = connect(&server).await;
    send(
        &mut ws,
        json!({ "op": "IDENTIFY",
        "channels": [ { "name": "totals", "credit": 10_000, "epoch": 9, "snapshot_seq": 1 } ] }),
    )
    .await;
    assert_eq!(next_op(&mut ws).await.expect("ready")["op"], "READY");
    for want in 2..=head {
        assert_eq!(next_seq(&mut ws).await, want);
    }
    server.shutdown().await.expect("server error");
}

/// A client silent for two heartbeat intervals is closed with 4009.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_with_4009() {
    let cfg = FeedConfig { heartbeat_interval_ms: 100, ..config() };
    let server = start(cfg, "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let (mut ws, _) = connect(&server).await;
    send(&mut ws, json!({ "op": "IDENTIFY", "channels": [ { "name": "totals", "credit": 1 } ] }))
        .await;
    assert_eq!(next_op(&mut ws).await.expect("ready")["op"], "READY");
    assert_eq!(next_op(&mut ws).await, Err(Some(4009)));
    server.shutdown().await.expect("server error");
}

/// A client's entity state of one channel: entities by id.
type State = std::collections::BTreeMap<String, Value>;

/// Applies a snapshot body (`meters` or `notices` list, `remove` in a mini one).
fn apply_snapshot(state: &mut State, body: &Value, list: &str, key: &str) {
    if body.get("since_seq").is_none() {
        state.clear();
    }
    for id in body["remove"].as_array().into_iter().flatten() {
        state.remove(id.as_str().expect("id"));
    }
    for e in body[list].as_array().expect("list") {
        state.insert(e[key].as_str().expect("id").to_string(), e.clone());
    }
}

fn apply_patch(state: &mut State, patch: &Value, key: &str) {
    for id in patch["remove"].as_array().expect("remove") {
        state.remove(id.as_str().expect("id"));
    }
    for e in patch["upsert"].as_array().expect("upsert") {
        state.insert(e[key].as_str().expect("id").to_string(), e.clone());
    }
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, _, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}");
    serde_json::from_slice(&body).expect("json")
}

/// `meters.<group>` and `notices` over a real WebSocket: snapshot, then the
/// deltas after it in order (credit replenished as they arrive); at the same
/// `seq` the client's entities equal `/snapshot-v2`, and the first snapshot
/// plus a `since_seq` mini-snapshot equals it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_and_notices_channels_reach_the_served_snapshot_exactly() {
    let cfg = FeedConfig { delta_ring: 8_192, ..config() };
    let server = start(cfg, "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let groups = get_json(server.addr, "/groups").await;
    let north: Vec<&str> = groups["groups"]["north"]
        .as_array()
        .expect("north")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let all: usize = groups["groups"]
        .as_object()
        .expect("groups")
        .values()
        .map(|g| g.as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!((all, groups["groups"].as_object().map(|g| g.len())), (300, Some(8)));
    assert!(!north.is_empty());

    let (mut ws, _) = connect(&server).await;
    let channels = [("meters.north", "meters", "meter"), ("notices", "notices", "id")];
    let credit = 64u64;
    send(
        &mut ws,
        json!({ "op": "IDENTIFY", "channels": channels.iter().map(|c| json!({ "name": c.0, "credit": credit })).collect::<Vec<_>>() }),
    )
    .await;
    assert_eq!(next_op(&mut ws).await.expect("ready")["op"], "READY");
    let mut state = vec![State::new(); 2];
    let mut first = vec![State::new(); 2];
    let mut last = vec![0u64; 2];
    let mut first_seq = [0u64; 2];
    for (i, (name, list, key)) in channels.iter().enumerate() {
        let body = get_json(server.addr, &format!("/snapshot-v2?channel={name}")).await;
        assert_eq!((body["channel"].as_str(), body["epoch"].as_u64()), (Some(*name), Some(9)));
        apply_snapshot(&mut state[i], &body, list, key);
        first[i] = state[i].clone();
        last[i] = body["snapshot_seq"].as_u64().expect("seq");
        first_seq[i] = last[i];
    }
    assert!(state[0].keys().all(|m| north.contains(&m.as_str())));
    let real_start = tokio::time::Instant::now();
    let (mut paused, mut unreturned, mut applied) =
        (None::<Vec<u64>>, vec![0u64; 2], vec![0u64; 2]);
    loop {
        if paused.is_none() && real_start.elapsed() >= STREAM_FOR {
            server.set_paused(true);
            let c = server.shared().channels();
            paused =
                Some(channels.iter().map(|ch| c.stream(ch.0).map_or(0, |s| s.seq())).collect());
        }
        if paused.as_ref().is_some_and(|h| h.iter().zip(&last).all(|(h, l)| l >= h)) {
            break;
        }
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the stream went silent")
            .expect("ended")
            .expect("ws error");
        let Message::Text(t) = msg else { panic!("not text: {msg:?}") };
        let v: Value = serde_json::from_str(&t).expect("json");
        assert_eq!(v["op"], "DELTA", "{v}");
        let i = channels.iter().position(|c| v["channel"] == c.0).expect("a subscribed channel");
        let seq = v["seq"].as_u64().expect("seq");
        unreturned[i] += 1;
        if unreturned[i] >= credit / 2 {
            let grant = json!({ "op": "CREDIT", "credit": { channels[i].0: unreturned[i] } });
            send(&mut ws, grant).await;
            unreturned[i] = 0;
        }
        if seq <= last[i] {
            continue;
        }
        assert_eq!(seq, last[i] + 1, "a gap on {}", channels[i].0);
        apply_patch(&mut state[i], &v["patch"], channels[i].2);
        last[i] = seq;
        applied[i] += 1;
    }
    assert!(applied[0] > 100, "{applied:?}");
    assert!(applied[1] >= 1, "no notice went by: {applied:?}");
    send(&mut ws, json!({ "op": "HEARTBEAT", "seqs": {} })).await;
    let ack = next_op(&mut ws).await.expect("ack");
    assert_eq!(ack["sent"]["meters.north"], json!([9, last[0]]));
    assert_eq!(ack["sent"]["notices"], json!([9, last[1]]));
    for (i, (name, list, key)) in channels.iter().enumerate() {
        let body = get_json(server.addr, &format!("/snapshot-v2?channel={name}")).await;
        assert_eq!(body["snapshot_seq"].as_u64(), Some(last[i]));
        let mut full = State::new();
        apply_snapshot(&mut full, &body, list, key);
        assert_eq!(state[i], full, "{name}");
        let path = format!("/snapshot-v2?channel={name}&epoch=9&since_seq={}", first_seq[i]);
        let mini = get_json(server.addr, &path).await;
        assert_eq!(mini["since_seq"].as_u64(), Some(first_seq[i]));
        apply_snapshot(&mut first[i], &mini, list, key);
        assert_eq!(first[i], full, "{name} by mini-snapshot");
    }
    // Every north meter read and counts match the totals' truth of meters.
    let shared = server.shared().clone();
    for (id, e) in &state[0] {
        let (_, _, m) = shared.model().meter(id).expect("meter");
        assert_eq!(e["count"].as_u64(), Some(m.readings), "{id}");
        assert_eq!(
            e["total"].as_str(),
            Some(meterflow::core::decimal::format_units(m.total_units, 3).as_str())
        );
    }
    server.shutdown().await.expect("server error");
}

/// The `totals` mini-snapshot `since_seq = N`: the catch-up from the hour of the
/// oldest frame after `N`, carrying `since_seq`; a position no longer held (or
/// another epoch) gets the full one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totals_mini_snapshot_starts_at_the_hour_of_the_frame_after_since_seq() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    // Run past the hour (5 simulated minutes in), then hold still.
    while server.shared().model().as_of().wall_ms < START_MS + 6 * 60_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.set_paused(true);
    let seq = server.shared().model().seq();
    let full = get_json(server.addr, "/snapshot-v2?channel=totals").await;
    assert!(full.get("since_seq").is_none());
    assert_eq!(full["from"].as_u64(), Some(START_MS / HOUR_MS * HOUR_MS));
    let mini = get_json(
        server.addr,
        &format!("/snapshot-v2?channel=totals&epoch=9&since_seq={}", seq - 3),
    )
    .await;
    assert_eq!(mini["since_seq"].as_u64(), Some(seq - 3));
    assert_eq!(mini["snapshot_seq"].as_u64(), Some(seq));
    let hour = START_MS / HOUR_MS * HOUR_MS + HOUR_MS;
    assert_eq!(mini["from"].as_u64(), Some(hour));
    assert!(mini["buckets"].as_array().expect("buckets").iter().all(|b| b["hour"] == hour));
    // Before the hour: from the first hour.
    let early = get_json(server.addr, "/snapshot-v2?channel=totals&epoch=9&since_seq=1").await;
    assert_eq!(early["from"], full["from"]);
    assert_eq!(early["buckets"], full["buckets"]);
    // Another epoch: the full one.
    let other = get_json(server.addr, "/snapshot-v2?channel=totals&epoch=8&since_seq=1").await;
    assert!(other.get("since_seq").is_none());
    server.shutdown().await.expect("server error");
}

/// A full `meters.<group>` snapshot is encoded once per channel position: the
/// second request at the same position is served the kept body (`hit`), byte
/// for byte what a fresh encode of the model gives; once the channel has moved
/// on, the kept body is never served again (`miss`, the new `snapshot_seq`).
/// A `since_seq` mini-snapshot is never kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_snapshots_are_kept_per_channel_position_and_never_served_stale() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let channel = "meters.north";
    let seq_now = || server.shared().channels().stream(channel).map_or(0, |s| s.seq());
    while seq_now() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fresh = || {
        let c = server.shared().channels();
        c.snapshot(channel, None).map(|s| s.json(c.names())).unwrap_or_default()
    };
    let cache = |h: &[(String, String)]| {
        h.iter().find(|(k, _)| k == "x-meterflow-snapshot-cache").map(|(_, v)| v.clone())
    };
    let path = format!("/snapshot-v2?channel={channel}");
    let mut last_seq = 0;
    for _ in 0..2 {
        server.set_paused(true);
        // A wake-up of the writer in progress finishes its ticks first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seq = seq_now();
        assert!(seq > last_seq, "the channel moved on: {seq} after {last_seq}");
        let (status, h1, b1) = get(server.addr, &path).await;
        assert_eq!(status, 200);
        assert_eq!(cache(&h1).as_deref(), Some("miss"), "a new position is encoded afresh");
        let (_, h2, b2) = get(server.addr, &path).await;
        assert_eq!(cache(&h2).as_deref(), Some("hit"));
        assert_eq!(header(&h2, "x-meterflow-snapshot-seq"), Some(seq));
        assert_eq!(b1, b2);
        assert_eq!(String::from_utf8_lossy(&b2), fresh());
        let body: Value = serde_json::from_slice(&b2).expect("json");
        assert_eq!(body["snapshot_seq"], seq);
        let (_, h3, _) = get(server.addr, &format!("{path}&epoch=9&since_seq=1")).await;
        assert_eq!(cache(&h3).as_deref(), Some("miss"), "a mini-snapshot is not kept");
        last_seq = seq;
        server.set_paused(false);
        while seq_now() <= seq {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    server.shutdown().await.expect("server error");
}
