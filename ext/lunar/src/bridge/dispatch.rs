//! The dispatch queue: the one crossing from tokio to Ruby threads.
//!
//! I/O threads push plain-data events; Ruby threads pop them. A Ruby thread first drains
//! what is queued while it holds the GVL (`try_pop`) and only releases the GVL to wait
//! (`wait_pop`). Requests go through a bounded channel: past the bound a request is
//! answered 503 at once, so a flood never turns into unbounded memory. Disconnect notices
//! go through an unbounded one: at most one per request, and never to be dropped.
//!
//! In evented mode the EventMachine reactor cannot block in `wait_pop`; it watches an
//! eventfd instead (`Waker`), written once per burst of events.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender, TrySendError};

use crate::bridge::job::RequestJob;

/// What crosses from the I/O side to Ruby.
pub enum Event {
    Request(RequestJob),
    /// The connection of request `id` ended before its response did (client gone,
    /// inactivity timeout, server stop).
    Closed(u64),
}

pub struct DispatchQueue {
    requests_tx: Sender<RequestJob>,
    requests_rx: Receiver<RequestJob>,
    closed_tx: Sender<u64>,
    closed_rx: Receiver<u64>,
    /// Dropped by `close`, which wakes every waiter at once (a disconnected channel).
    closing_tx: Mutex<Option<Sender<()>>>,
    closing_rx: Receiver<()>,
    waker: OnceLock<Waker>,
}

impl DispatchQueue {
    pub fn new(capacity: usize) -> Self {
        let (requests_tx, requests_rx) = bounded(capacity.max(1));
        let (closed_tx, closed_rx) = unbounded();
        let (closing_tx, closing_rx) = bounded(0);
        DispatchQueue {
            requests_tx,
            requests_rx,
            closed_tx,
            closed_rx,
            closing_tx: Mutex::new(Some(closing_tx)),
            closing_rx,
            waker: OnceLock::new(),
        }
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
        if self.closed_tx.send(id).is_ok() {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(w) = self.waker.get() {
            w.wake();
        }
    }

    /// Disconnect notices first: they may free a subscriber before a new request needs it.
    pub fn try_pop(&self) -> Option<Event> {
        if let Ok(id) = self.closed_rx.try_recv() {
            return Some(Event::Closed(id));
        }
        self.requests_rx.try_recv().ok().map(Event::Request)
    }

    /// Blocks until an event arrives, the queue closes, or `wake` fires (an interrupt).
    /// Call only with the GVL released.
    pub fn wait_pop(&self, wake: &Receiver<()>) -> Option<Event> {
        select! {
            recv(self.closed_rx) -> id => id.ok().map(Event::Closed),
            recv(self.requests_rx) -> job => job.ok().map(Event::Request),
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
        self.wake();
    }

    pub fn len(&self) -> usize {
        self.requests_rx.len()
    }

    /// The eventfd the reactor watches (created on first use).
    pub fn waker(&self) -> std::io::Result<&Waker> {
        if let Some(w) = self.waker.get() {
            return Ok(w);
        }
        let w = Waker::new()?;
        let _ = self.waker.set(w);
        Ok(self.waker.get().expect("waker was just set"))
    }
}

/// An eventfd that becomes readable when events are queued. Written at most once until the
/// reader re-arms it, so a burst of a thousand requests costs one write and one wake-up.
pub struct Waker {
    fd: OwnedFd,
    armed: AtomicBool,
}

impl Waker {
    fn new() -> std::io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before it is owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Waker { fd: unsafe { OwnedFd::from_raw_fd(fd) }, armed: AtomicBool::new(true) })
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    fn wake(&self) {
        if self.armed.swap(false, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
            unsafe { libc::write(self.fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
        }
    }

    /// Called by the reader before it drains the queue: anything queued from now on
    /// writes the eventfd again.
    pub fn rearm(&self) {
        let mut counter: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd.
        unsafe { libc::read(self.fd.as_raw_fd(), &mut counter as *mut u64 as *mut libc::c_void, 8) };
        self.armed.store(true, Ordering::Release);
    }
}
