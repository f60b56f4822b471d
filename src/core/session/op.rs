//! Client → server control messages and their JSON text (docs/STREAM.md §1).
//!
//! The core does not depend on serde; these few shapes are written by hand.
//! Channel names are validated to a safe alphabet on subscribe, and every other
//! string (the session id) is escaped, so the text is always valid JSON.

use std::fmt::Write;

/// A channel's position: `(epoch, seq)` of its last delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelPos {
    /// Channel name.
    pub channel: String,
    /// Epoch.
    pub epoch: u64,
    /// Sequence number.
    pub seq: u64,
}

/// One channel in IDENTIFY or RESUME.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelOffer {
    /// Channel name.
    pub name: String,
    /// Deltas the server may send before more credit.
    pub credit: u32,
    /// `(epoch, seq)` applied so far (`snapshot_seq`/`last_seq`), if any.
    pub position: Option<(u64, u64)>,
}

/// A control message for the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientOp {
    /// Start a new session.
    Identify {
        /// Subscribed channels.
        channels: Vec<ChannelOffer>,
        /// Ask for `meters.<group>` DELTAs as binary kind-4 frames.
        binary_deltas: bool,
    },
    /// Continue a session.
    Resume {
        /// The session's id from READY/HELLO.
        session_id: String,
        /// Subscribed channels with their last applied position.
        channels: Vec<ChannelOffer>,
        /// Ask for `meters.<group>` DELTAs as binary kind-4 frames.
        binary_deltas: bool,
    },
    /// Liveness, with the last applied position per channel.
    Heartbeat {
        /// Positions of the channels that have one.
        seqs: Vec<ChannelPos>,
    },
    /// Add a channel.
    Subscribe {
        /// Channel name.
        channel: String,
        /// Initial credit.
        credit: u32,
    },
    /// Drop a channel.
    Unsubscribe {
        /// Channel name.
        channel: String,
    },
    /// Grant more deltas per channel.
    Credit {
        /// `(channel, more)` pairs.
        grants: Vec<(String, u32)>,
    },
}

impl ClientOp {
    /// The upper-case op name, e.g. `"RESUME"`.
    pub fn name(&self) -> &'static str {
        match self {
            ClientOp::Identify { .. } => "IDENTIFY",
            ClientOp::Resume { .. } => "RESUME",
            ClientOp::Heartbeat { .. } => "HEARTBEAT",
            ClientOp::Subscribe { .. } => "SUBSCRIBE",
            ClientOp::Unsubscribe { .. } => "UNSUBSCRIBE",
            ClientOp::Credit { .. } => "CREDIT",
        }
    }

    /// The message as JSON text, as docs/STREAM.md shows it.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(64);
        // Writing into a String cannot fail; the results are ignored for that reason.
        let _ = write!(s, "{{\"op\":\"{}\"", self.name());
        match self {
            ClientOp::Identify { channels, binary_deltas } => {
                offers(&mut s, channels, "snapshot_seq");
                capabilities(&mut s, *binary_deltas);
            }
            ClientOp::Resume { session_id, channels, binary_deltas } => {
                s.push_str(",\"session_id\":");
                string(&mut s, session_id);
                offers(&mut s, channels, "last_seq");
                capabilities(&mut s, *binary_deltas);
            }
            ClientOp::Heartbeat { seqs } => {
                s.push_str(",\"seqs\":{");
                for (i, p) in seqs.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    string(&mut s, &p.channel);
                    let _ = write!(s, ":[{},{}]", p.epoch, p.seq);
                }
                s.push('}');
            }
            ClientOp::Subscribe { channel, credit } => {
                s.push_str(",\"channel\":");
                string(&mut s, channel);
                let _ = write!(s, ",\"credit\":{credit}");
            }
            ClientOp::Unsubscribe { channel } => {
                s.push_str(",\"channel\":");
                string(&mut s, channel);
            }
            ClientOp::Credit { grants } => {
                s.push_str(",\"credit\":{");
                for (i, (c, n)) in grants.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    string(&mut s, c);
                    let _ = write!(s, ":{n}");
                }
                s.push('}');
            }
        }
        s.push('}');
        s
    }
}

fn offers(s: &mut String, channels: &[ChannelOffer], seq_name: &str) {
    s.push_str(",\"channels\":[");
    for (i, c) in channels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"name\":");
        string(s, &c.name);
        let _ = write!(s, ",\"credit\":{}", c.credit);
        if let Some((epoch, seq)) = c.position {
            let _ = write!(s, ",\"epoch\":{epoch},\"{seq_name}\":{seq}");
        }
        s.push('}');
    }
    s.push(']');
}

/// The connection's capabilities: written only when asked, so a client that
/// asks nothing sends what it sent before (and gets JSON text DELTAs).
fn capabilities(s: &mut String, binary_deltas: bool) {
    if binary_deltas {
        s.push_str(",\"binary_deltas\":true");
    }
}

/// Appends `v` as a JSON string literal.
fn string(s: &mut String, v: &str) {
    s.push('"');
    for ch in v.chars() {
        match ch {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}
