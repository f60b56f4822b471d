//! `FetchPolicy`: when the ledger asks the page for a REST catch-up.
//!
//! - The first timer asks at once (`startup`): totals need their history.
//! - A cause (gap, new epoch, refused clock, unverifiable reading, pending limit)
//!   asks **immediately**, unless a request is outstanding; then the cause is
//!   remembered and asked again as soon as that request is answered, if the
//!   totals are still incomplete (the answer may predate the cause).
//! - An outstanding request is repeated after `fetchRetryMs`; so is a need that
//!   an answer did not cover (e.g. a result whose range missed a kept hour).
//! - Otherwise a `scheduled` catch-up is asked every `catchupIntervalMs` after
//!   the last request.
//!
//! So at most one request is outstanding, and the page is never asked faster
//! than once per answer plus once per `fetchRetryMs`.

use super::event::{FetchReason, FetchRequest};
use crate::core::config::Config;
use crate::core::hlc::Hlc;

/// Request state.
#[derive(Clone, Debug, Default)]
pub struct FetchPolicy {
    outstanding_since: Option<f64>,
    last_request: Option<f64>,
    last_reason: Option<FetchReason>,
    /// A cause that arose while a request was outstanding.
    again: Option<FetchReason>,
}

impl FetchPolicy {
    fn request(
        &mut self,
        reason: FetchReason,
        now_ms: f64,
        need: Option<Hlc>,
        from_hour_ms: f64,
    ) -> FetchRequest {
        self.outstanding_since = Some(now_ms);
        self.last_request = Some(now_ms);
        self.last_reason = Some(reason);
        FetchRequest { reason, min_as_of: need, from_hour_ms }
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
            Some(self.request(reason, now_ms, need, from_hour_ms))
        }
    }

    /// Timer: startup, retries and the schedule.
    pub fn on_timer(
        &mut self,
        now_ms: f64,
        incomplete: bool,
        need: Option<Hlc>,
        from_hour_ms: f64,
        cfg: &Config,
    ) -> Option<FetchRequest> {
        let Some(last) = self.last_request else {
            return Some(self.request(FetchReason::Startup, now_ms, need, from_hour_ms));
        };
        let since = now_ms - last;
        let reason = match self.outstanding_since {
            Some(_) if since >= cfg.fetch_retry_ms => {
                self.again.take().or(self.last_reason).unwrap_or(FetchReason::Scheduled)
            }
            Some(_) => return None,
            None if incomplete && need.is_some() && since >= cfg.fetch_retry_ms => {
                self.last_reason.unwrap_or(FetchReason::Gap)
            }
            None if since >= cfg.catchup_interval_ms => FetchReason::Scheduled,
            None => return None,
        };
        Some(self.request(reason, now_ms, need, from_hour_ms))
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
        match self.again.take() {
            Some(reason) if still_incomplete => {
                Some(self.request(reason, now_ms, need, from_hour_ms))
            }
            _ => None,
        }
    }
}
