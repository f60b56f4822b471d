//! Replay: drives one `core::Engine` from an NDJSON recording with a simulated
//! clock, exactly as the worker would have been driven (`docs/REPLAY.md`).
//!
//! Each input line is a page message (as for [`wire::decode_message`]) plus
//! `"t"`, its arrival time in ms; `t` never decreases. Two simulated timers run
//! as the worker's do: the evaluation tick every `tickMs` and the totals flush
//! every `totalsFlushMs`, both first due one interval after the first line's
//! `t`. Before a line is handled, every timer fire due at or before its `t` is
//! handled in time order (a tick before a flush due at the same time); after
//! the last line, fires are due up to the last `t` plus one tick interval. A
//! `config` line that changes an interval restarts that timer at the line's
//! `t`, as the worker restarts its interval timer.
//!
//! Every outbound message is written as one NDJSON line in its wire shape
//! ([`wire::encode`]) with `"t"` (engine time) added, and `"line"` (1-based
//! input line) when a line caused it. A bad line becomes an `error` line with
//! its line number and the replay goes on.
//!
//! Invariant: output `t` never decreases, and a timer never fires more than
//! [`MAX_FIRES_PER_GAP`] times between two lines: past that (a recording
//! with a gap of days, or a corrupt `t`) the timers skip ahead, as a suspended
//! worker's would, and a `warning` line with code `replay_gap` says how many
//! fires were skipped.

use std::io::{self, BufRead, Write};

use serde::Serialize;
use serde_json::Value;

use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode, WarningCode};
use crate::core::event::{HostStats, Inbound, Outbound, WarningEvent};
use crate::core::Engine;
use crate::wire::{self, WireOut};

/// Most timer fires (ticks and flushes together) handled between two lines.
pub const MAX_FIRES_PER_GAP: u64 = 1_000_000;

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
    /// Timer fires skipped over gaps longer than [`MAX_FIRES_PER_GAP`] allows.
    pub skipped_fires: u64,
    /// Output lines written.
    pub outputs: u64,
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
    fn new(start: f64, interval: f64) -> Timer {
        Timer { start, interval, k: 1 }
    }

    fn next(&self) -> f64 {
        self.start + self.k as f64 * self.interval
    }

    /// Fires due at or before `t`.
    fn due(&self, t: f64) -> u64 {
        let next = self.next();
        if next > t {
            0
        } else {
            // Saturating float-to-int conversion bounds an absurd gap.
            ((t - next) / self.interval) as u64 + 1
        }
    }
}

/// One output line: `t`, `line` when an input line caused it, then the message.
#[derive(Serialize)]
struct OutLine<'a> {
    t: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(flatten)]
    msg: WireOut<'a>,
}

struct Replayer<W: Write> {
    engine: Engine,
    out: W,
    /// One output line being serialised (reused).
    line_buf: Vec<u8>,
    tick: Option<Timer>,
    flush: Option<Timer>,
    last_t: f64,
    summary: ReplaySummary,
}

/// Replays `input` (NDJSON page messages with `t`) into one engine configured
/// with `cfg`, writing every outbound message to `out` as NDJSON.
pub fn replay(
    input: impl BufRead,
    out: impl Write,
    cfg: Config,
) -> Result<ReplaySummary, ReplayError> {
    let engine = Engine::new(cfg).map_err(ReplayError::Config)?;
    let mut r = Replayer {
        engine,
        out,
        line_buf: Vec::new(),
        tick: None,
        flush: None,
        last_t: 0.0,
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
            self.tick = Some(Timer::new(t, cfg.tick_ms));
            self.flush = Some(Timer::new(t, cfg.totals_flush_ms));
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
        let (tick_ms, flush_ms) =
            (self.engine.config().tick_ms, self.engine.config().totals_flush_ms);
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
        if due > MAX_FIRES_PER_GAP {
            let skipped = due;
            tick.k = tick.k.saturating_add(tick.due(t));
            flush.k = flush.k.saturating_add(flush.due(t));
            self.tick = Some(tick);
            self.flush = Some(flush);
            self.summary.skipped_fires += skipped;
            let w = WarningEvent {
                code: WarningCode::ReplayGap,
                message: format!(
                    "{skipped} timer fires due between t {} and t {t} skipped (more than {MAX_FIRES_PER_GAP}), as a suspended worker would",
                    self.last_t
                ),
            };
            return self.write(t, None, &[Outbound::Warning(w)]);
        }
        loop {
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
            let l = OutLine { t, line, msg: wire::encode(o) };
            self.line_buf.clear();
            serde_json::to_writer(&mut self.line_buf, &l)
                .map_err(|e| ReplayError::Write(io::Error::other(e)))?;
            self.line_buf.push(b'\n');
            self.out.write_all(&self.line_buf).map_err(ReplayError::Write)?;
            self.summary.outputs += 1;
        }
        Ok(())
    }
}
