//! Replay: drives one `core::Engine` from an NDJSON recording with a simulated
//! clock, exactly as the worker would have been driven (`docs/REPLAY.md`).
//!
//! Each input line is a page message (as for [`wire::decode_message`]) plus
//! `"t"`, its arrival time in ms; `t` never decreases and stays within
//! ±[`MAX_T_MS`] (2^53 − 1, where consecutive milliseconds are still distinct
//! doubles). Two simulated timers run as the worker's do: the evaluation tick
//! every `tickMs` and the totals flush every `totalsFlushMs`, each interval
//! rounded and clamped to 1..=2^31 − 1 ms as the worker's `setInterval` is,
//! both first due one interval after the first line's `t`. Before a line is
//! handled, every timer fire due at or before its `t` is handled in time order
//! (a tick before a flush due at the same time); after the last line, fires are
//! due up to the last `t` plus one tick interval. A `config` line that changes
//! an interval restarts that timer at the line's `t`, as the worker restarts
//! its interval timer.
//!
//! Every outbound message is written as one NDJSON line in its wire shape
//! ([`wire::encode`]) with `"t"` (engine time) added, and `"line"` (1-based
//! input line) when a line caused it; [`ReplayOptions::only`] keeps only some
//! message types. A bad line becomes an `error` line with its line number and
//! the replay goes on.
//!
//! Invariants: output `t` never decreases, and the timers never fire more than
//! [`ReplayOptions::max_fires_per_line`] times between two lines: past that (a
//! recording with a gap of days, or a corrupt `t`) the timers skip ahead, as a
//! suspended worker's would, and a `warning` line with code `replay_gap` says
//! how many fires were skipped. So the work per input line is bounded whatever
//! the numbers in it.

use std::io::{self, BufRead, Write};

use serde::Serialize;
use serde_json::Value;

use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode, WarningCode};
use crate::core::event::{HostStats, Inbound, Outbound, StreamRequest, WarningEvent};
use crate::core::Engine;
use crate::wire;

/// Default for [`ReplayOptions::max_fires_per_line`].
pub const MAX_FIRES_PER_GAP: u64 = 1_000_000;

/// Largest `|t|` accepted on an input line, 2^53 − 1 ms (JS
/// `Number.MAX_SAFE_INTEGER`, some 285,000 years): past it consecutive
/// milliseconds are not distinct doubles, so a timer could not advance.
pub const MAX_T_MS: f64 = 9_007_199_254_740_991.0;

/// The outbound message types, as in `type` on the wire (PROTOCOL.md section 4).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
pub enum OutType {
    Anomaly,
    Cleared,
    Stats,
    Error,
    Warning,
    Window,
    Meter,
    Totals,
    Fetch,
    Connect,
    Send,
    Close,
    Connection,
    Meters,
    Notices,
    Detail,
    Ack,
    Groups,
    Series,
}

impl OutType {
    /// The type of `o` on the wire.
    pub fn of(o: &Outbound) -> OutType {
        match o {
            Outbound::Answer { answer, .. } => OutType::of(answer),
            Outbound::Anomaly(_) => OutType::Anomaly,
            Outbound::Cleared(_) => OutType::Cleared,
            Outbound::Stats(_) => OutType::Stats,
            Outbound::Error(_) => OutType::Error,
            Outbound::Warning(_) => OutType::Warning,
            Outbound::Window { .. } => OutType::Window,
            Outbound::Meter(_) => OutType::Meter,
            Outbound::Totals(_) => OutType::Totals,
            Outbound::Fetch(_) => OutType::Fetch,
            Outbound::Stream(r) => match r {
                StreamRequest::Connect { .. } => OutType::Connect,
                StreamRequest::Send { .. } => OutType::Send,
                StreamRequest::Close { .. } => OutType::Close,
                StreamRequest::Fetch { .. } => OutType::Fetch,
            },
            Outbound::Connection(_) => OutType::Connection,
            Outbound::Meters(_) => OutType::Meters,
            Outbound::Notices(_) => OutType::Notices,
            Outbound::Detail(_) => OutType::Detail,
            Outbound::Ack(_) => OutType::Ack,
            Outbound::Groups(_) => OutType::Groups,
            Outbound::Series(_) => OutType::Series,
        }
    }

    /// The wire string, e.g. `"totals"`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every type, in declaration order.
    pub fn iter() -> impl Iterator<Item = OutType> {
        <OutType as strum::IntoEnumIterator>::iter()
    }

    /// The types named in a comma-separated list such as `"anomaly,totals"`.
    pub fn parse_list(list: &str) -> Result<Vec<OutType>, String> {
        list.split(',')
            .map(str::trim)
            .map(|name| {
                name.parse().map_err(|_| {
                    let known: Vec<&str> = OutType::iter().map(OutType::as_str).collect();
                    format!("unknown message type '{name}' (one of {})", known.join(", "))
                })
            })
            .collect()
    }
}

/// How a replay runs; [`Default`] is what `meterflow replay` does without options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Most timer fires (ticks and flushes together) handled between two
    /// lines, and after the last one. Default [`MAX_FIRES_PER_GAP`]; at least 1
    /// (0 is taken as 1). Past it the timers skip ahead with a `replay_gap` warning.
    pub max_fires_per_line: u64,
    /// Write only messages of these types (`--only`); `None` writes every type.
    /// Filtered messages are counted in [`ReplaySummary::filtered`].
    pub only: Option<Vec<OutType>>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { max_fires_per_line: MAX_FIRES_PER_GAP, only: None }
    }
}

/// What a replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Input lines read (blank lines included).
    pub lines: u64,
    /// Lines handled as page messages.
    pub messages: u64,
    /// Lines that were not a JSON object with a valid `t` (reported as `error` lines).
    pub bad_lines: u64,
    /// Messages the decoder rejected as a whole (reported by the engine as `error` lines).
    pub rejected: u64,
    /// Evaluation ticks fired.
    pub ticks: u64,
    /// Totals flushes fired.
    pub flushes: u64,
    /// Timer fires skipped over gaps longer than [`ReplayOptions::max_fires_per_line`] allows.
    pub skipped_fires: u64,
    /// Output lines written.
    pub outputs: u64,
    /// Outbound messages not written because [`ReplayOptions::only`] left out their type.
    pub filtered: u64,
}

/// Why a replay stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The starting configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(CoreError),
    /// The input could not be read.
    #[error("reading the recording: {0}")]
    Read(io::Error),
    /// The output could not be written.
    #[error("writing the output: {0}")]
    Write(io::Error),
}

/// A periodic timer on the simulated clock: fire `k` is due at `start + k * interval`.
#[derive(Clone, Copy, Debug)]
struct Timer {
    start: f64,
    interval: f64,
    k: u64,
}

impl Timer {
    /// A timer first due at `start + interval`; `interval` is in ms, already
    /// clamped by [`interval_ms`].
    fn new(start: f64, interval: f64) -> Timer {
        Timer { start, interval, k: 1 }
    }

    fn next(&self) -> f64 {
        self.start + self.k as f64 * self.interval
    }

    /// Fires due at or before `t`, saturating at `u64::MAX`: the float-to-int
    /// conversion saturates and the `+ 1` must not wrap to 0.
    fn due(&self, t: f64) -> u64 {
        let next = self.next();
        if next <= t {
            (((t - next) / self.interval) as u64).saturating_add(1)
        } else {
            0
        }
    }
}

/// A timer interval as the worker's `setInterval` takes it: whole ms, 1 to 2^31 − 1.
fn interval_ms(ms: f64) -> f64 {
    if ms.is_nan() {
        return 1.0;
    }
    ms.round().clamp(1.0, f64::from(i32::MAX))
}

/// The head of one output line: `t`, `line` when an input line caused it;
/// the message's fields follow (`wire::encode(..).to_json()`).
#[derive(Serialize)]
struct OutLine {
    t: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
}

struct Replayer<W: Write> {
    engine: Engine,
    out: W,
    /// One output line being serialised (reused).
    line_buf: Vec<u8>,
    tick: Option<Timer>,
    flush: Option<Timer>,
    last_t: f64,
    max_fires: u64,
    only: Option<Vec<OutType>>,
    summary: ReplaySummary,
}

/// Replays `input` (NDJSON page messages with `t`) into one engine configured
/// with `cfg`, writing every outbound message to `out` as NDJSON.
pub fn replay(
    input: impl BufRead,
    out: impl Write,
    cfg: Config,
) -> Result<ReplaySummary, ReplayError> {
    replay_with(input, out, cfg, ReplayOptions::default())
}

/// [`replay`] with options: an output filter and the per-line timer cap.
pub fn replay_with(
    input: impl BufRead,
    out: impl Write,
    cfg: Config,
    opts: ReplayOptions,
) -> Result<ReplaySummary, ReplayError> {
    let engine = Engine::new(cfg).map_err(ReplayError::Config)?;
    let mut r = Replayer {
        engine,
        out,
        line_buf: Vec::new(),
        tick: None,
        flush: None,
        last_t: 0.0,
        max_fires: opts.max_fires_per_line.max(1),
        only: opts.only,
        summary: ReplaySummary::default(),
    };
    r.run(input)?;
    r.out.flush().map_err(ReplayError::Write)?;
    Ok(r.summary)
}

impl<W: Write> Replayer<W> {
    fn run(&mut self, mut input: impl BufRead) -> Result<(), ReplayError> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if input.read_until(b'\n', &mut buf).map_err(ReplayError::Read)? == 0 {
                break;
            }
            self.summary.lines += 1;
            let n = self.summary.lines;
            let line = match std::str::from_utf8(&buf) {
                Ok(s) => s.trim(),
                Err(_) => {
                    let e = CoreError::new(ErrorCode::MalformedJson, "not UTF-8");
                    self.bad_line(n, e)?;
                    continue;
                }
            };
            if line.is_empty() {
                continue;
            }
            match self.parse(line) {
                Ok((t, msg)) => self.handle(n, t, &msg)?,
                Err(e) => self.bad_line(n, e)?,
            }
        }
        if let Some(tick) = self.tick {
            self.fire_until(self.last_t + tick.interval)?;
        }
        Ok(())
    }

    /// The line's `t` and message, or why it is not one.
    fn parse(&self, line: &str) -> Result<(f64, Value), CoreError> {
        let msg: Value = serde_json::from_str(line)
            .map_err(|e| CoreError::new(ErrorCode::MalformedJson, format!("not JSON ({e})")))?;
        let t = match msg.get("t") {
            Some(t) => t
                .as_f64()
                .ok_or_else(|| CoreError::new(ErrorCode::BadField, "t: must be a number (ms)"))?,
            None => return Err(CoreError::new(ErrorCode::BadField, "t: missing")),
        };
        if t.is_nan() || t.abs() > MAX_T_MS {
            return Err(CoreError::new(
                ErrorCode::BadTimestamp,
                format!("t {t} is not a time in ms: |t| must be at most 2^53 - 1"),
            ));
        }
        if self.tick.is_some() && t < self.last_t {
            return Err(CoreError::new(
                ErrorCode::BadTimestamp,
                format!("t {t} is before the previous line's t {}", self.last_t),
            ));
        }
        Ok((t, msg))
    }

    fn bad_line(&mut self, n: u64, e: CoreError) -> Result<(), ReplayError> {
        self.summary.bad_lines += 1;
        let e = CoreError { message: format!("line {n}: {}", e.message), ..e };
        self.write(self.last_t, Some(n), &[Outbound::Error(e)])
    }

    fn handle(&mut self, n: u64, t: f64, msg: &Value) -> Result<(), ReplayError> {
        if self.tick.is_none() {
            let cfg = self.engine.config();
            self.tick = Some(Timer::new(t, interval_ms(cfg.tick_ms)));
            self.flush = Some(Timer::new(t, interval_ms(cfg.totals_flush_ms)));
        }
        self.fire_until(t)?;
        self.last_t = t;
        self.summary.messages += 1;
        let inbound = wire::decode_message(msg, self.engine.config());
        if matches!(inbound, Inbound::Rejected(_)) {
            self.summary.rejected += 1;
        }
        let is_config = matches!(inbound, Inbound::Config(_));
        let outputs = self.engine.handle(inbound, t);
        self.write(t, Some(n), &outputs)?;
        if is_config {
            self.retime(t);
        }
        Ok(())
    }

    /// Restarts a timer at `t` when the config changed its interval.
    fn retime(&mut self, t: f64) {
        let cfg = self.engine.config();
        let (tick_ms, flush_ms) = (interval_ms(cfg.tick_ms), interval_ms(cfg.totals_flush_ms));
        for (timer, interval) in [(&mut self.tick, tick_ms), (&mut self.flush, flush_ms)] {
            if let Some(tm) = timer {
                if tm.interval != interval {
                    *tm = Timer::new(t, interval);
                }
            }
        }
    }

    /// Fires every tick and flush due at or before `t`, in time order.
    fn fire_until(&mut self, t: f64) -> Result<(), ReplayError> {
        let (Some(mut tick), Some(mut flush)) = (self.tick, self.flush) else { return Ok(()) };
        let due = tick.due(t).saturating_add(flush.due(t));
        let max = self.max_fires;
        if due > max {
            let skipped = due;
            tick.k = tick.k.saturating_add(tick.due(t));
            flush.k = flush.k.saturating_add(flush.due(t));
            self.tick = Some(tick);
            self.flush = Some(flush);
            self.summary.skipped_fires = self.summary.skipped_fires.saturating_add(skipped);
            let w = WarningEvent {
                count: None,
                code: WarningCode::ReplayGap,
                message: format!(
                    "{skipped} timer fires due between t {} and t {t} skipped (more than {max}), as a suspended worker would",
                    self.last_t
                ),
            };
            return self.write(t, None, &[Outbound::Warning(w)]);
        }
        // `due` bounds the loop; the count guards against rounding at the edge.
        for _ in 0..=due {
            let (tn, fnext) = (tick.next(), flush.next());
            if tn.min(fnext) > t {
                break;
            }
            let (input, at) = if tn <= fnext {
                tick.k += 1;
                self.summary.ticks += 1;
                (Inbound::Tick(HostStats::default()), tn)
            } else {
                flush.k += 1;
                self.summary.flushes += 1;
                (Inbound::Flush, fnext)
            };
            let outputs = self.engine.handle(input, at);
            self.write(at, None, &outputs)?;
        }
        self.tick = Some(tick);
        self.flush = Some(flush);
        Ok(())
    }

    fn write(
        &mut self,
        t: f64,
        line: Option<u64>,
        outputs: &[Outbound],
    ) -> Result<(), ReplayError> {
        for o in outputs {
            if let Some(only) = &self.only {
                if !only.contains(&OutType::of(o)) {
                    self.summary.filtered += 1;
                    continue;
                }
            }
            self.line_buf.clear();
            serde_json::to_writer(&mut self.line_buf, &OutLine { t, line })
                .map_err(|e| ReplayError::Write(io::Error::other(e)))?;
            // `{"t":..}` + `{"type":..}` → `{"t":..,"type":..}`.
            self.line_buf.pop();
            self.line_buf.push(b',');
            self.line_buf
                .extend_from_slice(wire::encode(o).to_json().get(1..).unwrap_or("}").as_bytes());
            self.line_buf.push(b'\n');
            self.out.write_all(&self.line_buf).map_err(ReplayError::Write)?;
            self.summary.outputs += 1;
        }
        Ok(())
    }
}
