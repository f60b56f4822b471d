//! The feed server's `GET /groups` body at the edge: decoded whole into a
//! [`GroupMapBody`] or refused whole (`GroupsInput::Failed`, so the map in
//! force stays and the failure is counted).
//!
//! Body: `{"version":V,"groups":{"north":["m-1",…],…}}`, `V` a whole number
//! up to 2^53 − 1, groups in body order. A group listed twice, a member that
//! is not a string, or anything else out of shape refuses the body; names
//! and meter ids are checked when the map is built (bad ones are refused
//! item by item there, the rest applies). Allocation follows the payload:
//! every string is one the body spells out.
//!
//! Groups the build can only refuse are not copied: past the `maxGroups`-th
//! group with a valid name, each group is refused once (a bad name or
//! `maxGroups`; a repeat refuses the whole body here), so the decoder copies
//! the next `maxErrorsPerBatch` of them (their errors are shown) and counts
//! the rest (`GroupMapBody::uncopied`, summed into `errors_suppressed`). A
//! body of 1.2 million empty groups took 0.35 s with a copy of each
//! (docs/PERFORMANCE.md, "Hostile payloads"). The body must be decoded with
//! the configuration it is built with (as every payload is: the worker
//! decodes a message with the engine's configuration just before handling it).
//!
//! A body whose top level is an object is read in one pass
//! ([`decode_groups_text`]): no tree, the `groups` object's names kept as a
//! hash and an offset each (`repeat`, which finds a repeat without
//! a hash set), a group's members copied only if the group is. The tree and
//! the set of names were most of the 0.15–0.19 s that 1.2 million empty
//! groups took. It reads with the tree reader's own steps
//! ([`Cursor::next_key`], `next_item`, [`Cursor::read_value`]) and counts
//! values as [`lite::parse`] does, so it refuses what [`lite::parse`]
//! refuses, where it does; and it checks the members in the order
//! [`decode_groups_text_general`] checks them, so its answer is that
//! function's, errors included (`tests/groups_pass_diff.rs`).

use rustc_hash::FxHashSet;
use std::borrow::Cow;

use super::lite::{self, Cursor, ErrorKind, Value};
use repeat::NameKeys;

mod repeat;
use super::{check_payload_size, Arrival, FetchedBody};
use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::Inbound;
use crate::core::groups::{group_name_problem, GroupMapBody, GroupsInput, GROUPS_REQUEST_BASE};

/// Nesting of the top object's member values, of `groups`' members and of a
/// member array's items, as [`lite::parse`] counts it.
const TOP: usize = 1;
const GROUP: usize = 2;
const MEMBER: usize = 3;

/// Whether `request_id` is a `/groups` fetch's (not the session's).
pub fn is_groups_request(request_id: u64) -> bool {
    request_id >= GROUPS_REQUEST_BASE
}

/// Decodes the answer to `/groups` fetch `request_id`. Never panics.
pub fn decode_groups_fetched(
    request_id: u64,
    body: FetchedBody<'_>,
    _arrival: Arrival,
    cfg: &Config,
) -> Inbound {
    let failed = |status: u16, message: String| {
        Inbound::Groups(GroupsInput::Failed { request_id, status, message })
    };
    let text = match body {
        FetchedBody::Failed { status } => {
            return failed(status, "the fetch failed".to_string());
        }
        FetchedBody::Binary(_) => return failed(0, "malformed body: binary, expected JSON".into()),
        FetchedBody::Text(t) => t,
    };
    match decode_groups_text(text, cfg) {
        Ok(body) => Inbound::Groups(GroupsInput::Map { request_id, body }),
        Err(e) => failed(0, format!("malformed body: {}", e.message)),
    }
}

fn bad(why: String) -> CoreError {
    CoreError::new(ErrorCode::BadField, format!("groups body: {why}"))
}

fn no_memory() -> CoreError {
    CoreError::new(ErrorCode::OutOfMemory, "groups body: no memory for its names")
}

/// Decodes a `/groups` body's text: in one pass (see the module doc).
pub fn decode_groups_text(text: &str, cfg: &Config) -> Result<GroupMapBody, CoreError> {
    check_payload_size(text.len(), cfg)?;
    let mut c = Cursor::new(text);
    if c.token() != Ok(b'{') {
        // What the general path answers (`decode_groups_text_general`),
        // which the `.wasm` then need not carry.
        return Err(match lite::parse(text) {
            Err(e) => bad(e.to_string()),
            Ok(_) => bad("must be an object".into()),
        });
    }
    match top(&mut c, text, cfg) {
        Ok(decided) => decided,
        Err(kind) => Err(bad(c.fail(kind).to_string())),
    }
}

/// A top-level member as the one-pass reader keeps it.
enum Member<'a> {
    /// A value read whole (`version`, or a `groups` that is not an object).
    Value(Value<'a>),
    /// A `groups` object.
    Groups(List<'a>),
}

/// The top-level object at the cursor's `{`: the body, or the refusal the
/// general path makes of it; `Err` if it is not JSON as [`lite::parse`] reads it.
fn top<'a>(
    c: &mut Cursor<'a>,
    text: &'a str,
    cfg: &Config,
) -> Result<Result<GroupMapBody, CoreError>, ErrorKind> {
    c.count_value()?;
    c.bump();
    // The general path's slots: the first `version` and `groups`, and the
    // first member it refuses (unknown, or a field given twice).
    let mut refused: Option<String> = None;
    let (mut version, mut groups) = (None, None);
    let mut first = true;
    while let Some(key) = c.next_key(first)? {
        first = false;
        let member = if key == "groups" && c.peek_token() == Some(b'{') {
            // Only the first `groups` before any refusal is kept: any other
            // is read for its grammar alone.
            let keep = refused.is_none() && groups.is_none();
            Member::Groups(list(c, text, cfg, keep)?)
        } else {
            Member::Value(c.read_value(TOP)?)
        };
        if refused.is_some() {
            continue;
        }
        let slot = match key.as_ref() {
            "version" => &mut version,
            "groups" => &mut groups,
            other => {
                refused = Some(format!("unknown field `{}`", trunc(other)));
                continue;
            }
        };
        if slot.replace(member).is_some() {
            refused = Some(format!("duplicate field `{key}`"));
        }
    }
    c.finish()?;
    if let Some(why) = refused {
        return Ok(Err(bad(why)));
    }
    let version = match version {
        None => return Ok(Err(bad("missing field `version`".into()))),
        Some(Member::Value(v)) => v.as_u64().filter(|v| *v < (1 << 53)),
        Some(Member::Groups(_)) => None,
    };
    let Some(version) = version else {
        return Ok(Err(bad("version: must be a whole number up to 2^53 - 1".into())));
    };
    let Some(Member::Groups(list)) = groups else {
        return Ok(Err(
            bad("groups: must be an object of group name -> array of meter ids".into()),
        ));
    };
    Ok(list.decide(text, version))
}

/// A `groups` object read in one pass: what the general path's loop over
/// its members needs, in document order.
struct List<'a> {
    /// Every name up to the first group refused for its members.
    names: NameKeys,
    /// That group: its index and name.
    not_strings: Option<(usize, Cow<'a, str>)>,
    /// No memory to keep a name.
    out_of_memory: bool,
    /// As the general path's loop: the groups copied, those counted.
    groups: Vec<(String, Vec<String>)>,
    uncopied: usize,
    valid: usize,
    past: usize,
}

/// The `groups` object at the cursor (`{` next); `keep`: keep what it
/// names (else read its grammar only).
fn list<'a>(
    c: &mut Cursor<'a>,
    text: &'a str,
    cfg: &Config,
    keep: bool,
) -> Result<List<'a>, ErrorKind> {
    c.count_value()?;
    c.token()?;
    c.bump();
    // A member takes at least 4 bytes (`"":0`) and a comma.
    let mut l = List {
        names: NameKeys::for_at_most(text.len() / 5 + 1),
        not_strings: None,
        out_of_memory: false,
        groups: Vec::new(),
        uncopied: 0,
        valid: 0,
        past: 0,
    };
    let mut first = true;
    while let Some((at, name)) = c.next_key_at(first)? {
        first = false;
        let index = l.names.len();
        let keep = keep && l.not_strings.is_none() && !l.out_of_memory;
        if keep && !l.names.push(&name, at) {
            l.out_of_memory = true;
        }
        // Whether the general path copies this group, if its checks pass
        // (if they do not, the body is refused and no copy matters).
        let copy = keep && l.copies(&name, cfg);
        let mut members = Vec::new();
        let strings = if c.peek_token() == Some(b'[') {
            c.count_value()?;
            c.token()?;
            c.bump();
            let mut strings = true;
            let mut first_item = true;
            while c.next_item(first_item)? {
                first_item = false;
                match c.read_value(MEMBER)? {
                    Value::String(id) if strings => {
                        if copy {
                            members.push(id.into_owned());
                        }
                    }
                    _ => strings = false,
                }
            }
            strings
        } else {
            c.read_value(GROUP)?;
            false
        };
        if !keep {
            continue;
        }
        if !strings {
            l.not_strings = Some((index, name));
        } else if copy {
            l.groups.push((name.into_owned(), members));
        }
    }
    Ok(l)
}

impl List<'_> {
    /// The general path's choice for the next group (its checks passed):
    /// copy it, or count it (`uncopied`).
    fn copies(&mut self, name: &str, cfg: &Config) -> bool {
        if self.valid >= cfg.max_groups as usize {
            if self.past >= cfg.max_errors_per_batch as usize {
                self.uncopied += 1;
                return false;
            }
            self.past += 1;
        } else if group_name_problem(name).is_none() {
            self.valid += 1;
        }
        true
    }

    /// The general path's answer: the first group listed twice or refused
    /// for its members, whichever comes first (at the same group, the
    /// repeat: it is checked first), else the body.
    fn decide(self, text: &str, version: u64) -> Result<GroupMapBody, CoreError> {
        if self.out_of_memory {
            return Err(no_memory());
        }
        let upto = self.not_strings.as_ref().map_or(self.names.len(), |(i, _)| i + 1);
        let read = |at: usize| Cursor::at(text, at).read_string().ok();
        match self.names.first_repeat(upto, read) {
            Err(_) => Err(no_memory()),
            Ok(Some(j)) => {
                // The repeat's name, read again from the text.
                let name = self.names.at(j).and_then(read).unwrap_or_default();
                Err(bad(format!("group {:?} listed twice", trunc(&name))))
            }
            Ok(None) => match self.not_strings {
                Some((_, name)) => {
                    Err(bad(format!("group {:?}: must be an array of strings", trunc(&name))))
                }
                None => Ok(GroupMapBody { version, groups: self.groups, uncopied: self.uncopied }),
            },
        }
    }
}

/// Decodes a `/groups` body's text through a [`lite`] tree: the reference
/// the one-pass reader ([`decode_groups_text`]) is held to
/// (`tests/groups_pass_diff.rs`); not on the worker's path.
#[doc(hidden)]
pub fn decode_groups_text_general(text: &str, cfg: &Config) -> Result<GroupMapBody, CoreError> {
    check_payload_size(text.len(), cfg)?;
    let doc = lite::parse(text).map_err(|e| bad(e.to_string()))?;
    let Value::Object(top) = &doc else { return Err(bad("must be an object".into())) };
    let (mut version, mut groups) = (None, None);
    for (key, v) in top.iter() {
        let slot = match key {
            "version" => &mut version,
            "groups" => &mut groups,
            other => return Err(bad(format!("unknown field `{}`", trunc(other)))),
        };
        if slot.replace(v).is_some() {
            return Err(bad(format!("duplicate field `{key}`")));
        }
    }
    let version = version.ok_or_else(|| bad("missing field `version`".into()))?;
    let version = version
        .as_u64()
        .filter(|v| *v < (1 << 53))
        .ok_or_else(|| bad("version: must be a whole number up to 2^53 - 1".into()))?;
    let Some(Value::Object(list)) = groups else {
        return Err(bad("groups: must be an object of group name -> array of meter ids".into()));
    };
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    // Names seen, hashed: the body is the server's, and a scan of the groups
    // before each one took hours on a 16 MiB body of distinct names. Sized
    // once: each name is at least 5 bytes of the body (`"":[]`).
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    if seen.try_reserve(list.len()).is_err() {
        return Err(no_memory());
    }
    // Groups with a valid name copied (the build keeps them up to `maxGroups`),
    // then groups copied past them (each refused once by the build).
    let (mut valid, mut past) = (0usize, 0usize);
    let mut uncopied = 0;
    for (name, members) in list.iter() {
        if !seen.insert(name) {
            return Err(bad(format!("group {:?} listed twice", trunc(name))));
        }
        let members = members
            .as_array()
            .filter(|m| m.iter().all(|id| id.as_str().is_some()))
            .ok_or_else(|| bad(format!("group {:?}: must be an array of strings", trunc(name))))?;
        if valid >= cfg.max_groups as usize {
            if past >= cfg.max_errors_per_batch as usize {
                uncopied += 1;
                continue;
            }
            past += 1;
        } else if group_name_problem(name).is_none() {
            valid += 1;
        }
        let members = members.iter().filter_map(|id| id.as_str().map(str::to_string)).collect();
        out.push((name.to_string(), members));
    }
    Ok(GroupMapBody { version, groups: out, uncopied })
}

fn trunc(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_in_order_and_refuses_malformed_bodies() {
        let cfg = Config::default();
        let b =
            decode_groups_text(r#"{"version":3,"groups":{"b":["m-1"],"a":["m-1","m-2"]}}"#, &cfg);
        let b = b.map_err(|e| e.message);
        assert_eq!(
            b,
            Ok(GroupMapBody {
                version: 3,
                groups: vec![
                    ("b".into(), vec!["m-1".into()]),
                    ("a".into(), vec!["m-1".into(), "m-2".into()])
                ],
                uncopied: 0,
            })
        );
        for bad in [
            "",
            "{",
            r#"{"version":-1,"groups":{}}"#,
            r#"{"version":1.5,"groups":{}}"#,
            r#"{"version":9007199254740992,"groups":{}}"#,
            r#"{"groups":{}}"#,
            r#"{"version":1,"groups":[]}"#,
            r#"{"version":1,"groups":{"a":[1]}}"#,
            r#"{"version":1,"groups":{"a":[],"a":[]}}"#,
            r#"{"version":1,"groups":{},"x":1}"#,
            r#"{"version":1,"version":1,"groups":{}}"#,
            r#"{"version":1}"#,
            r#"{"version":1.0,"groups":{}}"#,
        ] {
            assert!(decode_groups_text(bad, &cfg).is_err(), "{bad}");
        }
    }
}
