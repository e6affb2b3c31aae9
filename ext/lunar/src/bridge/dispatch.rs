//! The dispatch queue: the one crossing from tokio to Ruby threads.
//!
//! I/O threads push plain-data events; Ruby threads pop them. A Ruby thread first drains
//! what is queued while it holds the GVL (`try_pop`) and only releases the GVL to wait
//! (`wait_pop`, parked among the idle workers). Requests go through a bounded channel: past
//! the bound a request is answered 503 at once, so a flood never turns into unbounded
//! memory. Everything else travels as `Notices`, which also ring the doorbell. Both
//! channels are only ever used without blocking (lock-free).
//!
//! In evented mode the EventMachine reactor cannot block in `wait_pop`; it watches an
//! eventfd instead (`ReactorWaker`, through `Notices`), written once per burst of events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use tokio::sync::OwnedSemaphorePermit;

use crate::bridge::inbox::Inbox;
use crate::bridge::job::RequestJob;
use crate::bridge::notices::{Notice, Notices};

/// What crosses from the I/O side to Ruby.
pub enum Event {
    Request(RequestJob),
    /// The connection of request `id` ended before its response did.
    Closed(u64),
    /// A message from the client of request `id` (a native WebSocket).
    Message {
        id: u64,
        data: Bytes,
        permit: OwnedSemaphorePermit,
    },
}

impl From<Notice> for Event {
    fn from(notice: Notice) -> Event {
        match notice {
            Notice::Closed(id) => Event::Closed(id),
            Notice::Message { id, data, permit } => Event::Message { id, data, permit },
        }
    }
}

pub struct DispatchQueue {
    requests_tx: Sender<RequestJob>,
    requests_rx: Receiver<RequestJob>,
    notices: Arc<Notices>,
    closed: AtomicBool,
}

impl DispatchQueue {
    /// `inline`: its Ruby threads wait driving the runtime (`--io-threads 0`), not parked.
    pub fn new(capacity: usize, inline: bool) -> Self {
        let (requests_tx, requests_rx) = bounded(capacity.max(1));
        DispatchQueue { requests_tx, requests_rx, notices: Arc::new(Notices::new(inline)), closed: AtomicBool::new(false) }
    }

    /// Queues a request; gives it back when the queue is full or closed.
    pub fn push_request(&self, job: RequestJob) -> Result<(), RequestJob> {
        self.requests_tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
        })?;
        self.notices.ring();
        Ok(())
    }

    /// The notices side, for what must reach Ruby later (a disconnect watch, an inbox).
    pub fn notices(&self) -> &Arc<Notices> {
        &self.notices
    }

    /// Notices first: a disconnect may free a subscriber before a new request needs it.
    pub fn try_pop(&self) -> Option<Event> {
        if let Some(notice) = self.notices.try_pop() {
            return Some(notice.into());
        }
        self.requests_rx.try_recv().ok().map(Event::Request)
    }

    fn has_events(&self) -> bool {
        !self.notices.is_empty() || !self.requests_rx.is_empty()
    }

    /// Blocks until an event arrives (`Some`), the queue closes, the thread's `inbox` gets a
    /// token, or `interrupted` is set and the thread unparked (Ruby's unblock function does
    /// both). Call only with the GVL released.
    pub fn wait_pop(&self, interrupted: &AtomicBool, inbox: Option<&Inbox>) -> Option<Event> {
        let event = loop {
            if let Some(event) = self.try_pop() {
                break Some(event);
            }
            let stop = || self.is_closed() || interrupted.load(Ordering::Acquire) || inbox.is_some_and(Inbox::is_ready);
            if stop() {
                break None;
            }
            self.notices.park_unless(|| self.has_events() || stop());
        };
        // Whatever is left goes to another worker: pushes made while this one was waking up
        // woke nobody (`IdleWorkers::wake_one`).
        if self.has_events() {
            self.notices.wake_worker();
        }
        event
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Wakes every waiting Ruby thread; later `wait_pop`s return at once.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notices.ring_all();
    }

    /// Requests waiting for a Ruby thread.
    pub fn len(&self) -> usize {
        self.requests_rx.len()
    }

    /// Every event waiting: requests and notices.
    pub fn events(&self) -> usize {
        self.requests_rx.len() + self.notices.len()
    }

    /// Ruby threads parked, waiting for a request: none means every one is busy.
    pub fn idle_workers(&self) -> usize {
        self.notices.idle_workers()
    }
}
