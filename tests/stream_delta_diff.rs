//! Differential test of the one-pass `meters.<group>` DELTA reader
//! (`wire::delta`) against the general decoder it short-cuts: on generated
//! DELTA texts (valid, subtly invalid, reordered, with repeated or unknown
//! keys, escapes, deep nesting) and byte-level mutations of them, the fast
//! path either defers or returns exactly the op the general decoder returns,
//! and `decode_socket_text` (fast path first) equals the general decoder on
//! every text, errors included. Seeded: `DELTA_DIFF_CASES` / `DELTA_DIFF_SEED`
//! run more or other cases.

use meterflow::core::config::Config;
use meterflow::core::event::Inbound;
use meterflow::core::session::SessionInput;
use meterflow::wire::{decode_socket_text, decode_socket_text_general, meters_delta, Arrival};

/// A seeded LCG; `calm` makes every odd choice eight times rarer, so that
/// about half the texts are valid DELTAs the fast path takes.
struct Rng(u64, bool);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    /// True once in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(if self.1 { n * 8 } else { n }) == 0
    }
}

fn ws(r: &mut Rng) -> &'static str {
    if r.one_in(6) {
        r.pick(&[" ", "\n", " \t ", "\r\n"])
    } else {
        ""
    }
}

/// Builds an object from members, sometimes shuffled, repeated or extended.
fn object(r: &mut Rng, mut members: Vec<(String, String)>, unknown: &[&str]) -> String {
    if r.one_in(8) && members.len() > 1 {
        let i = r.below(members.len());
        let j = r.below(members.len());
        members.swap(i, j);
    }
    if r.one_in(25) && !members.is_empty() {
        let i = r.below(members.len());
        members.remove(i);
    }
    if r.one_in(20) && !members.is_empty() {
        let m = members[r.below(members.len())].clone();
        members.insert(r.below(members.len() + 1), m);
    }
    if r.one_in(10) {
        let v = r.pick(unknown).to_string();
        members.insert(r.below(members.len() + 1), (r.pick(&["x", "extra", "\\u006fp"]).into(), v));
    }
    let body: Vec<String> = members
        .into_iter()
        .map(|(k, v)| {
            let k = if r.one_in(40) { k.replacen('e', "\\u0065", 1) } else { k };
            format!("{}\"{k}\"{}:{}{v}{}", ws(r), ws(r), ws(r), ws(r))
        })
        .collect();
    format!("{{{}}}", body.join(","))
}

fn deep(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

fn unknown_values() -> Vec<String> {
    vec![
        "null".into(),
        "[1,{\"b\":true},\"s\"]".into(),
        "\"\\ud800\"".into(),
        "\"\\ud83d\\ude00\"".into(),
        deep(120),
        deep(123),
        deep(124),
        deep(126),
        deep(127),
        "{\"a\":[1,2,}".into(),
        "-0.5e+3".into(),
    ]
}

fn row(r: &mut Rng, unknown: &[&str]) -> String {
    let meter = if r.one_in(12) {
        r.pick(&[
            "\"\"",
            "\"m\\u0001x\"",
            "\"m-\\\"q\\\"\"",
            "\"m-\\u00e9\"",
            "\"m-\\ud83d\\ude00\"",
            "\"m-\\ud83d\"",
            "7",
            "null",
        ])
        .to_string()
    } else if r.one_in(40) {
        format!("\"{}\"", "x".repeat(255 + r.below(3)))
    } else {
        format!("\"m-{:05}\"", r.below(100_000))
    };
    let resource = if r.one_in(10) {
        r.pick(&[
            "\"\"",
            "\"wäter-ünits-ÿ-long-long-long-long-long-long-long-long-long-long-long-xx\"",
            "\"\\\\n\"",
            "3",
        ])
        .to_string()
    } else if r.one_in(30) {
        format!("\"{}\"", "é".repeat(40))
    } else {
        format!("\"{}\"", r.pick(&["water", "energy", "bandwidth"]))
    };
    let num = |r: &mut Rng| -> String {
        if r.one_in(12) {
            r.pick(&["1e400", "-1e400", "01", "1.", "\"5\"", "null", "-0", "1E2", "-", "0.000001"])
                .into()
        } else {
            format!("{}.{}", r.below(2_000_000), r.below(100))
        }
    };
    let ts = num(r);
    let value = num(r);
    let status = if r.one_in(15) {
        r.pick(&["\"OK\"", "\"down\"", "1", "\"st\\u0061le\""]).into()
    } else {
        format!("\"{}\"", r.pick(&["ok", "stale", "offline"]))
    };
    let count = if r.one_in(12) {
        r.pick(&["3.0", "-1", "9007199254740993", "9007199254740992", "1e2", "\"3\"", "0"]).into()
    } else {
        r.below(1_000_000).to_string()
    };
    let total = if r.one_in(12) {
        r.pick(&["\"abc\"", "5", "\"1e3\"", "\"-0.5\"", "\"\"", "\"1.000\"", "\" 1\""]).into()
    } else {
        format!("\"{}.{:03}\"", r.below(100_000), r.below(1000))
    };
    let members = vec![
        ("meter".into(), meter),
        ("resource".into(), resource),
        ("ts".into(), ts),
        ("value".into(), value),
        ("status".into(), status),
        ("count".into(), count),
        ("total".into(), total),
    ];
    if r.one_in(60) {
        return r.pick(&["null", "[]", "1", "\"row\""]).into();
    }
    object(r, members, unknown)
}

fn list(r: &mut Rng, items: Vec<String>) -> String {
    if items.is_empty() && r.one_in(3) {
        return r.pick(&["null", "[]", "{}", "[ ]"]).into();
    }
    format!("[{}]", items.join(&format!(",{}", ws(r))))
}

fn delta(r: &mut Rng) -> String {
    let unknown_owned = unknown_values();
    let unknown: Vec<&str> = unknown_owned.iter().map(String::as_str).collect();
    let n = if r.one_in(4) { 0 } else { r.below(8) };
    let rows: Vec<String> = (0..n).map(|_| row(r, &unknown)).collect();
    let removes: Vec<String> = (0..r.below(3))
        .map(|_| if r.one_in(8) { "\"\"".into() } else { format!("\"m-{:05}\"", r.below(100)) })
        .collect();
    let mut patch_members = vec![("upsert".into(), list(r, rows))];
    if !r.one_in(5) {
        patch_members.push(("remove".into(), list(r, removes)));
    }
    let patch = if r.one_in(50) { "[]".into() } else { object(r, patch_members, &unknown) };
    let channel = if r.one_in(10) {
        r.pick(&[
            "\"notices\"",
            "\"totals\"",
            "\"meters north\"",
            "\"meters.\"",
            "5",
            "\"meters.\\u006eorth\"",
        ])
        .into()
    } else {
        format!("\"meters.{}\"", r.pick(&["north", "south", "g-1"]))
    };
    let whole = |r: &mut Rng| -> String {
        if r.one_in(15) {
            r.pick(&["-1", "1.5", "9007199254740993", "1e1", "\"1\"", "null"]).into()
        } else {
            r.below(1_000_000).to_string()
        }
    };
    let op = if r.one_in(20) {
        r.pick(&["\"HELLO\"", "\"delta\"", "1", "\"DELTA \""]).into()
    } else {
        "\"DELTA\"".into()
    };
    let members = vec![
        ("op".into(), op),
        ("channel".into(), channel),
        ("epoch".into(), whole(r)),
        ("seq".into(), whole(r)),
        ("patch".into(), patch),
    ];
    let mut text = format!("{}{}{}", ws(r), object(r, members, &unknown), ws(r));
    if r.one_in(40) {
        text.push_str(r.pick(&["x", "{}", " ", ","]));
    }
    text
}

/// One to three edits at char boundaries: delete, insert, duplicate, truncate.
fn mutate(r: &mut Rng, text: &str) -> String {
    let mut cs: Vec<char> = text.chars().collect();
    for _ in 0..1 + r.below(3) {
        if cs.is_empty() {
            break;
        }
        let i = r.below(cs.len());
        match r.below(5) {
            0 => {
                let end = (i + 1 + r.below(4)).min(cs.len());
                cs.drain(i..end);
            }
            1 => {
                let alphabet: Vec<char> = "{}[]\",:0123456789.-eE\\u nul tr".chars().collect();
                cs.insert(i, alphabet[r.below(alphabet.len())]);
            }
            2 => {
                let end = (i + 1 + r.below(30)).min(cs.len());
                let dup: Vec<char> = cs[i..end].to_vec();
                let at = r.below(cs.len());
                cs.splice(at..at, dup);
            }
            3 => cs.truncate(i),
            _ => {
                // A digit for a digit: usually still valid.
                if cs[i].is_ascii_digit() {
                    cs[i] = char::from(b'0' + r.below(10) as u8);
                } else {
                    cs.insert(i, ' ');
                }
            }
        }
    }
    cs.into_iter().collect()
}

#[test]
fn fast_delta_path_agrees_with_the_general_decoder() {
    let cases: usize =
        std::env::var("DELTA_DIFF_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12_000);
    let seed: u64 = std::env::var("DELTA_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let cfg = Config::default();
    let mut r = Rng(seed, false);
    let (mut fast, mut general_delta, mut mutated_fast, mut rejected) = (0, 0, 0, 0);
    for case in 0..cases {
        r.1 = case % 2 == 0;
        let base = delta(&mut r);
        let mutated = r.one_in(2);
        let text = if mutated { mutate(&mut r, &base) } else { base };
        let general = decode_socket_text_general(&text, Arrival::default(), &cfg);
        let full = decode_socket_text(&text, Arrival::default(), &cfg);
        assert_eq!(full, general, "case {case}: decode_socket_text differs on {text:?}");
        if let Some(op) = meters_delta(&text) {
            let as_inbound = Inbound::Stream(SessionInput::Server(op));
            assert_eq!(as_inbound, general, "case {case}: the fast path differs on {text:?}");
            fast += 1;
            mutated_fast += usize::from(mutated);
        }
        match general {
            Inbound::Stream(SessionInput::Server(meterflow::core::session::ServerOp::Delta {
                ..
            })) => general_delta += 1,
            Inbound::Rejected(_) => rejected += 1,
            _ => {}
        }
    }
    eprintln!(
        "{cases} texts: {general_delta} DELTA ops, {fast} by the fast path \
         ({mutated_fast} mutated), {rejected} rejected"
    );
    // Both sides of the comparison are exercised, not one.
    assert!(fast * 5 > cases, "the fast path took only {fast} of {cases}");
    assert!(rejected * 5 > cases, "only {rejected} of {cases} texts were refused");
    assert!(mutated_fast > 0, "no mutated text reached the fast path");
    assert!(general_delta > fast, "the fast path never deferred on a valid DELTA");
}
