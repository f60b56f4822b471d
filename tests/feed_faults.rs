//! The feed server's faults end to end (`--features feed`, run one at a time):
//! set through `POST /admin/faults` on a server on 127.0.0.1:0, observed by a
//! native WebSocket client. Frames on one socket arrive in order, so a
//! HEARTBEAT_ACK arriving next proves nothing else was sent before it.
#![cfg(feature = "feed")]
#![cfg(not(target_arch = "wasm32"))]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meterflow::feed::{start, FeedConfig, Server};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const START_MS: u64 = 1_764_064_800_000 - 5 * 60_000;

fn config() -> FeedConfig {
    FeedConfig {
        meters: 50,
        seed: 3,
        speed: 300.0,
        start_ms: Some(START_MS),
        epoch: 9,
        ring_frames: 8_192,
        heartbeat_interval_ms: 5_000,
        ..FeedConfig::default()
    }
}

/// One HTTP request over a fresh connection: status and JSON body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, serde_json::from_slice(&buf[split + 4..]).unwrap_or(Value::Null))
}

async fn faults(server: &Server, v: Value) -> Value {
    let (status, body) = http(server.addr, "POST", "/admin/faults", &v.to_string()).await;
    assert_eq!(status, 200, "{body}");
    body
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.expect("send");
}

/// The next message: a JSON value, or the close code (`Err(None)`: cut without one).
async fn next(ws: &mut Ws) -> Result<Value, Option<u16>> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("silent");
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).expect("json")),
            Some(Ok(Message::Close(f))) => return Err(f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            _ => return Err(None),
        }
    }
}

/// Connects and identifies on `totals` with `credit` (from `after` if given).
async fn identify(server: &Server, credit: u64, after: Option<u64>) -> (Ws, Value, String) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/stream", server.addr)).await.expect("ws");
    let hello = next(&mut ws).await.expect("hello");
    let mut offer = json!({ "name": "totals", "credit": credit });
    if let Some(a) = after {
        offer["epoch"] = json!(9);
        offer["snapshot_seq"] = json!(a);
    }
    send(&mut ws, json!({ "op": "IDENTIFY", "channels": [offer] })).await;
    let ready = next(&mut ws).await.expect("ready");
    assert_eq!(ready["op"], "READY");
    let id = ready["session_id"].as_str().expect("id").to_string();
    (ws, hello, id)
}

/// The frames' seqs up to the next HEARTBEAT_ACK, and the ACK's totals position.
async fn frames_until_ack(ws: &mut Ws) -> (Vec<u64>, u64) {
    send(ws, json!({ "op": "HEARTBEAT", "seqs": {} })).await;
    let mut seqs = Vec::new();
    loop {
        let v = next(ws).await.expect("open");
        if v["op"] == "HEARTBEAT_ACK" {
            return (seqs, v["sent"]["totals"][1].as_u64().expect("sent"));
        }
        assert!(v.get("op").is_none(), "{v}");
        seqs.push(v["seq"].as_u64().expect("seq"));
    }
}

async fn wait_head(server: &Server, seq: u64) {
    while server.shared().model().seq() < seq {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_duplicate_overrun_and_reorder_do_what_they_say_within_credit() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let (status, now) = http(server.addr, "GET", "/admin/faults", "").await;
    assert_eq!(
        (status, now["dropPct"].as_f64(), now["reorderWindow"].as_u64()),
        (200, Some(0.0), Some(0))
    );

    // Drop 100%: nothing is sent, the stream moves on, no credit is used.
    faults(&server, json!({ "dropPct": 100 })).await;
    let (mut ws, _, _) = identify(&server, 5, None).await;
    let head = server.shared().model().seq();
    let mut sent = 0;
    for _ in 0..1_000 {
        let (seqs, at) = frames_until_ack(&mut ws).await;
        assert!(seqs.is_empty(), "dropped frames were sent: {seqs:?}");
        sent = at;
        if sent >= head + 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(sent >= head + 20, "the stream did not move past the dropped frames");
    // Drop off: the whole credit of 5 is still there, then nothing more.
    faults(&server, json!({ "dropPct": 0 })).await;
    let mut seqs = Vec::new();
    for _ in 0..1_000 {
        if seqs.len() >= 5 {
            break;
        }
        seqs.extend(frames_until_ack(&mut ws).await.0);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (more, at) = frames_until_ack(&mut ws).await;
    assert!(more.is_empty(), "{more:?}");
    assert!(seqs[0] > sent);
    assert_eq!(seqs, (at - 4..=at).collect::<Vec<_>>());

    // Duplicate 100%: each seq twice, two credits each (a held backlog).
    faults(&server, json!({ "duplicatePct": 100 })).await;
    let head = server.shared().model().seq();
    let (mut ws, _, _) = identify(&server, 6, Some(head - 10)).await;
    let (seqs, at) = frames_until_ack(&mut ws).await;
    assert_eq!(at, head - 7);
    assert_eq!(seqs, vec![at - 2, at - 2, at - 1, at - 1, at, at]);

    // Credit overrun 2: 3 granted, 5 sent, then nothing until a CREDIT.
    faults(&server, json!({ "reset": true, "creditOverrun": 2 })).await;
    let head = server.shared().model().seq();
    wait_head(&server, head + 10).await;
    let (mut ws, _, _) = identify(&server, 3, Some(head)).await;
    let (seqs, _) = frames_until_ack(&mut ws).await;
    assert_eq!(seqs, (head + 1..=head + 5).collect::<Vec<_>>());
    let (seqs, _) = frames_until_ack(&mut ws).await;
    assert!(seqs.is_empty(), "{seqs:?}");

    // Reorder window 4 over a held backlog of 40: all of them, each within 3 places.
    faults(&server, json!({ "reset": true, "reorderWindow": 4 })).await;
    server.set_paused(true);
    let head = server.shared().model().seq();
    let (mut ws, _, _) = identify(&server, 40, Some(head - 40)).await;
    let (seqs, at) = frames_until_ack(&mut ws).await;
    assert_eq!(at, head);
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (head - 39..=head).collect::<Vec<_>>());
    assert_ne!(seqs, sorted, "nothing was reordered");
    for (pos, s) in seqs.iter().enumerate() {
        let rank = (s - (head - 39)) as usize;
        assert!(pos.abs_diff(rank) < 4, "seq {s} sent at {pos}");
    }
    server.shutdown().await.expect("server error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_and_invalid_session_on_demand() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let (mut ws, _, session) = identify(&server, 0, None).await;

    // Resumable: the session survives, RESUME on the same connection works.
    let r = faults(&server, json!({ "invalidSession": { "resumable": true } })).await;
    assert_eq!(r["notified"], 1);
    assert_eq!(next(&mut ws).await, Ok(json!({ "op": "INVALID_SESSION", "resumable": true })));
    send(&mut ws, json!({ "op": "RESUME", "session_id": session, "channels": [] })).await;
    assert_eq!(next(&mut ws).await, Ok(json!({ "op": "RESUMED" })));

    // Not resumable: the session is forgotten; IDENTIFY gets a new one.
    faults(&server, json!({ "invalidSession": { "resumable": false } })).await;
    assert_eq!(next(&mut ws).await, Ok(json!({ "op": "INVALID_SESSION", "resumable": false })));
    let (mut other, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/stream", server.addr)).await.expect("ws");
    next(&mut other).await.expect("hello");
    send(&mut other, json!({ "op": "RESUME", "session_id": session, "channels": [] })).await;
    assert_eq!(next(&mut other).await, Ok(json!({ "op": "INVALID_SESSION", "resumable": false })));
    send(&mut ws, json!({ "op": "IDENTIFY", "channels": [] })).await;
    let ready = next(&mut ws).await.expect("ready");
    assert_eq!(ready["op"], "READY");
    assert_ne!(ready["session_id"], session.as_str());

    // RECONNECT: the op, then a close with 4000 (reconnect and resume).
    faults(&server, json!({ "reconnect": true })).await;
    assert_eq!(next(&mut ws).await, Ok(json!({ "op": "RECONNECT" })));
    assert_eq!(next(&mut ws).await, Err(Some(4000)));
    server.shutdown().await.expect("server error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_skew_delay_and_bad_admin_requests() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    // Bad requests change nothing.
    for body in ["nope", "[1]", r#"{"dropPct":101}"#, r#"{"nope":1}"#, r#"{"invalidSession":true}"#]
    {
        let (status, v) = http(server.addr, "POST", "/admin/faults", body).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some(if body.starts_with('{') { "bad_fault" } else { "bad_json" })),
            "{body}"
        );
    }
    assert_eq!(http(server.addr, "GET", "/admin/faults", "").await.1["dropPct"], 0.0);

    // Disconnect every 200 ms: the connection is cut without a close frame.
    faults(&server, json!({ "disconnectEveryMs": 200 })).await;
    let (mut ws, _, _) = identify(&server, 0, None).await;
    assert_eq!(next(&mut ws).await, Err(None));

    // Clock skew +1 h: HELLO's server time and the stamps move, the truth does not.
    faults(&server, json!({ "reset": true, "clockSkewMs": 3_600_000 })).await;
    let (mut ws, hello, _) = identify(&server, 1, None).await;
    let frame = next(&mut ws).await.expect("frame");
    let truth = http(server.addr, "GET", "/truth", "").await.1;
    let ahead = hello["server_time_ms"].as_u64().unwrap_or(0) as i64
        - truth["serverTime"].as_u64().unwrap_or(0) as i64;
    assert!((3_540_000..=3_600_000).contains(&ahead), "{ahead}");
    let ts = frame["readings"][0]["ts"].as_u64().expect("ts");
    assert!(frame["hlc"]["wallMs"].as_u64().expect("wall") >= ts + 3_600_000);
    let sum: u64 = truth["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["buckets"].as_array().into_iter().flatten())
        .map(|b| {
            (b["total"].as_str().unwrap_or("0").parse::<f64>().unwrap_or(0.0) * 1e3).round() as u64
        })
        .sum();
    assert!(sum > 0);
    assert!(truth["asOf"]["wallMs"].as_u64() >= Some(ts + 3_600_000));

    // REST delay, random so answers overtake each other: still right answers.
    faults(&server, json!({ "reset": true, "restDelayMs": 30, "restOutOfOrder": true })).await;
    let id = server.shared().meters[0].id.clone();
    let path = format!("/meters/{id}");
    let answers =
        futures_util::future::join_all((0..8).map(|_| http(server.addr, "GET", &path, ""))).await;
    assert!(answers.iter().all(|(s, v)| *s == 200 && v["meter"] == id.as_str()));
    server.shutdown().await.expect("server error");
}

/// `pause` stops simulated time: while it stands still no reading is made and
/// `serverTime` does not move (so `/truth` can be compared with a page at one
/// instant); restarted, time goes on from where it stopped, not from where the
/// raw clock is; `reset` leaves it; a bad value changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_simulated_time_and_restarts_it_where_it_stopped() {
    let server = start(config(), "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let truth = || async { http(server.addr, "GET", "/truth", "").await.1 };
    let (status, v) = http(server.addr, "POST", "/admin/faults", r#"{"pause":1}"#).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("bad_fault")));
    assert_eq!(truth().await["paused"], false);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(faults(&server, json!({ "pause": true })).await["paused"], true);
    let a = truth().await;
    // 300 real ms at 300x: 90 simulated seconds stand still.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(faults(&server, json!({ "reset": true })).await["paused"], true);
    let b = truth().await;
    assert_eq!(a["paused"], true);
    assert_eq!(a["serverTime"], b["serverTime"]);
    assert_eq!(a["readings"], b["readings"]);
    assert_eq!(a["asOf"], b["asOf"]);
    let stopped = a["serverTime"].as_u64().expect("serverTime");
    assert!(stopped > START_MS + 30_000, "{a}");
    let (status, clock) = http(server.addr, "GET", "/clock", "").await;
    assert_eq!((status, clock["serverTime"].as_u64()), (200, Some(stopped)));

    assert_eq!(faults(&server, json!({ "pause": false })).await["paused"], false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = truth().await;
    let now = c["serverTime"].as_u64().expect("serverTime");
    // Goes on from where it stopped: 100 real ms is 30 simulated seconds, and
    // the 90 s it stood still (plus the requests' time) are skipped.
    assert!(now > stopped && now < stopped + 75_000, "stopped {stopped}, now {now}");
    assert!(c["readings"].as_u64() > b["readings"].as_u64(), "{c}");
    server.shutdown().await.expect("server error");
}
