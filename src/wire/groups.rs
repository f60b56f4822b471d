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

use rustc_hash::FxHashSet;

use super::lite::{self, Value};
use super::{check_payload_size, Arrival, FetchedBody};
use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::Inbound;
use crate::core::groups::{group_name_problem, GroupMapBody, GroupsInput, GROUPS_REQUEST_BASE};

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

/// Decodes a `/groups` body's text.
pub fn decode_groups_text(text: &str, cfg: &Config) -> Result<GroupMapBody, CoreError> {
    check_payload_size(text.len(), cfg)?;
    let bad = |why: String| CoreError::new(ErrorCode::BadField, format!("groups body: {why}"));
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
        return Err(CoreError::new(ErrorCode::OutOfMemory, "groups body: no memory for its names"));
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
