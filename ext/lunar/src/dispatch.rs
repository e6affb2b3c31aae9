//! The dispatch queue: the one crossing from tokio to Ruby threads.
//!
//! I/O threads push plain-data events; Ruby threads pop them. A Ruby thread first drains
//! what is queued while it holds the GVL (`try_pop`) and only releases the GVL to wait
//! (`wait_pop`). The queue is bounded: past the bound a request is answered 503 at once,
//! so a flood never turns into unbounded memory.

use std::sync::Mutex;

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};

use crate::job::RequestJob;

/// What crosses from the I/O side to Ruby.
pub enum Event {
    Request(RequestJob),
}

pub struct DispatchQueue {
    tx: Sender<Event>,
    rx: Receiver<Event>,
    /// Dropped by `close`, which wakes every waiter at once (a disconnected channel).
    closing_tx: Mutex<Option<Sender<()>>>,
    closing_rx: Receiver<()>,
}

impl DispatchQueue {
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = bounded(capacity.max(1));
        let (closing_tx, closing_rx) = bounded(0);
        DispatchQueue { tx, rx, closing_tx: Mutex::new(Some(closing_tx)), closing_rx }
    }

    /// Queues an event; gives it back when the queue is full or closed.
    pub fn push(&self, event: Event) -> Result<(), Event> {
        self.tx.try_send(event).map_err(|e| match e {
            TrySendError::Full(ev) | TrySendError::Disconnected(ev) => ev,
        })
    }

    pub fn try_pop(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Blocks until an event arrives, the queue closes, or `wake` fires (an interrupt).
    /// Call only with the GVL released.
    pub fn wait_pop(&self, wake: &Receiver<()>) -> Option<Event> {
        select! {
            recv(self.rx) -> ev => ev.ok(),
            recv(self.closing_rx) -> _ => None,
            recv(wake) -> _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closing_tx.lock().map(|g| g.is_none()).unwrap_or(true)
    }

    /// Wakes every waiting Ruby thread; later `wait_pop`s return at once.
    pub fn close(&self) {
        if let Ok(mut guard) = self.closing_tx.lock() {
            guard.take();
        }
    }

    pub fn len(&self) -> usize {
        self.rx.len()
    }
}
