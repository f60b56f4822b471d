//! The engine's side of the stream v2 session (docs/STREAM.md, PROTOCOL.md §7):
//! the requests the host executes, the decoded bodies of the non-totals
//! channels, and (in `engine`) how the engine drives its `Session` and applies
//! what it delivers.
//!
//! Invariants:
//! - The engine owns one `Session`; every session input arrives as
//!   `Inbound::Stream`, every session effect leaves as `Outbound::Stream`,
//!   `Outbound::Connection` or `Outbound::Error`.
//! - The `totals` channel feeds the ledger only: its snapshot is a catch-up
//!   (applied, then the ledger's cursor expects `snapshot_seq + 1` in that
//!   epoch), its deltas are v1 live frames.
//! - Bodies arrive decoded by `crate::wire::stream`; nothing here parses text.

pub mod columns;
pub(crate) mod engine;
pub mod store;

pub use columns::{MeterColumns, MeterRowRef};
pub use store::{DetailCache, MeterStore, NoticeStore, StreamCounters};

use crate::core::decimal::Decimal;
use crate::core::session::FetchWhat;

/// The name of the channel whose snapshot is the ledger's catch-up.
pub const TOTALS_CHANNEL: &str = "totals";

/// Channels whose deltas carry meter rows start with this.
pub const METERS_PREFIX: &str = "meters.";

/// The channel of server notices.
pub const NOTICES_CHANNEL: &str = "notices";

/// What the host (the page, or the worker's own transport) must do for the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamRequest {
    /// Open the socket; `None`: the configured stream URL.
    Connect {
        /// Resume URL given by the server's HELLO, if any.
        url: Option<String>,
    },
    /// Send this JSON text on the socket.
    Send {
        /// The message.
        text: String,
    },
    /// Close the socket.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Reason text.
        reason: String,
    },
    /// `GET` this path relative to the feed base URL; answer with `fetched`
    /// carrying `request_id`.
    Fetch {
        /// Echoed in the answer.
        request_id: u64,
        /// E.g. `/snapshot-v2?channel=totals&meters=1`, `/meters/m-17`.
        path: String,
    },
}

/// The path of a session fetch, relative to the feed base URL.
pub fn fetch_path(what: &FetchWhat) -> String {
    match what {
        FetchWhat::Snapshot { channel } => {
            format!("/snapshot-v2?channel={}{}", escape(channel), per_meter(channel))
        }
        FetchWhat::MiniSnapshot { channel, epoch, since_seq } => format!(
            "/snapshot-v2?channel={}&epoch={epoch}&since_seq={since_seq}{}",
            escape(channel),
            per_meter(channel)
        ),
        FetchWhat::Detail { meter } => format!("/meters/{}", escape(meter)),
    }
}

/// A `totals` snapshot asks for the hours the server holds per meter
/// (`meters=1`): such a catch-up rebuilds the groups' rows exactly
/// (docs/LEDGER.md, "Rebuilding rows from a catch-up"); a server that keeps
/// none answers resource totals as before.
fn per_meter(channel: &str) -> &'static str {
    if channel == TOTALS_CHANNEL {
        "&meters=1"
    } else {
        ""
    }
}

/// Percent-encodes every byte outside `A–Z a–z 0–9 - . _ ~` (channel names are
/// already within it; meter ids may not be).
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// A meter's state as the `meters.<group>` channels carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeterStatus {
    /// Reporting.
    Ok,
    /// Late: no reading for a while.
    Stale,
    /// Not reporting.
    Offline,
}

impl MeterStatus {
    /// Wire string: `ok`, `stale`, `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            MeterStatus::Ok => "ok",
            MeterStatus::Stale => "stale",
            MeterStatus::Offline => "offline",
        }
    }

    /// The status named `s`, if any.
    pub fn parse(s: &str) -> Option<MeterStatus> {
        match s {
            "ok" => Some(MeterStatus::Ok),
            "stale" => Some(MeterStatus::Stale),
            "offline" => Some(MeterStatus::Offline),
            _ => None,
        }
    }
}

/// One meter's row: latest reading, status and counters.
#[derive(Clone, Debug, PartialEq)]
pub struct MeterRow {
    /// Meter id.
    pub meter: String,
    /// Resource it measures.
    pub resource: String,
    /// Timestamp of its latest reading (ms since the Unix epoch).
    pub ts: f64,
    /// Its latest reading's value.
    pub value: f64,
    /// Reporting status.
    pub status: MeterStatus,
    /// Readings since the server started.
    pub count: u64,
    /// Consumption since the server started, exact.
    pub total: Decimal,
}

/// A `meters.<group>` delta's patch, or a snapshot (every meter in `upsert`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeterPatch {
    /// Rows to insert or replace.
    pub upsert: Vec<MeterRow>,
    /// Meter ids to forget.
    pub remove: Vec<String>,
}

/// How serious a notice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoticeSeverity {
    /// For information.
    Info,
    /// Degraded service.
    Warning,
    /// Outage.
    Critical,
}

impl NoticeSeverity {
    /// Wire string: `info`, `warning`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeSeverity::Info => "info",
            NoticeSeverity::Warning => "warning",
            NoticeSeverity::Critical => "critical",
        }
    }

    /// The severity named `s`, if any.
    pub fn parse(s: &str) -> Option<NoticeSeverity> {
        match s {
            "info" => Some(NoticeSeverity::Info),
            "warning" => Some(NoticeSeverity::Warning),
            "critical" => Some(NoticeSeverity::Critical),
            _ => None,
        }
    }
}

/// A server maintenance or outage notice.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// Notice id.
    pub id: String,
    /// Severity.
    pub severity: NoticeSeverity,
    /// Short title.
    pub title: String,
    /// Text.
    pub text: String,
    /// Start of the period it concerns (ms).
    pub from_ms: f64,
    /// End of the period it concerns (ms).
    pub to_ms: f64,
}

/// A `notices` delta's patch, or a snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NoticePatch {
    /// Notices to insert or replace.
    pub upsert: Vec<Notice>,
    /// Notice ids to forget.
    pub remove: Vec<String>,
}

/// `meters` to the page: rows changed and ids removed since the last flush.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetersEvent {
    /// The channel (`meters.<group>`).
    pub channel: String,
    /// Newest row per meter.
    pub upsert: Vec<MeterRow>,
    /// Meters the page must forget.
    pub remove: Vec<String>,
    /// Deltas of `channel` whose effects this message shows first (on the
    /// channel's last message of a flush; 0 on the others).
    pub frames: u32,
}

/// `notices` to the page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NoticesEvent {
    /// Newest notice per id.
    pub upsert: Vec<Notice>,
    /// Notices the page must forget.
    pub remove: Vec<String>,
    /// Deltas of `notices` whose effects this message shows first.
    pub frames: u32,
}

/// `detail` to the page: the `/meters/{id}` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetailEvent {
    /// Meter id.
    pub meter: String,
    /// The body as JSON text (an object; checked at the edge).
    pub body: String,
    /// Answered from the cache, without a fetch.
    pub cached: bool,
}
