//! The engine's stream v2 session against the real feed server (`--features
//! feed`): the server runs in-process on 127.0.0.1:0; this test is the page
//! transport. It executes every `connect`/`send`/`close`/`fetch` the engine
//! posts over a real WebSocket and real HTTP, and posts back what arrives as
//! page messages (`socket`, `fetched`, `rendered`) through
//! `wire::decode_message`, on the server's accelerated clock. Midway the
//! socket drops (close 1006) and the session resumes. At the end the server
//! pauses; once the session has applied the last frame the engine's totals
//! equal `/truth` exactly.
//!
//! Faults injected by the server's admin endpoint are not used here: this
//! branch's server has none yet; the socket drop is the fault exercised.
#![cfg(feature = "feed")]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{Inbound, Outbound, Query};
use meterflow::core::Engine;
use meterflow::feed::{start, FeedConfig};
use meterflow::wire;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SPEED: f64 = 300.0;
const START_MS: u64 = 1_764_064_800_000 - 5 * 60_000;

#[path = "common/feed_page.rs"]
mod feed_page;
use feed_page::{http, Ws};

struct Page {
    engine: Engine,
    shared: std::sync::Arc<meterflow::feed::Shared>,
    addr: SocketAddr,
    ws: Option<Ws>,
    fetches: Vec<(u64, String)>,
    connects: u32,
    errors: Vec<String>,
}

impl Page {
    async fn run(&mut self, outs: Vec<Outbound>) {
        let mut queue = outs;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for o in queue {
                let v = serde_json::to_value(wire::encode(&o)).expect("encode");
                match v["type"].as_str().unwrap_or("") {
                    "connect" => {
                        let url = format!("ws://{}/stream", self.addr);
                        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
                        self.ws = Some(ws);
                        self.connects += 1;
                    }
                    "send" => {
                        if let Some(ws) = &mut self.ws {
                            let data = v["data"].as_str().unwrap_or("").to_string();
                            let _ = ws.send(Message::Text(data.into())).await;
                        }
                    }
                    "close" => {
                        if let Some(mut ws) = self.ws.take() {
                            let _ = ws.close(None).await;
                        }
                    }
                    "fetch" if v.get("requestId").is_some() => {
                        let rid = v["requestId"].as_u64().unwrap_or(0);
                        self.fetches.push((rid, v["path"].as_str().unwrap_or("").to_string()));
                    }
                    "error" => self.errors.push(v.to_string()),
                    _ => {}
                }
            }
            // Fetches answered in order, each posted back as a `fetched` message.
            for (rid, path) in std::mem::take(&mut self.fetches) {
                let (status, body) = http(self.addr, "GET", &path, "").await;
                let msg = json!({"type": "fetched", "requestId": rid, "ok": status == 200,
                    "status": status, "data": body});
                next.extend(self.post(msg));
            }
            queue = next;
        }
    }

    fn post(&mut self, msg: Value) -> Vec<Outbound> {
        let now = self.now();
        let inbound = wire::decode_message(&msg, self.engine.config());
        self.engine.handle(inbound, now)
    }

    /// Engine time is the server's (accelerated) clock.
    fn now(&self) -> f64 {
        self.shared.clock.now_ms() as f64
    }

    fn handle(&mut self, inbound: Inbound) -> Vec<Outbound> {
        let now = self.now();
        self.engine.handle(inbound, now)
    }
}

fn engine_config() -> Config {
    // At 300× a few ms of real scheduling jitter are seconds of simulated time.
    Config { max_offset_ms: 60_000.0, hello_timeout_ms: 60_000.0, ..Config::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_session_reaches_the_truth_over_a_real_socket() {
    let cfg = FeedConfig {
        meters: 300,
        seed: 11,
        speed: SPEED,
        start_ms: Some(START_MS),
        epoch: 4,
        ring_frames: 8_192,
        // 5 min simulated = 1 s real at 300×. A shorter interval is a few ms
        // real, and a loaded machine turns late ACKs into zombie reconnects
        // (which the session survives, but which are not what this test is about).
        heartbeat_interval_ms: 300_000,
        ..FeedConfig::default()
    };
    let server = start(cfg, "127.0.0.1:0".parse().expect("addr")).await.expect("start");
    let mut page = Page {
        engine: Engine::new(engine_config()).expect("engine"),
        shared: server.shared().clone(),
        addr: server.addr,
        ws: None,
        fetches: Vec::new(),
        connects: 0,
        errors: Vec::new(),
    };
    let outs = page.post(json!({"type": "session", "op": "start", "channels": ["totals"]}));
    page.run(outs).await;
    let real_start = tokio::time::Instant::now();
    let (mut dropped, mut paused_head) = (false, None::<u64>);
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut frames = 0u64;
    loop {
        let elapsed = real_start.elapsed();
        assert!(
            elapsed < Duration::from_secs(60),
            "no convergence: {:?}",
            page.engine.session().channels()
        );
        if !dropped && elapsed >= Duration::from_millis(1_500) {
            // The socket dies under the session: it must resume, not start over.
            dropped = true;
            page.ws = None;
            let outs =
                page.post(json!({"type": "socket", "event": "close", "code": 1006, "reason": ""}));
            page.run(outs).await;
        }
        if paused_head.is_none() && elapsed >= Duration::from_millis(3_500) {
            server.set_paused(true);
            paused_head = Some(server.shared().model().seq());
        }
        let live = page.engine.session().channels();
        let at_head = paused_head.is_some_and(|h| {
            live.iter()
                .any(|c| c.name == "totals" && c.position.is_some_and(|(_, s)| s >= h) && !c.paused)
        });
        if at_head {
            break;
        }
        let msg = match page.ws.as_mut() {
            Some(ws) => tokio::select! {
                m = ws.next() => m,
                _ = ticker.tick() => None,
            },
            None => {
                ticker.tick().await;
                None
            }
        };
        let outs = match msg {
            Some(Ok(Message::Text(t))) => {
                frames += 1;
                page.post(json!({"type": "socket", "event": "message", "data": t.as_str()}))
            }
            Some(Ok(Message::Close(f))) => {
                page.ws = None;
                let code = f.map_or(1006, |f| u16::from(f.code));
                page.post(json!({"type": "socket", "event": "close", "code": code, "reason": ""}))
            }
            Some(Ok(_)) => Vec::new(),
            Some(Err(_)) => {
                page.ws = None;
                page.post(json!({"type": "socket", "event": "close", "code": 1006, "reason": ""}))
            }
            None => {
                // Timer: the page renders what was delivered, the engine ticks.
                let mut outs = Vec::new();
                for c in page.engine.session().channels() {
                    if c.outstanding > 0 {
                        outs.extend(page.post(
                            json!({"type": "rendered", "channel": c.name, "frames": c.outstanding}),
                        ));
                    }
                }
                outs.extend(page.handle(Inbound::Tick(Default::default())));
                outs.extend(page.handle(Inbound::Flush));
                outs
            }
        };
        page.run(outs).await;
    }
    assert!(frames > 100, "only {frames} socket messages");
    assert!(page.connects >= 2, "the dropped socket was reconnected");
    let counters = page.engine.session().counters();
    assert!(counters.resumes_ok >= 1, "the session resumed: {counters:?}");
    assert!(page.errors.is_empty(), "{:?}", page.errors);

    let (status, truth) = http(server.addr, "GET", "/truth", "").await;
    assert_eq!(status, 200);
    let truth: Value = serde_json::from_str(&truth).expect("truth json");
    assert_eq!(Some(truth["channels"]["totals"]["seq"].as_u64().unwrap_or(0)), paused_head);
    let totals = page
        .handle(Inbound::Query(Query::Totals))
        .into_iter()
        .find_map(|o| if let Outbound::Totals(t) = o { Some(t) } else { None })
        .expect("totals");
    let mut compared = 0;
    for r in truth["resources"].as_array().expect("resources") {
        let name = r["resource"].as_str().expect("name");
        let mine = totals.resources.iter().find(|x| x.resource == name).expect("resource");
        let listed: Vec<f64> = r["buckets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["hour"].as_f64())
            .collect();
        for b in r["buckets"].as_array().expect("buckets") {
            let hour = b["hour"].as_f64().expect("hour");
            let want = Decimal::parse(b["total"].as_str().expect("total"))
                .and_then(|d| d.to_units(3).ok())
                .expect("exact");
            let got = mine.buckets.iter().find(|x| x.hour_ms == hour).map(|x| x.total);
            assert_eq!(got, Some(want), "{name} at hour {hour}");
            compared += 1;
        }
        assert!(mine.buckets.iter().all(|x| listed.contains(&x.hour_ms) || x.total == 0));
    }
    assert!(compared >= 6, "two hours of three resources: {compared}");
    eprintln!("{frames} socket messages, {} connects, {counters:?}", page.connects);
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown hangs")
        .expect("server error");
}
