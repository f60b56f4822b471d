//! `MeterTable`: interning of string meter ids to dense `u32` indices.
//!
//! A meter id is interned once, when it is first seen, and keeps its index for
//! the life of the engine (a per-meter reset clears its samples, not its index).
//! Every per-meter slab in the engine is indexed by this dense index.

use rustc_hash::FxHashMap;

use super::error::{CoreError, ErrorCode};

/// Longest meter id accepted, in bytes.
pub const MAX_METER_ID_BYTES: usize = 256;

/// Why `id` is not a meter id, if it is not: a meter id is 1..=256 bytes of
/// UTF-8 (which `&str` guarantees) without control characters (U+0000..=U+001F,
/// U+007F..=U+009F). The one rule of every path (PROTOCOL.md, "Amounts and
/// meter ids"): JSON readings, live frames and catch-ups, the bindings of
/// binary kinds 1, 2 and 3, the engine's interning and the session's detail
/// requests all check their ids here.
pub fn meter_id_problem(id: &str) -> Option<String> {
    if id.is_empty() || id.len() > MAX_METER_ID_BYTES {
        return Some(format!("meter id must be 1..={MAX_METER_ID_BYTES} bytes, got {}", id.len()));
    }
    id.char_indices().find(|(_, c)| c.is_control()).map(|(i, c)| {
        format!("meter id must not contain control characters, got U+{:04X} at byte {i}", c as u32)
    })
}

/// `Ok` if `id` is a valid meter id (see [`meter_id_problem`]), else `bad_meter_id`.
pub fn check_meter_id(id: &str) -> Result<(), CoreError> {
    match meter_id_problem(id) {
        None => Ok(()),
        Some(why) => Err(CoreError::new(ErrorCode::BadMeterId, why)),
    }
}

/// String ids to dense indices and back.
#[derive(Clone, Debug, Default)]
pub struct MeterTable {
    by_name: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    name_bytes: usize,
}

impl MeterTable {
    /// Number of meters interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no meter is interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The index of `id`, if it is interned.
    pub fn get(&self, id: &str) -> Option<u32> {
        self.by_name.get(id).copied()
    }

    /// The id of meter `m` ("" for an unknown index).
    pub fn name(&self, m: usize) -> &str {
        self.names.get(m).map_or("", |n| n)
    }

    /// Interns `id`. Returns `(index, true)` when it is new. Refuses a bad id, or a
    /// new id when `max_meters` are already interned.
    pub fn intern(&mut self, id: &str, max_meters: u32) -> Result<(u32, bool), CoreError> {
        if let Some(&m) = self.by_name.get(id) {
            return Ok((m, false));
        }
        check_meter_id(id)?;
        self.check_room(id, max_meters)?;
        let reserved = self.names.try_reserve(1).is_ok() && self.by_name.try_reserve(1).is_ok();
        if !reserved {
            return Err(CoreError::new(
                ErrorCode::OutOfMemory,
                format!("meter '{id}' refused: no memory to intern its id"),
            ));
        }
        let m = self.names.len() as u32;
        let name: Box<str> = id.into();
        self.name_bytes += name.len();
        self.by_name.insert(name.clone(), m);
        self.names.push(name);
        Ok((m, true))
    }

    /// `Ok` if a new meter `id` would fit under `max_meters`.
    pub fn check_room(&self, id: &str, max_meters: u32) -> Result<(), CoreError> {
        if self.names.len() >= max_meters as usize {
            return Err(CoreError::new(
                ErrorCode::MeterCapacity,
                format!("meter '{id}' refused: {max_meters} meters already tracked (maxMeters)"),
            ));
        }
        Ok(())
    }

    /// Estimated heap bytes: both copies of each id plus table overhead.
    pub fn bytes(&self) -> usize {
        // Each entry: a boxed str in the map and in `names` (16 B each plus text),
        // the map slot (key + value + control byte, ~25 B at FxHashMap's load factor).
        2 * self.name_bytes + self.names.capacity() * 16 + self.by_name.capacity() * 28
    }

    /// Forgets every meter.
    pub fn clear(&mut self) {
        *self = MeterTable::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_bounded() {
        let mut t = MeterTable::default();
        assert_eq!(t.intern("a", 2), Ok((0, true)));
        assert_eq!(t.intern("b", 2), Ok((1, true)));
        assert_eq!(t.intern("a", 2), Ok((0, false)));
        let e = t.intern("c", 2).unwrap_err();
        assert_eq!(e.code, ErrorCode::MeterCapacity);
        assert!(e.message.contains("'c'"));
        assert_eq!(t.name(1), "b");
        assert_eq!(t.intern("", 2).unwrap_err().code, ErrorCode::BadMeterId);
    }
}
