//! `Notices`: what travels back to Ruby besides requests, and the doorbell that wakes a
//! Ruby thread for any event.
//!
//! A notice says a connection ended before its response did (`Closed`: `async.close` and a
//! failed body), or carries a message a native WebSocket's client sent. Notices are never
//! dropped, so their channel is unbounded; they are bounded at their source (one `Closed`
//! per request, WebSocket messages by permits). Whoever queues an event rings the doorbell:
//! one parked Ruby worker is unparked (`IdleWorkers`; inline, one driving the runtime is
//! rung instead: `IdleDrivers`), and in evented mode the eventfd the EventMachine reactor
//! watches becomes readable (`ReactorWaker`).
//!
//! This is the part of the crossing that the far ends of a request (its disconnect watch,
//! a thread's inbox) hold on to; the dispatch queue owns it and adds the requests.

use std::sync::OnceLock;

use bytes::Bytes;
use crossbeam_channel::{unbounded, Receiver, Sender};
use tokio::sync::OwnedSemaphorePermit;

use crate::bridge::idle::{IdleDrivers, IdleWorkers};
use crate::bridge::reactor_waker::ReactorWaker;

pub enum Notice {
    /// The connection of request `id` ended before its response did (client gone,
    /// inactivity timeout, server stop).
    Closed(u64),
    /// A message the client of request `id` (a native WebSocket) sent, for the app's block.
    /// The permit bounds how many of one socket's messages may wait for Ruby.
    Message { id: u64, data: Bytes, permit: OwnedSemaphorePermit },
}

pub struct Notices {
    tx: Sender<Notice>,
    rx: Receiver<Notice>,
    idle: IdleWorkers,
    /// Inline mode's idle workers (they drive the runtime while they wait).
    drivers: IdleDrivers,
    /// Which of the two a Ruby thread waits as: driving (inline) or parked.
    inline: bool,
    reactor: OnceLock<ReactorWaker>,
}

impl Notices {
    /// `inline`: Ruby threads wait for work driving the runtime (`--io-threads 0`).
    pub fn new(inline: bool) -> Self {
        let (tx, rx) = unbounded();
        Notices { tx, rx, idle: IdleWorkers::default(), drivers: IdleDrivers::default(), inline, reactor: OnceLock::new() }
    }

    pub fn push(&self, notice: Notice) {
        if self.tx.send(notice).is_ok() {
            self.ring();
        }
    }

    pub fn try_pop(&self) -> Option<Notice> {
        self.rx.try_recv().ok()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Wakes one parked Ruby worker (or, inline, one driving the runtime), and the reactor.
    /// Call it after publishing the work.
    pub fn ring(&self) {
        // Each mode's waiters only: this runs for every request.
        if self.inline {
            self.drivers.ring();
        } else {
            self.idle.wake_one();
        }
        self.wake_reactor();
    }

    /// Wakes one parked Ruby worker only: for work a worker leaves queued, which already
    /// rang the reactor when it was pushed.
    pub fn wake_worker(&self) {
        self.idle.wake_one();
    }

    /// Wakes every parked or driving worker, and the reactor (the queue closed).
    pub fn ring_all(&self) {
        self.idle.wake_all();
        self.drivers.ring_all();
        self.wake_reactor();
    }

    /// Makes the reactor's eventfd readable (evented mode), e.g. for an `Inbox` token.
    pub fn wake_reactor(&self) {
        if let Some(w) = self.reactor.get() {
            w.wake();
        }
    }

    /// Ruby workers parked or driving the runtime, waiting for work.
    pub fn idle_workers(&self) -> usize {
        self.idle.parked() + self.drivers.waiting()
    }

    /// Wakes every thread driving the runtime for want of work (one of them has a token in
    /// its `Inbox`, and a bell wakes whichever).
    pub fn wake_drivers(&self) {
        if self.inline {
            self.drivers.ring_all();
        }
    }

    /// Inline mode's idle workers, for `Driver::drive_until`.
    pub fn drivers(&self) -> &IdleDrivers {
        &self.drivers
    }

    /// Parks the calling worker until rung (see `IdleWorkers::park_unless`).
    pub fn park_unless(&self, ready: impl Fn() -> bool) {
        self.idle.park_unless(ready);
    }

    /// The eventfd the reactor watches (created on first use).
    pub fn reactor_waker(&self) -> std::io::Result<&ReactorWaker> {
        if let Some(w) = self.reactor.get() {
            return Ok(w);
        }
        let _ = self.reactor.set(ReactorWaker::new()?);
        Ok(self.reactor.get().expect("the waker was just set"))
    }
}
