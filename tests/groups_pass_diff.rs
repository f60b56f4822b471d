#![cfg(not(target_arch = "wasm32"))]
//! Differential test of the one-pass `/groups` reader
//! (`wire::groups::decode_groups_text`: no tree, repeats found by
//! `wire::groups::repeat`) against the general decoder it replaced
//! (`decode_groups_text_general`, a `lite` tree and a hash set of names): on
//! generated bodies (names repeated, escaped into a repeat, bad or too long;
//! members of every shape, nesting at the depth limit; `version` and
//! `groups` missing, repeated, out of shape or in either order; unknown
//! fields; whitespace; trailing text) and byte-level mutations of them, under
//! small and default `maxGroups` / `maxErrorsPerBatch`, both return the same
//! body or the same error, code and text. A share of the cases also goes
//! through the engine: the body posted as the answer to a tick's `/groups`
//! fetch (`decode_fetched` -> `Engine::handle`) against a second engine given
//! the general decoder's answer, the outputs, the map in force and the stats
//! compared. Seeded: `GROUPS_DIFF_CASES` / `GROUPS_DIFF_SEED` run more or
//! other cases.

#[path = "common/cases.rs"]
mod cases;
#[path = "common/rng.rs"]
mod rng;
#[path = "common/text_gen.rs"]
mod text_gen;

use meterflow::core::config::Config;
use meterflow::core::event::{Inbound, Outbound, Query, StreamRequest};
use meterflow::core::groups::{GroupMapBody, GroupsInput};
use meterflow::core::Engine;
use meterflow::wire::groups::{decode_groups_text, decode_groups_text_general};
use meterflow::wire::{decode_fetched, decode_message, Arrival, FetchedBody};
use rng::Rng;
use text_gen::{mutate, Gen};

const T: f64 = 1_764_064_800_000.0;

fn deep(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

/// A group's name as JSON text: few distinct, so repeats are common.
fn name(g: &mut Gen) -> String {
    if g.one_in(12) {
        return g
            .pick(&[
                "\"\"",
                "\"bad name\"",
                "\"g\\u0031\"",
                "\"n\\u006F\"",
                "\"c\\u0000\"",
                "\"\\ud83d\\ude00\"",
                "\"\\ud800\"",
                "\"g\\\"q\"",
                "\"g\\x\"",
            ])
            .into();
    }
    if g.one_in(40) {
        return format!("\"{}\"", "x".repeat(63 + g.below(3)));
    }
    let stem = g.pick(&["g", "north", "no", "tariff-a"]);
    format!("\"{stem}{}\"", g.below(if g.calm { 40 } else { 6 }))
}

fn member(g: &mut Gen) -> String {
    if g.one_in(15) {
        return g
            .pick(&[
                "1",
                "null",
                "[]",
                "{}",
                "\"\"",
                "\"m\\u0032\"",
                "\"\\ud800\"",
                "true",
                "-0.5e3",
                "{\"a\":[1]}",
            ])
            .into();
    }
    if g.one_in(60) {
        return deep(124 + g.below(4));
    }
    format!("\"m{}\"", g.below(8))
}

fn members(g: &mut Gen) -> String {
    if g.one_in(20) {
        return g.pick(&["null", "{}", "\"m1\"", "1", "{\"m1\":[]}", "[[]]"]).into();
    }
    let n = g.below(4);
    let items: Vec<String> = (0..n).map(|_| format!("{}{}{}", g.ws(), member(g), g.ws())).collect();
    format!("[{}]", items.join(","))
}

fn groups(g: &mut Gen) -> String {
    g.object_of(&["null", "[]", "1", "\"groups\"", "[[\"m1\"]]"], 14, name, members)
}

fn version(g: &mut Gen) -> String {
    if g.one_in(8) {
        return g
            .pick(&[
                "-1",
                "1.5",
                "1.0",
                "1e2",
                "9007199254740991",
                "9007199254740992",
                "\"3\"",
                "null",
                "{}",
                "[1]",
                "0",
            ])
            .into();
    }
    g.below(100).to_string()
}

fn text(g: &mut Gen) -> String {
    let mut members: Vec<(String, String)> =
        vec![("version".into(), version(g)), ("groups".into(), groups(g))];
    if g.one_in(4) {
        members.swap(0, 1);
    }
    if g.one_in(12) {
        members.remove(g.below(2));
    }
    if g.one_in(10) {
        let at = g.below(members.len() + 1);
        let (k, v) = if g.one_in(2) { ("groups", groups(g)) } else { ("version", version(g)) };
        members.insert(at, (k.into(), v));
    }
    if g.one_in(8) {
        let at = g.below(members.len() + 1);
        let key = g.pick(&["x", "v", "Groups", "\\u0067roups", "versio\\u006e"]).into();
        let value = g.pick(&["1", "[1,{\"a\":null}]", "{}", "\"s\"", "{\"g1\":[]}"]).into();
        members.insert(at, (key, value));
    }
    let body: Vec<String> = members
        .into_iter()
        .map(|(k, v)| format!("{}\"{k}\"{}:{}{v}", g.ws(), g.ws(), g.ws()))
        .collect();
    let mut t = format!("{}{{{}}}{}", g.ws(), body.join(","), g.ws());
    if g.one_in(40) {
        t.push_str(g.pick(&["x", "{}", " ", ","]));
    }
    if g.one_in(60) {
        t = g.pick(&["[]", "1", "\"groups\"", "", " "]).into();
    }
    t
}

type Answer = Result<GroupMapBody, (&'static str, String)>;

fn answer(r: Result<GroupMapBody, meterflow::core::error::CoreError>) -> Answer {
    r.map_err(|e| (e.code.as_str(), e.message))
}

/// An engine whose session is started and whose tick asked for `/groups`,
/// and that fetch's id.
fn awaiting_groups(cfg: &Config) -> (Engine, u64) {
    let mut e = Engine::new(cfg.clone()).expect("valid config");
    let start = serde_json::json!({"type": "session", "v": 1, "op": "start"});
    e.handle(decode_message(&start, cfg), T);
    let out = e.handle(Inbound::Tick(Default::default()), T);
    let id = out.iter().find_map(|o| match o {
        Outbound::Stream(StreamRequest::Fetch { request_id, path }) if path == "/groups" => {
            Some(*request_id)
        }
        _ => None,
    });
    (e, id.expect("a /groups fetch"))
}

/// The body through the worker's path, against an engine given the general
/// decoder's answer (as `decode_fetched` would have made it).
fn through_the_engine(text: &str, general: &Answer, cfg: &Config) {
    let (mut real, id) = awaiting_groups(cfg);
    let (mut oracle, oracle_id) = awaiting_groups(cfg);
    assert_eq!(id, oracle_id);
    let got = real.handle(decode_fetched(id, FetchedBody::Text(text), Arrival::default(), cfg), T);
    let input = match general.clone() {
        Ok(body) => GroupsInput::Map { request_id: id, body },
        Err((_, message)) => GroupsInput::Failed {
            request_id: id,
            status: 0,
            message: format!("malformed body: {message}"),
        },
    };
    let want = oracle.handle(Inbound::Groups(input), T);
    assert_eq!(got, want, "outputs differ on {text:?}");
    assert_eq!(real.groups().map(), oracle.groups().map(), "maps differ on {text:?}");
    let stats = |e: &mut Engine| e.handle(Inbound::Query(Query::Stats), T + 1.0);
    assert_eq!(stats(&mut real), stats(&mut oracle), "stats differ on {text:?}");
}

#[test]
fn one_pass_groups_reader_agrees_with_the_general_decoder() {
    let cases = cases::cases_from("GROUPS_DIFF_CASES", 12_000) as usize;
    let seed: u64 =
        std::env::var("GROUPS_DIFF_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let configs = [
        Config::default(),
        Config { max_groups: 2, max_errors_per_batch: 1, ..Config::default() },
        Config { max_groups: 1, max_errors_per_batch: 3, ..Config::default() },
        Config { max_groups: 5, max_errors_per_batch: 2, ..Config::default() },
    ];
    let mut g = Gen { r: Rng(seed), calm: false };
    let (mut bodies, mut copied_short, mut repeats, mut not_strings, mut syntax, mut engine) =
        (0, 0, 0, 0, 0, 0);
    for case in 0..cases {
        g.calm = case % 2 == 0;
        let base = text(&mut g);
        let text = if g.one_in(2) { mutate(&mut g, &base) } else { base };
        let cfg = &configs[case % configs.len()];
        let general = answer(decode_groups_text_general(&text, cfg));
        let got = answer(decode_groups_text(&text, cfg));
        assert_eq!(got, general, "case {case}: the one-pass reader differs on {text:?}");
        match &general {
            Ok(b) => {
                bodies += 1;
                copied_short += usize::from(b.uncopied > 0);
            }
            Err((_, m)) if m.contains("listed twice") => repeats += 1,
            Err((_, m)) if m.contains("array of strings") => not_strings += 1,
            Err((_, m)) if m.contains(" at line ") => syntax += 1,
            Err(_) => {}
        }
        if case % 12 == 0 {
            through_the_engine(&text, &general, cfg);
            engine += 1;
        }
    }
    eprintln!(
        "{cases} texts: {bodies} bodies ({copied_short} with groups counted, not copied), \
         {repeats} repeats, {not_strings} groups not of strings, {syntax} not JSON; \
         {engine} through the engine"
    );
    // Each kind of answer is reached, not only one.
    assert!(bodies * 5 > cases, "only {bodies} bodies");
    assert!(copied_short * 50 > cases, "only {copied_short} bodies past the cap");
    assert!(repeats * 20 > cases, "only {repeats} repeats");
    assert!(not_strings * 50 > cases, "only {not_strings} groups not of strings");
    assert!(syntax * 20 > cases, "only {syntax} refused as JSON");
}

/// Large bodies, where the repeat finder spreads names over many buckets:
/// distinct names in order and shuffled, a repeat placed early, late and
/// after a group of non-strings (which the general path meets first).
#[test]
fn large_bodies_agree_with_the_general_decoder() {
    let n = 50_000;
    let shuffled: Vec<usize> = (0..n).map(|i| (i * 7_919) % n).collect();
    let body = |order: &[usize], extra: &[(usize, &str)]| {
        let mut items: Vec<String> = order.iter().map(|i| format!(r#""g{i:07}":["m1"]"#)).collect();
        for (at, item) in extra.iter().rev() {
            items.insert(*at, (*item).to_string());
        }
        format!(r#"{{"version":1,"groups":{{{}}}}}"#, items.join(","))
    };
    let inorder: Vec<usize> = (0..n).collect();
    let cfg = Config::default();
    let texts = [
        body(&inorder, &[]),
        body(&shuffled, &[]),
        body(&shuffled, &[(n, r#""g0000000":[]"#)]),
        body(&shuffled, &[(10, r#""g\u0030000007":[]"#)]),
        body(&shuffled, &[(100, r#""bad":[1]"#), (n - 5, r#""g0000001":[]"#)]),
        body(&shuffled, &[(n - 5, r#""bad":[1]"#), (100, r#""g0000001":[]"#)]),
    ];
    for (i, text) in texts.iter().enumerate() {
        let general = answer(decode_groups_text_general(text, &cfg));
        assert_eq!(answer(decode_groups_text(text, &cfg)), general, "text {i}");
        assert_eq!(general.is_ok(), i < 2, "text {i}: {:?}", general.as_ref().err());
    }
}
