//! The top level of a JSON payload, read in one pass with [`Cursor`].
//!
//! [`Doc`] keeps every known top-level field as raw JSON text ([`Raw`]) and
//! splits the item list (`readings` or `buckets`) into raw items during the
//! same pass, so a payload's text is scanned once for its structure and once
//! more per item. At most `maxBatch` items are kept: past it the rest are only
//! counted, so a hostile payload of millions of tiny items costs no memory
//! beyond the limit. Unknown fields are skipped; a repeated field keeps its
//! last value. Keys are read as strings (surrogates must pair); skipped values
//! and raw fields are only checked for grammar (`lite::Cursor::skip`).
//!
//! No serde: this is the language the serde_json decoder accepted
//! (`wire::serde_oracle`, held equal by `tests/wire_lite_payloads.rs`).

use std::fmt;

use super::lite::{Cursor, Error, ErrorKind, Value};

/// One JSON value's text, checked for grammar, without surrounding whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// The value's JSON text.
    pub fn get(&self) -> &'a str {
        self.0
    }

    /// `null`, which an optional field treats as absent.
    fn or_absent(self) -> Option<Raw<'a>> {
        (self.0 != "null").then_some(self)
    }
}

/// An item list as found in the payload.
#[derive(Debug, Default)]
pub(crate) enum List<'a> {
    /// Not present (or `null`).
    #[default]
    Missing,
    /// An array of at most the limit's items.
    Items(Vec<Raw<'a>>),
    /// An array of this many items, more than the limit.
    TooMany(usize),
    /// Present but not an array.
    NotArray,
}

/// Every top-level field any payload type has, as raw JSON text.
#[derive(Debug, Default)]
pub(crate) struct Doc<'a> {
    pub ty: Option<Raw<'a>>,
    pub v: Option<Raw<'a>>,
    pub channel: Option<Raw<'a>>,
    pub epoch: Option<Raw<'a>>,
    pub seq: Option<Raw<'a>>,
    pub hlc: Option<Raw<'a>>,
    pub next_seq: Option<Raw<'a>>,
    pub server_time: Option<Raw<'a>>,
    pub as_of: Option<Raw<'a>>,
    pub from: Option<Raw<'a>>,
    pub to: Option<Raw<'a>>,
    /// `readings` (readings, frames).
    pub readings: List<'a>,
    /// `buckets` (catch-ups).
    pub buckets: List<'a>,
}

/// Why a payload has no [`Doc`].
#[derive(Debug)]
pub(crate) enum DocError {
    /// Not JSON (`malformed_json`).
    Syntax(Error),
    /// JSON, but not an object (`bad_field`): what it is instead.
    Shape(&'static str),
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocError::Syntax(e) => write!(f, "{e}"),
            DocError::Shape(what) => write!(f, "got {what}"),
        }
    }
}

/// Parses `text` as a top-level object, keeping at most `max_items` list items.
pub(crate) fn parse(text: &str, max_items: usize) -> Result<Doc<'_>, DocError> {
    let mut c = Cursor::new(text);
    let syntax = |c: &Cursor<'_>, kind| DocError::Syntax(c.fail(kind));
    let first = c.token().map_err(|k| syntax(&c, k))?;
    if first != b'{' {
        return Err(not_object(&mut c, first));
    }
    c.bump();
    let doc = members(&mut c, max_items).map_err(|k| syntax(&c, k))?;
    c.finish().map_err(|k| syntax(&c, k))?;
    Ok(doc)
}

/// A top-level value that is not an object: a shape error if it is a whole
/// value (the first token of an array is enough), a syntax error if not.
fn not_object(c: &mut Cursor<'_>, first: u8) -> DocError {
    let what = match first {
        b'[' => Ok("an array"),
        b'"' => c.read_string().map(|_| "a string"),
        b'-' | b'0'..=b'9' => finite_number(c).map(|_| "a number"),
        b't' | b'f' | b'n' => c.read_literal().map(|v| match v {
            Value::Null => "null",
            _ => "a boolean",
        }),
        _ => Err(ErrorKind::Syntax("expected value")),
    };
    match what {
        Ok(what) => DocError::Shape(what),
        Err(kind) => DocError::Syntax(c.fail(kind)),
    }
}

/// A number that is read as a value must be within the `f64` range.
fn finite_number(c: &mut Cursor<'_>) -> Result<(), ErrorKind> {
    match c.read_number()?.as_f64() {
        Some(_) => Ok(()),
        None => Err(ErrorKind::Syntax("number out of range")),
    }
}

/// The members of the top-level object, after its `{`.
fn members<'a>(c: &mut Cursor<'a>, max_items: usize) -> Result<Doc<'a>, ErrorKind> {
    let mut doc = Doc::default();
    let mut first = true;
    while let Some(key) = c.next_key(first)? {
        first = false;
        let slot = match key.as_ref() {
            "readings" => {
                doc.readings = list(c, max_items)?;
                continue;
            }
            "buckets" => {
                doc.buckets = list(c, max_items)?;
                continue;
            }
            "type" => &mut doc.ty,
            "v" => &mut doc.v,
            "channel" => &mut doc.channel,
            "epoch" => &mut doc.epoch,
            "seq" => &mut doc.seq,
            "hlc" => &mut doc.hlc,
            "nextSeq" => &mut doc.next_seq,
            "serverTime" => &mut doc.server_time,
            "asOf" => &mut doc.as_of,
            "from" => &mut doc.from,
            "to" => &mut doc.to,
            _ => {
                c.skip()?;
                continue;
            }
        };
        *slot = Raw(c.skip()?).or_absent();
    }
    Ok(doc)
}

/// An item list's value: an array split into raw items, or what else it is.
fn list<'a>(c: &mut Cursor<'a>, max_items: usize) -> Result<List<'a>, ErrorKind> {
    match c.token()? {
        b'[' => c.bump(),
        b'{' => {
            c.bump();
            let mut first = true;
            while c.next_key(first)?.is_some() {
                first = false;
                c.skip()?;
            }
            return Ok(List::NotArray);
        }
        b'"' => return c.read_string().map(|_| List::NotArray),
        b'-' | b'0'..=b'9' => return finite_number(c).map(|()| List::NotArray),
        b't' | b'f' | b'n' => {
            return c.read_literal().map(|v| match v {
                Value::Null => List::Missing,
                _ => List::NotArray,
            })
        }
        _ => return Err(ErrorKind::Syntax("expected value")),
    }
    let mut items = Vec::new();
    let mut n = 0usize;
    while c.next_item(n == 0)? {
        let item = c.skip()?;
        if n < max_items {
            // Grows with the items read, never with a count the payload claims.
            items.push(Raw(item));
        }
        n += 1;
    }
    Ok(if n > max_items { List::TooMany(n) } else { List::Items(items) })
}

/// The values of the members `names` of an item, `null` included (a typed
/// field refuses it, an optional one reads it as absent), or `None` if the
/// item is not an object, names one of `names` twice or has a key that is not
/// a valid string: the item is then not an object of distinct fields.
pub(crate) fn fields<'a, const N: usize>(
    item: Raw<'a>,
    names: [&str; N],
) -> Option<[Option<Raw<'a>>; N]> {
    let mut c = Cursor::new(item.get());
    if c.token().ok()? != b'{' {
        return None;
    }
    c.bump();
    let mut out = [None; N];
    let mut first = true;
    while let Some(key) = c.next_key(first).ok()? {
        first = false;
        let value = Raw(c.skip().ok()?);
        if let Some(slot) = names.iter().position(|n| *n == key).and_then(|i| out.get_mut(i)) {
            if slot.replace(value).is_some() {
                return None;
            }
        }
    }
    Some(out)
}

/// `raw` unless it is `null` (an optional field's absence).
pub(crate) fn present(raw: Option<Raw<'_>>) -> Option<Raw<'_>> {
    raw.and_then(Raw::or_absent)
}
