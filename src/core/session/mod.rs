//! The stream v2 session (docs/STREAM.md): lifecycle, heartbeats, resume and
//! backoff here; per-channel bootstrap, gap recovery and credit in `channel`.
//!
//! `Session::handle(input, now_ms)` is pure: time is passed in, jitter comes from
//! a generator seeded by the config, and every effect is a `SessionOutput` the
//! host executes (send, connect, close, fetch) or the consumer applies
//! (deliver). Invariants:
//! - Deliveries per channel are strictly in order: a full snapshot, then deltas
//!   `seq = last + 1`, mini-snapshots continuing from `last`, within one epoch.
//! - Per channel and connection, deltas accepted ≤ credit granted; the excess is
//!   refused. Credit + buffered + awaiting render + pending grant = the window.
//! - Every store is bounded: channels by `max_channels`, each buffer by
//!   `min(max_buffered_deltas, credit_window)` deltas and by
//!   `max_buffered_bytes` encoded bytes.
//! - No input panics.

mod channel;
pub mod op;
pub mod rng;
pub mod types;

pub use op::{ChannelOffer, ChannelPos, ClientOp};
pub use types::*;

use crate::core::meters::meter_id_problem;
use channel::Channel;
pub use channel::{valid_channel_name, ChannelView, MAX_CHANNEL_NAME, MAX_LISTED_REFUSALS};
use rng::SplitMix64;

/// The close code the client uses when it abandons a connection but keeps the
/// session resumable (zombie, HELLO timeout, RECONNECT): never 1000/1001.
pub const CLOSE_RESUMABLE: u16 = 4000;

/// Server close codes after which the client stops for good.
pub const FATAL_CLOSE_CODES: [u16; 5] = [4004, 4010, 4012, 4013, 4014];

/// Server close codes after which the session is gone: identify afresh.
pub const SESSION_ENDING_CLOSE_CODES: [u16; 3] = [4003, 4007, 4009];

/// Where the connection is, with the timer that belongs to the phase.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Idle,
    Backoff {
        retry_at: f64,
    },
    Connecting {
        deadline: f64,
    },
    Identifying,
    /// Non-resumable INVALID_SESSION: IDENTIFY afresh at `at`.
    IdentifyAt {
        at: f64,
    },
    Resuming,
    Ready,
    Stopped,
}

/// The stream v2 client session.
#[derive(Clone, Debug)]
pub struct Session {
    cfg: SessionConfig,
    rng: SplitMix64,
    phase: Phase,
    session_id: Option<String>,
    resume_url: Option<String>,
    heartbeat_ms: f64,
    next_heartbeat: Option<f64>,
    awaiting_ack: bool,
    attempt: u32,
    last_close: Option<u16>,
    channels: Vec<Channel>,
    next_request: u64,
    counters: SessionCounters,
}

impl Default for Session {
    fn default() -> Self {
        Session::with_valid_config(SessionConfig::default())
    }
}

impl Session {
    /// A disconnected session with `cfg`, or an error naming the first bad field.
    pub fn new(cfg: SessionConfig) -> Result<Session, SessionError> {
        cfg.validate()?;
        Ok(Session::with_valid_config(cfg))
    }

    fn with_valid_config(cfg: SessionConfig) -> Session {
        Session {
            rng: SplitMix64::new(cfg.seed),
            cfg,
            phase: Phase::Idle,
            session_id: None,
            resume_url: None,
            heartbeat_ms: 0.0,
            next_heartbeat: None,
            awaiting_ack: false,
            attempt: 0,
            last_close: None,
            channels: Vec::new(),
            next_request: 1,
            counters: SessionCounters::default(),
        }
    }

    /// Takes a new configuration (already validated); the state stays. A
    /// smaller window or buffer takes effect as credit is granted and
    /// buffers refill.
    pub fn reconfigure(&mut self, cfg: SessionConfig) -> Result<(), SessionError> {
        cfg.validate()?;
        self.cfg = cfg;
        Ok(())
    }

    /// Bytes held (estimate): channels, their buffers and names.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Session>() + self.channels.iter().map(Channel::bytes).sum::<usize>()
    }

    /// Handles one input at `now_ms`; returns what it produced.
    pub fn handle(&mut self, input: SessionInput, now_ms: f64) -> Vec<SessionOutput> {
        let mut out = Vec::new();
        self.handle_into(input, now_ms, &mut out);
        out
    }

    /// Like [`Session::handle`], pushing the outputs into `out`.
    pub fn handle_into(&mut self, input: SessionInput, now: f64, out: &mut Vec<SessionOutput>) {
        match input {
            SessionInput::Start => self.start(now, out),
            SessionInput::StartWith { channels } => {
                self.subscribe_all(channels, out);
                self.start(now, out)
            }
            SessionInput::Opened => {}
            SessionInput::BadFetch { request_id, message } => {
                out.push(SessionOutput::Error(SessionError::new(
                    SessionErrorCode::BadSnapshot,
                    format!("fetch {request_id}: {message}"),
                )));
                self.fetch_failed(request_id, now)
            }
            SessionInput::Stop => self.stop(out),
            SessionInput::Closed { code, reason } => self.closed(code, &reason, now, out),
            SessionInput::Server(op) => self.server(op, now, out),
            SessionInput::Snapshot(reply) => self.snapshot(reply, now, out),
            SessionInput::FetchFailed { request_id } => self.fetch_failed(request_id, now),
            SessionInput::Subscribe { channel } => self.subscribe(channel, out),
            SessionInput::Unsubscribe { channel } => self.unsubscribe(&channel, out),
            SessionInput::FetchDetail { meter } => self.fetch_detail(meter, out),
            SessionInput::Rendered { channel, frames } => self.rendered(&channel, frames),
            SessionInput::Tick => self.tick(now, out),
            SessionInput::DetailReply { .. } => {}
        }
        self.grant_credit(out);
    }

    /// The connection state as the page sees it.
    pub fn state(&self) -> ConnectionState {
        match self.phase {
            Phase::Idle | Phase::Backoff { .. } => ConnectionState::Disconnected,
            Phase::Connecting { .. } => ConnectionState::Connecting,
            Phase::Identifying | Phase::IdentifyAt { .. } => ConnectionState::Identifying,
            Phase::Resuming => ConnectionState::Resuming,
            Phase::Ready => ConnectionState::Ready,
            Phase::Stopped => ConnectionState::Stopped,
        }
    }

    /// Running counters.
    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// The session id, once READY or HELLO named one.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The earliest time a `Tick` has work to do, for the host's timer.
    pub fn next_deadline(&self) -> Option<f64> {
        let phase = match self.phase {
            Phase::Backoff { retry_at } => Some(retry_at),
            Phase::Connecting { deadline } => Some(deadline),
            Phase::IdentifyAt { at } => Some(at),
            _ => None,
        };
        let fetch = self.channels.iter().filter_map(Channel::retry_at);
        phase.into_iter().chain(self.next_heartbeat).chain(fetch).reduce(f64::min)
    }

    /// True after HELLO on the current connection: messages can be sent.
    fn greeted(&self) -> bool {
        matches!(
            self.phase,
            Phase::Identifying | Phase::IdentifyAt { .. } | Phase::Resuming | Phase::Ready
        )
    }

    fn status(&self, reason: impl Into<String>, out: &mut Vec<SessionOutput>) {
        let next_retry_ms = match self.phase {
            Phase::Backoff { retry_at } => Some(retry_at),
            _ => None,
        };
        out.push(SessionOutput::Connection(ConnectionStatus {
            state: self.state(),
            attempt: self.attempt,
            next_retry_ms,
            last_close_code: self.last_close,
            reason: reason.into(),
        }));
    }

    fn start(&mut self, now: f64, out: &mut Vec<SessionOutput>) {
        if matches!(self.phase, Phase::Idle | Phase::Stopped) {
            self.attempt = 0;
            self.connect(now, out);
        }
    }

    fn connect(&mut self, now: f64, out: &mut Vec<SessionOutput>) {
        self.phase = Phase::Connecting { deadline: now + self.cfg.hello_timeout_ms };
        self.next_heartbeat = None;
        self.awaiting_ack = false;
        let url = self.session_id.as_ref().and(self.resume_url.clone());
        out.push(SessionOutput::Connect { url });
        self.status("connecting", out);
    }

    fn stop(&mut self, out: &mut Vec<SessionOutput>) {
        if matches!(self.phase, Phase::Idle | Phase::Stopped) {
            return;
        }
        if !matches!(self.phase, Phase::Backoff { .. }) {
            out.push(SessionOutput::Close { code: 1000, reason: "stopped".into() });
            self.last_close = Some(1000);
        }
        // A 1000 close ends the session on the server: the next start identifies.
        self.session_id = None;
        self.phase = Phase::Idle;
        self.next_heartbeat = None;
        self.status("stopped by the page", out);
    }

    /// Abandons the connection (if any) and schedules a reconnect with full jitter.
    fn reconnect(
        &mut self,
        close: Option<u16>,
        reason: &str,
        now: f64,
        out: &mut Vec<SessionOutput>,
    ) {
        if let Some(code) = close {
            out.push(SessionOutput::Close { code, reason: reason.into() });
            self.last_close = Some(code);
        }
        let ceiling = (self.cfg.backoff_base_ms * 2f64.powi(self.attempt.min(30) as i32))
            .min(self.cfg.backoff_cap_ms);
        let retry_at = now + ceiling * self.rng.unit();
        self.attempt = self.attempt.saturating_add(1);
        self.counters.reconnect_attempts += 1;
        self.phase = Phase::Backoff { retry_at };
        self.next_heartbeat = None;
        self.awaiting_ack = false;
        self.status(reason, out);
    }

    fn closed(&mut self, code: u16, reason: &str, now: f64, out: &mut Vec<SessionOutput>) {
        // After our own close (or none open), the socket's close event is an echo.
        if matches!(self.phase, Phase::Idle | Phase::Backoff { .. } | Phase::Stopped) {
            return;
        }
        self.last_close = Some(code);
        if FATAL_CLOSE_CODES.contains(&code) {
            self.phase = Phase::Stopped;
            self.next_heartbeat = None;
            let why = format!("closed by the server with fatal code {code}: {reason}");
            out.push(SessionOutput::Error(SessionError::new(SessionErrorCode::FatalClose, &why)));
            self.status(why, out);
            return;
        }
        if SESSION_ENDING_CLOSE_CODES.contains(&code) {
            self.forget_session(out);
        }
        self.reconnect(None, &format!("closed with code {code}: {reason}"), now, out);
    }

    /// The server's session is gone: identify next time, and bootstrap every channel again.
    fn forget_session(&mut self, out: &mut Vec<SessionOutput>) {
        self.session_id = None;
        for i in 0..self.channels.len() {
            self.rebootstrap(i, out);
        }
    }

    fn server(&mut self, op: ServerOp, now: f64, out: &mut Vec<SessionOutput>) {
        match op {
            ServerOp::Hello { heartbeat_interval_ms, session_id, resume_url, .. } => {
                self.hello(heartbeat_interval_ms, session_id, resume_url, now, out)
            }
            ServerOp::Ready { session_id } if self.phase == Phase::Identifying => {
                self.session_id = Some(session_id);
                self.ready("ready", out);
            }
            ServerOp::Resumed if self.phase == Phase::Resuming => {
                self.counters.resumes_ok += 1;
                self.ready("resumed", out);
            }
            ServerOp::Heartbeat if self.greeted() => self.send_heartbeat(out),
            ServerOp::HeartbeatAck { sent } if self.greeted() => {
                self.awaiting_ack = false;
                self.tail_gaps(&sent, out);
            }
            ServerOp::Reconnect if self.greeted() => {
                self.reconnect(Some(CLOSE_RESUMABLE), "server asked to reconnect", now, out)
            }
            ServerOp::InvalidSession { resumable } if self.greeted() => {
                self.invalid_session(resumable, now, out)
            }
            ServerOp::Delta { channel, epoch, seq, body, wire_bytes } if self.greeted() => {
                self.delta(&channel, epoch, seq, body, wire_bytes, out)
            }
            other => unexpected(&other, self.state(), out),
        }
    }

    fn hello(
        &mut self,
        interval: f64,
        session_id: String,
        resume_url: Option<String>,
        now: f64,
        out: &mut Vec<SessionOutput>,
    ) {
        if !matches!(self.phase, Phase::Connecting { .. }) {
            return unexpected_name("HELLO", self.state(), out);
        }
        if !(1.0..=HEARTBEAT_MAX_MS).contains(&interval) {
            out.push(SessionOutput::Error(SessionError::new(
                SessionErrorCode::UnexpectedOp,
                format!("HELLO heartbeat_interval_ms {interval} is not in 1..={HEARTBEAT_MAX_MS}"),
            )));
            return self.reconnect(Some(CLOSE_RESUMABLE), "bad HELLO", now, out);
        }
        self.heartbeat_ms = interval;
        self.next_heartbeat = Some(now + interval * self.rng.unit());
        self.awaiting_ack = false;
        self.resume_url = resume_url;
        match self.session_id.clone() {
            Some(id) => {
                let channels = self.offers();
                let binary_deltas = self.cfg.binary_deltas;
                out.push(SessionOutput::Send(ClientOp::Resume {
                    session_id: id,
                    channels,
                    binary_deltas,
                }));
                self.phase = Phase::Resuming;
                self.status("resuming", out);
            }
            None => {
                // Remember the HELLO's id only once READY confirms the new session.
                let _ = session_id;
                self.identify(out);
            }
        }
    }

    fn identify(&mut self, out: &mut Vec<SessionOutput>) {
        let channels = self.offers();
        let binary_deltas = self.cfg.binary_deltas;
        out.push(SessionOutput::Send(ClientOp::Identify { channels, binary_deltas }));
        self.phase = Phase::Identifying;
        self.status("identifying", out);
    }

    fn ready(&mut self, reason: &str, out: &mut Vec<SessionOutput>) {
        self.phase = Phase::Ready;
        self.attempt = 0;
        self.status(reason, out);
    }

    fn invalid_session(&mut self, resumable: bool, now: f64, out: &mut Vec<SessionOutput>) {
        if self.phase == Phase::Resuming {
            self.counters.resumes_failed += 1;
        }
        if resumable && self.session_id.is_some() {
            return self.reconnect(Some(CLOSE_RESUMABLE), "session invalid, resumable", now, out);
        }
        self.forget_session(out);
        self.phase = Phase::IdentifyAt { at: now + 1_000.0 + 4_000.0 * self.rng.unit() };
        self.status("session invalid: identifying afresh after a pause", out);
    }

    fn fetch_detail(&mut self, meter: String, out: &mut Vec<SessionOutput>) {
        if let Some(why) = meter_id_problem(&meter) {
            out.push(SessionOutput::Error(SessionError::new(
                SessionErrorCode::BadMeterId,
                format!("detail: {why}"),
            )));
            return;
        }
        let request_id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        out.push(SessionOutput::Fetch { request_id, what: FetchWhat::Detail { meter } });
    }

    fn send_heartbeat(&mut self, out: &mut Vec<SessionOutput>) {
        let seqs = self.channels.iter().filter_map(Channel::position).collect();
        out.push(SessionOutput::Send(ClientOp::Heartbeat { seqs }));
        self.awaiting_ack = true;
    }

    fn tick(&mut self, now: f64, out: &mut Vec<SessionOutput>) {
        match self.phase {
            Phase::Backoff { retry_at } if now >= retry_at => self.connect(now, out),
            Phase::Connecting { deadline } if now >= deadline => {
                self.reconnect(Some(CLOSE_RESUMABLE), "no HELLO in time", now, out)
            }
            Phase::IdentifyAt { at } if now >= at => self.identify(out),
            _ => {}
        }
        if let Some(due) = self.next_heartbeat.filter(|&t| now >= t && self.greeted()) {
            if self.awaiting_ack {
                self.counters.zombies += 1;
                self.reconnect(
                    Some(CLOSE_RESUMABLE),
                    "no HEARTBEAT_ACK: zombie connection",
                    now,
                    out,
                );
            } else {
                self.send_heartbeat(out);
                // Keep the cadence; a host that slept long gets one heartbeat, not a burst.
                self.next_heartbeat = Some((due + self.heartbeat_ms).max(now));
            }
        }
        self.retry_fetches(now, out);
    }
}

fn unexpected(op: &ServerOp, state: ConnectionState, out: &mut Vec<SessionOutput>) {
    let name = match op {
        ServerOp::Hello { .. } => "HELLO",
        ServerOp::Ready { .. } => "READY",
        ServerOp::Resumed => "RESUMED",
        ServerOp::Heartbeat => "HEARTBEAT",
        ServerOp::HeartbeatAck { .. } => "HEARTBEAT_ACK",
        ServerOp::Reconnect => "RECONNECT",
        ServerOp::InvalidSession { .. } => "INVALID_SESSION",
        ServerOp::Delta { .. } => "DELTA",
    };
    unexpected_name(name, state, out)
}

fn unexpected_name(name: &str, state: ConnectionState, out: &mut Vec<SessionOutput>) {
    out.push(SessionOutput::Error(SessionError::new(
        SessionErrorCode::UnexpectedOp,
        format!("{name} is not expected while {}: ignored", state.as_str()),
    )));
}
