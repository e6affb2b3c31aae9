//! `Inbox`: tokens for one Ruby thread, telling it a body it parked can go on.
//!
//! A streamed body that finds its client's buffer full parks (a Ruby Fiber, which only the
//! thread that made it may resume) instead of holding the thread; a tokio task watches the
//! stream and, once there is room (or the client is gone, or cut off as too slow), drops
//! the body's token here and wakes the owner: unparked if it waits for work (see
//! `DispatchQueue::wait_pop`), rung if it drives the runtime meanwhile (inline mode), or
//! through the reactor's eventfd in evented mode.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

use crate::bridge::notices::Notices;
use crate::sync::lock;

pub struct Inbox {
    tokens: Mutex<Vec<u64>>,
    ready: AtomicBool,
    owner: Thread,
    notices: Arc<Notices>,
}

impl Inbox {
    /// An inbox for the calling thread.
    pub fn new(notices: Arc<Notices>) -> Self {
        Inbox { tokens: Mutex::new(Vec::new()), ready: AtomicBool::new(false), owner: std::thread::current(), notices }
    }

    pub fn push(&self, token: u64) {
        lock(&self.tokens).push(token);
        self.ready.store(true, Ordering::SeqCst);
        self.owner.unpark();
        self.notices.wake_drivers();
        self.notices.wake_reactor();
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn take(&self) -> Vec<u64> {
        self.ready.store(false, Ordering::SeqCst);
        std::mem::take(&mut *lock(&self.tokens))
    }
}
