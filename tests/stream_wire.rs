#![cfg(not(target_arch = "wasm32"))]
//! The stream socket's text decoder classifies a message (server op or v1
//! payload) without parsing a v1 frame twice.
//!
//! - `may_be_server_op` is held to the full classification (`lite::parse`,
//!   an object whose `op` is a string) as the oracle: it may say "maybe" for
//!   anything, but never "no" for an op, on crafted and mutated texts.
//! - Decoding a v1 `frame` from the socket allocates what the v1 decoder alone
//!   allocates plus a constant (the delta's box and channel name), counted by
//!   a per-thread counting allocator: no second parse tree.

#[path = "common/rng.rs"]
mod rng;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use meterflow::core::config::Config;
use meterflow::core::event::Inbound;
use meterflow::core::session::{Payload, ServerOp, SessionInput};
use meterflow::wire::lite::{self, Value};
use meterflow::wire::stream::may_be_server_op;
use meterflow::wire::{decode_socket_text, decode_text, Arrival, Envelope};
use rng::Rng;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's own arguments and
// only bumps a thread-local counter besides, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as for `dealloc`; `new_size` is the caller's, valid for `layout`'s align.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCS.with(Cell::get);
    let out = f();
    (out, ALLOCS.with(Cell::get) - before)
}

/// The full classification: an object with a string `op`.
fn is_op(text: &str) -> bool {
    matches!(lite::parse(text), Ok(Value::Object(o)) if matches!(o.get("op"), Some(Value::String(_))))
}

fn frame(readings: usize) -> String {
    let rs: Vec<String> = (0..readings)
        .map(|i| {
            format!(
                r#"{{"meter":"m-{}","resource":"water","id":{},"ts":1764064800000,"amount":"0.{}"}}"#,
                i % 50,
                i + 1,
                i % 9 + 1
            )
        })
        .collect();
    format!(
        r#"{{"type":"frame","channel":"totals","epoch":3,"seq":17,"hlc":{{"wallMs":1764064800500,"counter":0}},"readings":[{}]}}"#,
        rs.join(",")
    )
}

const CRAFTED: [&str; 22] = [
    r#"{"op":"HELLO","heartbeat_interval_ms":1000,"session_id":"s"}"#,
    r#"  {"op" : "READY","session_id":"s"}"#,
    r#"{"x":{"op":"nested"},"op":"DELTA"}"#,
    r#"{"x":[{"op":1},"op"],"op" :	"HEARTBEAT"}"#,
    r#"{"\u006fp":"RESUMED"}"#,
    r#"{"o\"p":"x","op":"RECONNECT"}"#,
    r#"{"op":1,"op":"HEARTBEAT"}"#,
    r#"{"op":"HEARTBEAT","op":1}"#,
    r#"{"op":null}"#,
    r#"{"op":{"a":"b"}}"#,
    r#"{"type":"frame","note":"op","op2":"x"}"#,
    r#"{"a":"}","op":"HEARTBEAT"}"#,
    r#"{"a":"\\","op":"HEARTBEAT"}"#,
    r#"{"a":"{[","b":"]}","op":"HEARTBEAT"}"#,
    r#"{"op":"HEARTBEAT"} trailing"#,
    r#"{"op":"HEARTBEAT""#,
    r#"[{"op":"HEARTBEAT"}]"#,
    r#""op""#,
    "",
    "{",
    r#"{"type":"hello","channel":"totals","epoch":1,"nextSeq":0}"#,
    r#"{}"#,
];

#[test]
fn the_skim_never_says_no_to_an_op() {
    for t in CRAFTED.iter().map(|s| s.to_string()).chain([frame(3)]) {
        if is_op(&t) {
            assert!(may_be_server_op(t.as_bytes()), "skim refused the op {t:?}");
        }
    }
    // Mutations of ops and frames: bytes replaced, inserted or dropped.
    let alphabet = b"{}[]\":,\\ opOP1a";
    let mut r = Rng(0x5C1A);
    let (mut ops, mut nos) = (0, 0);
    for _ in 0..200_000 {
        let base = CRAFTED[r.below(CRAFTED.len() as u64) as usize];
        let mut t = base.as_bytes().to_vec();
        for _ in 0..1 + r.below(3) {
            let at = r.below(t.len() as u64 + 1) as usize;
            let b = alphabet[r.below(alphabet.len() as u64) as usize];
            match r.below(3) {
                0 if at < t.len() => t[at] = b,
                1 => t.insert(at, b),
                _ if at < t.len() => {
                    t.remove(at);
                }
                _ => {}
            }
        }
        let Ok(text) = String::from_utf8(t) else { continue };
        let maybe = may_be_server_op(text.as_bytes());
        if is_op(&text) {
            ops += 1;
            assert!(maybe, "skim refused the op {text:?}");
        } else if !maybe {
            nos += 1;
        }
    }
    // Not a test that cannot fail: both sides were exercised.
    assert!(ops > 1_000 && nos > 1_000, "{ops} ops, {nos} ruled out");
}

#[test]
fn a_v1_frame_on_the_socket_is_parsed_once() {
    let cfg = Config::default();
    let text = frame(100);
    let (direct, direct_allocs) =
        allocations(|| decode_text(Envelope::Live, &text, Arrival::default(), &cfg));
    let (socket, socket_allocs) =
        allocations(|| decode_socket_text(&text, Arrival::default(), &cfg));
    let Inbound::Live(f) = direct else { panic!("not a frame: {direct:?}") };
    let Inbound::Stream(SessionInput::Server(ServerOp::Delta { body, wire_bytes, .. })) = socket
    else {
        panic!("not a delta: {socket:?}")
    };
    assert_eq!(body, Payload::Frame(Box::new(f)));
    assert_eq!(wire_bytes, text.len());
    // The delta adds its box and the channel name; a second parse would add
    // hundreds (a tree node list per reading).
    assert!(
        socket_allocs <= direct_allocs + 4,
        "socket decode {socket_allocs} allocations vs {direct_allocs} for the v1 decoder alone"
    );
    eprintln!("v1 frame of 100 readings: {socket_allocs} allocations from the socket, {direct_allocs} direct");
}

#[test]
fn ops_still_decode_as_ops() {
    let cfg = Config::default();
    let delta =
        r#"{"op":"DELTA","channel":"notices","epoch":1,"seq":2,"patch":{"upsert":[],"remove":[]}}"#;
    match decode_socket_text(delta, Arrival::default(), &cfg) {
        Inbound::Stream(SessionInput::Server(ServerOp::Delta { seq, wire_bytes, .. })) => {
            assert_eq!((seq, wire_bytes), (2, delta.len()))
        }
        other => panic!("{other:?}"),
    }
    let escaped = r#"{"\u006fp":"HEARTBEAT"}"#;
    assert!(matches!(
        decode_socket_text(escaped, Arrival::default(), &cfg),
        Inbound::Stream(SessionInput::Server(ServerOp::Heartbeat))
    ));
}
