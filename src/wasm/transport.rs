//! The worker-owned transport (config `transport: "worker"`): a web-sys
//! `WebSocket` and `fetch` inside the worker that execute the engine's stream
//! requests and the ledger's catch-up requests themselves.
//!
//! What arrives is handed back to the engine as exactly the page messages a page
//! transport would post (`socket` open / message / close, `fetched`, `catchup`),
//! through the same decoder, so both transports share one input path.
//!
//! Invariants:
//! - Nothing here throws into JavaScript or panics: a socket that cannot be
//!   opened, a failed `send`, a network error or an HTTP error status becomes a
//!   `socket` close with code 1006 or a `fetched` with `ok: false`.
//! - Only the current socket speaks: once the engine asks for a new socket or a
//!   close, the old socket's handlers are removed and its late events ignored
//!   (the session treats its own close as done; an echo would only confuse it).
//! - Nothing is delivered while the engine is handling something: socket events
//!   and fetch answers arrive from the event loop, and a failure detected while
//!   executing a request is delivered from a microtask.
//! - At most [`MAX_FETCHES_IN_FLIGHT`] requests are outstanding; past it a
//!   session fetch is answered at once as failed (status 0), which the session
//!   retries after `fetchRetryMs`, and a catch-up is left to the ledger's retry.

use js_sys::{Date, Promise};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, Response, WebSocket};

use super::outbound::object;

/// Requests in flight at once (session fetches and catch-ups together). The
/// engine itself keeps far fewer outstanding: one catch-up, one snapshot per
/// subscribed channel, a few details.
pub(crate) const MAX_FETCHES_IN_FLIGHT: u32 = 64;

/// The close code a page transport reports for a socket that failed.
const ABNORMAL_CLOSE: u16 = 1006;

/// Hands one page-shaped message to the engine (and posts what it answers).
pub(crate) type Deliver = Rc<dyn Fn(&JsValue)>;

/// One thing the transport is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TransportRequest {
    /// Open a socket: `url`, or the configured stream URL when `None`.
    Connect { url: Option<String> },
    /// Send a text message on the current socket.
    Send { text: String },
    /// Close the current socket.
    Close { code: u16, reason: String },
    /// `GET feedUrl + path`, answered as `fetched` with this `request_id`.
    Fetch { request_id: u64, path: String },
    /// The ledger's catch-up: `GET feedUrl + path + "&format=binary"`, `path`
    /// as the core builds it for every transport (`FetchRequest::path`:
    /// `/catchup?from=<fromHour>&meters=1`), answered as `catchup`.
    Catchup { path: String },
}

/// The socket and fetches of one worker session.
pub(crate) struct WorkerTransport {
    /// `http(s)://host:port`, no trailing slash.
    feed_url: String,
    deliver: Deliver,
    socket: Option<OpenSocket>,
    /// Identifies the current socket; the handlers of older ones compare and
    /// ignore their events.
    current: Rc<Cell<u64>>,
    in_flight: Rc<Cell<u32>>,
}

/// A socket and the handlers that keep its events flowing.
struct OpenSocket {
    ws: WebSocket,
    /// The value of `current` while this socket is the current one.
    generation: u64,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl OpenSocket {
    /// Removes the handlers, closes the socket if it is still open, and drops
    /// the handlers after the current callback (one of them may be running).
    fn retire(self, code: u16, reason: &str) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        // CONNECTING (0) or OPEN (1): close it. A close code the browser refuses
        // (outside 1000 and 3000..=4999) falls back to a plain close.
        if self.ws.ready_state() <= 1 && self.ws.close_with_code_and_reason(code, reason).is_err() {
            let _ = self.ws.close();
        }
        spawn_local(async move { drop(self) });
    }
}

impl WorkerTransport {
    /// A transport for the feed at `feed_url` (`http://…` or `https://…`);
    /// `deliver` takes what arrives.
    pub(crate) fn new(feed_url: &str, deliver: Deliver) -> WorkerTransport {
        WorkerTransport {
            feed_url: feed_url.trim_end_matches('/').to_string(),
            deliver,
            socket: None,
            current: Rc::new(Cell::new(0)),
            in_flight: Rc::new(Cell::new(0)),
        }
    }

    /// The feed base URL this transport talks to.
    pub(crate) fn feed_url(&self) -> &str {
        &self.feed_url
    }

    /// The stream URL: `ws(s)://host:port/stream?format=binary`.
    pub(crate) fn stream_url(&self) -> String {
        let ws = match self.feed_url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => match self.feed_url.strip_prefix("http://") {
                Some(rest) => format!("ws://{rest}"),
                None => self.feed_url.clone(),
            },
        };
        format!("{ws}/stream?format=binary")
    }

    /// Executes one request. Never throws; failures arrive as the inputs a page
    /// transport would post.
    pub(crate) fn execute(&mut self, req: TransportRequest) {
        match req {
            TransportRequest::Connect { url } => {
                let url = url.unwrap_or_else(|| self.stream_url());
                self.connect(&url);
            }
            TransportRequest::Send { text } => self.send(&text),
            TransportRequest::Close { code, reason } => {
                self.current.set(self.current.get().wrapping_add(1));
                if let Some(old) = self.socket.take() {
                    old.retire(code, &reason);
                }
            }
            TransportRequest::Fetch { request_id, path } => {
                let url = format!("{}{}", self.feed_url, path);
                self.fetch(url, Answer::Fetched { request_id });
            }
            TransportRequest::Catchup { path } => {
                let url = format!("{}{path}&format=binary", self.feed_url);
                self.fetch(url, Answer::Catchup);
            }
        }
    }

    /// Before this transport is replaced or dropped for a config change:
    /// closes a live socket with 4000 (the server keeps the session for a
    /// RESUME) and tells the session, which reconnects through the new transport.
    pub(crate) fn hand_over(&mut self) {
        let current = self.current.get();
        let live = self.socket.as_ref().is_some_and(|s| s.generation == current);
        self.current.set(current.wrapping_add(1));
        if let Some(old) = self.socket.take() {
            old.retire(4000, "transport changed");
        }
        if live {
            self.deliver_later(socket_close(4000, "transport changed"));
        }
    }

    /// Closes the socket (1000: the worker session stopped) and forgets it.
    pub(crate) fn shutdown(&mut self) {
        self.current.set(self.current.get().wrapping_add(1));
        if let Some(old) = self.socket.take() {
            old.retire(1000, "worker stopped");
        }
    }

    fn connect(&mut self, url: &str) {
        let generation = self.current.get().wrapping_add(1);
        self.current.set(generation);
        if let Some(old) = self.socket.take() {
            // The session closes a socket before it asks for a new one; one still
            // open here is replaced, which must not end the server's session.
            old.retire(4000, "replaced by a new connection");
        }
        let ws = match WebSocket::new(url) {
            Ok(ws) => ws,
            Err(e) => {
                let why = format!("cannot open {url}: {}", describe(&e));
                self.deliver_later(socket_close(ABNORMAL_CLOSE, &why));
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let live = {
            let current = Rc::clone(&self.current);
            move || current.get() == generation
        };
        let on_open = {
            let (deliver, live) = (Rc::clone(&self.deliver), live.clone());
            Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                if live() {
                    deliver(&object(&[("type", "socket".into()), ("event", "open".into())]));
                }
            })
        };
        let on_message = {
            let (deliver, live) = (Rc::clone(&self.deliver), live.clone());
            Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                if live() {
                    deliver(&object(&[
                        ("type", "socket".into()),
                        ("event", "message".into()),
                        ("data", ev.data()),
                    ]));
                }
            })
        };
        let on_close = {
            let (deliver, current) = (Rc::clone(&self.deliver), Rc::clone(&self.current));
            Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
                if current.get() == generation {
                    // This socket is gone: later requests find none.
                    current.set(generation.wrapping_add(1));
                    deliver(&socket_close(ev.code(), &ev.reason()));
                }
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        // A failed socket fires `error` and then `close` (code 1006): the close
        // alone is reported.
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        self.socket = Some(OpenSocket {
            ws,
            generation,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        });
    }

    fn send(&mut self, text: &str) {
        let current = self.current.get();
        let Some(socket) = self.socket.as_ref().filter(|s| s.generation == current) else {
            // The session believes in a socket this transport does not have (it
            // was opened by the page before a switch to this transport): say it
            // closed. A session that already saw the close ignores the echo.
            self.deliver_later(socket_close(ABNORMAL_CLOSE, "no open socket in the worker"));
            return;
        };
        if let Err(e) = socket.ws.send_with_str(text) {
            // Not open yet (or a browser refusal): this connection is unusable.
            let why = format!("send failed: {}", describe(&e));
            self.current.set(self.current.get().wrapping_add(1));
            if let Some(old) = self.socket.take() {
                old.retire(4000, "send failed");
            }
            self.deliver_later(socket_close(ABNORMAL_CLOSE, &why));
        }
    }

    fn fetch(&self, url: String, answer: Answer) {
        if self.in_flight.get() >= MAX_FETCHES_IN_FLIGHT {
            if let Answer::Fetched { request_id } = answer {
                self.deliver_later(fetched_failed(request_id, 0, Date::now(), Date::now()));
            }
            return;
        }
        self.in_flight.set(self.in_flight.get() + 1);
        let (deliver, in_flight) = (Rc::clone(&self.deliver), Rc::clone(&self.in_flight));
        spawn_local(async move {
            let sent_at = Date::now();
            let got = get(&url).await;
            let received_at = Date::now();
            in_flight.set(in_flight.get().saturating_sub(1));
            let msg = match (answer, got) {
                (Answer::Fetched { request_id }, Ok(body)) if body.ok => object(&[
                    ("type", "fetched".into()),
                    ("requestId", (request_id as f64).into()),
                    ("ok", true.into()),
                    ("status", body.status.into()),
                    ("data", body.data),
                    ("sentAt", sent_at.into()),
                    ("receivedAt", received_at.into()),
                ]),
                (Answer::Fetched { request_id }, Ok(body)) => {
                    fetched_failed(request_id, body.status, sent_at, received_at)
                }
                (Answer::Fetched { request_id }, Err(_)) => {
                    fetched_failed(request_id, 0, sent_at, received_at)
                }
                (Answer::Catchup, Ok(body)) if body.ok => object(&[
                    ("type", "catchup".into()),
                    ("data", body.data),
                    ("sentAt", sent_at.into()),
                    ("receivedAt", received_at.into()),
                ]),
                // The ledger repeats an unanswered catch-up after `fetchRetryMs`.
                (Answer::Catchup, _) => return,
            };
            deliver(&msg);
        });
    }

    /// Delivers `msg` from a microtask, after the engine call that led to it.
    fn deliver_later(&self, msg: JsValue) {
        let deliver = Rc::clone(&self.deliver);
        spawn_local(async move { deliver(&msg) });
    }
}

impl Drop for WorkerTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How a fetch is answered.
#[derive(Clone, Copy)]
enum Answer {
    Fetched { request_id: u64 },
    Catchup,
}

/// A fetch's outcome: status and, when `ok`, the body (a string, or an
/// `ArrayBuffer` for `application/octet-stream`).
struct Body {
    ok: bool,
    status: u16,
    data: JsValue,
}

/// `GET url`; `Err` on a network failure or an unreadable body.
async fn get(url: &str) -> Result<Body, JsValue> {
    let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let promise: Promise = scope.fetch_with_str(url);
    let response: Response = JsFuture::from(promise).await?.dyn_into()?;
    let (ok, status) = (response.ok(), response.status());
    if !ok {
        return Ok(Body { ok, status, data: JsValue::UNDEFINED });
    }
    let binary = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|t| t.starts_with("application/octet-stream"));
    let body = if binary { response.array_buffer()? } else { response.text()? };
    let data = JsFuture::from(body).await?;
    Ok(Body { ok, status, data })
}

fn socket_close(code: u16, reason: &str) -> JsValue {
    object(&[
        ("type", "socket".into()),
        ("event", "close".into()),
        ("code", code.into()),
        ("reason", reason.into()),
    ])
}

fn fetched_failed(request_id: u64, status: u16, sent_at: f64, received_at: f64) -> JsValue {
    object(&[
        ("type", "fetched".into()),
        ("requestId", (request_id as f64).into()),
        ("ok", false.into()),
        ("status", status.into()),
        ("sentAt", sent_at.into()),
        ("receivedAt", received_at.into()),
    ])
}

/// A JS exception as text.
fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}
