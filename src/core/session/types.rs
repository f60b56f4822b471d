//! The session's closed input and output enums, its status, errors and config.
//!
//! Wire decoding happens at the edge: `SessionInput` carries already-decoded
//! server ops; delta and snapshot bodies stay opaque (`Payload`) because the
//! consumer (the ledger, the meter store) decodes them, not the session.

use super::op::{ChannelPos, ClientOp};
use crate::core::ledger::event::{Catchup, LiveFrame};
use crate::core::stream::{MeterColumns, MeterPatch, NoticePatch};

/// A message body the session carries without looking inside: either as it
/// arrived (`Text`, `Binary`: tests of the session alone) or decoded at the
/// edge by `crate::wire::stream` (the engine's path; the core imports no wire).
// Boxed variants keep the enum small; one allocation per message at most.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// A JSON text body.
    Text(String),
    /// A binary body (a v1 kind-2 live frame on `totals`).
    Binary(Vec<u8>),
    /// A `totals` delta: a v1 live frame (JSON `frame` or binary kind 2).
    Frame(Box<LiveFrame>),
    /// A `totals` snapshot or mini-snapshot: a catch-up body.
    Catchup(Box<Catchup>),
    /// A `meters.<group>` delta or snapshot (a snapshot lists every meter in `upsert`).
    Meters(Box<MeterPatch>),
    /// A `meters.<group>` delta as a binary DELTA carries it (kind 4): the
    /// same patch in columns, applied without a `String` per known meter.
    MeterColumns(Box<MeterColumns>),
    /// A `notices` delta or snapshot.
    Notices(Box<NoticePatch>),
}

/// Bytes one heap allocation costs beyond what it asked for (allocator
/// header and rounding), counted per string or vector a body holds.
const ALLOC_OVERHEAD: usize = 16;

fn string_bytes(s: &str) -> usize {
    s.len() + ALLOC_OVERHEAD
}

fn vec_bytes<T>(_: &[T], capacity: usize) -> usize {
    capacity * std::mem::size_of::<T>() + ALLOC_OVERHEAD
}

fn errors_bytes(e: &[crate::core::error::CoreError], capacity: usize) -> usize {
    vec_bytes(e, capacity) + e.iter().map(|e| string_bytes(&e.message)).sum::<usize>()
}

impl Payload {
    /// Bytes this body holds in memory (its box, vectors by capacity, every
    /// string by length, each allocation plus [`ALLOC_OVERHEAD`]). A buffered
    /// delta counts the larger of this and its encoded size against
    /// `maxBufferedBytes`: a `remove` list of one-letter ids holds ~10 bytes
    /// per byte of text, so the encoded size alone would not bound memory.
    pub fn held_bytes(&self) -> usize {
        use std::mem::size_of;
        let boxed = size_of::<Payload>() + ALLOC_OVERHEAD;
        boxed
            + match self {
                Payload::Text(t) => t.capacity(),
                Payload::Binary(b) => b.capacity(),
                Payload::Frame(f) => {
                    size_of::<LiveFrame>()
                        + string_bytes(&f.channel)
                        + vec_bytes(&f.bindings, f.bindings.capacity())
                        + f.bindings
                            .iter()
                            .map(|b| string_bytes(&b.meter) + string_bytes(&b.resource))
                            .sum::<usize>()
                        + vec_bytes(&f.keys, f.keys.capacity())
                        + vec_bytes(&f.ids, f.ids.capacity())
                        + vec_bytes(&f.ts, f.ts.capacity())
                        + vec_bytes(&f.amounts, f.amounts.capacity())
                        + vec_bytes(&f.positions, f.positions.capacity())
                        + errors_bytes(&f.errors, f.errors.capacity())
                }
                Payload::Catchup(c) => {
                    size_of::<Catchup>()
                        + vec_bytes(&c.buckets, c.buckets.capacity())
                        + c.buckets
                            .iter()
                            .map(|b| {
                                b.meter.as_deref().map_or(0, string_bytes)
                                    + string_bytes(&b.resource)
                            })
                            .sum::<usize>()
                        + errors_bytes(&c.errors, c.errors.capacity())
                }
                Payload::Meters(p) => {
                    size_of::<MeterPatch>()
                        + vec_bytes(&p.upsert, p.upsert.capacity())
                        + p.upsert
                            .iter()
                            .map(|r| string_bytes(&r.meter) + string_bytes(&r.resource))
                            .sum::<usize>()
                        + vec_bytes(&p.remove, p.remove.capacity())
                        + p.remove.iter().map(|id| string_bytes(id)).sum::<usize>()
                }
                Payload::MeterColumns(c) => {
                    // Nine vectors and one string per resource name.
                    size_of::<MeterColumns>()
                        + c.heap_bytes()
                        + (9 + c.resources.len()) * ALLOC_OVERHEAD
                }
                Payload::Notices(p) => {
                    size_of::<NoticePatch>()
                        + vec_bytes(&p.upsert, p.upsert.capacity())
                        + p.upsert
                            .iter()
                            .map(|n| {
                                string_bytes(&n.id) + string_bytes(&n.title) + string_bytes(&n.text)
                            })
                            .sum::<usize>()
                        + vec_bytes(&p.remove, p.remove.capacity())
                        + p.remove.iter().map(|id| string_bytes(id)).sum::<usize>()
                }
            }
    }
}

/// A server message on the socket, decoded at the edge.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerOp {
    /// First message of every connection.
    Hello {
        /// Heartbeat period in ms (finite, in `1..=HEARTBEAT_MAX_MS`).
        heartbeat_interval_ms: f64,
        /// The server's id for the session this connection may carry.
        session_id: String,
        /// The server's wall clock when it sent HELLO.
        server_time_ms: f64,
        /// Where to reconnect to resume, if not the usual URL.
        resume_url: Option<String>,
    },
    /// IDENTIFY accepted: a new session.
    Ready {
        /// The session's id, to RESUME with.
        session_id: String,
    },
    /// RESUME accepted; missed deltas follow in order.
    Resumed,
    /// The server asks for an immediate heartbeat.
    Heartbeat,
    /// Heartbeat answered, with the last delta sent per channel on this connection.
    HeartbeatAck {
        /// Last `(epoch, seq)` sent per channel, if the server says.
        sent: Vec<ChannelPos>,
    },
    /// Reconnect and resume.
    Reconnect,
    /// The session cannot continue on this connection.
    InvalidSession {
        /// Whether a RESUME may still succeed.
        resumable: bool,
    },
    /// One delta of one channel (a DELTA op, or a v1 live frame on `totals`).
    Delta {
        /// Channel name.
        channel: String,
        /// The channel's epoch.
        epoch: u64,
        /// Position in the epoch, from 1.
        seq: u64,
        /// The delta itself, for the consumer.
        body: Payload,
        /// Its encoded size: the socket message's bytes, what it counts against
        /// `maxBufferedBytes` while buffered.
        wire_bytes: usize,
    },
}

/// A REST snapshot body answering a `Fetch`, decoded at the edge.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotReply {
    /// The `request_id` of the `Fetch` it answers.
    pub request_id: u64,
    /// The channel it describes.
    pub channel: String,
    /// Its epoch.
    pub epoch: u64,
    /// The last delta it includes.
    pub snapshot_seq: u64,
    /// `Some(n)`: a mini-snapshot of the changes after `n`; `None`: full state.
    pub since_seq: Option<u64>,
    /// The body, for the consumer.
    pub body: Payload,
}

/// Everything the session reacts to.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionInput {
    /// Start connecting (from `Disconnected` or `Stopped`).
    Start,
    /// Subscribe each of `channels` not subscribed yet, then `Start` (the
    /// page's `session` `start` message).
    StartWith {
        /// Channel names.
        channels: Vec<String>,
    },
    /// The socket opened (the session waits for HELLO; nothing else to do).
    Opened,
    /// End the session: close with 1000 and stay disconnected.
    Stop,
    /// The socket closed (or failed to open) with this code.
    Closed {
        /// The WebSocket close code (1006 when the socket failed).
        code: u16,
        /// The close reason, as received.
        reason: String,
    },
    /// A server message arrived.
    Server(ServerOp),
    /// A snapshot fetch answered.
    Snapshot(SnapshotReply),
    /// A snapshot fetch failed (network, HTTP status, undecodable body).
    FetchFailed {
        /// The request that failed.
        request_id: u64,
    },
    /// A fetch answered with a body that cannot be used: like `FetchFailed`,
    /// and the session reports `message` as a `bad_snapshot` error.
    BadFetch {
        /// The request it answers.
        request_id: u64,
        /// What is wrong with the body.
        message: String,
    },
    /// The page wants a channel.
    Subscribe {
        /// Channel name.
        channel: String,
    },
    /// The page no longer wants a channel.
    Unsubscribe {
        /// Channel name.
        channel: String,
    },
    /// The page opened a meter's detail: fetch `GET /meters/{id}` (the reply goes
    /// to the detail cache, not to the session).
    FetchDetail {
        /// The meter id (1..=`MAX_METER_ID_BYTES` bytes).
        meter: String,
    },
    /// The page rendered `frames` delivered deltas of `channel`.
    Rendered {
        /// Channel name.
        channel: String,
        /// How many delivered deltas the render covered.
        frames: u32,
    },
    /// Time passed: run due timers (heartbeat, timeouts, backoff, retries).
    Tick,
    /// A `/meters/{id}` body answering a detail `Fetch`: for the engine's
    /// detail cache; the session itself ignores it.
    DetailReply {
        /// The `request_id` of the `Fetch` it answers.
        request_id: u64,
        /// The body: JSON text of an object (checked at the edge).
        body: String,
    },
}

/// What the consumer receives for a channel, strictly in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    /// Replace (full) or patch (mini) the channel's state up to `snapshot_seq`.
    Snapshot {
        /// Epoch of the state.
        epoch: u64,
        /// Last delta included.
        snapshot_seq: u64,
        /// `Some(n)`: a mini-snapshot continuing from `n`; `None`: full state.
        since_seq: Option<u64>,
        /// The body.
        body: Payload,
    },
    /// Apply one delta; its `seq` is the previous position plus one.
    Delta {
        /// Epoch.
        epoch: u64,
        /// Position.
        seq: u64,
        /// The body.
        body: Payload,
    },
}

/// What a fetch asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchWhat {
    /// `GET /snapshot-v2?channel=C`.
    Snapshot {
        /// Channel name.
        channel: String,
    },
    /// `GET /snapshot-v2?channel=C&epoch=E&since_seq=N`.
    MiniSnapshot {
        /// Channel name.
        channel: String,
        /// The epoch of `since_seq`: a server in a later epoch answers with a full snapshot.
        epoch: u64,
        /// The last delta applied.
        since_seq: u64,
    },
    /// `GET /meters/{id}`.
    Detail {
        /// The meter id.
        meter: String,
    },
}

/// The connection as the page should show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// No socket; waiting to (re)connect, or not started.
    Disconnected,
    /// Socket requested; waiting for HELLO.
    Connecting,
    /// IDENTIFY sent (or about to be, after a non-resumable INVALID_SESSION).
    Identifying,
    /// RESUME sent.
    Resuming,
    /// READY or RESUMED received.
    Ready,
    /// Stopped for good by a fatal close code.
    Stopped,
}

impl ConnectionState {
    /// The wire string, e.g. `"ready"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Identifying => "identifying",
            ConnectionState::Resuming => "resuming",
            ConnectionState::Ready => "ready",
            ConnectionState::Stopped => "stopped",
        }
    }
}

/// A `connection` event: emitted on every state change.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionStatus {
    /// The state now.
    pub state: ConnectionState,
    /// Reconnect attempts since the last READY/RESUMED.
    pub attempt: u32,
    /// When the next connect is due, if one is scheduled.
    pub next_retry_ms: Option<f64>,
    /// The last close code seen or sent.
    pub last_close_code: Option<u16>,
    /// Why the state changed, in words.
    pub reason: String,
}

/// Everything the session asks the host to do or tells the consumer.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionOutput {
    /// Send this control message as JSON text (`ClientOp::to_json`).
    Send(ClientOp),
    /// Open the socket (`url`: the HELLO's `resume_url` when resuming, else the host's URL).
    Connect {
        /// Resume URL, if the server gave one.
        url: Option<String>,
    },
    /// Close the socket with this code.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Reason text.
        reason: String,
    },
    /// Run a REST request and answer with `Snapshot` or `FetchFailed`.
    Fetch {
        /// Echo this in the answer.
        request_id: u64,
        /// The resource.
        what: FetchWhat,
    },
    /// The connection changed.
    Connection(ConnectionStatus),
    /// In-order data for the consumer of `channel`.
    Deliver {
        /// Channel name.
        channel: String,
        /// The snapshot or delta.
        item: Delivery,
    },
    /// A delta dropped because the channel's position already covers it
    /// (`seq <= snapshot_seq` of the snapshot just delivered, or of the
    /// position reached since, or an older epoch; buffered before the
    /// snapshot or arriving after it): not part of the
    /// in-order stream, for a consumer that can check the snapshot's claim
    /// itself (the ledger decides coverage by stamp, so a `totals` snapshot
    /// whose watermark does not reach a frame it claims loses no reading).
    /// Its credit is freed as for any dropped delta; no render is awaited.
    Covered {
        /// Channel name.
        channel: String,
        /// Epoch of the delta.
        epoch: u64,
        /// Sequence number of the delta.
        seq: u64,
        /// The delta's body.
        body: Payload,
    },
    /// Something went wrong; the session carried on.
    Error(SessionError),
}

/// Stable session error codes (wire strings in snake_case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionErrorCode {
    /// A channel name is empty, too long or has characters outside `A–Z a–z 0–9 . _ -`.
    BadChannel,
    /// A subscription past `maxSubscriptions`.
    ChannelLimit,
    /// A channel's buffer passed `maxBufferedDeltas` or `maxBufferedBytes`; it
    /// was dropped and the channel refetches.
    BufferLimit,
    /// The server sent a delta beyond the granted credit; it was refused. Reported
    /// once per episode: the first refusal after the channel last accepted a delta.
    CreditOverrun,
    /// A server op that the current state does not allow (or a bad HELLO); ignored.
    UnexpectedOp,
    /// A snapshot reply that does not fit the request; the channel fetches again.
    BadSnapshot,
    /// The server closed with a fatal code; the session stopped.
    FatalClose,
    /// A delta or request for a channel that is not subscribed.
    NotSubscribed,
    /// A detail request names an empty or overlong meter id.
    BadMeterId,
    /// A session config value is out of its documented bound.
    BadConfig,
}

impl SessionErrorCode {
    /// The stable wire string, e.g. `"credit_overrun"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionErrorCode::BadChannel => "bad_channel",
            SessionErrorCode::ChannelLimit => "channel_limit",
            SessionErrorCode::BufferLimit => "buffer_limit",
            SessionErrorCode::CreditOverrun => "credit_overrun",
            SessionErrorCode::UnexpectedOp => "unexpected_op",
            SessionErrorCode::BadSnapshot => "bad_snapshot",
            SessionErrorCode::FatalClose => "fatal_close",
            SessionErrorCode::NotSubscribed => "not_subscribed",
            SessionErrorCode::BadMeterId => "bad_meter_id",
            SessionErrorCode::BadConfig => "bad_config",
        }
    }
}

/// A session error: a stable code and a message naming what and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct SessionError {
    /// The code a page can branch on.
    pub code: SessionErrorCode,
    /// What happened, in words.
    pub message: String,
}

impl SessionError {
    /// An error with `code` and `message`. Out of line: errors are the cold
    /// path (docs/SIZE.md).
    #[cold]
    #[inline(never)]
    pub fn new(code: SessionErrorCode, message: impl Into<String>) -> SessionError {
        SessionError { code, message: message.into() }
    }
}

/// Heartbeat intervals above this (one hour) are refused as a bad HELLO.
pub const HEARTBEAT_MAX_MS: f64 = 3_600_000.0;

/// Default `maxBufferedBytes`: 32 MiB per channel.
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 32 << 20;
/// Smallest accepted `maxBufferedBytes` (64 KiB).
pub const MIN_MAX_BUFFERED_BYTES: u64 = 1 << 16;
/// Largest accepted `maxBufferedBytes` (1 GiB).
pub const MAX_MAX_BUFFERED_BYTES: u64 = 1 << 30;

/// The session's limits and timings. Every store is bounded by one of these.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    /// Channels subscribed at once (`maxSubscriptions`: 1..=256; default 16).
    pub max_channels: u32,
    /// Deltas buffered per channel while it waits for a snapshot (1..=1,000,000; default 1024).
    pub max_buffered_deltas: u32,
    /// Encoded bytes of the deltas buffered per channel while it waits for a
    /// snapshot (65,536..=1 GiB; default 32 MiB). Past it the buffer is dropped
    /// and the channel's full snapshot fetched again.
    pub max_buffered_bytes: u64,
    /// Deltas in flight per channel: granted, buffered or awaiting render (1..=1,000,000; default 256).
    pub credit_window: u32,
    /// First backoff ceiling in ms (1..=`backoff_cap_ms`; default 500).
    pub backoff_base_ms: f64,
    /// Largest backoff ceiling in ms (≤ 600,000; default 30,000).
    pub backoff_cap_ms: f64,
    /// Time allowed from `Connect` to HELLO in ms (100..=600,000; default 10,000).
    pub hello_timeout_ms: f64,
    /// Wait before a failed or refused snapshot fetch is retried, in ms (1..=600,000; default 1,000).
    pub fetch_retry_ms: f64,
    /// Seed of the jitter generator (any value; default 1).
    pub seed: u64,
    /// Ask for `meters.<group>` DELTAs as binary kind-4 frames
    /// (`"binary_deltas":true` in IDENTIFY and RESUME; default false).
    pub binary_deltas: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_channels: 16,
            max_buffered_deltas: 1024,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            credit_window: 256,
            backoff_base_ms: 500.0,
            backoff_cap_ms: 30_000.0,
            hello_timeout_ms: 10_000.0,
            fetch_retry_ms: 1_000.0,
            seed: 1,
            binary_deltas: false,
        }
    }
}

/// The `bad_config` session error for `field`, out of line (docs/SIZE.md).
#[cold]
#[inline(never)]
fn refuse_session_config(field: &str, bound: &str) -> Result<(), SessionError> {
    Err(SessionError::new(
        SessionErrorCode::BadConfig,
        format!("session config {field} must be {bound}"),
    ))
}

impl SessionConfig {
    /// Checks every field against its documented bound.
    pub fn validate(&self) -> Result<(), SessionError> {
        let bad = refuse_session_config;
        let within = |x: f64, lo: f64, hi: f64| x.is_finite() && x >= lo && x <= hi;
        if !(1..=256).contains(&self.max_channels) {
            return bad("maxSubscriptions", "in 1..=256");
        }
        if !(1..=1_000_000).contains(&self.max_buffered_deltas) {
            return bad("maxBufferedDeltas", "in 1..=1000000");
        }
        if !(MIN_MAX_BUFFERED_BYTES..=MAX_MAX_BUFFERED_BYTES).contains(&self.max_buffered_bytes) {
            return bad("maxBufferedBytes", "in 65536..=1073741824");
        }
        if !(1..=1_000_000).contains(&self.credit_window) {
            return bad("creditWindow", "in 1..=1000000");
        }
        if !within(self.backoff_cap_ms, 1.0, 600_000.0) {
            return bad("backoffCapMs", "in 1..=600000");
        }
        if !within(self.backoff_base_ms, 1.0, self.backoff_cap_ms) {
            return bad("backoffBaseMs", "in 1..=backoffCapMs");
        }
        if !within(self.hello_timeout_ms, 100.0, 600_000.0) {
            return bad("helloTimeoutMs", "in 100..=600000");
        }
        if !within(self.fetch_retry_ms, 1.0, 600_000.0) {
            return bad("fetchRetryMs", "in 1..=600000");
        }
        Ok(())
    }
}

/// Running counters for `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Gaps detected (out-of-order delta, lost tail, discontinuous buffer).
    pub gaps: u64,
    /// RESUMED received.
    pub resumes_ok: u64,
    /// INVALID_SESSION received while resuming.
    pub resumes_failed: u64,
    /// Times a channel's credit reached zero.
    pub credit_exhausted: u64,
    /// Deltas refused for arriving beyond the granted credit.
    pub credit_overruns: u64,
    /// Snapshot and mini-snapshot fetches issued.
    pub snapshot_fetches: u64,
    /// Reconnects scheduled.
    pub reconnect_attempts: u64,
    /// Connections closed for a missed HEARTBEAT_ACK.
    pub zombies: u64,
    /// Deltas ignored as duplicates or from an older epoch.
    pub duplicates: u64,
    /// Epoch changes that re-snapshotted a channel.
    pub epoch_changes: u64,
    /// Buffers dropped at `maxBufferedDeltas` or `maxBufferedBytes`.
    pub buffer_overflows: u64,
    /// Fetch replies that answered a superseded request.
    pub stale_replies: u64,
}
