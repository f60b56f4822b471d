//! `GroupMap`: meter id → the groups it belongs to, as the feed server's
//! `GET /groups` lists them, checked against `maxGroups` and
//! `maxGroupsPerMeter` and built whole before it replaces the previous map.
//!
//! Invariants: at most `maxGroups` groups, each meter in at most
//! `maxGroupsPerMeter` of them, each membership once; a group or membership
//! past a bound is refused with an error naming it, the rest applies.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::core::config::Config;
use crate::core::error::{CoreError, ErrorCode, ErrorSink};
use crate::core::event::Outbound;
use crate::core::meters::meter_id_problem;

/// A decoded `GET /groups` body: `{"version":V,"groups":{"north":["m-1",…],…}}`,
/// groups in body order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupMapBody {
    /// The server's map version.
    pub version: u64,
    /// `(group, member meter ids)`.
    pub groups: Vec<(String, Vec<String>)>,
    /// Groups the body lists after `groups` that the decoder counted without
    /// copying: each one the build would refuse with one error past
    /// `maxErrorsPerBatch` (the decoder keeps every group up to the
    /// `maxGroups`-th with a valid name, then `maxErrorsPerBatch` more, each
    /// of which is refused once; see `wire::groups`). Counted in the
    /// `errors_suppressed` summary.
    pub uncopied: usize,
}

/// Longest group name, bytes.
pub const MAX_GROUP_NAME_BYTES: usize = 64;

/// Why a group name is refused, if it is: 1..=64 bytes of `A–Z a–z 0–9 . _ -`
/// (a group's channel is `meters.<group>`).
pub fn group_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > MAX_GROUP_NAME_BYTES {
        return Some("must be 1..=64 bytes");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Some("may hold only A-Z a-z 0-9 . _ -");
    }
    None
}

/// The meter → groups map in force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupMap {
    version: Option<u64>,
    names: Vec<String>,
    /// Meter id → its `(start, len)` in `memberships`, as a position in
    /// `spans`: `Box<str>` to `u32` is the stream store's map type too, so the
    /// `.wasm` has one copy of its code (docs/SIZE.md).
    by_meter: FxHashMap<Box<str>, u32>,
    spans: Vec<(u32, u16)>,
    memberships: Vec<u16>,
}

impl GroupMap {
    /// Builds a map from `body`, refusing what passes the bounds. Returns the
    /// map and the errors (each naming its group, and meter where it applies):
    /// at most `maxErrorsPerBatch`, then one `errors_suppressed` counting the
    /// rest, which are never formatted (a 16 MiB body may refuse millions).
    pub fn build(body: &GroupMapBody, cfg: &Config) -> (GroupMap, Vec<CoreError>) {
        let mut refused = Vec::new();
        let mut errors = ErrorSink::new(&mut refused, cfg.max_errors_per_batch);
        let mut names: Vec<String> = Vec::new();
        // The names kept, hashed: a body may list millions of groups past
        // `maxGroups`, each checked for a repeat of a kept one.
        let mut kept: FxHashSet<&str> = FxHashSet::default();
        let mut lists: FxHashMap<&str, Vec<u16>> = FxHashMap::default();
        for (name, members) in &body.groups {
            if let Some(why) = group_name_problem(name) {
                errors.push_with(|| {
                    CoreError::new(
                        ErrorCode::BadField,
                        format!("group {:?}: name {why}; group ignored", trunc(name)),
                    )
                });
                continue;
            }
            if kept.contains(name.as_str()) {
                errors.push_with(|| {
                    CoreError::new(
                        ErrorCode::BadField,
                        format!("group '{name}' is listed twice; the second list is ignored"),
                    )
                });
                continue;
            }
            if names.len() >= cfg.max_groups as usize {
                errors.push_with(|| CoreError::new(
                    ErrorCode::GroupLimit,
                    format!(
                        "group '{name}' refused: maxGroups ({}) groups already listed; its {} meter(s) count in no group unless another lists them",
                        cfg.max_groups,
                        members.len()
                    ),
                ));
                continue;
            }
            let g = names.len() as u16;
            names.push(name.clone());
            kept.insert(name.as_str());
            for meter in members {
                if let Some(why) = meter_id_problem(meter) {
                    errors.push_with(|| {
                        CoreError::new(
                            ErrorCode::BadMeterId,
                            format!(
                                "group '{name}': meter {:?} {why}; membership ignored",
                                trunc(meter)
                            ),
                        )
                    });
                    continue;
                }
                let list = lists.entry(meter.as_str()).or_default();
                if list.contains(&g) {
                    continue;
                }
                if list.len() >= cfg.max_groups_per_meter as usize {
                    errors.push_with(|| CoreError::new(
                        ErrorCode::GroupLimit,
                        format!(
                            "group '{name}': meter '{meter}' refused, already in maxGroupsPerMeter ({}) groups",
                            cfg.max_groups_per_meter
                        ),
                    ));
                    continue;
                }
                list.push(g);
            }
        }
        errors.suppress(body.uncopied);
        let mut map = GroupMap { version: Some(body.version), names, ..Default::default() };
        map.by_meter.reserve(lists.len());
        map.spans.reserve(lists.len());
        for (meter, list) in lists {
            let start = map.memberships.len() as u32;
            map.memberships.extend_from_slice(&list);
            map.by_meter.insert(meter.into(), map.spans.len() as u32);
            map.spans.push((start, list.len() as u16));
        }
        errors.finish();
        let errors = refused
            .into_iter()
            .filter_map(|o| if let Outbound::Error(e) = o { Some(e) } else { None })
            .collect();
        (map, errors)
    }

    /// The version of the body behind this map, `None` before any.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// Group names, indexed by group number.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Meters listed in at least one group.
    pub fn meters(&self) -> usize {
        self.by_meter.len()
    }

    /// Memberships held.
    pub fn memberships(&self) -> usize {
        self.memberships.len()
    }

    /// The groups of meter `id` (empty: unassigned).
    pub fn groups_of(&self, id: &str) -> &[u16] {
        match self.by_meter.get(id).and_then(|&i| self.spans.get(i as usize)) {
            Some(&(start, len)) => {
                let s = start as usize;
                self.memberships.get(s..s + len as usize).unwrap_or(&[])
            }
            None => &[],
        }
    }

    /// Bytes held (estimate: ids, names, slots and memberships).
    pub fn bytes(&self) -> usize {
        self.by_meter.keys().map(|k| k.len() + 48).sum::<usize>()
            + self.spans.capacity() * 8
            + self.names.iter().map(|n| n.capacity() + 24).sum::<usize>()
            + self.memberships.capacity() * 2
    }
}

fn trunc(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(groups: &[(&str, &[&str])]) -> GroupMapBody {
        GroupMapBody {
            version: 7,
            groups: groups
                .iter()
                .map(|(g, ms)| (g.to_string(), ms.iter().map(|m| m.to_string()).collect()))
                .collect(),
            uncopied: 0,
        }
    }

    #[test]
    fn bounds_refuse_the_named_group_and_the_rest_applies() {
        let cfg = Config { max_groups: 2, max_groups_per_meter: 2, ..Config::default() };
        let b = body(&[("a", &["m-1", "m-2"]), ("b", &["m-1"]), ("c", &["m-3"])]);
        let (map, errors) = GroupMap::build(&b, &cfg);
        assert_eq!(map.names(), ["a", "b"]);
        assert_eq!(map.groups_of("m-1"), [0, 1]);
        assert_eq!(map.groups_of("m-3"), [] as [u16; 0]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("'c'"), "{}", errors[0].message);
        assert_eq!(errors[0].code, ErrorCode::GroupLimit);

        let cfg = Config { max_groups_per_meter: 1, ..Config::default() };
        let (map, errors) = GroupMap::build(&b, &cfg);
        assert_eq!(map.groups_of("m-1"), [0]);
        assert!(errors[0].message.contains("group 'b': meter 'm-1'"), "{}", errors[0].message);
    }

    #[test]
    fn bad_names_and_repeats() {
        let b = body(&[("", &["m-1"]), ("a", &["m-1", "m-1", ""]), ("a", &["m-2"])]);
        let (map, errors) = GroupMap::build(&b, &Config::default());
        assert_eq!(map.names(), ["a"]);
        assert_eq!(map.groups_of("m-1"), [0]);
        assert_eq!(map.meters(), 1);
        assert_eq!(errors.len(), 3);
        assert_eq!(map.version(), Some(7));
    }
}
