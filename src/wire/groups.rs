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

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::{check_payload_size, Arrival, FetchedBody};
use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode};
use crate::core::event::Inbound;
use crate::core::groups::{GroupMapBody, GroupsInput, GROUPS_REQUEST_BASE};

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
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        version: u64,
        groups: Groups,
    }
    let b: Body = serde_json::from_str(text)
        .map_err(|e| CoreError::new(ErrorCode::BadField, format!("groups body: {e}")))?;
    if b.version > (1 << 53) - 1 {
        return Err(CoreError::new(ErrorCode::BadField, "groups body: version past 2^53 - 1"));
    }
    Ok(GroupMapBody { version: b.version, groups: b.groups.0 })
}

/// The `groups` object in body order, refusing a name listed twice.
struct Groups(Vec<(String, Vec<String>)>);

impl<'de> Deserialize<'de> for Groups {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Groups;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of group name -> array of meter ids")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Groups, A::Error> {
                let mut out: Vec<(String, Vec<String>)> = Vec::new();
                while let Some((name, members)) = a.next_entry::<String, Vec<String>>()? {
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!("group {name:?} listed twice")));
                    }
                    out.push((name, members));
                }
                Ok(Groups(out))
            }
        }
        d.deserialize_map(V)
    }
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
                ]
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
        ] {
            assert!(decode_groups_text(bad, &cfg).is_err(), "{bad}");
        }
    }
}
