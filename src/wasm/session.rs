//! The worker loop: one engine behind a message port.
//!
//! [`start_worker`] runs it on the dedicated worker's own global scope;
//! [`start_on_port`] on any object with `postMessage` and `onmessage` (a
//! `MessagePort`, a `Worker`, a worker scope), so tests can do a real
//! `postMessage` round trip through a `MessageChannel`.
//!
//! A session posts `{ type: 'ready', v: 1, version }` first, then installs two
//! `gloo-timers` intervals: the evaluation tick every `tickMs` and the totals
//! flush every `totalsFlushMs`, re-armed whenever a `config` message changes
//! either. Besides them, one one-shot timeout follows the engine's
//! `flush_due_ms` (a delta or live frame was applied: its update is posted
//! within `deltaFlushMs`): armed after every engine call for the time the core
//! names, cleared when no flush is due. Engine time is `Date.now()`. Each tick's wall time is measured with
//! `performance.now()` and reported with the next tick. `ack`s are held while
//! more page messages wait and posted together, in order, before anything else
//! ([`super::held_acks`]).
//!
//! With config `transport: "worker"` the session also owns a
//! [`WorkerTransport`]: the engine's stream requests (`connect`, `send`,
//! `close`, `fetch` with a `requestId`) and the ledger's catch-up `fetch` are
//! executed here instead of posted, and what the socket and the fetches bring
//! back re-enters through `on_message` as the page messages a page transport
//! would post. It is created, replaced (new `feedUrl`) or dropped (back to
//! `"page"`, or `stop`) after every message, as the config says.
//!
//! The port's `onmessage` closure and the timers hold the session (a deliberate
//! reference cycle): it lives until [`WorkerSession::stop`], whatever happens to
//! the handle on the JS side. All state is behind `RefCell`s that are only ever
//! borrowed for the length of one engine call, and borrowed with `try_borrow_mut`
//! so even an unexpected re-entrant call cannot panic.

use super::engine::config_from_js;
use super::held_acks::{HeldAcks, Hold, WakeHandler};
use super::host::Host;
use super::outbound::{internal_error, object, to_js, Posted};
use super::transport::{Deliver, TransportRequest, WorkerTransport};
use super::types::{ConfigJs, MessagePortLike};
use crate::core::config::{Config, Transport};
use crate::core::event::{Outbound, StreamRequest};
use crate::core::Engine;
use gloo_timers::callback::{Interval, Timeout};
use js_sys::Array;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

/// Starts the engine on this dedicated worker's global scope: installs
/// `onmessage`, posts `ready`, starts the tick and flush timers.
/// Throws if not running in a dedicated worker.
#[wasm_bindgen(js_name = startWorker)]
pub fn start_worker() -> Result<(), JsValue> {
    super::install_panic_hook();
    let scope = js_sys::global().dyn_into::<DedicatedWorkerGlobalScope>().map_err(|_| {
        js_sys::Error::new("startWorker() must be called in a dedicated Web Worker")
    })?;
    // The session keeps itself alive through its own closures; no handle needed.
    Session::start(scope.unchecked_into(), Config::default())?;
    Ok(())
}

/// Starts an engine behind `port` (anything with `postMessage` and `onmessage`),
/// with the default configuration patched by `config`. Returns a handle whose
/// `stop()` removes `onmessage` and the timers.
#[wasm_bindgen(js_name = startOnPort)]
pub fn start_on_port(
    port: MessagePortLike,
    config: Option<ConfigJs>,
) -> Result<WorkerSession, JsValue> {
    super::install_panic_hook();
    let cfg = match config {
        Some(c) if !c.is_undefined() && !c.is_null() => config_from_js(&c)?,
        _ => Config::default(),
    };
    let shared = Session::start(port, cfg)?;
    Ok(WorkerSession { shared })
}

/// A running session started by `startOnPort`.
#[wasm_bindgen]
pub struct WorkerSession {
    shared: Rc<Session>,
}

#[wasm_bindgen]
impl WorkerSession {
    /// Stops the session: clears the timers and the port's `onmessage`. The
    /// engine's state is released once nothing refers to it.
    pub fn stop(&self) {
        self.shared.stop();
    }
}

struct Session {
    port: MessagePortLike,
    host: RefCell<Host>,
    timers: RefCell<Timers>,
    on_message: RefCell<Option<MessageHandler>>,
    /// The worker-owned transport, while the config asks for one.
    transport: RefCell<Option<WorkerTransport>>,
    /// Acks held while more page messages wait (`held_acks`).
    acks: HeldAcks,
}

type MessageHandler = Closure<dyn FnMut(MessageEvent)>;

#[derive(Default)]
struct Timers {
    tick: Option<(u32, Interval)>,
    flush: Option<(u32, Interval)>,
    /// The one-shot flush after deltas, armed for the engine time it names.
    delta_flush: Option<(f64, Timeout)>,
}

impl Session {
    fn start(port: MessagePortLike, cfg: Config) -> Result<Rc<Session>, JsValue> {
        let engine = Engine::new(cfg).map_err(|e| super::engine::range_error(&e))?;
        let session = Rc::new_cyclic(|weak: &std::rc::Weak<Session>| {
            let weak = weak.clone();
            let wake = WakeHandler::new(move |_: MessageEvent| {
                if let Some(session) = weak.upgrade() {
                    session.acks.woken();
                    session.post_held_acks();
                }
            });
            Session {
                port,
                host: RefCell::new(Host::new(engine)),
                timers: RefCell::new(Timers::default()),
                on_message: RefCell::new(None),
                transport: RefCell::new(None),
                acks: HeldAcks::new(wake),
            }
        });
        let s = Rc::clone(&session);
        let on_message = MessageHandler::new(move |ev: MessageEvent| {
            s.on_message(&ev.data());
        });
        session.port.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        if let Ok(mut slot) = session.on_message.try_borrow_mut() {
            *slot = Some(on_message);
        }
        session.post(&Posted {
            message: object(&[
                ("type", "ready".into()),
                ("v", 1.into()),
                ("version", env!("CARGO_PKG_VERSION").into()),
            ]),
            transfer: None,
        });
        Session::arm_timers(&session);
        Session::fit_transport(&session);
        Ok(session)
    }

    fn on_message(self: &Rc<Session>, data: &JsValue) {
        let outs = match self.host.try_borrow_mut() {
            Ok(mut host) => host.handle(data, js_sys::Date::now()),
            Err(_) => return,
        };
        // A `config` message may have changed the transport and the intervals;
        // the transport is fitted before this message's requests are executed.
        Session::fit_transport(self);
        self.post_all(&outs);
        Session::arm_timers(self);
        Session::arm_delta_flush(self);
    }

    /// Creates, replaces or drops the worker transport as the config says. The
    /// feed URL is `feedUrl`, or this worker's own origin when it is empty.
    fn fit_transport(this: &Rc<Session>) {
        let wanted = match this.host.try_borrow() {
            Ok(host) => match host.config().transport {
                Transport::Worker => Some(feed_url(&host.config().feed_url)),
                Transport::Page => None,
            },
            Err(_) => return,
        };
        let Ok(mut slot) = this.transport.try_borrow_mut() else { return };
        let current = slot.as_ref().map(|t| t.feed_url().to_string());
        let keep = match (&wanted, &current) {
            (Some(url), Some(cur)) => url.trim_end_matches('/') == cur,
            (None, None) => true,
            _ => false,
        };
        if keep {
            return;
        }
        if let Some(old) = slot.as_mut() {
            old.hand_over();
        }
        match wanted {
            None => *slot = None,
            Some(url) => {
                let weak = Rc::downgrade(this);
                let deliver: Deliver = Rc::new(move |msg: &JsValue| {
                    if let Some(session) = weak.upgrade() {
                        session.on_message(msg);
                    }
                });
                *slot = Some(WorkerTransport::new(&url, deliver));
            }
        }
    }

    fn on_tick(&self) {
        let outs = match self.host.try_borrow_mut() {
            Ok(mut host) => host.tick(js_sys::Date::now()),
            Err(_) => return,
        };
        self.post_all(&outs);
    }

    fn on_flush(self: &Rc<Session>) {
        let outs = match self.host.try_borrow_mut() {
            Ok(mut host) => host.flush(js_sys::Date::now()),
            Err(_) => return,
        };
        self.post_all(&outs);
        Session::arm_delta_flush(self);
    }

    fn on_delta_flush(self: &Rc<Session>) {
        let outs = match self.host.try_borrow_mut() {
            Ok(mut host) => host.delta_flush(js_sys::Date::now()),
            Err(_) => return,
        };
        self.post_all(&outs);
        Session::arm_delta_flush(self);
    }

    /// Runs the one-shot flush now if it is due already, else arms a timeout
    /// for the time the engine names, or clears it when none is due (a
    /// periodic flush ran first). Dropping a `Timeout` clears it; one dropped
    /// while its own callback runs is freed after it.
    fn arm_delta_flush(this: &Rc<Session>) {
        let due = match this.host.try_borrow() {
            Ok(host) => host.flush_due_ms(),
            Err(_) => return,
        };
        let now = js_sys::Date::now();
        if due.is_some_and(|at| at <= now) {
            // Due now (no one-shot flush within `deltaFlushMs`): a timer
            // would only add a trip through the event loop.
            if let Ok(mut timers) = this.timers.try_borrow_mut() {
                timers.delta_flush = None;
            }
            return this.on_delta_flush();
        }
        let Ok(mut timers) = this.timers.try_borrow_mut() else { return };
        let Some(at) = due else {
            timers.delta_flush = None;
            return;
        };
        if timers.delta_flush.as_ref().is_some_and(|t| t.0 == at) {
            return;
        }
        let wait = (at - now).clamp(0.0, i32::MAX as f64).round() as u32;
        let s = Rc::clone(this);
        timers.delta_flush = Some((at, Timeout::new(wait, move || s.on_delta_flush())));
    }

    /// (Re)creates each interval whose period differs from the config's.
    fn arm_timers(this: &Rc<Session>) {
        let (tick_ms, flush_ms) = match this.host.try_borrow() {
            Ok(host) => {
                (interval_ms(host.config().tick_ms), interval_ms(host.config().totals_flush_ms))
            }
            Err(_) => return,
        };
        let Ok(mut timers) = this.timers.try_borrow_mut() else { return };
        if timers.tick.as_ref().map(|t| t.0) != Some(tick_ms) {
            let s = Rc::clone(this);
            timers.tick = Some((tick_ms, Interval::new(tick_ms, move || s.on_tick())));
        }
        if timers.flush.as_ref().map(|t| t.0) != Some(flush_ms) {
            let s = Rc::clone(this);
            timers.flush = Some((flush_ms, Interval::new(flush_ms, move || s.on_flush())));
        }
    }

    fn stop(&self) {
        self.post_held_acks();
        self.acks.close();
        self.port.set_onmessage(None);
        // Dropping the transport closes its socket.
        let transport = self.transport.try_borrow_mut().map(|mut t| t.take());
        drop(transport);
        // Dropping the intervals clears them; dropping the closures breaks the
        // cycle that kept the session alive.
        let timers = self.timers.try_borrow_mut().map(|mut t| std::mem::take(&mut *t));
        drop(timers);
        let closure = self.on_message.try_borrow_mut().map(|mut c| c.take());
        drop(closure);
    }

    /// Posts every output, in order, after the engine call that made them
    /// returned; with the worker transport, executes its requests instead.
    fn post_all(&self, outs: &[Outbound]) {
        for out in outs {
            if let Some(req) = transport_request(out) {
                if let Ok(Some(transport)) = self.transport.try_borrow_mut().as_deref_mut() {
                    transport.execute(req);
                    continue;
                }
            }
            let posted = to_js(out);
            if matches!(out, Outbound::Ack(_)) {
                self.post_ack(posted);
                continue;
            }
            if matches!(out, Outbound::Stats(_)) {
                self.add_timings(&posted.message);
            }
            self.post_held_acks();
            self.post(&posted);
        }
    }

    /// Holds an `ack` until the messages queued before it have run, or posts
    /// it now (`held_acks`).
    fn post_ack(&self, ack: Posted) {
        let max = self.host.try_borrow().map_or(0, |host| host.config().max_held_acks);
        match self.acks.hold(ack, max) {
            Hold::Held => {}
            Hold::PostHeld => self.post_held_acks(),
            Hold::PostNow(ack) => {
                self.post_held_acks();
                self.post(&ack);
            }
        }
    }

    /// Posts the held acks, oldest first.
    fn post_held_acks(&self) {
        for ack in self.acks.take() {
            self.post(&ack);
        }
    }

    /// `stats.deliveryLatencyMs` and `stats.deltaApplyMs`, `{ p50, p95, p99,
    /// max, samples }` each, once there is a sample (the binding times them;
    /// see `Host`).
    fn add_timings(&self, stats: &JsValue) {
        let Ok(host) = self.host.try_borrow() else { return };
        for (name, summary) in
            [("deliveryLatencyMs", host.delivery_latency()), ("deltaApplyMs", host.delta_apply())]
        {
            let Some(t) = summary else { continue };
            let value = object(&[
                ("p50", t.p50.into()),
                ("p95", t.p95.into()),
                ("p99", t.p99.into()),
                ("max", t.max.into()),
                ("samples", (t.samples as f64).into()),
            ]);
            let _ = js_sys::Reflect::set(stats, &name.into(), &value);
        }
    }

    fn post(&self, posted: &Posted) {
        let result = match &posted.transfer {
            Some(buf) => self.port.post_message_with_transfer(&posted.message, &Array::of1(buf)),
            None => self.port.post_message(&posted.message),
        };
        if let Err(e) = result {
            let detail = e.as_string().unwrap_or_else(|| format!("{e:?}"));
            if self.port.post_message(&internal_error(&detail)).is_err() {
                web_sys::console::error_2(&"meterflow: postMessage failed:".into(), &e);
            }
        }
    }
}

/// The request behind an output the worker transport executes, if it is one.
fn transport_request(out: &Outbound) -> Option<TransportRequest> {
    Some(match out {
        Outbound::Stream(StreamRequest::Connect { url }) => {
            TransportRequest::Connect { url: url.clone() }
        }
        Outbound::Stream(StreamRequest::Send { text }) => {
            TransportRequest::Send { text: text.clone() }
        }
        Outbound::Stream(StreamRequest::Close { code, reason }) => {
            TransportRequest::Close { code: *code, reason: reason.clone() }
        }
        Outbound::Stream(StreamRequest::Fetch { request_id, path }) => {
            TransportRequest::Fetch { request_id: *request_id, path: path.clone() }
        }
        Outbound::Fetch(f) => TransportRequest::Catchup { path: f.path() },
        _ => return None,
    })
}

/// `configured`, or this worker's origin (`self.location.origin`) when empty.
fn feed_url(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    js_sys::global()
        .dyn_into::<web_sys::WorkerGlobalScope>()
        .map(|scope| scope.location().origin())
        .unwrap_or_default()
}

/// A timer period in whole ms, at least 1 (the config guarantees finite and > 0).
fn interval_ms(ms: f64) -> u32 {
    ms.round().clamp(1.0, i32::MAX as f64) as u32
}
