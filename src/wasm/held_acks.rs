//! Acks held while more page messages wait for the worker.
//!
//! A worker's `postMessage` that wakes a sleeping page costs the worker
//! ~70–130 µs on a VM (docs/PERFORMANCE.md, "Acks posted together"), as much
//! as applying ~1,500 binary readings. A page posting payloads back to back
//! paid it once per payload. So the session does not post an `ack` at once: it
//! holds it and sends itself one message through a private `MessageChannel`,
//! which the worker runs after the page messages already queued for it. The
//! held acks go out together, in order, when that message arrives, when
//! `maxHeldAcks` of them are held, or just before anything else the session
//! posts, so the page sees exactly the order of messages it saw before; only
//! the acks of a backlog arrive later, when the backlog has been applied.
//! `maxHeldAcks: 0` posts every ack at once.
//!
//! [`HeldAcks`] is the state; [`super::session`] posts.

use super::outbound::Posted;
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::*;
use web_sys::{MessageChannel, MessageEvent};

pub(super) type WakeHandler = Closure<dyn FnMut(MessageEvent)>;

/// The held acks and the channel that wakes the session to post them.
#[derive(Default)]
pub(super) struct HeldAcks {
    held: RefCell<Vec<Posted>>,
    /// A wake-up message is on its way.
    scheduled: Cell<bool>,
    /// `None` where `MessageChannel` is missing: acks are then posted at once.
    channel: Option<MessageChannel>,
    wake: RefCell<Option<WakeHandler>>,
}

/// What to do with an ack offered to [`HeldAcks::hold`].
pub(super) enum Hold {
    /// Held; a wake-up will post it.
    Held,
    /// Post every held ack now (the last one is this one).
    PostHeld,
    /// Not held: post the held acks, then this one, now.
    PostNow(Posted),
}

impl HeldAcks {
    /// A channel whose first port runs `wake` (`onmessage`).
    pub(super) fn new(wake: WakeHandler) -> HeldAcks {
        let Ok(channel) = MessageChannel::new() else { return HeldAcks::default() };
        channel.port1().set_onmessage(Some(wake.as_ref().unchecked_ref()));
        HeldAcks { channel: Some(channel), wake: RefCell::new(Some(wake)), ..HeldAcks::default() }
    }

    /// Holds `ack` while fewer than `max` are held and a wake-up can be sent.
    pub(super) fn hold(&self, ack: Posted, max: u32) -> Hold {
        let Some(channel) = &self.channel else { return Hold::PostNow(ack) };
        if max == 0 {
            return Hold::PostNow(ack);
        }
        let Ok(mut held) = self.held.try_borrow_mut() else { return Hold::PostNow(ack) };
        if !self.scheduled.get() {
            if channel.port2().post_message(&JsValue::UNDEFINED).is_err() {
                return Hold::PostNow(ack);
            }
            self.scheduled.set(true);
        }
        held.push(ack);
        if held.len() >= max as usize {
            Hold::PostHeld
        } else {
            Hold::Held
        }
    }

    /// The wake-up arrived: nothing is on its way any more.
    pub(super) fn woken(&self) {
        self.scheduled.set(false);
    }

    /// Takes the held acks, oldest first (none when the list is in use).
    pub(super) fn take(&self) -> Vec<Posted> {
        match self.held.try_borrow_mut() {
            Ok(mut held) if !held.is_empty() => std::mem::take(&mut *held),
            _ => Vec::new(),
        }
    }

    /// Closes the channel and drops the wake-up closure (it holds the session).
    pub(super) fn close(&self) {
        if let Some(channel) = &self.channel {
            channel.port1().set_onmessage(None);
            channel.port1().close();
            channel.port2().close();
        }
        let wake = self.wake.try_borrow_mut().map(|mut w| w.take());
        drop(wake);
    }
}
