//! A small strict JSON reader (RFC 8259) for the inbound decoders, so the wasm
//! build carries no serde_json parser.
//!
//! [`parse`] reads a whole text into a borrowed [`Value`] tree: strings without
//! escapes are slices of the input, numbers are kept as their text and read on
//! demand ([`Number::as_f64`] is correctly rounded, [`Number::as_u64`] exact),
//! objects keep their members in order (a repeated key: [`Object::get`] returns
//! the last, as serde_json's map does).
//!
//! Strict where it matters: no trailing commas, no leading zeros, no `+`, no
//! bare `.5` or `1.`, no control characters in strings, only the RFC escapes,
//! no lone surrogates in `\u` escapes, nothing after the value but whitespace.
//! A number too large for an `f64` (`1e400`) is grammatical; it is refused by
//! the field reading it ([`Number::as_f64`] gives `None`), so the decoders keep
//! their own error codes for it (`bad_value`, `bad_timestamp`).
//!
//! Bounded: nesting deeper than [`Limits::max_depth`] and documents of more than
//! [`Limits::max_values`] values are refused before they allocate more, so a
//! tree never costs more than a constant times the payload's bytes.
//! Never panics on any input.

use std::borrow::Cow;
use std::fmt;

/// Default deepest nesting of arrays and objects (serde_json's recursion limit).
pub const MAX_DEPTH: usize = 128;
/// Default most values in one document (every value counts, nested ones too).
/// A value takes at least 2 bytes of text, so a 16 MiB payload has fewer.
pub const MAX_VALUES: usize = 8 << 20;

/// The reader's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of arrays and objects (bound: 1..=[`MAX_DEPTH`] is what
    /// the decoders use; the reader recurses once per level).
    pub max_depth: usize,
    /// Most values in the document.
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: MAX_DEPTH, max_values: MAX_VALUES }
    }
}

/// What is wrong with a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text ends inside a value.
    Eof,
    /// A byte that the grammar does not allow here (the description says what was expected).
    Syntax(&'static str),
    /// Nesting deeper than `max_depth`.
    TooDeep,
    /// More values than `max_values`.
    TooManyValues,
}

/// A refused text: what and where (byte offset, 1-based line and column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Byte offset of the problem in the text.
    pub offset: usize,
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column (in bytes) of the problem.
    pub column: usize,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Eof => f.write_str("EOF while parsing a value")?,
            ErrorKind::Syntax(what) => f.write_str(what)?,
            ErrorKind::TooDeep => f.write_str("nesting too deep")?,
            ErrorKind::TooManyValues => f.write_str("too many values")?,
        }
        write!(f, " at line {} column {}", self.line, self.column)
    }
}

/// A JSON number, as its (grammatical) text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Number<'a>(&'a str);

impl<'a> Number<'a> {
    /// A number from text the JSON number grammar accepted (as [`Cursor`] read it).
    pub(crate) fn from_text(text: &'a str) -> Self {
        Number(text)
    }

    /// The number's text as it appears in the document.
    pub fn text(&self) -> &'a str {
        self.0
    }

    /// The nearest `f64` (correctly rounded), if finite.
    pub fn as_f64(&self) -> Option<f64> {
        self.0.parse::<f64>().ok().filter(|x| x.is_finite())
    }

    /// The number as a `u64` if its text is a non-negative integer (no fraction,
    /// no exponent) that fits, exactly.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse::<u64>().ok()
    }
}

/// A JSON object's members in document order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Value<'a>)>);

impl<'a> Object<'a> {
    /// The value of `key`; of a repeated key, the last.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The members in document order (repeated keys included).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The members with repeated keys resolved (the last of each kept, as
    /// [`Object::get`] finds it), sorted by key.
    ///
    /// One sort, `O(n log n)`: the object's members are the sender's, and a
    /// scan of the later members per member (what this replaced) took hours
    /// on a 16 MiB object of distinct keys (`tests/hostile_bodies.rs`).
    pub fn entries_by_key(&self) -> Vec<(&str, &Value<'a>)> {
        self.positions_by_key()
            .into_iter()
            .filter_map(|(k, i)| self.0.get(i).map(|(_, v)| (k, v)))
            .collect()
    }

    /// As [`Object::entries_by_key`], the keys with the position of each
    /// one's last member: a caller that has read the values in document
    /// order (a compact array, read in place) need not chase each value in
    /// key order. On 767,463 shuffled keys the walk in key order over the
    /// tree's values cost more than the sort (docs/PERFORMANCE.md, "Hostile
    /// payloads").
    pub fn positions_by_key(&self) -> Vec<(&str, usize)> {
        last_of_each_by_key(self.0.iter().map(|(k, _)| k.as_ref()))
    }

    /// An object of these members, in this (document) order: for a reader
    /// that reads some members its own way and the rest as values
    /// (`wire::ack`).
    pub(crate) fn from_members(members: Vec<(Cow<'a, str>, Value<'a>)>) -> Self {
        Object(members)
    }

    /// Number of members, repeated keys counted each time.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Of `keys` (an object's members' keys in document order), each distinct
/// key with the position of its last member, sorted by key: the map a JSON
/// object is, as [`Object::get`] reads it. One sort, `O(n log n)`.
pub(crate) fn last_of_each_by_key<'k>(
    keys: impl Iterator<Item = &'k str>,
) -> Vec<(&'k str, usize)> {
    // (prefix, key, position): distinct triples, so an unstable sort puts
    // a repeated key's members in document order and the last one last.
    // The key's first 8 bytes, big-endian and zero-padded, order as the
    // key does wherever they differ, and are compared without reading
    // the key's text from a random place of the payload (shuffled keys:
    // 704 -> 651 ms for the sort alone, docs/PERFORMANCE.md).
    let prefix = |k: &str| {
        let mut b = [0u8; 8];
        let n = k.len().min(8);
        b[..n].copy_from_slice(&k.as_bytes()[..n]);
        u64::from_be_bytes(b)
    };
    let mut order: Vec<(u64, &str, usize)> =
        keys.enumerate().map(|(i, k)| (prefix(k), k, i)).collect();
    order.sort_unstable();
    let mut out = Vec::with_capacity(order.len());
    let mut rest = order.iter().peekable();
    while let Some(&(p, k, i)) = rest.next() {
        // The prefixes first: the texts are read only for keys that share one.
        if rest.peek().is_some_and(|&&(q, next, _)| q == p && next == k) {
            continue;
        }
        out.push((k, i));
    }
    out
}

/// A JSON value borrowed from its text.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as text.
    Number(Number<'a>),
    /// A string, borrowed unless it had escapes.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Value<'a>>),
    /// An object.
    Object(Object<'a>),
}

impl<'a> Value<'a> {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as a finite `f64`, if this is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The number as an exact `u64`, if this is a non-negative integer that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// A member of an object (the last of a repeated key); `None` if absent or
    /// if this is not an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.as_object().and_then(|o| o.get(key))
    }
}

impl Value<'_> {
    /// Appends this value as JSON text (numbers as they were written, strings
    /// escaped as RFC 8259 requires, object members in order).
    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(n.text()),
            Value::String(s) => write_str(s, out),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Value::Object(o) => {
                out.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// The value as JSON text (see [`Value::write_json`]).
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.write_json(&mut text);
        f.write_str(&text)
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = c as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[(n >> 4) & 0xf]));
                out.push(char::from(HEX[n & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Parses `text` as one JSON value with the default [`Limits`].
pub fn parse(text: &str) -> Result<Value<'_>, Error> {
    parse_with(text, Limits::default())
}

/// Parses `text` as one JSON value (any kind) followed only by whitespace.
pub fn parse_with(text: &str, limits: Limits) -> Result<Value<'_>, Error> {
    let mut r = Reader { text, bytes: text.as_bytes(), pos: 0, values: 0, limits };
    let v = r.value(0).map_err(|kind| r.error(kind))?;
    r.skip_ws();
    if r.pos < r.bytes.len() {
        return Err(r.error(ErrorKind::Syntax("trailing characters")));
    }
    Ok(v)
}

/// The reader's state; the payload decoders pull from it as a [`Cursor`].
pub(crate) struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    values: usize,
    limits: Limits,
}

type Step<T> = Result<T, ErrorKind>;

impl<'a> Reader<'a> {
    fn error(&self, kind: ErrorKind) -> Error {
        let offset = self.pos.min(self.bytes.len());
        let before = self.bytes.get(..offset).unwrap_or_default();
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        Error { kind, offset, line, column: offset - line_start + 1 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The next byte other than whitespace, not consumed.
    fn next_token(&mut self) -> Step<u8> {
        self.skip_ws();
        self.peek().ok_or(ErrorKind::Eof)
    }

    fn value(&mut self, depth: usize) -> Step<Value<'a>> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(ErrorKind::TooManyValues);
        }
        match self.next_token()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(Value::String),
            b'-' | b'0'..=b'9' => self.number().map(Value::Number),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            _ => Err(ErrorKind::Syntax("expected value")),
        }
    }

    fn literal(&mut self, word: &'static str, v: Value<'a>) -> Step<Value<'a>> {
        let end = self.pos + word.len();
        match self.bytes.get(self.pos..end) {
            Some(b) if b == word.as_bytes() => {
                self.pos = end;
                Ok(v)
            }
            // A prefix of the word up to the end of the text is a truncated document.
            _ if word.as_bytes().starts_with(self.bytes.get(self.pos..).unwrap_or_default()) => {
                self.pos = self.bytes.len();
                Err(ErrorKind::Eof)
            }
            _ => Err(ErrorKind::Syntax("expected ident")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Step<Number<'a>> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(ErrorKind::Syntax("invalid number (leading zero)"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            None => return Err(ErrorKind::Eof),
            Some(_) => return Err(ErrorKind::Syntax("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.eof_or("invalid number (no digit after '.')"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.eof_or("invalid number (no digit in the exponent)"));
            }
        }
        Ok(Number(self.text.get(start..self.pos).unwrap_or_default()))
    }

    fn eof_or(&self, what: &'static str) -> ErrorKind {
        if self.pos >= self.bytes.len() {
            ErrorKind::Eof
        } else {
            ErrorKind::Syntax(what)
        }
    }

    /// A string; `self.pos` is at its opening quote.
    fn string(&mut self) -> Step<Cow<'a, str>> {
        self.pos += 1;
        let start = self.pos;
        // The fast path: no escapes, borrowed.
        loop {
            match self.peek() {
                None => return Err(ErrorKind::Eof),
                Some(b'"') => {
                    let s = self.text.get(start..self.pos).unwrap_or_default();
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(0..=0x1f) => return Err(ErrorKind::Syntax("control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(self.text.get(start..self.pos).unwrap_or_default());
        loop {
            let run = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(self.text.get(run..self.pos).unwrap_or_default());
            match self.peek() {
                None => return Err(ErrorKind::Eof),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(ErrorKind::Syntax("control character in a string")),
            }
        }
    }

    /// One escape after its backslash.
    fn escape(&mut self, out: &mut String) -> Step<()> {
        let Some(c) = self.peek() else { return Err(ErrorKind::Eof) };
        self.pos += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                match hi {
                    0xd800..=0xdbff => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u".as_slice()) {
                            return Err(self.eof_or("lone leading surrogate in hex escape"));
                        }
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if !(0xdc00..=0xdfff).contains(&lo) {
                            return Err(ErrorKind::Syntax("lone leading surrogate in hex escape"));
                        }
                        let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                        char::from_u32(c).ok_or(ErrorKind::Syntax("invalid unicode code point"))?
                    }
                    0xdc00..=0xdfff => {
                        return Err(ErrorKind::Syntax("lone trailing surrogate in hex escape"))
                    }
                    _ => {
                        char::from_u32(hi).ok_or(ErrorKind::Syntax("invalid unicode code point"))?
                    }
                }
            }
            _ => return Err(ErrorKind::Syntax("invalid escape")),
        };
        out.push(ch);
        Ok(())
    }

    fn hex4(&mut self) -> Step<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(b) = self.peek() else { return Err(ErrorKind::Eof) };
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return Err(ErrorKind::Syntax("invalid escape")),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }

    fn enter(&self, depth: usize) -> Step<()> {
        if depth > self.limits.max_depth {
            return Err(ErrorKind::TooDeep);
        }
        Ok(())
    }

    /// An array; `self.pos` is at `[`.
    fn array(&mut self, depth: usize) -> Step<Value<'a>> {
        self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        if self.next_token()? == b']' {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            match self.next_token()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(ErrorKind::Syntax("expected ',' or ']'")),
            }
            if self.next_token()? == b']' {
                return Err(ErrorKind::Syntax("trailing comma"));
            }
        }
    }

    /// An object; `self.pos` is at `{`.
    fn object(&mut self, depth: usize) -> Step<Value<'a>> {
        self.enter(depth)?;
        self.pos += 1;
        let mut members = Vec::new();
        match self.next_token()? {
            b'}' => {
                self.pos += 1;
                return Ok(Value::Object(Object(members)));
            }
            b'"' => {}
            _ => return Err(ErrorKind::Syntax("key must be a string")),
        }
        loop {
            let key = self.string()?;
            if self.next_token()? != b':' {
                return Err(ErrorKind::Syntax("expected ':'"));
            }
            self.pos += 1;
            let v = self.value(depth)?;
            members.push((key, v));
            match self.next_token()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Ok(Value::Object(Object(members)));
                }
                _ => return Err(ErrorKind::Syntax("expected ',' or '}'")),
            }
            match self.next_token()? {
                b'"' => {}
                b'}' => return Err(ErrorKind::Syntax("trailing comma")),
                _ => return Err(ErrorKind::Syntax("key must be a string")),
            }
        }
    }
}

/// Pull reading for the payload decoders (`doc.rs`, `field.rs`): the same
/// grammar, read member by member instead of into a tree, so a payload's
/// unknown fields and list items are only skipped ([`Cursor::skip`]), never
/// built. Skipping is iterative (a heap stack of one byte per open bracket,
/// so at most the payload's length) and has no depth limit; it checks the
/// grammar of strings (escapes, control characters) but not the pairing of
/// `\u` surrogates, which only strings read as values ([`Cursor::read_string`])
/// must have. This is the language the payload decoders always accepted.
pub(crate) type Cursor<'a> = Reader<'a>;

impl<'a> Reader<'a> {
    /// A cursor at the start of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Reader { text, bytes: text.as_bytes(), pos: 0, values: 0, limits: Limits::default() }
    }

    /// The error `kind` at the current position.
    pub(crate) fn fail(&self, kind: ErrorKind) -> Error {
        self.error(kind)
    }

    /// The next byte other than whitespace, not consumed.
    pub(crate) fn token(&mut self) -> Result<u8, ErrorKind> {
        self.next_token()
    }

    /// Consumes the byte [`Cursor::token`] returned.
    pub(crate) fn bump(&mut self) {
        self.pos += 1;
    }

    /// A string value (surrogates must pair); the cursor is at its quote.
    pub(crate) fn read_string(&mut self) -> Result<Cow<'a, str>, ErrorKind> {
        self.string()
    }

    /// A number's text; the cursor is at its first byte.
    pub(crate) fn read_number(&mut self) -> Result<Number<'a>, ErrorKind> {
        self.number()
    }

    /// `null`, `true` or `false`; the cursor is at its first byte.
    pub(crate) fn read_literal(&mut self) -> Result<Value<'a>, ErrorKind> {
        match self.peek() {
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            _ => self.literal("null", Value::Null),
        }
    }

    /// Counts one more value against [`Limits::max_values`], as the tree
    /// reader does at the start of each value: a reader that reads some
    /// values its own way counts them so, and refuses what [`parse`] refuses.
    pub(crate) fn count_value(&mut self) -> Result<(), ErrorKind> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(ErrorKind::TooManyValues);
        }
        Ok(())
    }

    /// One value of any kind, into a tree, exactly as [`parse`] reads a
    /// value inside a container at nesting `depth` (counted, depth-limited,
    /// surrogates paired).
    pub(crate) fn read_value(&mut self, depth: usize) -> Result<Value<'a>, ErrorKind> {
        self.value(depth)
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// Only whitespace is left.
    pub(crate) fn finish(&mut self) -> Result<(), ErrorKind> {
        self.skip_ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(ErrorKind::Syntax("trailing characters")),
        }
    }

    /// The next member's key of an object whose `{` is consumed, with its
    /// `:` consumed too; `None` (and the `}` consumed) at the end. `first`:
    /// no member has been read yet.
    pub(crate) fn next_key(&mut self, first: bool) -> Result<Option<Cow<'a, str>>, ErrorKind> {
        Ok(self.next_key_at(first)?.map(|(_, key)| key))
    }

    /// As [`Cursor::next_key`], with the byte offset of the key's opening
    /// quote, where [`Cursor::at`] reads it again: a reader that keeps many
    /// keys need keep only where they are (`wire::groups`).
    pub(crate) fn next_key_at(
        &mut self,
        first: bool,
    ) -> Result<Option<(usize, Cow<'a, str>)>, ErrorKind> {
        match (self.next_token()?, first) {
            (b'}', _) => {
                self.pos += 1;
                return Ok(None);
            }
            (b'"', true) => {}
            (b',', false) => {
                self.pos += 1;
                match self.next_token()? {
                    b'"' => {}
                    b'}' => return Err(ErrorKind::Syntax("trailing comma")),
                    _ => return Err(ErrorKind::Syntax("key must be a string")),
                }
            }
            (_, true) => return Err(ErrorKind::Syntax("key must be a string")),
            (_, false) => return Err(ErrorKind::Syntax("expected ',' or '}'")),
        }
        let at = self.pos;
        let key = self.string()?;
        if self.next_token()? != b':' {
            return Err(ErrorKind::Syntax("expected ':'"));
        }
        self.pos += 1;
        Ok(Some((at, key)))
    }

    /// A cursor at byte `offset` of `text` (past its end: at the end).
    pub(crate) fn at(text: &'a str, offset: usize) -> Self {
        Reader { pos: offset.min(text.len()), ..Reader::new(text) }
    }

    /// The next byte other than whitespace, without moving: a reader that
    /// counts a value before it looks at it, as [`parse`] does, so that a
    /// refusal past [`Limits::max_values`] is reported where [`parse`]
    /// reports it (before the whitespace).
    pub(crate) fn peek_token(&self) -> Option<u8> {
        let rest = self.bytes.get(self.pos..)?;
        rest.iter().copied().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    }

    /// Whether another item follows in an array whose `[` is consumed (the
    /// `]` consumed at the end). `first`: no item has been read yet.
    pub(crate) fn next_item(&mut self, first: bool) -> Result<bool, ErrorKind> {
        match (self.next_token()?, first) {
            (b']', _) => {
                self.pos += 1;
                Ok(false)
            }
            (_, true) => Ok(true),
            (b',', false) => {
                self.pos += 1;
                match self.next_token()? {
                    b']' => Err(ErrorKind::Syntax("trailing comma")),
                    _ => Ok(true),
                }
            }
            (_, false) => Err(ErrorKind::Syntax("expected ',' or ']'")),
        }
    }

    /// Skips one value and returns its text (without surrounding whitespace).
    pub(crate) fn skip(&mut self) -> Result<&'a str, ErrorKind> {
        self.skip_ws();
        let start = self.pos;
        // The open brackets, innermost last.
        let mut open: Vec<u8> = Vec::new();
        loop {
            match self.next_token()? {
                b'[' => {
                    self.pos += 1;
                    if self.next_token()? == b']' {
                        self.pos += 1;
                    } else {
                        open.push(b'[');
                        continue;
                    }
                }
                b'{' => {
                    self.pos += 1;
                    match self.next_token()? {
                        b'}' => self.pos += 1,
                        b'"' => {
                            self.skip_key()?;
                            open.push(b'{');
                            continue;
                        }
                        _ => return Err(ErrorKind::Syntax("key must be a string")),
                    }
                }
                b'"' => self.skip_string()?,
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                b't' | b'f' | b'n' => {
                    self.read_literal()?;
                }
                _ => return Err(ErrorKind::Syntax("expected value")),
            }
            // After a value: close what ends here, or take a comma.
            loop {
                let Some(&inner) = open.last() else {
                    return Ok(self.text.get(start..self.pos).unwrap_or_default());
                };
                match self.next_token()? {
                    b',' => {
                        self.pos += 1;
                        if inner == b'{' {
                            if self.next_token()? != b'"' {
                                return Err(ErrorKind::Syntax("key must be a string"));
                            }
                            self.skip_key()?;
                        }
                        break;
                    }
                    b']' if inner == b'[' => {
                        self.pos += 1;
                        open.pop();
                    }
                    b'}' if inner == b'{' => {
                        self.pos += 1;
                        open.pop();
                    }
                    _ => return Err(ErrorKind::Syntax("expected ',' or a closing bracket")),
                }
            }
        }
    }

    /// Skips a key (at its quote) and the `:` after it.
    fn skip_key(&mut self) -> Result<(), ErrorKind> {
        self.skip_string()?;
        if self.next_token()? != b':' {
            return Err(ErrorKind::Syntax("expected ':'"));
        }
        self.pos += 1;
        Ok(())
    }

    /// Skips a string (at its quote): escapes and control characters are
    /// checked, the pairing of `\u` surrogates is not.
    fn skip_string(&mut self) -> Result<(), ErrorKind> {
        self.pos += 1;
        loop {
            match self.peek() {
                None => return Err(ErrorKind::Eof),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(ErrorKind::Eof),
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            self.pos += 1;
                            self.hex4()?;
                        }
                        Some(_) => return Err(ErrorKind::Syntax("invalid escape")),
                    }
                }
                Some(0..=0x1f) => return Err(ErrorKind::Syntax("control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str) -> Value<'_> {
        match parse(t) {
            Ok(v) => v,
            Err(e) => panic!("{t:?} refused: {e}"),
        }
    }

    fn refused(t: &str) -> ErrorKind {
        match parse(t) {
            Ok(v) => panic!("{t:?} accepted as {v:?}"),
            Err(e) => e.kind,
        }
    }

    #[test]
    fn reads_values_borrowed() {
        let v = ok(r#" {"a": [1, -2.5e3, true, null], "b": "x", "a": "last"} "#);
        assert_eq!(v.get("a").and_then(Value::as_str), Some("last"));
        assert!(matches!(v.get("b"), Some(Value::String(Cow::Borrowed("x")))));
        let o =
            v.as_object().map(|o| o.entries_by_key().iter().map(|(k, _)| *k).collect::<Vec<_>>());
        assert_eq!(o, Some(vec!["a", "b"]));
        let last = v.as_object().and_then(|o| o.entries_by_key().first().map(|(_, v)| v.as_str()));
        assert_eq!(last, Some(Some("last")));
        assert_eq!(ok("18446744073709551615").as_u64(), Some(u64::MAX));
        assert_eq!(ok("18446744073709551616").as_u64(), None);
        assert_eq!(ok("1e400").as_f64(), None);
        assert_eq!(ok(r#""\ud83d\ude00\n""#).as_str(), Some("😀\n"));
    }

    #[test]
    fn refuses_what_rfc_8259_refuses() {
        for t in [
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.x",
            ".5",
            "+1",
            "1ex",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\u{1}\"",
            "nulx",
            "tru e",
            "[1 2]",
            "{1:2}",
            "NaN",
            "Infinity",
            "1 2",
            "{\"a\" 1}",
        ] {
            assert!(matches!(refused(t), ErrorKind::Syntax(_)), "{t}");
        }
        for t in ["", "[", "{\"a\":", "\"abc", "[1,", "tr", "-", "1.", "1e+", "\"\\u12"] {
            let k = refused(t);
            assert!(k == ErrorKind::Eof || matches!(k, ErrorKind::Syntax(_)), "{t}: {k:?}");
        }
    }

    #[test]
    fn limits_refuse_before_growing() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(refused(&deep), ErrorKind::TooDeep);
        let ok_deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok_deep).is_ok());
        let few = Limits { max_depth: 4, max_values: 3 };
        assert_eq!(parse_with("[1,2]", few).map(|_| ()), Ok(()));
        assert_eq!(parse_with("[1,2,3]", few).map_err(|e| e.kind), Err(ErrorKind::TooManyValues));
    }

    #[test]
    fn cursor_skips_without_a_depth_limit_and_checks_grammar() {
        let deep = format!("{}1{} ,", "[".repeat(10_000), "]".repeat(10_000));
        let mut c = Cursor::new(&deep);
        assert_eq!(c.skip().map(str::len), Ok(20_001));
        // Skipped strings are checked for grammar, not for surrogate pairs.
        let mut c = Cursor::new(r#" {"a\ud800": ["\udc00", 1.5e3, null, {}]} x"#);
        assert_eq!(c.skip(), Ok(r#"{"a\ud800": ["\udc00", 1.5e3, null, {}]}"#));
        for bad in
            ["[1,]", "{\"a\":1,}", "[01]", "\"\\x\"", "\"\u{1}\"", "{1:2}", "[1 2]", "[", "\"\\u12"]
        {
            assert!(Cursor::new(bad).skip().is_err(), "{bad}");
        }
        // A string read as a value must pair its surrogates.
        assert!(Cursor::new(r#""\ud800""#).read_string().is_err());
    }

    #[test]
    fn errors_say_where() {
        let e = parse("{\n  \"a\": 01}").err();
        assert_eq!(e.map(|e| (e.line, e.column)), Some((2, 9)));
    }
}
