//! When to fetch `/groups`: every `groupsRefreshMs` while the stream session
//! is in use, at most one fetch outstanding, a failed one retried after
//! `fetchRetryMs` (at most `groupsRefreshMs`), an unanswered one counted as
//! failed after `groupsRefreshMs`.

use crate::core::config::Config;
use crate::core::event::{Outbound, StreamRequest};

/// The path of the map, relative to the feed base URL.
pub const GROUPS_PATH: &str = "/groups";

/// First request id of `/groups` fetches: 2^52, far above the session's
/// (which count from 1) and below 2^53, so it crosses to JavaScript exactly.
pub const GROUPS_REQUEST_BASE: u64 = 1 << 52;

/// The refresh schedule and its counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Refresh {
    next_id: u64,
    /// `(request id, sent at)` of the fetch outstanding.
    outstanding: Option<(u64, f64)>,
    next_at: Option<f64>,
    /// When the last fetch was sent: a shorter `groupsRefreshMs` set since
    /// then applies from it, not after the interval that was current then.
    last_sent: Option<f64>,
    consecutive_failures: u32,
    failures: u64,
    applied: u64,
    latency_ms: Option<f64>,
    /// `min(fetchRetryMs, groupsRefreshMs)` at the last timer.
    retry_ms: f64,
}

impl Refresh {
    /// A fetch if one is due.
    pub fn on_timer(&mut self, now_ms: f64, active: bool, cfg: &Config) -> Option<Outbound> {
        self.retry_ms = cfg.fetch_retry_ms.min(cfg.groups_refresh_ms);
        // The schedule follows the interval now configured: never later than
        // `groupsRefreshMs` after the last fetch (a longer one set since takes
        // effect after the fetch already scheduled).
        if let (Some(t), Some(sent)) = (self.next_at, self.last_sent) {
            self.next_at = Some(t.min(sent + cfg.groups_refresh_ms));
        }
        if !active || self.outstanding.is_some() || self.next_at.is_some_and(|t| now_ms < t) {
            return None;
        }
        let request_id = GROUPS_REQUEST_BASE + self.next_id;
        self.next_id = (self.next_id + 1) % GROUPS_REQUEST_BASE;
        self.outstanding = Some((request_id, now_ms));
        self.last_sent = Some(now_ms);
        self.next_at = Some(now_ms + cfg.groups_refresh_ms);
        Some(Outbound::Stream(StreamRequest::Fetch { request_id, path: GROUPS_PATH.to_string() }))
    }

    /// The outstanding fetch `request_id` was answered (`ok`: with a body that
    /// decoded). `false` for an answer to no outstanding fetch (a late
    /// duplicate): ignored.
    pub fn answered(&mut self, request_id: u64, now_ms: f64, ok: bool) -> bool {
        let Some((id, sent)) = self.outstanding else { return false };
        if id != request_id {
            return false;
        }
        self.outstanding = None;
        if ok {
            self.applied += 1;
            self.consecutive_failures = 0;
            self.latency_ms = Some(now_ms - sent);
        } else {
            self.fail(now_ms);
        }
        true
    }

    fn fail(&mut self, now_ms: f64) {
        self.failures += 1;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        // Retry sooner than the schedule, never later.
        self.next_at = self.next_at.map(|t| t.min(now_ms + self.retry_ms));
    }

    /// Expires an unanswered fetch past `groupsRefreshMs`; `true` if it did.
    pub fn expire(&mut self, now_ms: f64, cfg: &Config) -> bool {
        match self.outstanding {
            Some((_, sent)) if now_ms - sent >= cfg.groups_refresh_ms => {
                self.outstanding = None;
                self.fail(now_ms);
                true
            }
            _ => false,
        }
    }

    /// Failures in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Failures since start.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Refreshes applied since start.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Request to answer of the last applied refresh, ms.
    pub fn latency_ms(&self) -> Option<f64> {
        self.latency_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(refresh_ms: f64) -> Config {
        Config { groups_refresh_ms: refresh_ms, ..Config::default() }
    }

    fn fetch(r: &mut Refresh, now: f64, c: &Config) -> Option<u64> {
        match r.on_timer(now, true, c)? {
            Outbound::Stream(StreamRequest::Fetch { request_id, .. }) => Some(request_id),
            _ => None,
        }
    }

    #[test]
    fn a_shorter_interval_applies_from_the_last_fetch() {
        let (long, short) = (cfg(30_000.0), cfg(5_000.0));
        let mut r = Refresh::default();
        let id = fetch(&mut r, 0.0, &long);
        assert!(id.is_some_and(|id| r.answered(id, 100.0, true)));
        assert_eq!(fetch(&mut r, 4_999.0, &short), None);
        let id = fetch(&mut r, 5_000.0, &short);
        assert!(id.is_some(), "due 5 s after the last fetch once the interval is 5 s");
        assert!(id.is_some_and(|id| r.answered(id, 5_100.0, true)));
        // A longer interval set later: the fetch already scheduled stands,
        // then the new interval.
        assert_eq!(fetch(&mut r, 9_999.0, &long), None);
        let id = fetch(&mut r, 10_000.0, &long);
        assert!(id.is_some_and(|id| r.answered(id, 10_100.0, true)));
        assert_eq!(fetch(&mut r, 39_999.0, &long), None);
        assert!(fetch(&mut r, 40_000.0, &long).is_some());
    }

    #[test]
    fn the_same_interval_keeps_the_same_schedule() {
        let c = cfg(30_000.0);
        let mut r = Refresh::default();
        for k in 0..4 {
            let t = k as f64 * 30_000.0;
            if k > 0 {
                assert_eq!(fetch(&mut r, t - 1.0, &c), None, "not before {t}");
            }
            let id = fetch(&mut r, t, &c);
            assert!(id.is_some_and(|id| r.answered(id, t + 10.0, true)), "due at {t}");
        }
    }
}
