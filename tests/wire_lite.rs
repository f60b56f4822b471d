#![cfg(not(target_arch = "wasm32"))]
//! The strict JSON reader (`wire::lite`) against serde_json as the oracle:
//! random valid documents (random whitespace, escapes, surrogate pairs, numbers
//! of every shape) and the same documents mutated (a character deleted,
//! inserted, replaced, or the text cut short) must be accepted and refused
//! alike, and where both accept, every value must be the same: strings
//! exactly, numbers to the bit as `f64` and exactly as `u64`, objects by key
//! with the last of a repeated key winning.
//!
//! One documented difference: a number beyond the `f64` range (`1e400`) is
//! grammatical for `lite` (the field reading it refuses it with its own code)
//! while serde_json's `Value` refuses the whole text; such texts count as
//! accepted by both when serde_json's only complaint is the range.

#[path = "common/cases.rs"]
mod cases;
use meterflow::wire::lite::{self, Value};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|u| u.to_string()),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:?}")),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(|x| format!("{x:e}")),
        (
            any::<bool>(),
            "(0|[1-9][0-9]{0,25})",
            proptest::option::of("[0-9]{1,20}"),
            proptest::option::of(("[eE]", "[+-]?", "[0-9]{1,3}")),
        )
            .prop_map(|(neg, int, frac, exp)| {
                let mut s = String::new();
                if neg {
                    s.push('-');
                }
                s.push_str(&int);
                if let Some(f) = frac {
                    s.push('.');
                    s.push_str(&f);
                }
                if let Some((e, sign, d)) = exp {
                    s.push_str(&e);
                    s.push_str(&sign);
                    s.push_str(&d);
                }
                s
            }),
    ]
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        number_text().prop_map(Json::Num),
        any::<String>().prop_map(Json::Str),
        "[a-z\"\\\\/\n\t]{0,8}".prop_map(Json::Str),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Json::Arr),
            proptest::collection::vec(("[a-c]{1,2}", inner), 0..8).prop_map(Json::Obj),
        ]
    })
}

/// Renders `j` with whitespace and escapes chosen by `choice` (a byte stream).
fn render(j: &Json, choice: &mut impl Iterator<Item = u8>, out: &mut String) {
    let mut pick = || choice.next().unwrap_or(0);
    let ws = |out: &mut String, c: u8| {
        out.push_str(match c % 8 {
            0 => " ",
            1 => "\n",
            2 => "\t ",
            3 => "\r\n",
            _ => "",
        })
    };
    let c = pick();
    ws(out, c);
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Num(n) => out.push_str(n),
        Json::Str(s) => render_str(s, choice, out),
        Json::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(item, choice, out);
            }
            let c = choice.next().unwrap_or(0);
            ws(out, c);
            out.push(']');
        }
        Json::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render_str(k, choice, out);
                out.push(':');
                render(v, choice, out);
            }
            out.push('}');
        }
    }
    let c = choice.next().unwrap_or(0);
    ws(out, c);
}

fn render_str(s: &str, choice: &mut impl Iterator<Item = u8>, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        let c = choice.next().unwrap_or(0);
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' if c % 2 == 0 => out.push_str("\\n"),
            '\t' if c % 2 == 0 => out.push_str("\\t"),
            '/' if c % 2 == 0 => out.push_str("\\/"),
            c2 if (c2 as u32) < 0x20 || c % 5 == 0 => {
                let mut units = [0u16; 2];
                for u in c2.encode_utf16(&mut units) {
                    out.push_str(&if c % 3 == 0 {
                        format!("\\u{u:04X}")
                    } else {
                        format!("\\u{u:04x}")
                    });
                }
            }
            c2 => out.push(c2),
        }
    }
    out.push('"');
}

/// Whether lite's value equals serde_json's.
fn same(l: &Value<'_>, s: &serde_json::Value) -> Result<(), String> {
    match (l, s) {
        (Value::Null, serde_json::Value::Null) => Ok(()),
        (Value::Bool(a), serde_json::Value::Bool(b)) if a == b => Ok(()),
        (Value::String(a), serde_json::Value::String(b)) if a == b => Ok(()),
        (Value::Number(a), serde_json::Value::Number(b)) => {
            let fa = a.as_f64().map(f64::to_bits);
            let fb = b.as_f64().map(f64::to_bits);
            if fa != fb {
                return Err(format!("{}: f64 {:?} vs {:?}", a.text(), a.as_f64(), b.as_f64()));
            }
            if b.is_u64() && a.as_u64() != b.as_u64() {
                return Err(format!("{}: u64 {:?} vs {:?}", a.text(), a.as_u64(), b.as_u64()));
            }
            Ok(())
        }
        (Value::Array(a), serde_json::Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).try_for_each(|(x, y)| same(x, y))
        }
        (Value::Object(a), serde_json::Value::Object(b)) => {
            let entries = a.entries_by_key();
            if entries.len() != b.len() {
                return Err(format!("{} distinct keys vs {}", entries.len(), b.len()));
            }
            if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err("entries_by_key is not strictly in key order".into());
            }
            for (k, v) in entries {
                let w = b.get(k).ok_or_else(|| format!("key {k:?} missing in serde_json"))?;
                same(v, w).map_err(|e| format!("{k}: {e}"))?;
                if a.get(k) != Some(v) {
                    return Err(format!("get({k:?}) is not the last member"));
                }
            }
            Ok(())
        }
        _ => Err(format!("{l:?} vs {s}")),
    }
}

/// Compares the two readers on `text`.
fn check(text: &str) -> Result<(), TestCaseError> {
    let ours = lite::parse(text);
    let oracle = serde_json::from_str::<serde_json::Value>(text);
    match (&ours, &oracle) {
        (Ok(l), Ok(s)) => {
            same(l, s).map_err(|e| TestCaseError::fail(format!("{text:?}: values differ: {e}")))
        }
        (Err(_), Err(_)) => Ok(()),
        (Ok(_), Err(e)) if e.to_string().starts_with("number out of range") => Ok(()),
        (Ok(l), Err(e)) => {
            Err(TestCaseError::fail(format!("{text:?}: lite accepts {l:?}, serde_json: {e}")))
        }
        (Err(e), Ok(_)) => Err(TestCaseError::fail(format!("{text:?}: lite refuses ({e})"))),
    }
}

const NOISE: &[char] = &[
    ',', ']', '}', '[', '{', '"', ':', '0', '1', '-', '.', 'e', 'E', '+', '\\', 'u', ' ', 'a', 'n',
    't', '\u{1}', '\u{7f}', 'é', '/', 'd', '8',
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::cases_or(4_000), ..ProptestConfig::default() })]

    #[test]
    fn valid_documents_read_as_serde_json_reads_them(
        j in json(),
        choice in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut text = String::new();
        render(&j, &mut choice.into_iter(), &mut text);
        let ours = lite::parse(&text);
        prop_assert!(ours.is_ok(), "{text:?}: {:?}", ours.as_ref().err());
        check(&text)?;
        // What `write_json` writes reads back as the same value.
        if let Ok(v) = ours {
            let mut written = String::new();
            v.write_json(&mut written);
            prop_assert_eq!(lite::parse(&written), Ok(v), "{}", written);
        }
    }

    #[test]
    fn mutated_documents_are_refused_as_serde_json_refuses_them(
        j in json(),
        choice in proptest::collection::vec(any::<u8>(), 0..512),
        edits in proptest::collection::vec((0u8..4, any::<prop::sample::Index>(), 0..NOISE.len()), 1..4),
    ) {
        let mut text = String::new();
        render(&j, &mut choice.into_iter(), &mut text);
        let mut chars: Vec<char> = text.chars().collect();
        for (op, at, noise) in edits {
            let at = at.index(chars.len() + 1);
            match op {
                0 if at < chars.len() => { chars.remove(at); }
                1 => chars.insert(at, NOISE[noise]),
                2 if at < chars.len() => chars[at] = NOISE[noise],
                _ => chars.truncate(at),
            }
        }
        let text: String = chars.into_iter().collect();
        check(&text)?;
    }
}

#[test]
fn edges_read_as_serde_json_reads_them() {
    for text in [
        "-0",
        "0e0",
        "0.0E-0",
        "1E+2",
        "123456789012345678901234567890",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "1e400",
        "-1e400",
        "4.9e-324",
        "2.5e-324",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "9007199254740993",
        "0.1e-400",
        r#""\u0000""#,
        r#""\uD834\uDD1E""#,
        r#""\uDD1E\uD834""#,
        r#""\uD834""#,
        r#""\uD834x""#,
        r#""\u00e9\/""#,
        "\"\u{7f}\"",
        "\"\u{1f}\"",
        "[]",
        "{}",
        " [ ] ",
        "[,]",
        "[1,,2]",
        "{\"a\":1,\"a\":2}",
        "{\"a\"}",
        "{,}",
        "\u{feff}1",
        "1\u{0}",
        "[1]x",
        "nan",
        "-inf",
        "1.5e",
        "00",
        "-01",
        "0x10",
        "1_000",
        "'a'",
        "\"\\'\"",
        "[1]]",
        "{\"a\":1}}",
    ] {
        if let Err(e) = check(text) {
            panic!("{e}");
        }
    }
}

/// Page messages of every control kind, for the mutations below.
const PAGE_MESSAGES: &[&str] = &[
    r#"{"type":"config","config":{"window":120,"tickMs":250.5,"detectLive":true,"transport":"page","resources":[{"name":"water","unit":"L","decimals":3}]}}"#,
    r#"{"type":"query","query":"window","meter":"m-1","id":7}"#,
    r#"{"type":"query","query":"series","group":"north","resource":"water","spanMs":3600000,"resolution":"5m"}"#,
    r#"{"type":"series","op":"subscribe","sub":"s1","meter":"m-2","resource":"energy"}"#,
    r#"{"type":"session","op":"start","channels":["totals","meters.north"]}"#,
    r#"{"type":"rendered","channel":"meters.north","frames":3,"v":1}"#,
    r#"{"type":"socket","event":"close","code":4000,"reason":"bye"}"#,
    r#"{"type":"socket","event":"message","data":"{\"op\":\"HEARTBEAT_ACK\",\"sent\":{\"totals\":[1,5],\"meters.a\":[2,7]}}"}"#,
    r#"{"type":"socket","event":"message","data":"{\"op\":\"DELTA\",\"channel\":\"meters.a\",\"epoch\":1,\"seq\":2,\"patch\":{\"upsert\":[{\"meter\":\"m-1\",\"resource\":\"water\",\"ts\":1700000000000,\"value\":1.5,\"status\":\"ok\",\"count\":4,\"total\":\"12.25\"}],\"remove\":[\"m-9\"]}}"}"#,
    r#"{"type":"fetched","requestId":3,"ok":false,"status":503,"sentAt":1.5,"receivedAt":2.5}"#,
    r#"{"type":"reset","meter":"m-\u00e9"}"#,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases::cases_or(3_000), ..ProptestConfig::default() })]

    /// The binding's path (`JSON.stringify` text → `decode_message_text`) decodes a
    /// page message, hostile or not, without panicking and as the native path
    /// (a serde_json value → `decode_message`, which reads serde_json's own
    /// re-serialisation): the same input for the core, or the same error code.
    #[test]
    fn page_messages_decode_from_text_as_from_serde_json_values(
        which in 0..PAGE_MESSAGES.len(),
        edits in proptest::collection::vec((0u8..4, any::<prop::sample::Index>(), 0..NOISE.len()), 0..3),
    ) {
        let cfg = meterflow::core::config::Config::default();
        let mut chars: Vec<char> = PAGE_MESSAGES[which].chars().collect();
        for (op, at, noise) in edits {
            let at = at.index(chars.len() + 1);
            match op {
                0 if at < chars.len() => { chars.remove(at); }
                1 => chars.insert(at, NOISE[noise]),
                2 if at < chars.len() => chars[at] = NOISE[noise],
                _ => chars.truncate(at),
            }
        }
        let text: String = chars.into_iter().collect();
        let ours = meterflow::wire::decode_message_text(&text, &cfg);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            let theirs = meterflow::wire::decode_message(&v, &cfg);
            use meterflow::core::event::Inbound::Rejected;
            match (&ours, &theirs) {
                (Rejected(a), Rejected(b)) => prop_assert_eq!(a.code, b.code, "{}: {} / {}", text, a, b),
                _ => prop_assert_eq!(&ours, &theirs, "{}", text),
            }
        }
    }
}
