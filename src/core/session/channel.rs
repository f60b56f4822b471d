//! Per-channel bootstrap, ordering, gap recovery and credit (docs/STREAM.md §4–§5).
//!
//! A channel is *live* when it holds a position from a snapshot and no fetch is
//! outstanding; otherwise it is *paused* and buffers its deltas. Credit
//! accounting keeps `credit + buffered + outstanding + pending = creditWindow`
//! while connected: every accepted delta moves one unit from `credit` to the
//! buffer or to `outstanding` (delivered, awaiting render) or straight to
//! `pending` (dropped); renders and drops move units to `pending`, and grants
//! move `pending` back to `credit`.
//!
//! A buffer is bounded twice: by count (`maxBufferedDeltas`, and the credit
//! window) and by the encoded bytes of what it holds (`maxBufferedBytes`). A
//! delta past the byte bound drops the buffer and re-snapshots the channel with
//! a `buffer_limit` error. Deltas refused beyond the credit are reported once
//! per episode: the first refusal after the channel last accepted a delta.

use rustc_hash::FxHashMap;

use crate::core::order::sort_indices;

use super::{
    ChannelOffer, ChannelPos, Delivery, FetchWhat, Payload, Session, SessionError,
    SessionErrorCode, SessionOutput, SnapshotReply,
};

/// Longest channel name in bytes.
pub const MAX_CHANNEL_NAME: usize = 64;

#[derive(Clone, Debug, PartialEq)]
enum Fetch {
    /// Live: deltas apply as they come.
    Idle,
    /// A snapshot (`since: None`) or mini-snapshot is on its way.
    InFlight { request_id: u64, since: Option<u64> },
    /// The last fetch failed or was refused; it is reissued at `at`.
    RetryAt { at: f64, since: Option<u64> },
}

#[derive(Clone, Debug)]
struct Buffered {
    epoch: u64,
    seq: u64,
    body: Payload,
    /// Counted against `max_buffered_bytes`: its encoded size, raised to
    /// the bytes its decoded body holds ([`Payload::held_bytes`]) when
    /// buffered, so the bound holds memory and not only text.
    wire_bytes: usize,
}

/// One subscribed channel.
#[derive(Clone, Debug)]
pub(super) struct Channel {
    name: String,
    /// `(epoch, seq)` delivered so far; `None` before the first snapshot.
    pos: Option<(u64, u64)>,
    fetch: Fetch,
    buffer: Vec<Buffered>,
    /// Sum of `wire_bytes` over `buffer` (encoded or held, the larger).
    buffered_bytes: u64,
    /// Deltas refused beyond the credit since the last accepted one (0: no
    /// overrun episode; the first refusal of an episode is reported).
    overrun_refused: u64,
    credit: u32,
    outstanding: u32,
    pending: u32,
    granted: u64,
    accepted: u64,
}

/// A read-only view of one channel, for tests, stats and the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelView {
    /// Channel name.
    pub name: String,
    /// `(epoch, seq)` delivered so far.
    pub position: Option<(u64, u64)>,
    /// True while a snapshot fetch is outstanding or scheduled (deltas are buffered).
    pub paused: bool,
    /// Deltas buffered.
    pub buffered: usize,
    /// Encoded bytes of the deltas buffered.
    pub buffered_bytes: u64,
    /// Credit the server still has on this connection.
    pub credit: u32,
    /// Delivered deltas awaiting a render acknowledgement.
    pub outstanding: u32,
    /// Freed credit not granted yet.
    pub pending: u32,
    /// Credit granted on this connection (offer, SUBSCRIBE and CREDIT messages).
    pub granted: u64,
    /// Deltas accepted on this connection.
    pub accepted: u64,
}

impl Channel {
    pub(super) fn retry_at(&self) -> Option<f64> {
        match self.fetch {
            Fetch::RetryAt { at, .. } => Some(at),
            _ => None,
        }
    }

    /// Bytes held (estimate); a buffered body counts its struct and its encoded size.
    pub(super) fn bytes(&self) -> usize {
        std::mem::size_of::<Channel>()
            + self.name.len()
            + self.buffer.capacity() * (std::mem::size_of::<Buffered>() + 256)
            + usize::try_from(self.buffered_bytes).unwrap_or(usize::MAX)
    }

    pub(super) fn position(&self) -> Option<ChannelPos> {
        self.pos.map(|(epoch, seq)| ChannelPos { channel: self.name.clone(), epoch, seq })
    }

    fn live(&self) -> Option<(u64, u64)> {
        if self.fetch == Fetch::Idle {
            self.pos
        } else {
            None
        }
    }
}

/// Refusals of one kind listed one error each in a `start`'s channel list
/// ([`Session::subscribe_all`]); the rest are counted in one error.
pub const MAX_LISTED_REFUSALS: usize = 16;

/// Whether `name` is a valid channel name.
pub fn valid_channel_name(name: &str) -> bool {
    (1..=MAX_CHANNEL_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Session {
    /// Views of every subscribed channel.
    pub fn channels(&self) -> Vec<ChannelView> {
        self.channels
            .iter()
            .map(|c| ChannelView {
                name: c.name.clone(),
                position: c.pos,
                paused: c.fetch != Fetch::Idle,
                buffered: c.buffer.len(),
                buffered_bytes: c.buffered_bytes,
                credit: c.credit,
                outstanding: c.outstanding,
                pending: c.pending,
                granted: c.granted,
                accepted: c.accepted,
            })
            .collect()
    }

    /// Whether channel `name` is held back: deltas wait in its buffer, or a
    /// snapshot fetch is in flight or waiting to be retried after the
    /// channel had a position (a gap, a new epoch, a dropped buffer). Before
    /// its first snapshot with nothing buffered, the channel has received
    /// nothing and knows of nothing sent, so it holds nothing back (the
    /// ledger's own needs say what is missing). A channel not subscribed is
    /// not held.
    pub fn held(&self, name: &str) -> bool {
        self.find(name)
            .and_then(|i| self.channels.get(i))
            .is_some_and(|c| !c.buffer.is_empty() || (c.fetch != Fetch::Idle && c.pos.is_some()))
    }

    /// Deltas buffered over all channels.
    pub fn queue_depth(&self) -> usize {
        self.channels.iter().map(|c| c.buffer.len()).sum()
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.name == name)
    }

    /// Channel offers for IDENTIFY/RESUME; starts each channel's credit afresh
    /// for the new connection (the window minus what is still held).
    pub(super) fn offers(&mut self) -> Vec<ChannelOffer> {
        let window = self.cfg.credit_window;
        let mut offers = Vec::with_capacity(self.channels.len());
        for c in &mut self.channels {
            let held = c.outstanding.saturating_add(c.buffer.len() as u32);
            c.credit = window.saturating_sub(held);
            c.pending = 0;
            c.granted = u64::from(c.credit);
            c.accepted = 0;
            c.overrun_refused = 0;
            offers.push(ChannelOffer { name: c.name.clone(), credit: c.credit, position: c.pos });
        }
        offers
    }

    /// Subscribes each of a `start`'s channels, in order. The page's list is
    /// bounded only by `maxPayloadBytes`, so the refusals are listed one error
    /// each up to [`MAX_LISTED_REFUSALS`] per code, and the rest counted in one
    /// error per code; a channel already subscribed is skipped.
    pub(super) fn subscribe_all(&mut self, names: Vec<String>, out: &mut Vec<SessionOutput>) {
        // [bad names, over the limit]: refusals listed, refusals only counted.
        let mut listed = [0usize; 2];
        let mut unlisted = [0usize; 2];
        for name in names {
            let refusal = if !valid_channel_name(&name) {
                Some(0)
            } else if self.find(&name).is_some() {
                continue;
            } else if self.channels.len() >= self.cfg.max_channels as usize {
                Some(1)
            } else {
                None
            };
            match refusal {
                Some(k) if listed[k] >= MAX_LISTED_REFUSALS => unlisted[k] += 1,
                Some(k) => {
                    listed[k] += 1;
                    self.subscribe(name, out);
                }
                None => self.subscribe(name, out),
            }
        }
        let kinds = [
            (SessionErrorCode::BadChannel, "with a bad name"),
            (SessionErrorCode::ChannelLimit, "past maxSubscriptions"),
        ];
        for (n, (code, what)) in unlisted.into_iter().zip(kinds) {
            if n > 0 {
                let message = format!(
                    "{n} more channels {what} refused (only the first {MAX_LISTED_REFUSALS} are listed)"
                );
                error(out, code, message);
            }
        }
    }

    pub(super) fn subscribe(&mut self, name: String, out: &mut Vec<SessionOutput>) {
        if !valid_channel_name(&name) {
            return error(
                out,
                SessionErrorCode::BadChannel,
                format!("channel name {name:?} is not 1-64 bytes of A-Z a-z 0-9 . _ -"),
            );
        }
        if self.find(&name).is_some() {
            return;
        }
        if self.channels.len() >= self.cfg.max_channels as usize
            || self.channels.try_reserve(1).is_err()
        {
            return error(
                out,
                SessionErrorCode::ChannelLimit,
                format!(
                    "channel '{name}' refused: {} channels subscribed (maxSubscriptions)",
                    self.channels.len()
                ),
            );
        }
        let credit = if self.greeted() { self.cfg.credit_window } else { 0 };
        if self.greeted() {
            out.push(SessionOutput::Send(super::ClientOp::Subscribe {
                channel: name.clone(),
                credit,
            }));
        }
        self.channels.push(Channel {
            name,
            pos: None,
            fetch: Fetch::Idle,
            buffer: Vec::new(),
            buffered_bytes: 0,
            overrun_refused: 0,
            credit,
            outstanding: 0,
            pending: 0,
            granted: u64::from(credit),
            accepted: 0,
        });
        self.fetch(self.channels.len() - 1, None, out);
    }

    pub(super) fn unsubscribe(&mut self, name: &str, out: &mut Vec<SessionOutput>) {
        match self.find(name) {
            Some(i) => {
                self.channels.remove(i);
                if self.greeted() {
                    out.push(SessionOutput::Send(super::ClientOp::Unsubscribe {
                        channel: name.into(),
                    }));
                }
            }
            None => error(
                out,
                SessionErrorCode::NotSubscribed,
                format!("unsubscribe: channel '{name}' is not subscribed"),
            ),
        }
    }

    pub(super) fn rendered(&mut self, name: &str, frames: u32) {
        // A render acknowledgement for a channel dropped meanwhile is normal: ignored.
        if let Some(i) = self.find(name) {
            let c = &mut self.channels[i];
            let n = frames.min(c.outstanding);
            c.outstanding -= n;
            c.pending += n;
        }
    }

    /// Sends one CREDIT for every channel with at least a quarter window freed.
    pub(super) fn grant_credit(&mut self, out: &mut Vec<SessionOutput>) {
        if !self.greeted() {
            return;
        }
        let threshold = (self.cfg.credit_window / 4).max(1);
        let mut grants = Vec::new();
        for c in &mut self.channels {
            if c.pending >= threshold {
                grants.push((c.name.clone(), c.pending));
                c.credit += c.pending;
                c.granted += u64::from(c.pending);
                c.pending = 0;
            }
        }
        if !grants.is_empty() {
            out.push(SessionOutput::Send(super::ClientOp::Credit { grants }));
        }
    }

    fn fetch(&mut self, i: usize, since: Option<u64>, out: &mut Vec<SessionOutput>) {
        let Some(c) = self.channels.get_mut(i) else { return };
        let request_id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        self.counters.snapshot_fetches += 1;
        let channel = c.name.clone();
        // A mini-snapshot continues a position; without one only a full snapshot can.
        let (what, since) = match (since, c.pos) {
            (Some(since_seq), Some((epoch, _))) => {
                (FetchWhat::MiniSnapshot { channel, epoch, since_seq }, Some(since_seq))
            }
            _ => (FetchWhat::Snapshot { channel }, None),
        };
        c.fetch = Fetch::InFlight { request_id, since };
        out.push(SessionOutput::Fetch { request_id, what });
    }

    /// Drops channel `i`'s buffer and fetches a full snapshot.
    pub(super) fn rebootstrap(&mut self, i: usize, out: &mut Vec<SessionOutput>) {
        if let Some(c) = self.channels.get_mut(i) {
            c.pending += c.buffer.len() as u32;
            c.buffer.clear();
            c.buffered_bytes = 0;
        }
        self.fetch(i, None, out);
    }

    pub(super) fn retry_fetches(&mut self, now: f64, out: &mut Vec<SessionOutput>) {
        for i in 0..self.channels.len() {
            if let Fetch::RetryAt { at, since } = self.channels[i].fetch {
                if now >= at {
                    self.fetch(i, since, out);
                }
            }
        }
    }

    pub(super) fn fetch_failed(&mut self, request_id: u64, now: f64) {
        let retry = self.cfg.fetch_retry_ms;
        match self
            .channels
            .iter_mut()
            .find(|c| matches!(c.fetch, Fetch::InFlight { request_id: r, .. } if r == request_id))
        {
            Some(c) => {
                if let Fetch::InFlight { since, .. } = c.fetch {
                    c.fetch = Fetch::RetryAt { at: now + retry, since };
                }
            }
            None => self.counters.stale_replies += 1,
        }
    }

    pub(super) fn delta(
        &mut self,
        name: &str,
        epoch: u64,
        seq: u64,
        body: Payload,
        wire_bytes: usize,
        out: &mut Vec<SessionOutput>,
    ) {
        let Some(i) = self.find(name) else {
            return error(
                out,
                SessionErrorCode::NotSubscribed,
                format!(
                    "delta {epoch}/{seq} for channel '{name}', which is not subscribed: ignored"
                ),
            );
        };
        let c = &mut self.channels[i];
        if c.credit == 0 {
            self.counters.credit_overruns += 1;
            c.overrun_refused += 1;
            if c.overrun_refused > 1 {
                // The episode was reported at its first refusal; the rest are
                // counted (`creditOverruns` in `stats`), not repeated.
                return;
            }
            return error(
                out,
                SessionErrorCode::CreditOverrun,
                format!("channel '{name}': delta {epoch}/{seq} beyond the granted credit: refused (further overruns are counted in stats until the channel accepts a delta again)"),
            );
        }
        c.overrun_refused = 0;
        c.credit -= 1;
        c.accepted += 1;
        if c.credit == 0 {
            self.counters.credit_exhausted += 1;
        }
        let d = Buffered { epoch, seq, body, wire_bytes };
        let Some((pe, ps)) = c.live() else {
            self.buffer(i, d, out);
            return;
        };
        let Buffered { body, .. } = d;
        if epoch < pe || (epoch == pe && seq <= ps) {
            // A repeat, or a frame a snapshot claimed before it arrived:
            // handed out as covered, so the ledger can count what the
            // snapshot's watermark does not reach (each reading once).
            self.counters.duplicates += 1;
            c.pending += 1;
            out.push(SessionOutput::Covered { channel: c.name.clone(), epoch, seq, body });
        } else if epoch == pe && seq == ps.saturating_add(1) {
            c.pos = Some((epoch, seq));
            c.outstanding += 1;
            out.push(SessionOutput::Deliver {
                channel: c.name.clone(),
                item: Delivery::Delta { epoch, seq, body },
            });
        } else {
            let since = if epoch > pe {
                self.counters.epoch_changes += 1;
                None
            } else {
                self.counters.gaps += 1;
                Some(ps)
            };
            if self.buffer(i, Buffered { epoch, seq, body, wire_bytes }, out) {
                self.fetch(i, since, out);
            }
        }
    }

    /// Buffers `d` on paused channel `i`. Returns false when the byte bound
    /// re-snapshotted the channel instead (a fetch is then already issued).
    fn buffer(&mut self, i: usize, d: Buffered, out: &mut Vec<SessionOutput>) -> bool {
        let cap = self.cfg.max_buffered_deltas as usize;
        let byte_cap = self.cfg.max_buffered_bytes;
        let mut d = d;
        d.wire_bytes = d.wire_bytes.max(d.body.held_bytes());
        let c = &mut self.channels[i];
        let bytes = u64::try_from(d.wire_bytes).unwrap_or(u64::MAX);
        if c.buffered_bytes.saturating_add(bytes) > byte_cap {
            // Dropping the buffer keeps the bound; what it held is in the
            // snapshot fetched again now.
            self.counters.buffer_overflows += 1;
            let (name, held) = (c.name.clone(), c.buffered_bytes);
            let msg = format!("channel '{name}': delta {}/{} ({bytes} bytes) would take the buffer past {byte_cap} bytes (maxBufferedBytes; {held} held): buffer dropped, snapshot fetched again", d.epoch, d.seq);
            error(out, SessionErrorCode::BufferLimit, msg);
            c.pending += 1;
            self.rebootstrap(i, out);
            return false;
        }
        if c.buffer.len() >= cap || c.buffer.try_reserve(1).is_err() {
            // Dropping the buffer keeps the bound; the drain after the next
            // snapshot sees the hole and fetches again.
            self.counters.buffer_overflows += 1;
            c.pending += c.buffer.len() as u32 + 1;
            c.buffer.clear();
            c.buffered_bytes = 0;
            let name = c.name.clone();
            error(out, SessionErrorCode::BufferLimit, format!("channel '{name}': more than {cap} deltas buffered (maxBufferedDeltas): buffer dropped"));
            return true;
        }
        c.buffered_bytes += bytes;
        c.buffer.push(d);
        true
    }

    /// A HEARTBEAT_ACK's `sent` positions: a live channel with nothing buffered
    /// that is behind what the server sent lost its tail.
    ///
    /// The server names up to `maxPayloadBytes` of positions, most of them
    /// perhaps for channels never subscribed: each is found by hashing its
    /// name once, not by comparing it with every subscribed channel's (at
    /// 256 channels and 16 MiB of short names that scan took 230 ms).
    pub(super) fn tail_gaps(&mut self, sent: &[ChannelPos], out: &mut Vec<SessionOutput>) {
        let by_name: FxHashMap<&str, usize> =
            self.channels.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
        let listed: Vec<(usize, &ChannelPos)> =
            sent.iter().filter_map(|p| Some((*by_name.get(p.channel.as_str())?, p))).collect();
        drop(by_name);
        for (i, p) in listed {
            let c = &self.channels[i];
            let Some((pe, ps)) = c.live().filter(|_| c.buffer.is_empty()) else { continue };
            if p.epoch > pe {
                self.counters.epoch_changes += 1;
                self.fetch(i, None, out);
            } else if p.epoch == pe && p.seq > ps {
                self.counters.gaps += 1;
                self.fetch(i, Some(ps), out);
            }
        }
    }

    pub(super) fn snapshot(&mut self, r: SnapshotReply, now: f64, out: &mut Vec<SessionOutput>) {
        let found = self.channels.iter().position(
            |c| matches!(c.fetch, Fetch::InFlight { request_id, .. } if request_id == r.request_id),
        );
        let Some(i) = found else {
            self.counters.stale_replies += 1;
            return;
        };
        let c = &mut self.channels[i];
        let Fetch::InFlight { since, .. } = c.fetch else { return };
        let fits = r.channel == c.name
            && match r.since_seq {
                None => c.pos.is_none_or(|(pe, _)| r.epoch >= pe),
                Some(n) => since == Some(n) && c.pos == Some((r.epoch, n)) && r.snapshot_seq >= n,
            };
        if !fits {
            c.fetch = Fetch::RetryAt { at: now + self.cfg.fetch_retry_ms, since: None };
            let msg = format!(
                "snapshot reply {} for '{}' (epoch {}, snapshot_seq {}, since_seq {:?}) does not fit channel '{}' at {:?} asking since {:?}: fetching again",
                r.request_id, r.channel, r.epoch, r.snapshot_seq, r.since_seq, c.name, c.pos, since
            );
            return error(out, SessionErrorCode::BadSnapshot, msg);
        }
        c.pos = Some((r.epoch, r.snapshot_seq));
        c.fetch = Fetch::Idle;
        let item = Delivery::Snapshot {
            epoch: r.epoch,
            snapshot_seq: r.snapshot_seq,
            since_seq: r.since_seq,
            body: r.body,
        };
        out.push(SessionOutput::Deliver { channel: c.name.clone(), item });
        self.drain(i, r.since_seq.is_none(), out);
    }

    /// Applies channel `i`'s buffer after a snapshot: drops what the snapshot
    /// covers (each handed out as `Covered`), delivers the run that follows
    /// it, and keeps the rest behind a new fetch if the run stops short.
    fn drain(&mut self, i: usize, after_full: bool, out: &mut Vec<SessionOutput>) {
        let c = &mut self.channels[i];
        let Some((epoch, mut last)) = c.pos else { return };
        let buf = std::mem::take(&mut c.buffer);
        // In (epoch, seq) order, through the module's one cold sort of
        // positions (core::order: std's sort of `Buffered` was 2.6 KB gzip).
        let mut order: Vec<usize> = (0..buf.len()).collect();
        let key = |x: usize| buf.get(x).map(|d| (d.epoch, d.seq));
        sort_indices(&mut order, &mut |a, b| key(a).cmp(&key(b)));
        let mut slots: Vec<Option<Buffered>> = buf.into_iter().map(Some).collect();
        let mut applied = false;
        let mut keep = Vec::new();
        for d in order.iter().filter_map(|&x| slots.get_mut(x).and_then(Option::take)) {
            if !keep.is_empty() {
                keep.push(d);
            } else if d.epoch < epoch || (d.epoch == epoch && d.seq <= last) {
                c.pending += 1;
                out.push(SessionOutput::Covered {
                    channel: c.name.clone(),
                    epoch: d.epoch,
                    seq: d.seq,
                    body: d.body,
                });
            } else if d.epoch == epoch && d.seq == last.saturating_add(1) {
                last = d.seq;
                applied = true;
                c.outstanding += 1;
                out.push(SessionOutput::Deliver {
                    channel: c.name.clone(),
                    item: Delivery::Delta { epoch, seq: d.seq, body: d.body },
                });
            } else {
                keep.push(d);
            }
        }
        c.pos = Some((epoch, last));
        let next_epoch = keep.first().map(|d| d.epoch);
        c.buffered_bytes = keep.iter().map(|d| d.wire_bytes as u64).sum();
        c.buffer = keep;
        match next_epoch {
            None => {}
            Some(e) if e > epoch => {
                self.counters.epoch_changes += 1;
                self.fetch(i, None, out);
            }
            Some(_) => {
                self.counters.gaps += 1;
                // Binance's rule: the first delta after a full snapshot must follow it,
                // or the snapshot itself is fetched again.
                let since = if after_full && !applied { None } else { Some(last) };
                self.fetch(i, since, out);
            }
        }
    }
}

fn error(out: &mut Vec<SessionOutput>, code: SessionErrorCode, message: String) {
    out.push(SessionOutput::Error(SessionError::new(code, message)));
}
