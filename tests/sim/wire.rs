//! The page's side of the wire: every message the simulated server sends (live
//! frames, hellos, REST catch-ups) is encoded into a payload the real feed could
//! send (JSON text, or binary kind 2/3) and decoded the way the worker does
//! (`src/wasm/inbound.rs`: the envelope, then `wire::decode_text` or
//! `wire::decode_binary_at`; or `src/replay.rs`: `wire::decode_message` on a whole
//! page message, with `dataBase64` for a binary frame). So the schedules cover
//! the encoders and decoders as well as the ledger.
//!
//! The format is drawn per message from a generator of its own (seeded from the
//! schedule's seed), so adding wire draws does not change the schedules
//! themselves. An honest payload must decode cleanly: a refusal or an item
//! error is reported as a failure of the run, and the decoded meaning (every
//! record's meter, resource, id, `ts` bits and exact amount; every bucket) must
//! equal what the server meant.

use base64::Engine as _;
use meterflow::core::config::Config;
use meterflow::core::decimal::{format_units, Decimal};
use meterflow::core::event::{Catchup, Inbound, KeyScope, LiveFrame, StreamHello};
use meterflow::core::hlc::Hlc;
use meterflow::wire::binary::{encode_catchup, encode_live, TsLayout};
use meterflow::wire::{decode_binary_at, decode_message, decode_text, Arrival, Envelope};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;

use super::rng::Rng;

/// Which formats a schedule's messages travel in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireMode {
    /// JSON text only (frames with batch-scoped keys; stream-keyed frames need binary).
    Json,
    /// Binary kind 2 and kind 3 wherever there is one (hellos are always JSON).
    Binary,
    /// Drawn per message.
    Mixed,
}

/// The page: encodes what the server sends and decodes it as the worker does.
pub struct Page {
    pub mode: WireMode,
    rng: Rng,
    /// Payload bytes that went through the decoders.
    pub bytes: u64,
    /// Messages per format: JSON text, binary.
    pub json: u64,
    pub binary: u64,
}

/// Resource decimals the simulation's server uses (the default config's).
const DECIMALS: u8 = 3;

impl Page {
    pub fn new(seed: u64) -> Page {
        let mut rng = Rng(seed ^ 0x005E_ED0F_3A7E_0000);
        let mode = match rng.below(3) {
            0 => WireMode::Json,
            1 => WireMode::Binary,
            _ => WireMode::Mixed,
        };
        Page { mode, rng, bytes: 0, json: 0, binary: 0 }
    }

    fn binary(&mut self) -> bool {
        match self.mode {
            WireMode::Json => false,
            WireMode::Binary => true,
            WireMode::Mixed => self.rng.chance(0.5),
        }
    }

    /// A live frame as the WebSocket delivers it, decoded.
    pub fn live(&mut self, f: &LiveFrame, now: f64, cfg: &Config) -> Result<Inbound, String> {
        // Stream-scoped keys persist in the channel's table: only kind 2 carries them.
        let binary = f.scope == KeyScope::Stream || self.binary();
        // The worker passes the page's `receivedAt` with every payload.
        let arrival = Arrival { sent_at_ms: None, received_at_ms: Some(now) };
        let inbound = if binary {
            let scale = DECIMALS + self.rng.below(7) as u8;
            let same_ts = f.ts.windows(2).all(|w| w[0].to_bits() == w[1].to_bits());
            let layout = if same_ts && self.rng.chance(0.5) {
                TsLayout::Shared
            } else {
                TsLayout::PerRecord
            };
            let bytes = encode_live(f, scale, layout).map_err(|e| format!("encode_live: {e}"))?;
            self.decode_binary(Envelope::Live, &bytes, arrival, cfg)
        } else {
            let text = self.frame_json(f)?;
            self.decode_text(Envelope::Live, &text, arrival, cfg)
        };
        let Inbound::Live(got) = &inbound else {
            return Err(format!("live frame decoded as {inbound:?}"));
        };
        same_frame(f, got, binary)?;
        Ok(inbound)
    }

    /// A hello (JSON: there is no binary hello), decoded.
    pub fn hello(&mut self, h: &StreamHello, now: f64, cfg: &Config) -> Result<Inbound, String> {
        let mut s =
            format!(r#"{{"type":"hello","channel":{},"epoch":{}"#, quote(&h.channel), h.epoch);
        if let Some(n) = h.next_seq {
            let _ = write!(s, r#","nextSeq":{n}"#);
        }
        if let Some(stamp) = h.stamp {
            let _ = write!(s, r#","hlc":{}"#, hlc(stamp));
        }
        if let Some(t) = h.server_time_ms {
            let _ = write!(s, r#","serverTime":{}"#, self.number(t));
        }
        s.push('}');
        let arrival = Arrival { sent_at_ms: None, received_at_ms: Some(now) };
        let inbound = self.decode_text(Envelope::Live, &s, arrival, cfg);
        match &inbound {
            Inbound::Hello(got) if got == h => Ok(inbound),
            _ => Err(format!("hello {h:?} decoded as {inbound:?}\n{s}")),
        }
    }

    /// A REST catch-up body with the page's request and arrival times, decoded.
    pub fn catchup(&mut self, c: &Catchup, cfg: &Config) -> Result<Inbound, String> {
        let arrival = Arrival { sent_at_ms: c.sent_at_ms, received_at_ms: c.received_at_ms };
        let binary = self.binary();
        let inbound = if binary {
            let scale = DECIMALS + self.rng.below(7) as u8;
            let bytes = encode_catchup(c, scale).map_err(|e| format!("encode_catchup: {e}"))?;
            self.decode_binary(Envelope::Catchup, &bytes, arrival, cfg)
        } else {
            let text = self.catchup_json(c);
            self.decode_text(Envelope::Catchup, &text, arrival, cfg)
        };
        let Inbound::Catchup(got) = &inbound else {
            return Err(format!("catch-up decoded as {inbound:?}"));
        };
        same_catchup(c, got, binary)?;
        Ok(inbound)
    }

    /// Through the worker's path (envelope read, then the text decoder), or
    /// through `decode_message` on a whole page message as replay does.
    fn decode_text(
        &mut self,
        env: Envelope,
        text: &str,
        arrival: Arrival,
        cfg: &Config,
    ) -> Inbound {
        self.json += 1;
        self.bytes += text.len() as u64;
        if self.rng.chance(0.1) {
            let mut msg = serde_json::json!({ "type": env.as_str(), "data": text });
            times(&mut msg, arrival);
            decode_message(&msg, cfg)
        } else {
            decode_text(env, text, arrival, cfg)
        }
    }

    fn decode_binary(
        &mut self,
        env: Envelope,
        bytes: &[u8],
        arrival: Arrival,
        cfg: &Config,
    ) -> Inbound {
        self.binary += 1;
        self.bytes += bytes.len() as u64;
        if self.rng.chance(0.1) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let mut msg = serde_json::json!({ "type": env.as_str(), "dataBase64": b64 });
            times(&mut msg, arrival);
            decode_message(&msg, cfg)
        } else {
            decode_binary_at(env, bytes, arrival, cfg)
        }
    }

    /// A JSON number for a time: plain or with an exponent, both exact.
    fn number(&mut self, x: f64) -> String {
        if self.rng.chance(0.2) {
            format!("{x:e}")
        } else {
            format!("{x}")
        }
    }

    /// An exact amount of `units` thousandths: a decimal string, a JSON number,
    /// trailing zeros, or an exponent.
    fn amount(&mut self, units: i64) -> String {
        let plain = format_units(units, DECIMALS);
        match self.rng.below(4) {
            0 => format!("\"{plain}\""),
            1 => plain,
            2 => format!("\"{plain}000\""),
            _ => format!("{units}e-{DECIMALS}"),
        }
    }

    fn frame_json(&mut self, f: &LiveFrame) -> Result<String, String> {
        let names: HashMap<u32, (&str, &str)> =
            f.bindings.iter().map(|b| (b.key, (b.meter.as_str(), b.resource.as_str()))).collect();
        let mut s = format!(
            r#"{{"type":"frame","channel":{},"epoch":{},"seq":{},"hlc":{},"readings":["#,
            quote(&f.channel),
            f.epoch,
            f.seq,
            hlc(f.stamp)
        );
        for i in 0..f.keys.len() {
            let (meter, resource) = names
                .get(&f.keys[i])
                .copied()
                .ok_or_else(|| format!("frame key {} has no binding", f.keys[i]))?;
            let units = f.amounts[i].to_units(DECIMALS).map_err(|e| format!("{e:?}"))?;
            let ts = self.number(f.ts[i]);
            let amount = self.amount(units);
            if i > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"meter":{},"resource":{},"id":{},"ts":{ts},"amount":{amount}}}"#,
                quote(meter),
                quote(resource),
                f.ids[i]
            );
        }
        s.push_str("]}");
        Ok(s)
    }

    fn catchup_json(&mut self, c: &Catchup) -> String {
        let mut s = String::from("{");
        if self.rng.chance(0.7) {
            s.push_str(r#""type":"catchup","#);
        }
        let _ = write!(s, r#""asOf":{}"#, hlc(c.as_of));
        for (name, v) in
            [("serverTime", c.server_time_ms), ("from", c.from_hour_ms), ("to", c.to_hour_ms)]
        {
            if let Some(v) = v {
                let v = self.number(v);
                let _ = write!(s, r#","{name}":{v}"#);
            }
        }
        s.push_str(r#","buckets":["#);
        for (i, b) in c.buckets.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let units = b.total.to_units(DECIMALS).unwrap_or(i64::MIN);
            let hour = self.number(b.hour_ms);
            let total = self.amount(units);
            let _ =
                write!(s, r#"{{"resource":{},"hour":{hour},"total":{total}"#, quote(&b.resource));
            if let Some(m) = &b.meter {
                let _ = write!(s, r#","meter":{}"#, quote(m));
            }
            s.push('}');
        }
        s.push_str("]}");
        s
    }
}

fn times(msg: &mut Value, arrival: Arrival) {
    if let Some(t) = arrival.sent_at_ms {
        msg["sentAt"] = Value::from(t);
    }
    if let Some(t) = arrival.received_at_ms {
        msg["receivedAt"] = Value::from(t);
    }
}

fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

fn hlc(h: Hlc) -> String {
    format!(r#"{{"wallMs":{},"counter":{}}}"#, h.wall_ms, h.counter)
}

fn units(d: Decimal) -> Result<i64, String> {
    d.to_units(DECIMALS).map_err(|e| format!("amount {d:?}: {e:?}"))
}

/// Whether a decoded time is the one sent: bit for bit, whatever the format.
/// A binary frame carries the f64 itself; JSON text carries its shortest
/// round-trip decimal, which an exact parser reads back to the same f64
/// (serde_json without `float_roundtrip` reads some 1 ULP off: issue 6, e.g.
/// a `ts` of 1764041228770.4263 came back as 1764041228770.4265).
fn same_time(sent: f64, got: f64, _binary: bool) -> bool {
    sent.to_bits() == got.to_bits()
}

/// The decoded frame means what the server sent: same header, and per record
/// the same (meter, resource) where both name it, id, `ts` bits and amount.
fn same_frame(want: &LiveFrame, got: &LiveFrame, binary: bool) -> Result<(), String> {
    let fail =
        |why: String| Err(format!("decoded live frame differs: {why}\nsent {want:?}\ngot {got:?}"));
    if !got.errors.is_empty() {
        return fail(format!("item errors {:?}", got.errors));
    }
    if (&got.channel, got.epoch, got.seq, got.stamp)
        != (&want.channel, want.epoch, want.seq, want.stamp)
    {
        return fail("header".into());
    }
    if got.keys.len() != want.keys.len() || got.bindings.len() != want.bindings.len() {
        return fail("record or binding count".into());
    }
    let names = |f: &LiveFrame| -> HashMap<u32, (String, String)> {
        f.bindings.iter().map(|b| (b.key, (b.meter.clone(), b.resource.clone()))).collect()
    };
    let (wn, gn) = (names(want), names(got));
    for i in 0..want.keys.len() {
        let w = wn.get(&want.keys[i]);
        let g = gn.get(&got.keys[i]);
        let same_name = match (w, g) {
            (Some(w), Some(g)) => w == g,
            // A stream key bound in an earlier frame: kind 2 keeps the key itself.
            (None, None) => want.keys[i] == got.keys[i],
            _ => false,
        };
        if !same_name
            || want.ids[i] != got.ids[i]
            || !same_time(want.ts[i], got.ts[i], binary)
            || units(want.amounts[i])? != units(got.amounts[i])?
        {
            return fail(format!("record {i}"));
        }
    }
    Ok(())
}

/// The decoded catch-up means what the server sent, bucket for bucket.
fn same_catchup(want: &Catchup, got: &Catchup, binary: bool) -> Result<(), String> {
    let fail =
        |why: &str| Err(format!("decoded catch-up differs: {why}\nsent {want:?}\ngot {got:?}"));
    if !got.errors.is_empty() {
        return fail("item errors");
    }
    let same_opt = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => same_time(a, b, binary),
        (a, b) => a.is_none() && b.is_none(),
    };
    // The page's own times travel beside the payload, never through its text.
    let exact = |a: Option<f64>, b: Option<f64>| a.map(f64::to_bits) == b.map(f64::to_bits);
    if got.as_of != want.as_of
        || !same_opt(got.from_hour_ms, want.from_hour_ms)
        || !same_opt(got.to_hour_ms, want.to_hour_ms)
        || !same_opt(got.server_time_ms, want.server_time_ms)
        || !exact(got.sent_at_ms, want.sent_at_ms)
        || !exact(got.received_at_ms, want.received_at_ms)
        || got.buckets.len() != want.buckets.len()
    {
        return fail("header");
    }
    for (w, g) in want.buckets.iter().zip(&got.buckets) {
        if w.meter != g.meter
            || w.resource != g.resource
            || !same_time(w.hour_ms, g.hour_ms, binary)
            || units(w.total)? != units(g.total)?
        {
            return fail("bucket");
        }
    }
    Ok(())
}
