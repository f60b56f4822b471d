//! The page side of the native stream v2 session tests against the real feed
//! server (`tests/feed_session_faults.rs`, `tests/feed_session_catchup.rs`,
//! `tests/feed_session_soak.rs`): carries out the engine's requests over a
//! real WebSocket and real HTTP, answers its fetches (delayed and out of
//! order as the server's faults say), with `answer_catchups` the ledger's own
//! catch-ups too, acknowledges renders and keeps what a page would render.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{Inbound, Outbound, Query};
use meterflow::core::Engine;
use meterflow::feed::Server;
use meterflow::wire;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One HTTP request over a fresh connection: status and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let Ok(buf) = attempt.await else { return (0, String::new()) };
    let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, String::new());
    };
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, String::from_utf8_lossy(&buf[split + 4..]).to_string())
}

pub async fn admin(server: &Server, patch: Value) {
    let (status, body) = http(server.addr, "POST", "/admin/faults", &patch.to_string()).await;
    assert_eq!(status, 200, "POST /admin/faults {patch}: {body}");
}

/// A meter row compared exactly: meter, resource, ts, value, status, count, total (units).
pub type Row = (String, String, u64, u64, String, u64, i64);

pub fn row(v: &Value) -> Row {
    let units = Decimal::parse(v["total"].as_str().unwrap_or(""))
        .and_then(|d| d.to_units(3).ok())
        .unwrap_or(i64::MIN);
    (
        v["meter"].as_str().unwrap_or("").to_string(),
        v["resource"].as_str().unwrap_or("").to_string(),
        v["ts"].as_f64().map_or(u64::MAX, |t| t as u64),
        v["value"].as_f64().map_or(u64::MAX, f64::to_bits),
        v["status"].as_str().unwrap_or("").to_string(),
        v["count"].as_u64().unwrap_or(u64::MAX),
        units,
    )
}

/// A notice compared exactly (the `notices` message and the snapshot share field names).
pub fn notice(v: &Value) -> String {
    json!({"id": v["id"], "severity": v["severity"], "title": v["title"], "text": v["text"],
        "fromMs": v["fromMs"].as_f64(), "toMs": v["toMs"].as_f64()})
    .to_string()
}

pub struct Page {
    pub engine: Engine,
    pub server: Server,
    pub ws: Option<Ws>,
    pub fetched_tx: mpsc::UnboundedSender<Value>,
    pub connects: u32,
    pub fetches: u32,
    /// Whether the ledger's own catch-up requests (`fetch` without
    /// `requestId`) are answered, as the transports do (off: only the
    /// session's fetches are).
    pub answer_catchups: bool,
    /// The ledger's own catch-up requests seen, by reason.
    pub ledger_fetches: BTreeMap<String, u32>,
    pub errors: Vec<String>,
    /// What the page renders: rows per `meters.<group>` channel, notices by id.
    pub rows: BTreeMap<String, BTreeMap<String, Row>>,
    pub notices: BTreeMap<String, String>,
    /// The newest `groups` event, as posted to the page.
    pub last_groups: Option<Value>,
    /// Binary socket messages handled (kind-4 DELTAs, when asked for).
    pub binary_messages: u64,
}

impl Page {
    /// A page for `engine` against `server`; fetch answers come back through `fetched_tx`.
    pub fn new(engine: Engine, server: Server, fetched_tx: mpsc::UnboundedSender<Value>) -> Self {
        Page {
            engine,
            server,
            ws: None,
            fetched_tx,
            connects: 0,
            fetches: 0,
            answer_catchups: false,
            ledger_fetches: BTreeMap::new(),
            errors: Vec::new(),
            rows: BTreeMap::new(),
            notices: BTreeMap::new(),
            last_groups: None,
            binary_messages: 0,
        }
    }
    /// Carries out the engine's requests and renders its updates.
    pub async fn run(&mut self, outs: Vec<Outbound>) {
        let mut queue = outs;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for o in queue {
                let v = serde_json::to_value(wire::encode(&o)).unwrap_or(Value::Null);
                match v["type"].as_str().unwrap_or("") {
                    "connect" => {
                        self.connects += 1;
                        let url = format!("ws://{}/stream", self.server.addr);
                        match tokio_tungstenite::connect_async(url).await {
                            Ok((ws, _)) => self.ws = Some(ws),
                            Err(_) => next.extend(self.closed(1006)),
                        }
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
                        // Each fetch runs on its own: answers delayed at random
                        // by the server come back in the order they finish.
                        self.fetches += 1;
                        let rid = v["requestId"].as_u64().unwrap_or(0);
                        let path = v["path"].as_str().unwrap_or("").to_string();
                        let (addr, tx) = (self.server.addr, self.fetched_tx.clone());
                        tokio::spawn(async move {
                            let (status, body) = http(addr, "GET", &path, "").await;
                            let _ = tx.send(json!({"type": "fetched", "requestId": rid,
                                "ok": status == 200, "status": status, "data": body}));
                        });
                    }
                    "meters" => {
                        let ch = v["channel"].as_str().unwrap_or("").to_string();
                        let table = self.rows.entry(ch).or_default();
                        for r in v["upsert"].as_array().into_iter().flatten() {
                            let r = row(r);
                            table.insert(r.0.clone(), r);
                        }
                        for id in v["remove"].as_array().into_iter().flatten() {
                            table.remove(id.as_str().unwrap_or(""));
                        }
                    }
                    "notices" => {
                        for n in v["upsert"].as_array().into_iter().flatten() {
                            self.notices.insert(n["id"].as_str().unwrap_or("").into(), notice(n));
                        }
                        for id in v["remove"].as_array().into_iter().flatten() {
                            self.notices.remove(id.as_str().unwrap_or(""));
                        }
                    }
                    "fetch" => {
                        // The ledger's own catch-up: `GET <path>` (the one the
                        // worker built, `FetchRequest::path`) → `catchup`, as
                        // the transports do (PROTOCOL.md §7).
                        let why = v["reason"].as_str().unwrap_or("").to_string();
                        *self.ledger_fetches.entry(why).or_default() += 1;
                        if self.answer_catchups {
                            let path = v["path"].as_str().unwrap_or("").to_string();
                            let (addr, tx) = (self.server.addr, self.fetched_tx.clone());
                            tokio::spawn(async move {
                                let (status, body) = http(addr, "GET", &path, "").await;
                                if status == 200 {
                                    let _ = tx.send(json!({"type": "catchup", "data": body}));
                                }
                            });
                        }
                    }
                    "groups" => self.last_groups = Some(v.clone()),
                    "error" => self.errors.push(v.to_string()),
                    _ => {}
                }
            }
            queue = next;
        }
    }

    pub fn closed(&mut self, code: u16) -> Vec<Outbound> {
        self.ws = None;
        self.post(json!({"type": "socket", "event": "close", "code": code, "reason": ""}))
    }

    /// A page message through the worker's decoder into the engine.
    pub fn post(&mut self, msg: Value) -> Vec<Outbound> {
        let now = self.now();
        let inbound = wire::decode_message(&msg, self.engine.config());
        self.engine.handle(inbound, now)
    }

    /// Engine time is the server's accelerated clock (without its skew: the
    /// skew is what the server claims, not what the page's clock says).
    pub fn now(&self) -> f64 {
        self.server.shared().clock.now_ms() as f64
    }

    /// A `stats` event now, encoded.
    pub fn stats(&mut self) -> Value {
        self.handle(Inbound::Query(Query::Stats))
            .into_iter()
            .find_map(|o| match &o {
                Outbound::Stats(_) => serde_json::to_value(wire::encode(&o)).ok(),
                _ => None,
            })
            .unwrap_or(Value::Null)
    }

    pub fn handle(&mut self, inbound: Inbound) -> Vec<Outbound> {
        let now = self.now();
        self.engine.handle(inbound, now)
    }

    /// The page renders what was delivered (acknowledging it), the engine ticks and flushes.
    pub fn timer(&mut self) -> Vec<Outbound> {
        let mut outs = Vec::new();
        for c in self.engine.session().channels() {
            if c.outstanding > 0 {
                outs.extend(
                    self.post(
                        json!({"type": "rendered", "channel": c.name, "frames": c.outstanding}),
                    ),
                );
            }
        }
        outs.extend(self.handle(Inbound::Tick(Default::default())));
        outs.extend(self.handle(Inbound::Flush));
        outs
    }

    /// One step: a socket message, a fetch answer or the 10 ms page timer.
    pub async fn step(
        &mut self,
        fetched: &mut mpsc::UnboundedReceiver<Value>,
        timer: &mut tokio::time::Interval,
    ) {
        enum Got {
            Socket(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
            Fetched(Value),
            Timer,
        }
        let got = match self.ws.as_mut() {
            Some(ws) => tokio::select! {
                m = ws.next() => Got::Socket(m),
                Some(f) = fetched.recv() => Got::Fetched(f),
                _ = timer.tick() => Got::Timer,
            },
            None => tokio::select! {
                Some(f) = fetched.recv() => Got::Fetched(f),
                _ = timer.tick() => Got::Timer,
            },
        };
        let outs = match got {
            Got::Socket(Some(Ok(Message::Text(t)))) => {
                self.post(json!({"type": "socket", "event": "message", "data": t.as_str()}))
            }
            Got::Socket(Some(Ok(Message::Close(f)))) => {
                self.closed(f.map_or(1006, |f| u16::from(f.code)))
            }
            // A binary kind-4 DELTA (the engine asked `binaryDeltas`): what
            // the binding does with an ArrayBuffer `data`.
            Got::Socket(Some(Ok(Message::Binary(b)))) => {
                let cfg = self.engine.config().clone();
                let inbound = wire::decode_socket_binary(&b, wire::Arrival::default(), &cfg);
                self.binary_messages += 1;
                self.handle(inbound)
            }
            Got::Socket(Some(Ok(_))) => Vec::new(),
            // Cut without a close frame (the disconnect fault): the browser says 1006.
            Got::Socket(Some(Err(_)) | None) => self.closed(1006),
            Got::Fetched(f) => self.post(f),
            Got::Timer => self.timer(),
        };
        self.run(outs).await;
    }

    /// Whether the engine's totals say they may lack a reading.
    pub fn incomplete(&self) -> bool {
        self.engine.ledger().incomplete()
    }

    /// Whether every subscribed channel stands at `heads` (epoch, seq), live and with nothing buffered.
    pub fn at(&self, heads: &BTreeMap<String, (u64, u64)>) -> bool {
        let live = self.engine.session().channels();
        heads.iter().all(|(name, head)| {
            live.iter().any(|c| {
                c.name == *name && c.position == Some(*head) && !c.paused && c.buffered == 0
            })
        })
    }
}
