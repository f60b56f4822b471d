//! One stream v2 WebSocket session (docs/STREAM.md): HELLO, then IDENTIFY or
//! RESUME, then per subscribed channel its deltas within the client's credit:
//! `totals` as v1 live frames (JSON 3.2 or binary kind 2 3.5), `meters.<group>`
//! and `notices` as DELTA ops. HEARTBEAT is answered with HEARTBEAT_ACK;
//! SUBSCRIBE/UNSUBSCRIBE/CREDIT. Deltas come from the read models' rings; a
//! connection that falls behind a ring skips to its head (the client sees the
//! gap and recovers with a mini-snapshot). Faults (`faults.rs`) act here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::channels::Delta;
use super::faults::{plan_sends, Command};
use super::model::{Frame, TOTALS};
use super::Shared;
use crate::core::session::rng::SplitMix64;

/// Frames sent per loop turn before the socket is read again.
const SEND_BATCH: usize = 64;

/// Close codes the server uses (docs/STREAM.md §3).
mod close {
    pub const GOING_AWAY: u16 = 1001;
    pub const RECONNECT: u16 = 4000;
    pub const UNKNOWN_OP: u16 = 4001;
    pub const DECODE_ERROR: u16 = 4002;
    pub const NOT_IDENTIFIED: u16 = 4003;
    pub const ALREADY_IDENTIFIED: u16 = 4005;
    pub const SESSION_TIMED_OUT: u16 = 4009;
    pub const UNKNOWN_CHANNEL: u16 = 4010;
    pub const TOO_MANY_CHANNELS: u16 = 4013;
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
    channel: String,
    credit: u64,
    /// The next `seq` to send.
    next: u64,
    /// Sends left past the credit (the overrun fault), reset by CREDIT.
    overrun: u64,
}

impl Sub {
    fn can_send(&self) -> bool {
        self.credit > 0 || self.overrun > 0
    }
}

struct Conn {
    shared: Arc<Shared>,
    socket: WebSocket,
    binary: bool,
    /// The client asked for `meters.<group>` DELTAs as kind-4 frames.
    binary_deltas: bool,
    session: String,
    /// The session was invalidated (not resumable): IDENTIFY takes a new id.
    forgotten: bool,
    identified: bool,
    subs: Vec<Sub>,
    rng: SplitMix64,
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

fn text_message(s: Arc<str>) -> Option<Message> {
    Utf8Bytes::try_from(Bytes::from_owner(ArcStrBytes(s))).ok().map(Message::Text)
}

/// A held delta of any channel.
enum Item {
    Frame(Arc<Frame>),
    Delta(Arc<Delta>),
}

impl Item {
    fn seq(&self) -> u64 {
        match self {
            Item::Frame(f) => f.seq,
            Item::Delta(d) => d.seq,
        }
    }

    /// The message for a connection: `binary` (kind-2 `totals` frames) and
    /// `binary_deltas` (kind-4 `meters.<group>` DELTAs) as it asked.
    fn message(&self, binary: bool, binary_deltas: bool) -> Option<Message> {
        match self {
            Item::Frame(f) if binary => Some(Message::Binary(Bytes::from_owner(f.binary()))),
            Item::Frame(f) => text_message(f.json()),
            Item::Delta(d) => match d.binary().filter(|_| binary_deltas) {
                Some(b) => Some(Message::Binary(Bytes::from_owner(b))),
                None => text_message(d.json()),
            },
        }
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn run(socket: WebSocket, shared: Arc<Shared>, binary: bool) {
    let session = shared.new_session();
    let rng = SplitMix64::new(shared.next_random());
    let mut c = Conn {
        shared: shared.clone(),
        socket,
        binary,
        binary_deltas: false,
        session,
        forgotten: false,
        identified: false,
        subs: Vec::new(),
        rng,
    };
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
            "server_time_ms": self.shared.server_time_ms(),
        });
        self.send_json(hello).await?;
        let opened = tokio::time::Instant::now();
        let mut head = self.shared.head();
        let mut stop = self.shared.shutdown();
        let mut commands = self.shared.commands();
        let silence =
            Duration::from_millis(self.shared.cfg.heartbeat_interval_ms.saturating_mul(2));
        let mut deadline = tokio::time::Instant::now() + silence;
        loop {
            // More held deltas than one batch: go round again at once (after
            // reading whatever the client sent meanwhile).
            let more = self.send_all().await?;
            let waiting = self.subs.iter().any(Sub::can_send);
            let cut = match self.shared.faults().disconnect_every_ms {
                0 => None,
                ms => Some(opened + Duration::from_millis(ms)),
            };
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
                cmd = commands.recv() => {
                    if let Ok(cmd) = cmd {
                        self.on_command(cmd).await?;
                    }
                }
                () = std::future::ready(()), if more => {}
                changed = head.changed(), if waiting => {
                    if changed.is_err() {
                        return Err(End::Close(close::GOING_AWAY, "server stopping"));
                    }
                }
                // The disconnect fault: cut without a close frame (the client sees 1006).
                _ = tokio::time::sleep_until(cut.unwrap_or(deadline)), if cut.is_some() => {
                    return Err(End::Gone);
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

    async fn on_command(&mut self, cmd: Command) -> Result<(), End> {
        match cmd {
            Command::Reconnect => {
                self.send_json(json!({ "op": "RECONNECT" })).await?;
                Err(End::Close(close::RECONNECT, "reconnect requested"))
            }
            Command::InvalidSession { resumable } => {
                if !self.identified {
                    return Ok(());
                }
                self.identified = false;
                self.subs.clear();
                if !resumable {
                    self.shared.forget_session(&self.session);
                    self.forgotten = true;
                }
                self.send_json(json!({ "op": "INVALID_SESSION", "resumable": resumable })).await
            }
        }
    }

    /// Sends one batch on every channel; `true` if some channel may have more.
    async fn send_all(&mut self) -> Result<bool, End> {
        let mut more = false;
        for i in 0..self.subs.len() {
            more |= self.send_deltas(i).await?;
        }
        Ok(more)
    }

    /// The held deltas of `channel` after `after`, at most `max`; `None` when
    /// `after + 1` is no longer held, with the head `seq`.
    fn held(&self, channel: &str, after: u64, max: usize) -> (Option<Vec<Item>>, u64) {
        if channel == TOTALS {
            let m = self.shared.model();
            let f = m.frames_after(after, max).map(|v| v.into_iter().map(Item::Frame).collect());
            return (f, m.seq());
        }
        let c = self.shared.channels();
        match c.stream(channel) {
            Some(s) => (
                s.deltas_after(after, max).map(|v| v.into_iter().map(Item::Delta).collect()),
                s.seq(),
            ),
            None => (Some(Vec::new()), 0),
        }
    }

    /// Sends what the credit (and the faults) allow of the deltas after the
    /// channel's position, one batch; `true` if a full batch went and the
    /// channel can send more.
    async fn send_deltas(&mut self, i: usize) -> Result<bool, End> {
        let Some(sub) = self.subs.get(i) else { return Ok(false) };
        if !sub.can_send() {
            return Ok(false);
        }
        let (held, head) = self.held(&sub.channel, sub.next.saturating_sub(1), SEND_BATCH);
        let Some(held) = held else {
            // A gateway instance behind its peers (Redis mode): wait for it.
            if self.shared.fleet.is_some() && sub.next > head + 1 {
                return Ok(false);
            }
            // Behind the ring (or a position from the future): skip to the head.
            if let Some(sub) = self.subs.get_mut(i) {
                sub.next = head + 1;
            }
            return Ok(false);
        };
        let faults = self.shared.faults();
        let plan = plan_sends(held.len(), sub.credit, sub.overrun, &faults, &mut self.rng);
        for &k in &plan.sends {
            let Some(item) = held.get(k) else { continue };
            let msg = item
                .message(self.binary, self.binary_deltas)
                .ok_or(End::Close(close::DECODE_ERROR, "delta encoding failed"))?;
            self.socket.send(msg).await.map_err(|_| End::Gone)?;
        }
        let Some(sub) = self.subs.get_mut(i) else { return Ok(false) };
        if let Some(last) = plan.consumed.checked_sub(1).and_then(|k| held.get(k)) {
            sub.next = last.seq() + 1;
        }
        sub.credit -= plan.credit_used;
        sub.overrun -= plan.overrun_used;
        Ok(plan.consumed == SEND_BATCH && sub.can_send())
    }

    /// Where a channel offer starts: after its position if the ring still holds
    /// it in this epoch, else at the next delta. `None`: no such channel.
    fn start(&self, channel: &str, offer: &Value, pos_field: &str) -> Option<Sub> {
        let credit = offer
            .get("credit")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            .min(self.shared.cfg.max_credit);
        let epoch = offer.get("epoch").and_then(Value::as_u64);
        let pos = offer.get(pos_field).and_then(Value::as_u64);
        let (held, head) = match (epoch, pos) {
            (Some(e), Some(p)) if e == self.shared.cfg.epoch => {
                let (h, head) = self.held(channel, p, 0);
                // Redis mode: a position another instance has sent is ahead of
                // this one's head until it catches up; it is kept, not skipped.
                let ahead = self.shared.fleet.is_some() && p > head;
                (h.map(|_| p).or(ahead.then_some(p)), head)
            }
            _ => (None, self.held(channel, 0, 0).1),
        };
        if channel != TOTALS && self.shared.channels().stream(channel).is_none() {
            return None;
        }
        Some(Sub {
            channel: channel.to_string(),
            credit,
            next: held.unwrap_or(head) + 1,
            overrun: u64::from(self.shared.faults().credit_overrun),
        })
    }

    /// Adds (or restarts) a channel; unknown: 4010, too many: 4013.
    fn subscribe(&mut self, channel: &str, offer: &Value, pos_field: &str) -> Result<(), End> {
        let sub = self
            .start(channel, offer, pos_field)
            .ok_or(End::Close(close::UNKNOWN_CHANNEL, "unknown channel"))?;
        self.subs.retain(|s| s.channel != channel);
        if self.subs.len() >= self.shared.cfg.groups + 2 {
            return Err(End::Close(close::TOO_MANY_CHANNELS, "too many channels"));
        }
        self.subs.push(sub);
        Ok(())
    }

    /// Subscribes the offered channels; an unknown one closes with 4010.
    fn take_channels(&mut self, msg: &Value, pos_field: &str) -> Result<(), End> {
        let Some(list) = msg.get("channels").and_then(Value::as_array) else {
            return Err(End::Close(close::DECODE_ERROR, "channels must be an array"));
        };
        self.subs.clear();
        for offer in list {
            let Some(name) = offer.get("name").and_then(Value::as_str) else {
                return Err(End::Close(close::DECODE_ERROR, "a channel needs a name"));
            };
            self.subscribe(name, offer, pos_field)?;
        }
        if let Some(f) = msg.get("format").and_then(Value::as_str) {
            self.binary = f == "binary";
        }
        // Negotiated per connection: absent or false keeps JSON text DELTAs.
        self.binary_deltas = msg.get("binary_deltas").and_then(Value::as_bool).unwrap_or(false);
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
                if self.forgotten {
                    self.session = self.shared.new_session();
                    self.forgotten = false;
                }
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
                self.forgotten = false;
                self.take_channels(&msg, "last_seq")?;
                self.identified = true;
                self.send_json(json!({ "op": "RESUMED" })).await
            }
            "HEARTBEAT" => {
                let epoch = self.shared.cfg.epoch;
                let sent: serde_json::Map<String, Value> = self
                    .subs
                    .iter()
                    .map(|s| (s.channel.clone(), json!([epoch, s.next.saturating_sub(1)])))
                    .collect();
                self.send_json(json!({ "op": "HEARTBEAT_ACK", "sent": sent })).await
            }
            "SUBSCRIBE" | "UNSUBSCRIBE" | "CREDIT" if !self.identified => {
                Err(End::Close(close::NOT_IDENTIFIED, "identify first"))
            }
            "SUBSCRIBE" => match msg.get("channel").and_then(Value::as_str) {
                Some(name) => {
                    if !self.subs.iter().any(|s| s.channel == name) {
                        self.subscribe(name, &msg, "snapshot_seq")?;
                    }
                    Ok(())
                }
                None => Err(End::Close(close::DECODE_ERROR, "SUBSCRIBE needs a channel")),
            },
            "UNSUBSCRIBE" => {
                if let Some(name) = msg.get("channel").and_then(Value::as_str) {
                    self.subs.retain(|s| s.channel != name);
                }
                Ok(())
            }
            "CREDIT" => {
                let Some(grants) = msg.get("credit").and_then(Value::as_object) else {
                    return Err(End::Close(close::DECODE_ERROR, "credit must be an object"));
                };
                let (max, overrun) =
                    (self.shared.cfg.max_credit, u64::from(self.shared.faults().credit_overrun));
                for sub in &mut self.subs {
                    if let Some(n) = grants.get(&sub.channel).and_then(Value::as_u64) {
                        sub.credit = sub.credit.saturating_add(n).min(max);
                        sub.overrun = overrun;
                    }
                }
                Ok(())
            }
            "" => Err(End::Close(close::DECODE_ERROR, "no op")),
            _ => Err(End::Close(close::UNKNOWN_OP, "unknown op")),
        }
    }
}
