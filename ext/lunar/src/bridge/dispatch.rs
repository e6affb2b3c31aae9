//! The dispatch queue: the one crossing from tokio to Ruby threads.
//!
//! I/O threads push plain-data events; Ruby threads pop them. A Ruby thread first drains
//! what is queued while it holds the GVL (`try_pop`) and only releases the GVL to wait
//! (`wait_pop`, parked among the `IdleWorkers`). Requests go through a bounded channel:
//! past the bound a request is answered 503 at once, so a flood never turns into unbounded
//! memory. Notices (a disconnect, a WebSocket message) go through an unbounded one: never
//! to be dropped, and bounded at their source. Both channels are only ever used without blocking (lock-free).
//!
//! In evented mode the EventMachine reactor cannot block in `wait_pop`; it watches an
//! eventfd instead (`ReactorWaker`), written once per burst of events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use tokio::sync::OwnedSemaphorePermit;

use crate::bridge::idle::IdleWorkers;
use crate::bridge::inbox::Inbox;
use crate::bridge::job::RequestJob;
use crate::bridge::reactor_waker::ReactorWaker;

/// What crosses from the I/O side to Ruby.
pub enum Event {
    Request(RequestJob),
    /// The connection of request `id` ended before its response did (client gone,
    /// inactivity timeout, server stop).
    Closed(u64),
    /// A message the client of request `id` (a native WebSocket) sent, for the app's block.
    /// The permit bounds how many of one socket's messages may wait for Ruby.
    Message {
        id: u64,
        data: Bytes,
        permit: OwnedSemaphorePermit,
    },
}

pub struct DispatchQueue {
    requests_tx: Sender<RequestJob>,
    requests_rx: Receiver<RequestJob>,
    /// Closed and Message events: never dropped, so unbounded (at most one Closed per
    /// request; Messages bounded per socket by their permits).
    notices_tx: Sender<Event>,
    notices_rx: Receiver<Event>,
    closed: AtomicBool,
    idle: IdleWorkers,
    waker: OnceLock<ReactorWaker>,
}

impl DispatchQueue {
    pub fn new(capacity: usize) -> Self {
        let (requests_tx, requests_rx) = bounded(capacity.max(1));
        let (notices_tx, notices_rx) = unbounded();
        DispatchQueue { requests_tx, requests_rx, notices_tx, notices_rx, closed: AtomicBool::new(false), idle: IdleWorkers::default(), waker: OnceLock::new() }
    }

    /// Queues a request; gives it back when the queue is full or closed.
    pub fn push_request(&self, job: RequestJob) -> Result<(), RequestJob> {
        self.requests_tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
        })?;
        self.wake();
        Ok(())
    }

    pub fn push_closed(&self, id: u64) {
        self.push_notice(Event::Closed(id));
    }

    pub fn push_message(&self, id: u64, data: Bytes, permit: OwnedSemaphorePermit) {
        self.push_notice(Event::Message { id, data, permit });
    }

    fn push_notice(&self, event: Event) {
        if self.notices_tx.send(event).is_ok() {
            self.wake();
        }
    }

    fn wake(&self) {
        self.idle.wake_one();
        self.wake_reactor();
    }

    /// Makes the reactor's eventfd readable (evented mode), e.g. for an `Inbox` token.
    pub fn wake_reactor(&self) {
        if let Some(w) = self.waker.get() {
            w.wake();
        }
    }

    /// Notices first: a disconnect may free a subscriber before a new request needs it.
    pub fn try_pop(&self) -> Option<Event> {
        if let Ok(notice) = self.notices_rx.try_recv() {
            return Some(notice);
        }
        self.requests_rx.try_recv().ok().map(Event::Request)
    }

    fn has_events(&self) -> bool {
        !self.notices_rx.is_empty() || !self.requests_rx.is_empty()
    }

    /// Blocks until an event arrives (`Some`), the queue closes, the thread's `inbox` gets a
    /// token, or `interrupted` is set and the thread unparked (Ruby's unblock function does
    /// both). Call only with the GVL released.
    pub fn wait_pop(&self, interrupted: &AtomicBool, inbox: Option<&Inbox>) -> Option<Event> {
        loop {
            if let Some(event) = self.try_pop() {
                return Some(event);
            }
            let stop = || self.is_closed() || interrupted.load(Ordering::Acquire) || inbox.is_some_and(Inbox::is_ready);
            if stop() {
                return None;
            }
            self.idle.park_unless(|| self.has_events() || stop());
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Wakes every waiting Ruby thread; later `wait_pop`s return at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle.wake_all();
        self.wake_reactor();
    }

    pub fn len(&self) -> usize {
        self.requests_rx.len()
    }

    /// The eventfd the reactor watches (created on first use).
    pub fn waker(&self) -> std::io::Result<&ReactorWaker> {
        if let Some(w) = self.waker.get() {
            return Ok(w);
        }
        let w = ReactorWaker::new()?;
        let _ = self.waker.set(w);
        Ok(self.waker.get().expect("waker was just set"))
    }
}
