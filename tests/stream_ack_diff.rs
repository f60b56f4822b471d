//! Differential test of the one-pass reader of socket texts with a `sent`
//! object (`wire::ack`, a `HEARTBEAT_ACK`'s map without a tree) against the
//! general decoder it short-cuts: on generated texts (valid acks, entries of
//! every shape, repeated and escaped keys, bad channel names, numbers past
//! 2^53, nesting at the depth limit, `op` before, after or between `sent`
//! maps, other ops and v1 payloads carrying a `sent`) and byte-level
//! mutations of them, the reader either defers or returns exactly what the
//! general decoder returns, and `decode_socket_text` equals the general
//! decoder on every text, errors included. Seeded: `ACK_DIFF_CASES` /
//! `ACK_DIFF_SEED` run more or other cases.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/rng.rs"]
mod rng;
#[path = "common/text_gen.rs"]
mod text_gen;

use meterflow::core::config::Config;
use meterflow::core::event::Inbound;
use meterflow::core::session::{ServerOp, SessionInput};
use meterflow::wire::{
    decode_socket_text, decode_socket_text_general, decode_socket_text_sent, Arrival,
};
use rng::Rng;
use text_gen::{mutate, Gen};

fn deep(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

/// A container value for a member other than `sent`, or a deep or odd one.
fn odd_value(g: &mut Gen) -> String {
    g.pick(&[
        "null",
        "[1,{\"b\":true},\"s\"]",
        "{\"a\":[1,2]}",
        "\"\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "-0.5e+3",
        "1e400",
        "true",
        "[]",
        "{}",
    ])
    .into()
}

fn channel(g: &mut Gen) -> String {
    if g.one_in(15) {
        return g
            .pick(&[
                "\"\"",
                "\"bad name\"",
                "\"meters.\\u006eorth\"",
                "\"c\\u0000\"",
                "\"\\ud83d\\ude00\"",
                "\"\\ud800\"",
                "\"c\\\"q\"",
            ])
            .into();
    }
    if g.one_in(40) {
        return format!("\"{}\"", "x".repeat(63 + g.below(3)));
    }
    // Few distinct names, so repeats are common; shared prefixes of every length.
    let stem = g.pick(&["c", "meters.north", "meters.n", "meters.nort", "totals", "notices"]);
    format!("\"{stem}{}\"", g.below(6))
}

fn position(g: &mut Gen) -> String {
    let whole = |g: &mut Gen| -> String {
        if g.one_in(10) {
            g.pick(&[
                "-1",
                "1.5",
                "1.0",
                "1e2",
                "9007199254740992",
                "9007199254740993",
                "123456789012345",
                "1234567890123456",
                "\"1\"",
                "null",
                "-0",
                "0",
            ])
            .into()
        } else {
            g.below(1_000).to_string()
        }
    };
    if g.one_in(12) {
        return match g.below(6) {
            0 => format!("[{}]", whole(g)),
            1 => format!("[{},{},{}]", whole(g), whole(g), whole(g)),
            2 => format!("[{},{}]", odd_value(g), whole(g)),
            3 => deep(122 + g.below(6)),
            4 => format!("[{},{}]", whole(g), deep(122 + g.below(6))),
            _ => odd_value(g),
        };
    }
    let (a, b) = (whole(g), whole(g));
    format!("[{}{a}{},{}{b}{}]", g.ws(), g.ws(), g.ws(), g.ws())
}

fn sent(g: &mut Gen) -> String {
    g.object_of(&["null", "[]", "1", "\"sent\"", "[[1,2]]"], 12, channel, position)
}

fn text(g: &mut Gen) -> String {
    let op = if g.one_in(8) {
        g.pick(&["\"HELLO\"", "\"READY\"", "\"heartbeat_ack\"", "1", "null", "\"HEARTBEAT\""])
            .to_string()
    } else {
        "\"HEARTBEAT_ACK\"".into()
    };
    let mut members: Vec<(String, String)> = vec![("op".into(), op), ("sent".into(), sent(g))];
    if g.one_in(6) {
        members.swap(0, 1);
    }
    if g.one_in(12) {
        members.remove(g.below(2));
    }
    if g.one_in(8) {
        let at = g.below(members.len() + 1);
        members.insert(at, ("sent".into(), sent(g)));
    }
    if g.one_in(10) {
        let at = g.below(members.len() + 1);
        let op = g.pick(&["\"HEARTBEAT_ACK\"", "\"HELLO\"", "2"]).into();
        members.insert(at, ("op".into(), op));
    }
    if g.one_in(6) {
        let at = g.below(members.len() + 1);
        let key = g.pick(&["x", "session_id", "type", "\\u006fp", "s\\u0065nt"]).into();
        let value = if g.one_in(2) { odd_value(g) } else { format!("\"{}\"", g.below(9)) };
        members.insert(at, (key, value));
    }
    if g.one_in(25) {
        // A HELLO's fields, so another op can decode whole.
        members.push(("heartbeat_interval_ms".into(), "1000".into()));
        members.push(("session_id".into(), "\"s\"".into()));
    }
    let body: Vec<String> = members
        .into_iter()
        .map(|(k, v)| format!("{}\"{k}\"{}:{}{v}", g.ws(), g.ws(), g.ws()))
        .collect();
    let mut t = format!("{}{{{}}}{}", g.ws(), body.join(","), g.ws());
    if g.one_in(40) {
        t.push_str(g.pick(&["x", "{}", " ", ","]));
    }
    t
}

#[test]
fn one_pass_sent_reader_agrees_with_the_general_decoder() {
    let cases = cases::cases_from("ACK_DIFF_CASES", 12_000) as usize;
    let seed: u64 = std::env::var("ACK_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(11);
    let cfg = Config::default();
    let mut g = Gen { r: Rng(seed), calm: false };
    let (mut decided, mut acks, mut rejected, mut mutated_decided) = (0, 0, 0, 0);
    for case in 0..cases {
        g.calm = case % 2 == 0;
        let base = text(&mut g);
        let mutated = g.one_in(2);
        let text = if mutated { mutate(&mut g, &base) } else { base };
        let general = decode_socket_text_general(&text, Arrival::default(), &cfg);
        let full = decode_socket_text(&text, Arrival::default(), &cfg);
        assert_eq!(full, general, "case {case}: decode_socket_text differs on {text:?}");
        if let Some(got) = decode_socket_text_sent(&text, Arrival::default(), &cfg) {
            assert_eq!(got, general, "case {case}: the one-pass reader differs on {text:?}");
            decided += 1;
            mutated_decided += usize::from(mutated);
            match got {
                Inbound::Stream(SessionInput::Server(ServerOp::HeartbeatAck { sent }))
                    if !sent.is_empty() =>
                {
                    acks += 1
                }
                Inbound::Rejected(_) => rejected += 1,
                _ => {}
            }
        }
    }
    eprintln!(
        "{cases} texts: {decided} decided by the one-pass reader ({mutated_decided} mutated), \
         {acks} acks listing positions, {rejected} refused"
    );
    // Each kind of answer is reached by the one-pass reader, not only deferrals.
    assert!(decided * 2 > cases, "the reader decided only {decided} of {cases}");
    assert!(acks * 5 > cases, "only {acks} acks with positions");
    assert!(rejected * 20 > cases, "only {rejected} refusals");
    assert!(mutated_decided * 10 > cases, "few mutated texts decided: {mutated_decided}");
}
