//! `Outbox`: one connection's response bytes on their way to its client, across all of its
//! streams (HTTP/2 multiplexes many; HTTP/1 has one at a time), and whether the client
//! is taking them.
//!
//! - A budget: bytes queued for hyper by every response of the connection, bounded by
//!   `connection_buffer` on top of each response's own `stream_buffer`. A writer past it
//!   gets its chunk back and waits (parks) like a writer past its stream's cap; a complete
//!   body past it is not copied out of Ruby at all (Ruby streams it instead).
//! - Progress, for HTTP/2, where PINGs and WINDOW_UPDATEs keep a connection busy without
//!   moving a response byte: how many responses are under way, how many bodies handed
//!   hyper data it has not come back for (it waits for the client's flow-control window),
//!   and when a response last moved. `net::connection` closes a connection whose
//!   responses stall for `--timeout` and one that sends no complete request head for
//!   `--header-timeout`.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Outbox {
    queued: AtomicUsize,
    /// Signalled whenever hyper takes bytes of this connection.
    pub room: Notify,
    /// Responses under way: a request being answered, until its body is over.
    open: AtomicUsize,
    /// Bodies that handed hyper data and have not been polled since.
    waiting: AtomicUsize,
}

impl Outbox {
    /// Whether `len` more bytes fit; anything fits when nothing is queued (a chunk larger
    /// than the whole budget still goes, alone).
    pub fn has_room(&self, len: usize, limit: usize) -> bool {
        let queued = self.queued.load(Ordering::Acquire);
        queued == 0 || queued.saturating_add(len) <= limit
    }

    /// Counts `len` bytes as queued if they fit.
    pub fn try_reserve(&self, len: usize, limit: usize) -> bool {
        self.queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| (q == 0 || q.saturating_add(len) <= limit).then(|| q + len)).is_ok()
    }

    /// hyper took `len` bytes (or they were dropped): room for others.
    pub fn release(&self, len: usize) {
        if len > 0 {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.room.notify_waiters();
        }
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn response_began(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// Returns whether it was the last one under way.
    pub fn response_ended(&self) -> bool {
        self.open.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub fn open_responses(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// A body handed hyper data; `came_back` when hyper polls it again (or drops it).
    pub fn handed(&self) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
    }

    pub fn came_back(&self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    /// Bytes wait for the client: queued for hyper, or held by hyper for want of window.
    pub fn has_pending(&self) -> bool {
        self.queued() > 0 || self.waiting.load(Ordering::Acquire) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_takes_anything_alone_and_bounds_the_rest() {
        let outbox = Outbox::default();
        assert!(outbox.try_reserve(10_000, 100), "nothing queued: even past the budget");
        assert!(!outbox.try_reserve(1, 100));
        outbox.release(10_000);
        assert!(outbox.try_reserve(60, 100) && outbox.try_reserve(40, 100));
        assert!(!outbox.has_room(1, 100));
        outbox.release(40);
        assert!(outbox.has_room(40, 100) && !outbox.has_room(41, 100));
        assert_eq!(outbox.queued(), 60);
    }

    #[test]
    fn pending_means_queued_or_held_by_hyper() {
        let outbox = Outbox::default();
        assert!(!outbox.has_pending());
        outbox.handed();
        assert!(outbox.has_pending());
        outbox.came_back();
        outbox.try_reserve(1, 10);
        assert!(outbox.has_pending());
    }
}
