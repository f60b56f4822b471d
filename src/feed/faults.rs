//! Faults the feed server injects on purpose (by flag and at runtime through
//! `POST /admin/faults`), so clients can be tested against a hostile peer.
//! Every random choice comes from a seeded [`SplitMix64`]. Faults act on what is
//! sent, never on what was generated: `/truth` stays the truth.
//!
//! Pure: [`Faults`] (the settings, their bounds, the admin JSON) and
//! [`plan_sends`] (which held deltas a connection sends, in which order, for how
//! much credit).

use serde_json::{json, Map, Value};

use crate::core::session::rng::SplitMix64;

/// The fault settings. All off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Deltas silently skipped, percent 0..=100 (a skipped delta uses no credit).
    pub drop_pct: f64,
    /// Deltas sent twice, percent 0..=100 (each copy uses one credit).
    pub duplicate_pct: f64,
    /// Deltas sent in a shuffled order within windows of this many; 0 or 1: off; ≤ 1,024.
    pub reorder_window: u32,
    /// Every connection is cut (no close frame) this long after it opened; 0: off; ≤ 86,400,000.
    pub disconnect_every_ms: u64,
    /// REST answers (`/snapshot-v2`, `/catchup`, `/meters/{id}`) wait this long; ≤ 60,000.
    pub rest_delay_ms: u64,
    /// The REST delay is uniform in `0..=rest_delay_ms` instead of fixed, so
    /// answers overtake each other.
    pub rest_out_of_order: bool,
    /// Added to the server's clock: the HLC stamps it issues (and so `asOf`)
    /// and every `server_time_ms`/`serverTime`; |x| ≤ 86,400,000.
    pub clock_skew_ms: i64,
    /// Deltas a channel sends beyond its grant each time its credit runs out
    /// (reset by every CREDIT); ≤ 1,024.
    pub credit_overrun: u32,
}

const FIELDS: [&str; 8] = [
    "dropPct",
    "duplicatePct",
    "reorderWindow",
    "disconnectEveryMs",
    "restDelayMs",
    "restOutOfOrder",
    "clockSkewMs",
    "creditOverrun",
];

impl Faults {
    /// Checks every bound; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |f: &str, b: &str| Err(format!("{f}: must be {b}"));
        if !(0.0..=100.0).contains(&self.drop_pct) {
            return bad("dropPct", "0..=100");
        }
        if !(0.0..=100.0).contains(&self.duplicate_pct) {
            return bad("duplicatePct", "0..=100");
        }
        if self.reorder_window > 1_024 {
            return bad("reorderWindow", "0..=1024");
        }
        if self.disconnect_every_ms > 86_400_000 {
            return bad("disconnectEveryMs", "0..=86400000");
        }
        if self.rest_delay_ms > 60_000 {
            return bad("restDelayMs", "0..=60000");
        }
        if self.clock_skew_ms.unsigned_abs() > 86_400_000 {
            return bad("clockSkewMs", "-86400000..=86400000");
        }
        if self.credit_overrun > 1_024 {
            return bad("creditOverrun", "0..=1024");
        }
        Ok(())
    }

    /// The admin JSON (camelCase).
    pub fn to_json(&self) -> Value {
        json!({
            "dropPct": self.drop_pct,
            "duplicatePct": self.duplicate_pct,
            "reorderWindow": self.reorder_window,
            "disconnectEveryMs": self.disconnect_every_ms,
            "restDelayMs": self.rest_delay_ms,
            "restOutOfOrder": self.rest_out_of_order,
            "clockSkewMs": self.clock_skew_ms,
            "creditOverrun": self.credit_overrun,
        })
    }

    /// These settings with the fields present in `patch` replaced (unknown
    /// fields and bad types refused, bounds checked); `reset: true` first
    /// turns everything off.
    pub fn patched(&self, patch: &Map<String, Value>) -> Result<Faults, String> {
        let mut f = if patch.get("reset").and_then(Value::as_bool) == Some(true) {
            Faults::default()
        } else {
            *self
        };
        for (k, v) in patch {
            let num = || v.as_f64().ok_or(format!("{k}: must be a number"));
            let whole = || v.as_u64().ok_or(format!("{k}: must be a whole number ≥ 0"));
            match k.as_str() {
                "dropPct" => f.drop_pct = num()?,
                "duplicatePct" => f.duplicate_pct = num()?,
                "reorderWindow" => {
                    f.reorder_window =
                        u32::try_from(whole()?).map_err(|_| "reorderWindow: too large")?
                }
                "disconnectEveryMs" => f.disconnect_every_ms = whole()?,
                "restDelayMs" => f.rest_delay_ms = whole()?,
                "restOutOfOrder" => {
                    f.rest_out_of_order = v.as_bool().ok_or("restOutOfOrder: must be a boolean")?
                }
                "clockSkewMs" => {
                    f.clock_skew_ms = v.as_i64().ok_or("clockSkewMs: must be a whole number")?
                }
                "creditOverrun" => {
                    f.credit_overrun =
                        u32::try_from(whole()?).map_err(|_| "creditOverrun: too large")?
                }
                "reset" | "reconnect" | "invalidSession" | "pause" => {}
                _ => {
                    return Err(format!(
                        "unknown field {k} (known: {}, reset, reconnect, invalidSession, pause)",
                        FIELDS.join(", ")
                    ))
                }
            }
        }
        f.validate()?;
        Ok(f)
    }

    /// A REST answer's delay, given a random draw.
    pub fn rest_delay(&self, draw: u64) -> u64 {
        if self.rest_delay_ms == 0 {
            0
        } else if self.rest_out_of_order {
            draw % (self.rest_delay_ms + 1)
        } else {
            self.rest_delay_ms
        }
    }

    /// `ms` with the clock skew applied.
    pub fn skewed(&self, ms: u64) -> u64 {
        ms.saturating_add_signed(self.clock_skew_ms)
    }
}

/// An order to a connection's sessions, from `POST /admin/faults`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send RECONNECT and close with 4000.
    Reconnect,
    /// Send INVALID_SESSION; a non-resumable one also forgets the session.
    InvalidSession { resumable: bool },
}

/// What a connection sends of the deltas it holds for one channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indices into the held deltas, in send order (a duplicate appears twice).
    pub sends: Vec<usize>,
    /// Held deltas consumed (sent or dropped): the channel's position moves past them.
    pub consumed: usize,
    /// Credit used: one per message sent.
    pub credit_used: u64,
    /// Messages sent beyond the credit (the overrun fault).
    pub overrun_used: u64,
}

/// Plans sending `held` deltas (oldest first) with `credit` granted and
/// `overrun` sends allowed past it: each is dropped (`drop_pct`, no credit),
/// duplicated (`duplicate_pct`, when two credits are left) or sent once; the
/// sends are shuffled within consecutive windows of `reorder_window`, so no
/// delta moves by `reorder_window` places or more.
pub fn plan_sends(
    held: usize,
    credit: u64,
    overrun: u64,
    f: &Faults,
    rng: &mut SplitMix64,
) -> Plan {
    let mut p = Plan::default();
    let (mut credit, mut overrun) = (credit, overrun);
    for i in 0..held {
        if credit == 0 && overrun == 0 {
            break;
        }
        p.consumed += 1;
        if f.drop_pct > 0.0 && rng.unit() * 100.0 < f.drop_pct {
            continue;
        }
        let copies =
            if f.duplicate_pct > 0.0 && rng.unit() * 100.0 < f.duplicate_pct { 2 } else { 1 };
        for _ in 0..copies {
            if credit > 0 {
                credit -= 1;
                p.credit_used += 1;
            } else if overrun > 0 {
                overrun -= 1;
                p.overrun_used += 1;
            } else {
                break;
            }
            p.sends.push(i);
        }
    }
    let w = f.reorder_window as usize;
    if w > 1 {
        for chunk in p.sends.chunks_mut(w) {
            // Fisher–Yates.
            for i in (1..chunk.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                chunk.swap(i, j);
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_all_sends_nothing_and_uses_no_credit() {
        let f = Faults { drop_pct: 100.0, ..Faults::default() };
        let p = plan_sends(50, 10, 0, &f, &mut SplitMix64::new(1));
        assert!(p.sends.is_empty());
        assert_eq!((p.credit_used, p.consumed), (0, 50));
        // Some drops: credit is used by what is sent only.
        let f = Faults { drop_pct: 30.0, ..Faults::default() };
        let p = plan_sends(1_000, 2_000, 0, &f, &mut SplitMix64::new(2));
        assert_eq!(p.credit_used as usize, p.sends.len());
        assert!((600..800).contains(&p.sends.len()), "{}", p.sends.len());
    }

    #[test]
    fn duplicate_sends_the_same_delta_twice_for_two_credits() {
        let f = Faults { duplicate_pct: 100.0, ..Faults::default() };
        let p = plan_sends(5, 7, 0, &f, &mut SplitMix64::new(1));
        assert_eq!(p.sends, vec![0, 0, 1, 1, 2, 2, 3]);
        assert_eq!((p.credit_used, p.consumed), (7, 4));
        let f = Faults { duplicate_pct: 20.0, ..Faults::default() };
        let p = plan_sends(1_000, 10_000, 0, &f, &mut SplitMix64::new(3));
        assert!((1_150..1_250).contains(&p.sends.len()), "{}", p.sends.len());
    }

    #[test]
    fn reorder_stays_within_its_window_and_loses_nothing() {
        for w in [2u32, 3, 8, 64] {
            let f = Faults { reorder_window: w, ..Faults::default() };
            let p = plan_sends(500, 500, 0, &f, &mut SplitMix64::new(u64::from(w)));
            let mut sorted = p.sends.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..500).collect::<Vec<_>>());
            assert_ne!(p.sends, sorted, "window {w} shuffled nothing");
            for (pos, &i) in p.sends.iter().enumerate() {
                assert!(pos.abs_diff(i) < w as usize, "window {w}: {i} sent at {pos}");
            }
        }
        let p = plan_sends(50, 50, 0, &Faults::default(), &mut SplitMix64::new(1));
        assert_eq!(p.sends, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn credit_bounds_the_sends_unless_overrun_is_on() {
        let p = plan_sends(50, 10, 0, &Faults::default(), &mut SplitMix64::new(1));
        assert_eq!((p.sends.len(), p.consumed, p.credit_used), (10, 10, 10));
        let p = plan_sends(50, 10, 3, &Faults::default(), &mut SplitMix64::new(1));
        assert_eq!((p.sends.len(), p.credit_used, p.overrun_used), (13, 10, 3));
        let p = plan_sends(50, 0, 0, &Faults::default(), &mut SplitMix64::new(1));
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn the_admin_patch_checks_fields_and_bounds() {
        let patch = |v: Value| v.as_object().cloned().unwrap_or_default();
        let f = Faults::default().patched(&patch(json!({ "dropPct": 5, "reorderWindow": 4 })));
        let f = f.unwrap_or_default();
        assert_eq!((f.drop_pct, f.reorder_window, f.duplicate_pct), (5.0, 4, 0.0));
        let g = f.patched(&patch(json!({ "clockSkewMs": -2000 }))).unwrap_or_default();
        assert_eq!((g.drop_pct, g.clock_skew_ms), (5.0, -2000));
        assert_eq!(g.patched(&patch(json!({ "reset": true }))), Ok(Faults::default()));
        assert!(f.patched(&patch(json!({ "dropPct": 101 }))).is_err());
        assert!(f.patched(&patch(json!({ "dropPct": "x" }))).is_err());
        assert!(f.patched(&patch(json!({ "nope": 1 }))).is_err());
        assert!(f.patched(&patch(json!({ "reorderWindow": 5000 }))).is_err());
        assert_eq!(g.to_json()["clockSkewMs"], -2000);
        assert_eq!(g.skewed(10_000), 8_000);
        let d = Faults { rest_delay_ms: 100, rest_out_of_order: true, ..Faults::default() };
        let mut rng = SplitMix64::new(4);
        let delays: Vec<u64> = (0..100).map(|_| d.rest_delay(rng.next_u64())).collect();
        assert!(delays.iter().all(|&x| x <= 100) && delays.iter().any(|&x| x != delays[0]));
    }
}
