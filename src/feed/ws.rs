//! One stream v2 WebSocket session (docs/STREAM.md), `totals` channel only:
//! HELLO, then IDENTIFY or RESUME, then v1 live frames (JSON 3.2 or binary
//! kind 2 3.5) within the client's credit, HEARTBEAT answered with
//! HEARTBEAT_ACK, SUBSCRIBE/UNSUBSCRIBE/CREDIT. Frames come from the read
//! model's ring; a connection that falls behind the ring skips to the head
//! (the client sees the gap and recovers with a snapshot).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::model::{Frame, TOTALS};
use super::Shared;

/// Frames sent per loop turn before the socket is read again.
const SEND_BATCH: usize = 64;

/// Close codes the server uses (docs/STREAM.md §3).
mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const UNKNOWN_OP: u16 = 4001;
    pub const DECODE_ERROR: u16 = 4002;
    pub const NOT_IDENTIFIED: u16 = 4003;
    pub const ALREADY_IDENTIFIED: u16 = 4005;
    pub const SESSION_TIMED_OUT: u16 = 4009;
    pub const UNKNOWN_CHANNEL: u16 = 4010;
}

/// `GET /stream[?format=binary]`: refuses an `Origin` other than the server's own.
pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        if !shared.origins.iter().any(|o| o.as_bytes() == origin.as_bytes()) {
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    let binary = match q.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("binary") => true,
        Some(_) => {
            return (StatusCode::BAD_REQUEST, "format must be json or binary").into_response()
        }
    };
    ws.max_message_size(shared.cfg.max_client_message_bytes)
        .on_upgrade(move |socket| run(socket, shared, binary))
}

/// A channel's position on this connection.
#[derive(Debug)]
struct Sub {
    credit: u64,
    /// The next `seq` to send.
    next: u64,
}

struct Conn {
    shared: Arc<Shared>,
    socket: WebSocket,
    binary: bool,
    session: String,
    identified: bool,
    totals: Option<Sub>,
}

/// Why the loop ends.
enum End {
    Close(u16, &'static str),
    Gone,
}

struct ArcStrBytes(Arc<str>);

impl AsRef<[u8]> for ArcStrBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

fn frame_message(f: &Frame, binary: bool) -> Option<Message> {
    if binary {
        Some(Message::Binary(Bytes::from_owner(f.binary())))
    } else {
        Utf8Bytes::try_from(Bytes::from_owner(ArcStrBytes(f.json()))).ok().map(Message::Text)
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn run(socket: WebSocket, shared: Arc<Shared>, binary: bool) {
    let session = shared.new_session();
    let mut c =
        Conn { shared: shared.clone(), socket, binary, session, identified: false, totals: None };
    let end = c.serve().await;
    if let Err(End::Close(code, reason)) = end {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = c.socket.send(Message::Close(Some(frame))).await;
    }
}

impl Conn {
    async fn send_json(&mut self, v: Value) -> Result<(), End> {
        self.socket.send(Message::Text(v.to_string().into())).await.map_err(|_| End::Gone)
    }

    async fn serve(&mut self) -> Result<(), End> {
        let hello = json!({
            "op": "HELLO",
            "heartbeat_interval_ms": self.shared.cfg.heartbeat_interval_ms,
            "session_id": self.session,
            "server_time_ms": self.shared.clock.now_ms(),
        });
        self.send_json(hello).await?;
        let mut head = self.shared.head();
        let mut stop = self.shared.shutdown();
        let silence =
            Duration::from_millis(self.shared.cfg.heartbeat_interval_ms.saturating_mul(2));
        let mut deadline = tokio::time::Instant::now() + silence;
        loop {
            // More held frames than one batch: go round again at once (after
            // reading whatever the client sent meanwhile).
            let more = self.send_frames().await?;
            let waiting = self.totals.as_ref().is_some_and(|s| s.credit > 0);
            // Biased: a message already received always wins over the silence
            // deadline, so a starved task never closes a client that spoke.
            tokio::select! {
                biased;
                msg = self.socket.recv() => {
                    deadline = tokio::time::Instant::now() + silence;
                    match msg {
                        Some(Ok(Message::Text(t))) => self.on_text(&t).await?,
                        Some(Ok(Message::Binary(_))) => {
                            return Err(End::Close(close::DECODE_ERROR, "binary messages are not ops"))
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(End::Gone),
                        Some(Ok(_)) => {}
                    }
                }
                () = std::future::ready(()), if more => {}
                changed = head.changed(), if waiting => {
                    if changed.is_err() {
                        return Err(End::Close(close::GOING_AWAY, "server stopping"));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(End::Close(close::SESSION_TIMED_OUT, "no message within 2 heartbeat intervals"));
                }
                () = stopped(&mut stop) => {
                    return Err(End::Close(close::GOING_AWAY, "server stopping"));
                }
            }
        }
    }

    /// Sends what the credit allows of the frames after the channel's position,
    /// one batch; `true` if a full batch went and credit is left (maybe more).
    async fn send_frames(&mut self) -> Result<bool, End> {
        let Some(sub) = self.totals.as_mut() else { return Ok(false) };
        if sub.credit == 0 {
            return Ok(false);
        }
        let max = (sub.credit as usize).min(SEND_BATCH);
        let frames = {
            let m = self.shared.model();
            match m.frames_after(sub.next.saturating_sub(1), max) {
                Some(f) => f,
                None => {
                    // Behind the ring (or a position from the future): skip to the head.
                    sub.next = m.seq() + 1;
                    return Ok(false);
                }
            }
        };
        let full = frames.len() == max;
        for f in frames {
            let msg = frame_message(&f, self.binary)
                .ok_or(End::Close(close::DECODE_ERROR, "frame encoding failed"))?;
            self.socket.send(msg).await.map_err(|_| End::Gone)?;
            if let Some(sub) = self.totals.as_mut() {
                sub.next = f.seq + 1;
                sub.credit -= 1;
            }
        }
        Ok(full && self.totals.as_ref().is_some_and(|s| s.credit > 0))
    }

    /// Where a channel offer starts: after its position if the ring still holds
    /// it in this epoch, else at the next frame.
    fn start(&self, offer: &Value, pos_field: &str) -> Sub {
        let m = self.shared.model();
        let credit = offer
            .get("credit")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(self.shared.cfg.max_credit);
        let epoch = offer.get("epoch").and_then(Value::as_u64);
        let pos = offer.get(pos_field).and_then(Value::as_u64);
        let next = match (epoch, pos) {
            (Some(e), Some(p)) if e == m.epoch() && m.frames_after(p, 0).is_some() => p + 1,
            _ => m.seq() + 1,
        };
        Sub { credit, next }
    }

    /// Subscribes the offered channels; an unknown one closes with 4010.
    fn take_channels(&mut self, msg: &Value, pos_field: &str) -> Result<(), End> {
        let Some(list) = msg.get("channels").and_then(Value::as_array) else {
            return Err(End::Close(close::DECODE_ERROR, "channels must be an array"));
        };
        for offer in list {
            match offer.get("name").and_then(Value::as_str) {
                Some(TOTALS) => self.totals = Some(self.start(offer, pos_field)),
                _ => return Err(End::Close(close::UNKNOWN_CHANNEL, "unknown channel")),
            }
        }
        if let Some(f) = msg.get("format").and_then(Value::as_str) {
            self.binary = f == "binary";
        }
        Ok(())
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        let msg: Value = serde_json::from_str(text)
            .map_err(|_| End::Close(close::DECODE_ERROR, "not a JSON object"))?;
        let op = msg.get("op").and_then(Value::as_str).unwrap_or("");
        match op {
            "IDENTIFY" | "RESUME" if self.identified => {
                Err(End::Close(close::ALREADY_IDENTIFIED, "already identified"))
            }
            "IDENTIFY" => {
                self.take_channels(&msg, "snapshot_seq")?;
                self.identified = true;
                let ready = json!({ "op": "READY", "session_id": self.session });
                self.send_json(ready).await
            }
            "RESUME" => {
                let id = msg.get("session_id").and_then(Value::as_str).unwrap_or("");
                if !self.shared.session_known(id) {
                    return self
                        .send_json(json!({ "op": "INVALID_SESSION", "resumable": false }))
                        .await;
                }
                self.session = id.to_string();
                self.take_channels(&msg, "last_seq")?;
                self.identified = true;
                self.send_json(json!({ "op": "RESUMED" })).await
            }
            "HEARTBEAT" => {
                let mut sent = serde_json::Map::new();
                if let Some(sub) = &self.totals {
                    let epoch = self.shared.model().epoch();
                    sent.insert(TOTALS.into(), json!([epoch, sub.next.saturating_sub(1)]));
                }
                self.send_json(json!({ "op": "HEARTBEAT_ACK", "sent": sent })).await
            }
            "SUBSCRIBE" | "UNSUBSCRIBE" | "CREDIT" if !self.identified => {
                Err(End::Close(close::NOT_IDENTIFIED, "identify first"))
            }
            "SUBSCRIBE" => match msg.get("channel").and_then(Value::as_str) {
                Some(TOTALS) => {
                    if self.totals.is_none() {
                        self.totals = Some(self.start(&msg, "snapshot_seq"));
                    }
                    Ok(())
                }
                _ => Err(End::Close(close::UNKNOWN_CHANNEL, "unknown channel")),
            },
            "UNSUBSCRIBE" => {
                if msg.get("channel").and_then(Value::as_str) == Some(TOTALS) {
                    self.totals = None;
                }
                Ok(())
            }
            "CREDIT" => {
                let n = msg.get("credit").and_then(|c| c.get(TOTALS)).and_then(Value::as_u64);
                if let (Some(n), Some(sub)) = (n, self.totals.as_mut()) {
                    sub.credit = sub.credit.saturating_add(n).min(self.shared.cfg.max_credit);
                }
                Ok(())
            }
            "" => Err(End::Close(close::DECODE_ERROR, "no op")),
            _ => Err(End::Close(close::UNKNOWN_OP, "unknown op")),
        }
    }
}
