//! `FetchPolicy`: when the ledger asks the page for a REST catch-up.
//!
//! - Nothing is asked before the ledger is *engaged*: it has seen a live frame,
//!   a hello or a catch-up (a page using only anomaly detection is never asked),
//!   or `catchupOnStart` is set. Then the first timer asks (`startup`).
//! - A cause (gap, new epoch, refused clock, unverifiable reading, pending limit)
//!   asks **immediately**, unless a request is outstanding; then the cause is
//!   remembered and asked again as soon as that request is answered, if the
//!   totals are still incomplete (the answer may predate the cause).
//! - An outstanding request is repeated after `fetchRetryMs`, then after twice
//!   as long each time, up to `catchupIntervalMs` (deterministic, no jitter);
//!   so is a need that answers did not cover. The delay returns to
//!   `fetchRetryMs` with a new cause or an answer that leaves nothing needed.
//! - Otherwise a `scheduled` catch-up is asked every `catchupIntervalMs` after
//!   the last request.
//!
//! - A `page` (the next page of a per-meter catch-up the server cut) is asked
//!   at once after the answer that called for it, at most `maxCatchupPages`
//!   in a row; any other request starts the count again. A repeated page
//!   keeps its `to` hour; a cause arising meanwhile replaces it by a whole
//!   catch-up (whose answer may call for pages again).
//!
//! So at most one request is outstanding, and the page is never asked faster
//! than once per answer plus once per `fetchRetryMs`; an unanswered page is
//! asked at most once per `catchupIntervalMs` in the long run.

use super::event::{FetchReason, FetchRequest};
use crate::core::config::Config;
use crate::core::hlc::Hlc;

/// Request state.
#[derive(Clone, Debug, Default)]
pub struct FetchPolicy {
    outstanding_since: Option<f64>,
    last_request: Option<f64>,
    last_reason: Option<FetchReason>,
    /// The last request's reason that was not a `page`.
    last_cause: Option<FetchReason>,
    /// The last request's `to` hour (ms), repeated with it.
    last_to: Option<f64>,
    /// Pages asked since the last request that was not one.
    pages: u32,
    /// A cause that arose while a request was outstanding.
    again: Option<FetchReason>,
    /// Repetitions since the last new cause or complete answer: the next one
    /// waits `fetchRetryMs × 2^retries`, capped.
    retries: u32,
}

impl FetchPolicy {
    fn request(
        &mut self,
        reason: FetchReason,
        now_ms: f64,
        need: Option<Hlc>,
        from_hour_ms: f64,
        to_hour_ms: Option<f64>,
    ) -> FetchRequest {
        self.outstanding_since = Some(now_ms);
        self.last_request = Some(now_ms);
        self.last_reason = Some(reason);
        self.last_to = to_hour_ms;
        if reason != FetchReason::Page {
            self.last_cause = Some(reason);
            self.pages = 0;
        }
        FetchRequest { reason, min_as_of: need, from_hour_ms, to_hour_ms }
    }

    /// A cause wants a catch-up now.
    pub fn ask(
        &mut self,
        reason: FetchReason,
        now_ms: f64,
        need: Option<Hlc>,
        from_hour_ms: f64,
    ) -> Option<FetchRequest> {
        if self.outstanding_since.is_some() {
            self.again = self.again.or(Some(reason));
            None
        } else {
            self.retries = 0;
            Some(self.request(reason, now_ms, need, from_hour_ms, None))
        }
    }

    /// The answer just applied (`answered` asked nothing) rebuilt the rows
    /// down to an hour above the oldest kept one while an older hour is
    /// still missed: the next page, per-meter hours up to `to_hour_ms`.
    /// `Err(pages)` when `maxCatchupPages` pages were already asked in a row.
    pub fn page(
        &mut self,
        now_ms: f64,
        need: Option<Hlc>,
        from_hour_ms: f64,
        to_hour_ms: f64,
        cfg: &Config,
    ) -> Result<FetchRequest, u32> {
        if self.outstanding_since.is_some() || self.pages >= cfg.max_catchup_pages {
            return Err(self.pages);
        }
        self.pages += 1;
        self.retries = 0;
        Ok(self.request(FetchReason::Page, now_ms, need, from_hour_ms, Some(to_hour_ms)))
    }

    /// The wait before the next repetition: `fetchRetryMs × 2^retries`, at most
    /// `catchupIntervalMs` (or `fetchRetryMs` if that is longer).
    fn retry_delay(&self, cfg: &Config) -> f64 {
        let cap = cfg.catchup_interval_ms.max(cfg.fetch_retry_ms);
        // 2^30 × any positive retry already exceeds any finite cap worth having.
        (cfg.fetch_retry_ms * f64::from(1u32 << self.retries.min(30))).min(cap)
    }

    /// Timer: startup, retries and the schedule. `engaged`: the ledger has seen
    /// a live frame, a hello or a catch-up.
    pub fn on_timer(
        &mut self,
        now_ms: f64,
        engaged: bool,
        incomplete: bool,
        need: Option<Hlc>,
        from_hour_ms: f64,
        cfg: &Config,
    ) -> Option<FetchRequest> {
        let Some(last) = self.last_request else {
            if !(engaged || cfg.catchup_on_start) {
                return None;
            }
            self.retries = 0;
            return Some(self.request(FetchReason::Startup, now_ms, need, from_hour_ms, None));
        };
        let since = now_ms - last;
        let retry = self.retry_delay(cfg);
        let reason = match self.outstanding_since {
            Some(_) if since >= retry => {
                self.retries = self.retries.saturating_add(1);
                self.again.take().or(self.last_reason).unwrap_or(FetchReason::Scheduled)
            }
            Some(_) => return None,
            None if incomplete && need.is_some() && since >= retry => {
                self.retries = self.retries.saturating_add(1);
                self.last_cause.unwrap_or(FetchReason::Gap)
            }
            None if since >= cfg.catchup_interval_ms => FetchReason::Scheduled,
            None => return None,
        };
        let to = if reason == FetchReason::Page { self.last_to } else { None };
        Some(self.request(reason, now_ms, need, from_hour_ms, to))
    }

    /// A REST result was applied. Asks again at once if a cause arose meanwhile
    /// and the totals are still incomplete.
    pub fn answered(
        &mut self,
        now_ms: f64,
        still_incomplete: bool,
        need: Option<Hlc>,
        from_hour_ms: f64,
    ) -> Option<FetchRequest> {
        self.outstanding_since = None;
        if !still_incomplete {
            self.retries = 0;
        }
        match self.again.take() {
            Some(reason) if still_incomplete => {
                Some(self.request(reason, now_ms, need, from_hour_ms, None))
            }
            _ => None,
        }
    }
}
