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
        if !active || self.outstanding.is_some() || self.next_at.is_some_and(|t| now_ms < t) {
            return None;
        }
        let request_id = GROUPS_REQUEST_BASE + self.next_id;
        self.next_id = (self.next_id + 1) % GROUPS_REQUEST_BASE;
        self.outstanding = Some((request_id, now_ms));
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
