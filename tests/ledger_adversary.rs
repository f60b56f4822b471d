#![cfg(not(target_arch = "wasm32"))]
//! An independent adversarial check of the ledger merge: "no reading is lost
//! and none is counted twice, whatever the order of arrival", and totals never
//! shown complete while wrong.
//!
//! `ledger_sim.rs` and `stream_sim.rs` simulate a server and a lossy network in
//! time. This generator does not: it first writes down everything an honest
//! server could ever say in a scenario (every live frame of every epoch, the
//! hellos, and REST results at many watermarks: current, lagging, between two
//! frames, over part of the hours, per meter or per resource), plus a few lies
//! it must refuse (a watermark from the future), and then lets an adversary
//! deliver that set: each message zero or more times, each copy at its own
//! delay (most within seconds, some minutes or hours later, some past the
//! 6-hour horizon), so frames arrive out of order, after the REST results
//! that cover them, across epochs and hour boundaries. The worker's clock is
//! skewed from the server's (within `maxClockSkewMs`, or in some schedules
//! beyond it) and may step back; the server's HLC leads its physical clock by
//! up to `maxOffsetMs`, or in some schedules by more.
//!
//! In about a third of the schedules (those with frames) the frames go to the
//! stream v2 session's `totals` channel on the socket instead (JSON text or
//! binary kind 2), and the adversary plays the server's side of the session:
//! it opens the socket and greets, answers IDENTIFY and heartbeats, and
//! answers each snapshot request with an honest snapshot (the newest frame's
//! watermark, or a lagging one) 1–3 times at its own delays, a lost reply
//! as a failed fetch. Frames sent while the socket is closed are lost.
//!
//! Everything goes through the page's path: JSON page messages (`live`,
//! `catchup`, `query`) through `wire::decode_message`, binary kind 2/3 through
//! `wire::decode_binary_at`, then `Engine::handle`, and every output through
//! `wire::encode` to the JSON the page reads. After every delivery the totals
//! are queried and checked against the oracle (the server's readings):
//!
//! - **complete ⇒ exact.** A `totals` without `incomplete` shows, for each kept
//!   hour of each resource, exactly the sum of the distinct readings of that
//!   hour stamped at or before the newer of the bucket's `asOf` and the newest
//!   stamp the worker was shown (a frame or hello delivered): everything its
//!   watermark covers, and nothing stamped before anything seen left out.
//! - **every refusal is typed.** Every `error` output carries a code from the
//!   set this traffic can cause (`clock_ahead` for a lie or a pushed HLC,
//!   `late_reading` for an hour rolled off); anything else fails the run.
//! - **quiescence.** Finally every frame is delivered once more, in order, and
//!   one honest full-range result at the newest stamp: unless the schedule's
//!   skew is beyond `maxClockSkewMs` (no sample can be believed, so nothing
//!   need apply), the totals are then complete and every kept hour exact.
//!
//! Two switches show the limits docs/LEDGER.md states: `ADV_SIM_STRICT=1`
//! holds complete totals to exactness past `maxClockSkewMs` too, and
//! `ADV_SIM_REPLAYS=1` lets a new epoch resend old frames under new seqs.
//!
//! `ADV_SIM_SCHEDULES` (default 2,000 per part), `ADV_SIM_FIRST` (the first
//! schedule index, 0), `ADV_SIM_SEED` (one seed),
//! `ADV_SIM_STALE_CLOCK=1`: delayed REST results keep the `serverTime` of the
//! moment they were made. By default a delayed result carries the server's
//! time at delivery (`FRESH_SERVER_TIME_FOR_STALE_REPLIES`), because an old
//! `serverTime` steps the corrected clock back and later honest results are
//! refused (docs/LEDGER.md, Clocks, "open finding"; fixed separately).

use std::collections::{BTreeMap, BTreeSet};

use meterflow::core::config::Config;
use meterflow::core::decimal::Decimal;
use meterflow::core::event::{
    Catchup, CatchupBucket, HostStats, Inbound, KeyScope, LiveBinding, LiveFrame,
};
use meterflow::core::hlc::Hlc;
use meterflow::core::Engine;
use meterflow::wire::binary::{encode_catchup, encode_live, TsLayout};
use meterflow::wire::{
    decode_binary_at, decode_message, decode_socket_binary, encode, Arrival, Envelope,
};
use serde_json::{json, Value};

const HOUR: u64 = 3_600_000;
const RESOURCES: [&str; 3] = ["water", "energy", "bandwidth"];
/// Decimals of every resource at the default config.
const DECIMALS: u8 = 3;

/// See the module comment: stale REST replies are given the server's time at
/// delivery unless `ADV_SIM_STALE_CLOCK=1`.
fn fresh_server_time_for_stale_replies() -> bool {
    std::env::var("ADV_SIM_STALE_CLOCK").map_or(true, |v| v != "1")
}

/// `ADV_SIM_REPLAYS=1`: new epochs resend old frames under new seqs.
fn replays() -> bool {
    std::env::var("ADV_SIM_REPLAYS").is_ok_and(|v| v == "1")
}

/// `ADV_SIM_STRICT=1`: complete totals must be exact even past `maxClockSkewMs`.
fn strict() -> bool {
    std::env::var("ADV_SIM_STRICT").is_ok_and(|v| v == "1")
}

/// SplitMix64: this file's own generator, so its draws share nothing with the
/// other simulations'.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn span(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }
}

/// One reading as the server stamped it.
#[derive(Clone, Debug)]
struct Reading {
    meter: usize,
    resource: usize,
    id: u64,
    ts: u64,
    units: i64,
    stamp: Hlc,
}

impl Reading {
    /// The hour it counts in: of its `ts`, or of its stamp if that is earlier.
    fn hour(&self) -> u64 {
        (self.ts.min(self.stamp.wall_ms) / HOUR) * HOUR
    }
}

#[derive(Clone, Debug)]
enum Msg {
    Hello {
        epoch: u64,
        next_seq: Option<u64>,
        stamp: Hlc,
        server_time: u64,
    },
    Frame {
        epoch: u64,
        seq: u64,
        stamp: Hlc,
        readings: Vec<usize>,
    },
    /// A REST result made at server time `made`, honest at `as_of` (or a lie
    /// whose `as_of` runs ahead of what its buckets hold).
    Rest {
        as_of: Hlc,
        made: u64,
        from: u64,
        to: u64,
        per_meter: bool,
        lie: bool,
    },
}

/// A message copy the adversary delivers at server time `at`.
#[derive(Clone, Debug)]
struct Delivery {
    at: u64,
    msg: usize,
}

#[derive(Debug)]
struct Scenario {
    seed: u64,
    readings: Vec<Reading>,
    msgs: Vec<Msg>,
    deliveries: Vec<Delivery>,
    /// Worker clock minus server clock.
    skew: i64,
    /// `(server time, ms)`: from then on the worker's clock reads this much less.
    step_back: Option<(u64, u64)>,
    /// The server's time when production stopped.
    end: u64,
    binary_p: f64,
    /// Frames go to the stream v2 session's `totals` channel on the socket,
    /// and the session's snapshot requests are answered by the adversary.
    v2: bool,
}

impl Scenario {
    /// `late_lies`: every schedule has a lie, and it may arrive after its
    /// watermark passed (undetectable: only the check's own test uses it).
    fn new(seed: u64, late_lies: bool) -> Scenario {
        let mut g = Mix(seed ^ 0x0AD7_E25A_6100_0000);
        let start = 1_764_064_800_000 - g.below(3 * HOUR);
        let meters = 1 + g.below(6) as usize;
        // The HLC's lead over the server's physical clock: within maxOffsetMs
        // mostly, past it in one schedule of ten.
        let max_lead = if g.chance(0.1) { g.span(600, 5_000) } else { g.below(500) };
        let skew: i64 = match g.below(10) {
            0 => 0,
            1 => (86_400_000 + g.span(1, 3_600_000)) as i64 * if g.chance(0.5) { 1 } else { -1 },
            2 => g.span(0, 86_000_000) as i64 * if g.chance(0.5) { 1 } else { -1 },
            _ => g.span(0, 600_000) as i64 - 300_000,
        };
        let mut s = Scenario {
            seed,
            readings: Vec::new(),
            msgs: Vec::new(),
            deliveries: Vec::new(),
            skew,
            step_back: None,
            end: start,
            binary_p: [0.0, 0.5, 1.0][g.below(3) as usize],
            v2: false,
        };
        // Production: epochs of frames, spaced from a second to 40 minutes, over
        // up to 9 hours, so results and frames straddle hours and the horizon.
        let span = g.span(60_000, 9 * HOUR);
        let mean_gap = g.span(1_000, 40 * 60_000);
        let mut ids = vec![0u64; meters];
        let mut t = start;
        let mut hlc = Hlc { wall_ms: start, counter: 0 };
        let tick = |hlc: &mut Hlc, t: u64, g: &mut Mix| {
            let wall = t + g.below(max_lead + 1);
            *hlc = if wall > hlc.wall_ms {
                Hlc { wall_ms: wall, counter: 0 }
            } else {
                Hlc { wall_ms: hlc.wall_ms, counter: hlc.counter + 1 }
            };
            *hlc
        };
        let epochs = 1 + g.below(4);
        let mut last_frames: Vec<usize> = Vec::new();
        for epoch in 1..=epochs {
            let next_seq = if g.chance(0.5) { Some(g.below(3)) } else { None };
            let stamp = tick(&mut hlc, t, &mut g);
            s.msgs.push(Msg::Hello { epoch, next_seq, stamp, server_time: t });
            let mut seq = next_seq.unwrap_or(0);
            // Against the protocol (a resent frame is byte-identical), and
            // only with `ADV_SIM_REPLAYS=1`: the new epoch resends the old
            // one's last frames under new seqs, old stamps first
            // (docs/LEDGER.md, "A new epoch's first frame ...").
            if g.chance(0.3) && replays() {
                for &f in last_frames.iter().rev().take(2).rev() {
                    if let Msg::Frame { stamp, readings, .. } = s.msgs[f].clone() {
                        s.msgs.push(Msg::Frame { epoch, seq, stamp, readings });
                        seq += 1;
                    }
                }
            }
            last_frames.clear();
            let frames = 1 + g.below(25);
            for _ in 0..frames {
                t += 1 + g.below(2 * mean_gap);
                if t > start + span {
                    break;
                }
                let stamp = tick(&mut hlc, t, &mut g);
                let mut readings = Vec::new();
                for _ in 0..1 + g.below(4) {
                    let meter = g.below(meters as u64) as usize;
                    ids[meter] += 1 + g.below(3);
                    let ts = match g.below(20) {
                        0 => t + g.span(1, 120_000),
                        1 => t.saturating_sub(g.span(HOUR, 8 * HOUR)),
                        _ => t.saturating_sub(g.below(600_000)),
                    };
                    readings.push(s.readings.len());
                    s.readings.push(Reading {
                        meter,
                        resource: g.below(3) as usize,
                        id: ids[meter],
                        ts,
                        units: g.below(5_000) as i64,
                        stamp,
                    });
                }
                last_frames.push(s.msgs.len());
                s.msgs.push(Msg::Frame { epoch, seq, stamp, readings });
                seq += 1;
            }
            t += g.below(mean_gap);
        }
        s.end = t;
        // REST results at watermarks the server really had.
        let stamps: Vec<Hlc> = s
            .msgs
            .iter()
            .filter_map(|m| match m {
                Msg::Frame { stamp, .. } | Msg::Hello { stamp, .. } => Some(*stamp),
                Msg::Rest { .. } => None,
            })
            .collect();
        for _ in 0..g.span(1, 12) {
            let made = start + g.below(t - start + 1);
            // The newest stamp made by then, or an older one, or a point between.
            let known: Vec<Hlc> = stamps.iter().copied().filter(|h| h.wall_ms <= made).collect();
            let as_of = match (known.last(), g.below(4)) {
                (None, _) => Hlc { wall_ms: made.saturating_sub(g.below(60_000)), counter: 0 },
                (Some(&h), 0 | 1) => h,
                (Some(_), 2) => known[g.below(known.len() as u64) as usize],
                (Some(&h), _) => {
                    Hlc { wall_ms: h.wall_ms + g.below(made - h.wall_ms + 1), counter: 0 }
                }
            };
            let to = (as_of.wall_ms.max(made) / HOUR) * HOUR;
            let full = (made / HOUR * HOUR).saturating_sub(6 * HOUR);
            let from = if g.chance(0.7) { full } else { full + g.below(7) * HOUR }.min(to);
            let per_meter = g.chance(0.3);
            s.msgs.push(Msg::Rest { as_of, made, from, to, per_meter, lie: false });
        }
        // Lies: a watermark a minute or more ahead of the server's clock.
        if g.chance(0.3) || late_lies {
            let made = start + g.below(t - start + 1);
            let as_of = Hlc { wall_ms: made + g.span(60_000, 2 * HOUR), counter: 0 };
            let to = as_of.wall_ms / HOUR * HOUR;
            let from = (made / HOUR * HOUR).saturating_sub(6 * HOUR);
            s.msgs.push(Msg::Rest { as_of, made, from, to, per_meter: false, lie: true });
        }
        // The adversary: copies and delays per message.
        let dup_p = g.unit() * 0.5;
        let drop_p = g.unit() * 0.3;
        for (i, m) in s.msgs.iter().enumerate() {
            let made = match m {
                Msg::Hello { server_time, .. } => *server_time,
                Msg::Frame { stamp, .. } => stamp.wall_ms,
                Msg::Rest { made, .. } => *made,
            };
            let mut copies = u64::from(!g.chance(drop_p));
            while g.chance(dup_p) && copies < 4 {
                copies += 1;
            }
            for _ in 0..copies {
                let delay = match g.below(100) {
                    0..=59 => g.below(2_000),
                    60..=84 => g.span(2_000, 600_000),
                    85..=95 => g.span(600_000, 2 * HOUR),
                    _ => g.span(6 * HOUR, 8 * HOUR),
                };
                // A lie delivered once its watermark has passed is a result
                // that omits readings its watermark covers: no worker can
                // tell (docs/STREAM.md §4, "What a lying server can do").
                if let Msg::Rest { lie: true, as_of, .. } = m {
                    if !late_lies && made + delay + 5_000 > as_of.wall_ms {
                        continue;
                    }
                }
                s.deliveries.push(Delivery { at: made + delay, msg: i });
            }
        }
        s.deliveries.sort_by_key(|d| (d.at, d.msg));
        if g.chance(0.15) {
            let at = start + g.below(t - start + 1);
            s.step_back = Some((at, g.span(500, 5_000)));
        }
        // Drawn last, so the v1 schedules' draws do not move.
        s.v2 = g.chance(0.35) && s.msgs.iter().any(|m| matches!(m, Msg::Frame { .. }));
        s
    }

    /// The frames made by server time `at`: `(epoch, seq, stamp)`.
    fn frames_by(&self, at: u64) -> Vec<(u64, u64, Hlc)> {
        self.msgs
            .iter()
            .filter_map(|m| match m {
                Msg::Frame { epoch, seq, stamp, .. } if stamp.wall_ms <= at => {
                    Some((*epoch, *seq, *stamp))
                }
                _ => None,
            })
            .collect()
    }

    fn skew_believable(&self) -> bool {
        self.skew.unsigned_abs() < 86_000_000
    }
}

/// The worker under test and what it was shown.
struct Worker<'a> {
    s: &'a Scenario,
    engine: Engine,
    g: Mix,
    /// Newest stamp of a frame or hello delivered.
    seen: Option<Hlc>,
    last_now: f64,
    checks: u64,
    complete_checks: u64,
    errors: BTreeMap<String, u64>,
    /// Session snapshot requests not yet seen by the adversary: `(id, path)`.
    asks: Vec<(u64, String)>,
    /// Socket messages the session sent, not yet answered.
    sends: Vec<String>,
    /// Connections the session asked for, not yet opened.
    connects: u32,
    /// The v2 socket is open: what the server sends on a closed one is lost.
    open: bool,
}

impl<'a> Worker<'a> {
    fn new(s: &'a Scenario) -> Worker<'a> {
        Worker {
            s,
            engine: Engine::new(Config::default()).expect("config"),
            g: Mix(s.seed ^ 0x5EED_0FD0_C500),
            seen: None,
            last_now: 0.0,
            checks: 0,
            complete_checks: 0,
            errors: BTreeMap::new(),
            asks: Vec::new(),
            sends: Vec::new(),
            connects: 0,
            open: false,
        }
    }

    /// The worker's clock at server time `at`.
    fn now(&self, at: u64) -> f64 {
        let back = match self.s.step_back {
            Some((from, ms)) if at >= from => ms as i64,
            _ => 0,
        };
        (at as i64 + self.s.skew - back) as f64
    }

    fn handle(&mut self, input: Inbound, now: f64) -> Result<Vec<Value>, String> {
        self.last_now = now;
        let outs = self.engine.handle(input, now);
        let outs: Vec<Value> = outs
            .iter()
            .map(|o| serde_json::to_value(encode(o)).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        for v in &outs {
            match v["type"].as_str().unwrap_or("") {
                "fetch" => {
                    if let Some(rid) = v["requestId"].as_u64() {
                        self.asks.push((rid, v["path"].as_str().unwrap_or("").to_string()));
                    }
                }
                "send" => self.sends.push(v["data"].as_str().unwrap_or("").to_string()),
                "connect" => self.connects += 1,
                "close" => self.open = false,
                _ => {}
            }
            if v["type"] == "error" {
                let code = v["code"].as_str().unwrap_or("").to_string();
                let window = code == "bad_timestamp"
                    && v["message"].as_str().is_some_and(|m| m.contains("counted in the totals"));
                if !["clock_ahead", "late_reading"].contains(&code.as_str()) && !window {
                    return Err(format!("unexpected error {v}"));
                }
                *self.errors.entry(code).or_default() += 1;
            }
        }
        Ok(outs)
    }

    fn post(&mut self, msg: Value, now: f64) -> Result<Vec<Value>, String> {
        let input = decode_message(&msg, self.engine.config());
        if let Inbound::Rejected(e) = &input {
            return Err(format!("page message refused: {e:?}\n{msg}"));
        }
        self.handle(input, now)
    }

    fn deliver(&mut self, m: &Msg, at: u64, fresh: bool) -> Result<(), String> {
        let now = self.now(at);
        match m {
            // A v2 session's HELLO carries no stamp; the socket's frames speak.
            Msg::Hello { .. } if self.s.v2 => {}
            Msg::Hello { epoch, next_seq, stamp, server_time } => {
                let mut h = json!({"type": "hello", "channel": "", "epoch": epoch,
                    "hlc": {"wallMs": stamp.wall_ms, "counter": stamp.counter},
                    "serverTime": server_time});
                if let Some(n) = next_seq {
                    h["nextSeq"] = json!(n);
                }
                self.post(json!({"type": "live", "data": h.to_string(), "receivedAt": now}), now)?;
                self.seen = self.seen.max(Some(*stamp));
            }
            Msg::Frame { .. } if self.s.v2 && !self.open => {}
            Msg::Frame { epoch, seq, stamp, readings } if self.s.v2 => {
                let rs: Vec<&Reading> = readings.iter().map(|&i| &self.s.readings[i]).collect();
                let mut f = live_frame(*epoch, *seq, *stamp, &rs);
                f.channel = "totals".into();
                if self.g.chance(self.s.binary_p) {
                    let bytes = encode_live(&f, DECIMALS, TsLayout::PerRecord)
                        .map_err(|e| format!("encode_live: {e:?}"))?;
                    let input =
                        decode_socket_binary(&bytes, Arrival::default(), self.engine.config());
                    self.handle(input, now)?;
                } else {
                    let f = frame_json(&f, &rs).to_string();
                    self.post(json!({"type": "socket", "event": "message", "data": f}), now)?;
                }
                self.seen = self.seen.max(Some(*stamp));
            }
            Msg::Frame { epoch, seq, stamp, readings } => {
                let rs: Vec<&Reading> = readings.iter().map(|&i| &self.s.readings[i]).collect();
                if self.g.chance(self.s.binary_p) {
                    let bytes = encode_live(
                        &live_frame(*epoch, *seq, *stamp, &rs),
                        DECIMALS,
                        TsLayout::PerRecord,
                    )
                    .map_err(|e| format!("encode_live: {e:?}"))?;
                    let arrival = Arrival { sent_at_ms: None, received_at_ms: Some(now) };
                    let input =
                        decode_binary_at(Envelope::Live, &bytes, arrival, self.engine.config());
                    self.handle(input, now)?;
                } else {
                    let f = frame_json(&live_frame(*epoch, *seq, *stamp, &rs), &rs);
                    self.post(
                        json!({"type": "live", "data": f.to_string(), "receivedAt": now}),
                        now,
                    )?;
                }
                self.seen = self.seen.max(Some(*stamp));
            }
            Msg::Rest { as_of, made, from, to, per_meter, lie } => {
                let server_time = if fresh { at } else { *made };
                // A lie holds what the server had when it was made, no more.
                let cut = if *lie { Hlc { wall_ms: *made, counter: u32::MAX } } else { *as_of };
                let c = self.catchup(*as_of, cut, *from, *to, *per_meter, server_time, now);
                let sent_at =
                    if self.g.chance(0.5) { Some(now - self.g.below(300) as f64) } else { None };
                let c = Catchup { sent_at_ms: sent_at, ..c };
                let arrival =
                    Arrival { sent_at_ms: c.sent_at_ms, received_at_ms: c.received_at_ms };
                if self.g.chance(self.s.binary_p) {
                    let bytes = encode_catchup(&c, DECIMALS)
                        .map_err(|e| format!("encode_catchup: {e:?}"))?;
                    let input =
                        decode_binary_at(Envelope::Catchup, &bytes, arrival, self.engine.config());
                    self.handle(input, now)?;
                } else {
                    let buckets: Vec<Value> = c
                        .buckets
                        .iter()
                        .map(|b| {
                            let mut v = json!({"resource": b.resource, "hour": b.hour_ms,
                                "total": b.total.to_units(DECIMALS).map(units_text).unwrap_or_default()});
                            if let Some(m) = &b.meter {
                                v["meter"] = json!(m);
                            }
                            v
                        })
                        .collect();
                    let mut body = json!({"type": "catchup",
                        "asOf": {"wallMs": as_of.wall_ms, "counter": as_of.counter},
                        "serverTime": server_time, "from": from, "to": to, "buckets": buckets});
                    if self.g.chance(0.3) {
                        body.as_object_mut().map(|o| o.remove("type"));
                    }
                    let mut msg =
                        json!({"type": "catchup", "data": body.to_string(), "receivedAt": now});
                    if let Some(t) = sent_at {
                        msg["sentAt"] = json!(t);
                    }
                    self.post(msg, now)?;
                }
            }
        }
        Ok(())
    }

    /// The body of a result at `as_of` holding the readings stamped at or before `cut`.
    #[allow(clippy::too_many_arguments)]
    fn catchup(
        &self,
        as_of: Hlc,
        cut: Hlc,
        from: u64,
        to: u64,
        per_meter: bool,
        server_time: u64,
        now: f64,
    ) -> Catchup {
        let mut sums: BTreeMap<(u64, usize, Option<usize>), i64> = BTreeMap::new();
        for r in self.s.readings.iter().filter(|r| r.stamp <= cut) {
            let h = r.hour();
            if (from..=to).contains(&h) {
                *sums.entry((h, r.resource, per_meter.then_some(r.meter))).or_default() += r.units;
            }
        }
        let buckets = sums
            .into_iter()
            .filter(|(_, u)| *u != 0)
            .enumerate()
            .map(|(i, ((h, res, m), u))| CatchupBucket {
                meter: m.map(|m| format!("m-{m}")),
                resource: RESOURCES[res].to_string(),
                hour_ms: h as f64,
                total: Decimal::new(u, DECIMALS),
                position: i as u32,
            })
            .collect();
        Catchup {
            as_of,
            from_hour_ms: Some(from as f64),
            to_hour_ms: Some(to as f64),
            buckets,
            server_time_ms: Some(server_time as f64),
            sent_at_ms: None,
            received_at_ms: Some(now),
            errors: Vec::new(),
        }
    }

    /// Ticks, asks for the totals and checks them; returns whether they were complete.
    fn check(&mut self, now: f64) -> Result<bool, String> {
        self.handle(Inbound::Tick(HostStats::default()), now)?;
        let outs = self.post(json!({"type": "query", "query": "totals"}), now)?;
        let t = outs.iter().find(|v| v["type"] == "totals").ok_or("no totals answer")?;
        self.checks += 1;
        if t["incomplete"].as_bool() != Some(false) {
            return Ok(false);
        }
        self.complete_checks += 1;
        for res in t["resources"].as_array().ok_or("no resources")? {
            let name = res["resource"].as_str().unwrap_or("");
            let ri = RESOURCES.iter().position(|r| *r == name).ok_or("unknown resource")?;
            for b in res["buckets"].as_array().ok_or("no buckets")? {
                let hour = b["hour"].as_f64().ok_or("bucket hour")? as u64;
                let got = match &b["total"] {
                    Value::String(s) => s.parse::<i64>().map_err(|e| e.to_string())?,
                    v => v.as_i64().ok_or("bucket total")?,
                };
                let as_of = match &b["asOf"] {
                    Value::Object(_) => Some(Hlc {
                        wall_ms: b["asOf"]["wallMs"].as_u64().ok_or("asOf")?,
                        counter: b["asOf"]["counter"].as_u64().ok_or("asOf")? as u32,
                    }),
                    _ => None,
                };
                let reach = as_of.max(self.seen);
                let want: i64 = self
                    .s
                    .readings
                    .iter()
                    .filter(|r| r.resource == ri && r.hour() == hour && Some(r.stamp) <= reach)
                    .map(|r| r.units)
                    .sum();
                // Past maxClockSkewMs an honest server's stamps look like a
                // pushed HLC: refused (`clock_ahead`), their needs capped, and
                // complete totals may lack them (docs/LEDGER.md, "A worker
                // clock off by more than maxClockSkewMs"). Nothing is counted
                // twice or invented even then.
                let wrong =
                    if self.s.skew_believable() || strict() { got != want } else { got > want };
                if wrong {
                    return Err(format!(
                        "complete totals wrong: {name} hour {hour}: shown {got}, the {} readings stamped up to {reach:?} sum to {want} (bucket asOf {as_of:?}, newest stamp seen {:?}, now {now})\n{t}",
                        self.s.readings.iter().filter(|r| r.resource == ri && r.hour() == hour && Some(r.stamp) <= reach).count(),
                        self.seen
                    ));
                }
            }
        }
        Ok(true)
    }
}

/// A live frame as JSON text (PROTOCOL.md 3.2).
fn frame_json(f: &LiveFrame, rs: &[&Reading]) -> Value {
    let rows: Vec<Value> = rs
        .iter()
        .map(|r| {
            json!({"meter": format!("m-{}", r.meter), "resource": RESOURCES[r.resource],
                "id": r.id, "ts": r.ts, "amount": units_text(r.units)})
        })
        .collect();
    json!({"type": "frame", "channel": f.channel, "epoch": f.epoch, "seq": f.seq,
        "hlc": {"wallMs": f.stamp.wall_ms, "counter": f.stamp.counter}, "readings": rows})
}

fn units_text(u: i64) -> String {
    meterflow::core::decimal::format_units(u, DECIMALS)
}

fn live_frame(epoch: u64, seq: u64, stamp: Hlc, rs: &[&Reading]) -> LiveFrame {
    let mut pairs: BTreeSet<(usize, usize)> = BTreeSet::new();
    for r in rs {
        pairs.insert((r.meter, r.resource));
    }
    let pairs: Vec<(usize, usize)> = pairs.into_iter().collect();
    let key =
        |r: &Reading| pairs.iter().position(|p| *p == (r.meter, r.resource)).unwrap_or(0) as u32;
    LiveFrame {
        channel: String::new(),
        epoch,
        seq,
        stamp,
        scope: KeyScope::Batch,
        bindings: pairs
            .iter()
            .enumerate()
            .map(|(k, (m, res))| LiveBinding {
                key: k as u32,
                meter: format!("m-{m}"),
                resource: RESOURCES[*res].to_string(),
            })
            .collect(),
        keys: rs.iter().map(|r| key(r)).collect(),
        ids: rs.iter().map(|r| r.id).collect(),
        ts: rs.iter().map(|r| r.ts as f64).collect(),
        amounts: rs.iter().map(|r| Decimal::new(r.units, DECIMALS)).collect(),
        positions: Vec::new(),
        errors: Vec::new(),
    }
}

/// What one schedule did.
#[derive(Default)]
struct Tally {
    checks: u64,
    complete: u64,
    quiesced: u64,
    errors: BTreeMap<String, u64>,
}

/// What the adversary delivers next.
#[derive(Clone, Debug)]
enum Ev {
    Msg(usize),
    /// A server op on the v2 socket.
    Socket(String),
    /// The v2 socket opens and the server greets.
    Open,
    /// A snapshot request reaches the server.
    Ask(u64, String),
    /// Its reply reaches the page.
    Fetched(u64, String),
}

/// The adversary's queue: `(server time, order) -> event`.
type Queue = BTreeMap<(u64, u64), Ev>;

fn push(q: &mut Queue, at: u64, ev: Ev) {
    let n = q.len() as u64 + (at & 0xFFFF);
    let mut k = (at, n);
    while q.contains_key(&k) {
        k.1 += 1;
    }
    q.insert(k, ev);
}

/// A honest `totals` snapshot body answering `path` at server time `at`, or
/// `None` if the server has no frame to snapshot yet.
fn snapshot_body(w: &Worker<'_>, path: &str, at: u64, g: &mut Mix) -> Option<String> {
    let param = |k: &str| {
        path.split(['?', '&'])
            .find_map(|p| p.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let (epoch, since) = (param("epoch"), param("since_seq"));
    let frames = w.s.frames_by(at);
    let newest_epoch = frames.iter().map(|f| f.0).max()?;
    let epoch = epoch.unwrap_or(newest_epoch);
    let pick: Vec<&(u64, u64, Hlc)> =
        frames.iter().filter(|f| f.0 == epoch && since.is_none_or(|n| f.1 >= n)).collect();
    // The newest frame, or (one in four) an older one: a lagging snapshot.
    let &&(_, seq, as_of) =
        if g.chance(0.25) { pick.get(g.below(pick.len() as u64) as usize)? } else { pick.last()? };
    let to = as_of.wall_ms / HOUR * HOUR;
    let from = (at / HOUR * HOUR).saturating_sub(6 * HOUR).min(to);
    let c = w.catchup(as_of, as_of, from, to, false, at, at as f64);
    let buckets: Vec<Value> = c
        .buckets
        .iter()
        .map(|b| {
            json!({"resource": b.resource, "hour": b.hour_ms,
                "total": b.total.to_units(DECIMALS).map(units_text).unwrap_or_default()})
        })
        .collect();
    let mut body = json!({"type": "catchup", "channel": "totals", "epoch": epoch,
        "snapshot_seq": seq, "asOf": {"wallMs": as_of.wall_ms, "counter": as_of.counter},
        "serverTime": at, "from": from, "to": to, "buckets": buckets});
    if let Some(n) = since {
        body["since_seq"] = json!(n);
    }
    Some(body.to_string())
}

/// The adversary reacts to what the worker asked for at server time `at`.
fn react(w: &mut Worker<'_>, q: &mut Queue, at: u64, g: &mut Mix) {
    for _ in 0..std::mem::take(&mut w.connects) {
        push(q, at + 1 + g.below(50), Ev::Open);
    }
    for text in std::mem::take(&mut w.sends) {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let reply = match v["op"].as_str().unwrap_or("") {
            "IDENTIFY" => json!({"op": "READY", "session_id": "s-1"}),
            "RESUME" => json!({"op": "RESUMED"}),
            "HEARTBEAT" => {
                let frames = w.s.frames_by(at);
                let newest = frames.iter().map(|f| (f.0, f.1)).max();
                match newest {
                    Some((e, n)) => json!({"op": "HEARTBEAT_ACK", "sent": {"totals": [e, n]}}),
                    None => json!({"op": "HEARTBEAT_ACK", "sent": {}}),
                }
            }
            _ => continue,
        };
        push(q, at + 1 + g.below(20), Ev::Socket(reply.to_string()));
    }
    for (rid, path) in std::mem::take(&mut w.asks) {
        if path.starts_with("/snapshot-v2?channel=totals") {
            push(q, at + g.below(300), Ev::Ask(rid, path));
        }
    }
}

/// A v2 session catches up: its requests answered at once, once, with the
/// server's timers running, until it holds nothing back.
fn settle(
    w: &mut Worker<'_>,
    q: &mut Queue,
    g: &mut Mix,
    at: &mut u64,
    trace: bool,
) -> Result<(), String> {
    for _ in 0..200 {
        react(w, q, *at, g);
        if q.is_empty() && !w.engine.session().held("totals") {
            break;
        }
        while let Some((_, ev)) = q.pop_first() {
            let now = w.now(*at);
            if trace {
                eprintln!("settle at {}: {ev:?}", *at);
            }
            match ev {
                Ev::Socket(text) if w.open => {
                    w.post(json!({"type": "socket", "event": "message", "data": text}), now)?
                }
                Ev::Socket(_) => Vec::new(),
                Ev::Open => {
                    w.open = true;
                    w.post(json!({"type": "socket", "event": "open"}), now)?;
                    let hello = json!({"op": "HELLO", "heartbeat_interval_ms": 600_000,
                        "session_id": "s-1", "server_time_ms": *at});
                    w.post(
                        json!({"type": "socket", "event": "message", "data": hello.to_string()}),
                        now,
                    )?
                }
                Ev::Ask(rid, path) => match snapshot_body(w, &path, *at, g) {
                    Some(body) => w.post(
                        json!({"type": "fetched", "requestId": rid, "ok": true, "status": 200,
                            "data": body, "receivedAt": now}),
                        now,
                    )?,
                    None => Vec::new(),
                },
                Ev::Msg(_) | Ev::Fetched(..) => Vec::new(),
            };
            react(w, q, *at, g);
        }
        *at += 2_000;
        let now = w.now(*at);
        w.handle(Inbound::Tick(HostStats::default()), now)?;
    }
    Ok(())
}

fn run(seed: u64, late_lies: bool) -> Result<Tally, String> {
    let s = Scenario::new(seed, late_lies);
    let fresh = fresh_server_time_for_stale_replies();
    let mut w = Worker::new(&s);
    let mut g = Mix(seed ^ 0x0A5E_55A6_E000_0000);
    let mut q = Queue::new();
    for d in &s.deliveries {
        push(&mut q, d.at, Ev::Msg(d.msg));
    }
    let trace = std::env::var("ADV_SIM_TRACE").is_ok();
    let mut processed = 0u64;
    if s.v2 {
        let at = s.deliveries.first().map_or(s.end, |d| d.at).saturating_sub(1_000);
        let now = w.now(at);
        w.post(json!({"type": "session", "op": "start", "channels": ["totals"]}), now)?;
        react(&mut w, &mut q, at, &mut g);
    }
    let mut last_at = 0;
    while let Some(((at, _), ev)) = q.pop_first() {
        last_at = at;
        if trace {
            eprintln!("at {at} (worker {}): {ev:?}", w.now(at));
        }
        let now = w.now(at);
        match &ev {
            Ev::Msg(i) => {
                let m = &s.msgs[*i];
                // A reply delivered long after it was made is stale: its
                // serverTime is what the switch decides.
                let stale = matches!(m, Msg::Rest { made, .. } if at > made + 2_000);
                w.deliver(m, at, fresh && stale)?;
            }
            Ev::Socket(text) => {
                if w.open {
                    w.post(json!({"type": "socket", "event": "message", "data": text}), now)?;
                }
            }
            Ev::Open => {
                w.open = true;
                w.post(json!({"type": "socket", "event": "open"}), now)?;
                let hello = json!({"op": "HELLO", "heartbeat_interval_ms": 600_000,
                    "session_id": "s-1", "server_time_ms": at});
                w.post(
                    json!({"type": "socket", "event": "message", "data": hello.to_string()}),
                    now,
                )?;
            }
            Ev::Ask(rid, path) => match snapshot_body(&w, path, at, &mut g) {
                // Answered 0-3 times, each copy at its own delay.
                Some(body) => {
                    // A page's fetch always settles: a lost reply is a failure (503).
                    let mut copies = 1;
                    let body = if g.chance(0.1) { String::new() } else { body };
                    while g.chance(0.2) && copies < 3 {
                        copies += 1;
                    }
                    for _ in 0..copies {
                        let delay =
                            if g.chance(0.8) { g.below(2_000) } else { g.span(2_000, 900_000) };
                        push(&mut q, at + delay, Ev::Fetched(*rid, body.clone()));
                    }
                }
                // Nothing to snapshot yet: asked again once the first frame is made.
                None => {
                    let first = s.frames_by(u64::MAX).iter().map(|f| f.2.wall_ms).min();
                    if let Some(t) = first {
                        push(&mut q, t.max(at) + 1, ev.clone());
                    }
                }
            },
            Ev::Fetched(rid, body) if body.is_empty() => {
                w.post(
                    json!({"type": "fetched", "requestId": rid, "ok": false, "status": 503,
                    "receivedAt": now}),
                    now,
                )?;
            }
            Ev::Fetched(rid, body) => {
                w.post(
                    json!({"type": "fetched", "requestId": rid, "ok": true, "status": 200,
                    "data": body, "receivedAt": now}),
                    now,
                )?;
            }
        }
        react(&mut w, &mut q, at, &mut g);
        w.check(now)?;
        react(&mut w, &mut q, at, &mut g);
        processed += 1;
        if q.len() > 100_000 || processed > 200_000 {
            return Err(format!(
                "{processed} events, {} queued: the exchange does not settle",
                q.len()
            ));
        }
    }
    // Quiescence: every frame once more, in order, then an honest result at
    // the newest stamp over every kept hour, away from an hour boundary.
    let last = last_at.max(s.end) + 60_000;
    let mut at = last;
    settle(&mut w, &mut q, &mut g, &mut at, trace)?;
    for m in s.msgs.iter().filter(|m| matches!(m, Msg::Frame { .. })) {
        w.deliver(m, at, false)?;
    }
    settle(&mut w, &mut q, &mut g, &mut at, trace)?;
    if at % HOUR > HOUR - 20_000 || at % HOUR < 20_000 {
        at += 40_000;
    }
    let newest = s.readings.iter().map(|r| r.stamp).max().unwrap_or_default();
    let server_hlc = Hlc { wall_ms: at.max(newest.wall_ms), counter: 0 }.max(newest);
    let w_hour = (w.now(at).max(0.0) as u64) / HOUR * HOUR;
    let hour = at / HOUR * HOUR;
    let from = hour.min(w_hour).saturating_sub(6 * HOUR);
    let to = hour.max(server_hlc.wall_ms / HOUR * HOUR);
    let fin = Msg::Rest { as_of: server_hlc, made: at, from, to, per_meter: false, lie: false };
    w.deliver(&fin, at + 1_000, true)?;
    let complete = w.check(w.now(at + 1_000))?;
    let mut tally = Tally {
        checks: w.checks,
        complete: w.complete_checks,
        quiesced: 0,
        errors: w.errors.clone(),
    };
    if s.skew_believable() {
        if !complete {
            return Err(format!(
                "quiescent but incomplete (skew {} ms, every frame and a full result at {server_hlc:?} delivered; session {:?}; {:?})",
                s.skew, w.engine.session().channels(), w.engine.session().state()
            ));
        }
        tally.quiesced = 1;
    }
    Ok(tally)
}

fn part(part: u64) {
    if let Some(seed) = std::env::var("ADV_SIM_SEED").ok().and_then(|s| s.parse::<u64>().ok()) {
        if let Err(e) = run(seed, false) {
            panic!("seed {seed}: {e}\n{:#?}", Scenario::new(seed, false));
        }
        return;
    }
    let n: u64 =
        std::env::var("ADV_SIM_SCHEDULES").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000);
    let first: u64 = std::env::var("ADV_SIM_FIRST").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut all = Tally::default();
    for k in first..first + n {
        let seed = part * 1_000_000_000 + k;
        match run(seed, false) {
            Ok(t) => {
                all.checks += t.checks;
                all.complete += t.complete;
                all.quiesced += t.quiesced;
                for (c, n) in t.errors {
                    *all.errors.entry(c).or_default() += n;
                }
            }
            Err(e) => panic!("seed {seed} (ADV_SIM_SEED={seed}): {e}"),
        }
    }
    println!(
        "part {part}: {n} schedules, {} totals checked, {} of them complete, {} quiesced complete and exact, errors {:?}",
        all.checks, all.complete, all.quiesced, all.errors
    );
    // The checks must have had something to check.
    assert!(
        all.complete * 4 > all.checks / 10,
        "few complete totals: {} of {}",
        all.complete,
        all.checks
    );
    assert!(all.quiesced * 10 > n * 7, "{} of {n} schedules quiesced", all.quiesced);
}

#[test]
fn adversarial_schedules_part_1() {
    part(1);
}

#[test]
fn adversarial_schedules_part_2() {
    part(2);
}

/// The check can fail: a result that omits readings its watermark covers
/// (a lie delivered once its watermark has passed, which no worker can tell
/// from an honest result) is caught as complete totals that are wrong.
#[test]
fn the_check_catches_complete_totals_a_lie_made_wrong() {
    let caught = (0..300)
        .filter_map(|seed| run(7_000_000_000 + seed, true).err())
        .filter(|e| e.starts_with("complete totals wrong"))
        .count();
    println!("{caught} of 300 schedules with a late lie caught");
    assert!(caught > 0, "no lie caught in 300 schedules");
}
