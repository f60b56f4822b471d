#![cfg(not(target_arch = "wasm32"))]
//! The JSON payload decoders on `wire::lite` (no serde, issue 9) against the
//! serde_json decoder they replaced (`wire::serde_oracle`) as the oracle.
//!
//! Seeded generated payloads of every envelope: valid ones, near-valid ones
//! (wrong types, `null`s, missing and repeated fields, escaped keys, numbers
//! out of range, 2^53 + 1, `1e400`, lone surrogates where a string is read and
//! where it is only skipped), hostile ones (nesting far past 128 levels,
//! thousands of items past `maxBatch`, long ids) and all of them mutated (cut
//! short, a byte inserted, deleted or replaced). Both decoders must give the
//! same `Inbound` to the bit: every value, every item error with its code,
//! position and message. Only the wording of a whole-payload rejection may
//! differ where it quotes the parser's own complaint (`malformed_json`, and
//! `bad_field` for a payload that is JSON but not an object): there the code
//! is compared.
//!
//! `METERFLOW_LITE_PAYLOADS` sets the number of payloads (default 12,000).

use meterflow::core::config::Config;
use meterflow::core::error::ErrorCode;
use meterflow::core::event::Inbound;
use meterflow::wire::{decode_text, json, serde_oracle, Arrival, Envelope};

/// SplitMix64: a seeded generator, so a failure names its payload and replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const WS: &[&str] = &["", "", "", " ", "\n", "\t ", "\r\n  "];

const STRINGS: &[&str] = &[
    r#""m-1""#,
    r#""m-2""#,
    r#""water""#,
    r#""energy""#,
    r#""bandwidth""#,
    r#""gas""#,
    r#""""#,
    r#""m\u002d1""#,
    r#""w\u0061ter""#,
    r#""m\n1""#,
    r#""m\"q""#,
    r#""\ud83d\ude00""#,
    r#""\ud800""#,
    r#""a\udc00b""#,
    r#""\ud800\u0041""#,
    r#""é中""#,
    r#""m\/1""#,
    r#""12.5""#,
    r#""1e3""#,
    r#""0.001""#,
    r#""-1""#,
    r#""readings""#,
    r#""frame""#,
    r#""hello""#,
    r#""catchup""#,
];

const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "1.0",
    "1e0",
    "10e-1",
    "1.00000000000000000001",
    "2",
    "12.5",
    "-3.25",
    "1700000000000",
    "1700000000000.5",
    "3600000",
    "7200000",
    "1699999200000",
    "9007199254740992",
    "9007199254740993",
    "9007199254740992.5",
    "18446744073709551616",
    "123456789012345678901234567890",
    "1e400",
    "-1e400",
    "1e-400",
    "0e999999999999999999999",
    "1.7976931348623157e308",
    "1.7976931348623158e308",
    "1.7976931348623159e308",
    "4.9e-324",
    "2.2250738585072011e-308",
    "0.1",
    "0.30000000000000004",
    "65535",
    "65536",
    "140737488355328",
    "140737488355329",
    "0.001",
    "0.0001",
    "1e3",
    "1E+3",
    "100000000000000000000000000000000000000000000000000e-30",
];

/// A scalar or small composite value.
fn value(r: &mut Rng, depth: usize) -> String {
    match r.below(12) {
        0..=3 => r.pick(STRINGS).to_string(),
        4..=7 => r.pick(NUMBERS).to_string(),
        8 => r.pick(&["null", "true", "false"]).to_string(),
        9 if depth < 3 => {
            let n = r.below(3);
            let items: Vec<String> = (0..n).map(|_| value(r, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
        10 if depth < 3 => {
            let n = r.below(3);
            let m: Vec<String> =
                (0..n).map(|_| format!("{}:{}", key(r), value(r, depth + 1))).collect();
            format!("{{{}}}", m.join(","))
        }
        _ => deep(r),
    }
}

/// Nesting far deeper than serde_json's recursion limit (128), with strings
/// the skipper only checks for grammar.
fn deep(r: &mut Rng) -> String {
    let n = r.pick(&["1", "5", "127", "128", "129", "300", "2000"]).parse::<usize>().unwrap_or(1);
    let inner = r.pick(&["1", r#""\ud800""#, "[]", "{}", r#"{"a\udc00":1}"#, "null"]);
    if r.chance(50) {
        format!("{}{inner}{}", "[".repeat(n), "]".repeat(n))
    } else {
        format!("{}{inner}{}", r#"{"k":"#.repeat(n), "}".repeat(n))
    }
}

fn key(r: &mut Rng) -> String {
    r.pick(&[
        r#""x""#,
        r#""extra""#,
        r#""meter""#,
        r#""m\u0065ter""#,
        r#""ts""#,
        r#""t\u0073""#,
        r#""value""#,
        r#""resource""#,
        r#""id""#,
        r#""amount""#,
        r#""hour""#,
        r#""total""#,
        r#""k\ud800""#,
        r#""""#,
    ])
    .to_string()
}

/// An object from `fields` (name, value text), shuffled, sometimes with a
/// field dropped, nulled, repeated, retyped or joined by an unknown one.
fn object(r: &mut Rng, fields: &[(&str, String)]) -> String {
    let mut members: Vec<(String, String)> =
        fields.iter().map(|(k, v)| (format!("\"{k}\""), v.clone())).collect();
    if r.chance(30) {
        for _ in 0..1 + r.below(2) {
            let i = r.below(members.len().max(1));
            match r.below(6) {
                0 => {
                    if i < members.len() {
                        members.remove(i);
                    }
                }
                1 => {
                    if let Some(m) = members.get_mut(i) {
                        m.1 = "null".into();
                    }
                }
                2 => {
                    if let Some(m) = members.get(i).cloned() {
                        members.push((m.0, value(r, 0)));
                    }
                }
                3 => {
                    if let Some(m) = members.get_mut(i) {
                        m.1 = value(r, 0);
                    }
                }
                4 => members.push((key(r), value(r, 0))),
                _ => {
                    if let Some(m) = members.get_mut(i) {
                        // The same key, escaped.
                        let k = m.0.trim_matches('"');
                        if let Some(c) = k.chars().next() {
                            m.0 = format!("\"\\u{:04x}{}\"", c as u32, &k[c.len_utf8()..]);
                        }
                    }
                }
            }
        }
    }
    for i in (1..members.len()).rev() {
        if r.chance(40) {
            let j = r.below(i + 1);
            members.swap(i, j);
        }
    }
    let ws = r.pick(WS);
    let body: Vec<String> = members.iter().map(|(k, v)| format!("{ws}{k}{ws}:{ws}{v}")).collect();
    format!("{{{}{ws}}}", body.join(","))
}

fn meter(r: &mut Rng) -> String {
    match r.below(20) {
        0 => format!("\"{}\"", "m".repeat(257)),
        1 => format!("\"{}\"", "m".repeat(256)),
        2 => value(r, 0),
        _ => format!("\"m-{}\"", r.below(8)),
    }
}

fn number(r: &mut Rng, good: &str) -> String {
    if r.chance(85) {
        good.to_string()
    } else {
        r.pick(NUMBERS).to_string()
    }
}

fn resource(r: &mut Rng) -> String {
    r.pick(&[r#""water""#, r#""energy""#, r#""bandwidth""#, r#""w\u0061ter""#, r#""gas""#, "1"])
        .to_string()
}

fn amount(r: &mut Rng) -> String {
    r.pick(&[
        "1.5",
        "0.001",
        "12",
        r#""2.25""#,
        r#""0.0001""#,
        "-1",
        "0.0001",
        "1e400",
        r#""1e2""#,
        r#""abc""#,
        "9223372036854775808",
        "null",
        "[]",
    ])
    .to_string()
}

fn hlc(r: &mut Rng) -> String {
    let wall = number(r, "1700000000000");
    let counter = number(r, "3");
    match r.below(12) {
        0 => value(r, 0),
        1 => format!(r#"{{"wallMs":{wall},"counter":{counter},"wallMs":1}}"#),
        2 => format!(r#"{{"wallMs":{wall}}}"#),
        3 => format!(r#"{{"w\u0061llMs":{wall},"counter":{counter},"x":[1]}}"#),
        4 => format!(r#"{{"wallMs":{wall},"counter":null}}"#),
        5 => format!(r#"{{"wallMs":"{wall}","counter":{counter}}}"#),
        6 => format!(r#"{{"wallMs":{wall},"counter":{counter},"k\ud800":1}}"#),
        _ => format!(r#"{{"wallMs":{wall},"counter":{counter}}}"#),
    }
}

fn reading(r: &mut Rng) -> String {
    let fields =
        [("meter", meter(r)), ("ts", number(r, "1700000000000")), ("value", number(r, "12.5"))];
    object(r, &fields)
}

fn live_reading(r: &mut Rng) -> String {
    let id = r.below(1000).to_string();
    let fields = [
        ("meter", meter(r)),
        ("resource", resource(r)),
        ("id", number(r, &id)),
        ("ts", number(r, "1700000000000")),
        ("amount", amount(r)),
    ];
    object(r, &fields)
}

fn bucket(r: &mut Rng) -> String {
    let mut fields =
        vec![("resource", resource(r)), ("hour", number(r, "1699999200000")), ("total", amount(r))];
    if r.chance(70) {
        fields.push(("meter", meter(r)));
    }
    object(r, &fields)
}

/// An item list: mostly an array of `item`s (some not objects), sometimes
/// something else.
fn list(r: &mut Rng, item: fn(&mut Rng) -> String) -> String {
    match r.below(20) {
        0 => value(r, 0),
        1 => "null".into(),
        2 => r#"{"a":[1,2],"b\ud800":3}"#.into(),
        3 => format!("[{}]", vec!["1"; 40].join(",")),
        _ => {
            let n = r.below(6);
            let items: Vec<String> =
                (0..n).map(|_| if r.chance(10) { value(r, 0) } else { item(r) }).collect();
            let ws = r.pick(WS);
            format!("[{ws}{}{ws}]", items.join(&format!(",{ws}")))
        }
    }
}

fn ty(r: &mut Rng, good: &str) -> Option<String> {
    match r.below(12) {
        0 => None,
        1 => Some(value(r, 0)),
        2 => Some(r.pick(STRINGS).to_string()),
        _ => Some(format!("\"{good}\"")),
    }
}

fn payload(r: &mut Rng, env: Envelope) -> String {
    let mut fields: Vec<(&str, String)> = Vec::new();
    let mut add = |r: &mut Rng, name: &'static str, v: String, keep: usize| {
        if r.chance(keep) {
            fields.push((name, v));
        }
    };
    match env {
        Envelope::Readings => {
            if let Some(t) = ty(r, "readings") {
                add(r, "type", t, 60);
            }
            let l = list(r, reading);
            add(r, "readings", l, 95);
        }
        Envelope::Live => {
            let hello = r.chance(30);
            if let Some(t) = ty(r, if hello { "hello" } else { "frame" }) {
                add(r, "type", t, 97);
            }
            let c = r.pick(&[r#""totals""#, r#""""#, "1", r#""t\u0031""#]).to_string();
            add(r, "channel", c, 50);
            let e = number(r, "3");
            add(r, "epoch", e, 95);
            let s = number(r, "17");
            add(r, if hello { "nextSeq" } else { "seq" }, s, 90);
            let h = hlc(r);
            add(r, "hlc", h, 90);
            if hello {
                let t = number(r, "1700000000000");
                add(r, "serverTime", t, 50);
            } else {
                let l = list(r, live_reading);
                add(r, "readings", l, 95);
            }
        }
        Envelope::Catchup => {
            if let Some(t) = ty(r, "catchup") {
                add(r, "type", t, 50);
            }
            let a = hlc(r);
            add(r, "asOf", a, 93);
            let f = number(r, "1699992000000");
            add(r, "from", f, 40);
            let t = number(r, "1699999200000");
            add(r, "to", t, 40);
            let s = number(r, "1700000000000");
            add(r, "serverTime", s, 30);
            let l = list(r, bucket);
            add(r, "buckets", l, 95);
        }
    }
    if r.chance(15) {
        let v = r.pick(&["1", "1.0", "2", r#""1""#, "null", "1e0", "0.1e1"]).to_string();
        fields.push(("v", v));
    }
    if r.chance(15) {
        fields.push(("extra", deep(r)));
    }
    match r.below(40) {
        0 => value(r, 0),
        1 => deep(r),
        2 => String::new(),
        _ => object(r, &fields),
    }
}

/// Cuts, inserts, deletes or replaces a byte (at a char boundary).
fn mutate(r: &mut Rng, text: &str) -> String {
    if text.is_empty() {
        return r.pick(&["{", "[", "\"", " "]).to_string();
    }
    let bounds: Vec<usize> = (0..=text.len()).filter(|&i| text.is_char_boundary(i)).collect();
    let at = bounds[r.below(bounds.len())];
    let next = bounds.iter().copied().find(|&i| i > at).unwrap_or(at);
    let junk =
        r.pick(&[",", "]", "}", "\"", "\\", ":", "0", "-", "e", ".", "\u{1}", "{", "[", "n"]);
    match r.below(4) {
        0 => text[..at].to_string(),
        1 => format!("{}{junk}{}", &text[..at], &text[at..]),
        2 => format!("{}{}", &text[..at], &text[next..]),
        _ => format!("{}{junk}{}", &text[..at], &text[next..]),
    }
}

/// Whether a rejection's message quotes the parser (compared by code only).
fn parser_worded(i: &Inbound) -> bool {
    match i {
        Inbound::Rejected(e) => {
            e.code == ErrorCode::MalformedJson
                || e.message.contains("expected a JSON object with the documented fields")
        }
        _ => false,
    }
}

fn same(got: &Inbound, want: &Inbound) -> bool {
    match (got, want) {
        (Inbound::Rejected(g), Inbound::Rejected(w))
            if parser_worded(got) || parser_worded(want) =>
        {
            g.code == w.code && g.position == w.position
        }
        _ => got == want,
    }
}

#[derive(Default)]
struct Tally {
    payloads: usize,
    accepted: usize,
    item_errors: usize,
    rejected: usize,
    deep: usize,
}

fn check(env: Envelope, text: &str, cfg: &Config, label: &str, tally: &mut Tally) {
    let want = serde_oracle::decode_general(env, text, Arrival::default(), cfg);
    let got = json::decode_general(env, text, Arrival::default(), cfg);
    assert!(same(&got, &want), "{label}: {env:?} {text:?}\n lite:  {got:?}\n serde: {want:?}");
    // The public path (readings scanner in front) says the same.
    let public = decode_text(env, text, Arrival::default(), cfg);
    assert!(same(&public, &want), "{label}: decode_text {env:?} {text:?}\n {public:?}\n {want:?}");
    tally.payloads += 1;
    tally.deep += usize::from(text.contains("[[[[[[[[[[") || text.contains(r#"{"k":{"k":{"k":"#));
    match &want {
        Inbound::Rejected(_) => tally.rejected += 1,
        Inbound::Readings(b) => {
            tally.accepted += 1;
            tally.item_errors += b.errors.len();
        }
        Inbound::Live(f) => {
            tally.accepted += 1;
            tally.item_errors += f.errors.len();
        }
        Inbound::Catchup(c) => {
            tally.accepted += 1;
            tally.item_errors += c.errors.len();
        }
        _ => tally.accepted += 1,
    }
}

#[test]
fn lite_decoders_equal_the_serde_oracle() {
    let n: usize = std::env::var("METERFLOW_LITE_PAYLOADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12_000);
    let default = Config::default();
    let small = Config { max_batch: 2, ..Config::default() };
    let mut r = Rng(0x6d65_7465_7266_6c6f);
    let mut tally = Tally::default();
    for i in 0..n {
        let env = [Envelope::Readings, Envelope::Live, Envelope::Catchup][i % 3];
        let cfg = if r.chance(10) { &small } else { &default };
        let text = payload(&mut r, env);
        check(env, &text, cfg, &format!("payload {i}"), &mut tally);
        let mut m = text.clone();
        for k in 0..1 + r.below(3) {
            m = mutate(&mut r, &m);
            check(env, &m, cfg, &format!("payload {i} mutation {k}"), &mut tally);
        }
    }
    // Not vacuous: each kind of outcome occurs often.
    eprintln!(
        "{} payloads: {} accepted ({} item errors), {} rejected, {} deeply nested",
        tally.payloads, tally.accepted, tally.item_errors, tally.rejected, tally.deep
    );
    assert!(tally.payloads >= 2 * n);
    assert!(tally.accepted >= n / 4, "accepted {}", tally.accepted);
    assert!(tally.rejected >= n / 4, "rejected {}", tally.rejected);
    assert!(tally.item_errors >= n / 4, "item errors {}", tally.item_errors);
    assert!(tally.deep >= n / 50, "deep {}", tally.deep);
}

#[test]
fn hostile_payloads_equal_the_serde_oracle() {
    let cfg = Config { max_batch: 3, ..Config::default() };
    let mut tally = Tally::default();
    let many = format!(
        r#"{{"readings":[{}]}}"#,
        vec![r#"{"meter":"m","ts":1,"value":2}"#; 5000].join(",")
    );
    let cases = [
        format!(r#"{{"readings":[],"x":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000)),
        format!(r#"{{"readings":[],"x":{}1{}"#, "[".repeat(100_000), "]".repeat(99_999)),
        format!(r#"{{"readings":{}}}"#, "[".repeat(200)),
        format!(r#"{{"readings":[{}]}}"#, r#"{"meter":"m","ts":1,"value":2,"y":"\ud800"}"#),
        many,
        r#"{"readings":[1,2,3,4,]}"#.to_string(),
        r#"{"readings":1e400}"#.to_string(),
        r#"{"readings":"\ud800"}"#.to_string(),
        r#"{"readings\ud800":[]}"#.to_string(),
        r#"1e400"#.to_string(),
        r#"[1,"#.to_string(),
        r#"12x"#.to_string(),
        r#"{"readings":[]} x"#.to_string(),
        r#"{"readings":[{"meter":"m","ts":1,"value":2}],}"#.to_string(),
    ];
    for (i, text) in cases.iter().enumerate() {
        for env in [Envelope::Readings, Envelope::Live, Envelope::Catchup] {
            check(env, text, &cfg, &format!("hostile {i}"), &mut tally);
        }
    }
}
