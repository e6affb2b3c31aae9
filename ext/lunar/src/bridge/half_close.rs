//! `HalfClose`: answering a client that shuts its write side after its request (`nc -N`,
//! socat, a scripted health check), as Thin answers an app that answers at once.
//!
//! hyper ends an HTTP/1 connection at the first end-of-stream it reads while a request is
//! under way, before the response is written. Its `half_close` option would answer, but
//! then hyper stops reading while a response is pending, and a held long-poll or a stream
//! whose client left would go unnoticed (no `async.close`, no `ClientDisconnected`) until
//! the inactivity timeout. So the transport holds such an end-of-stream back (`hold_eof`)
//! only while a complete answer is owed now: from the moment hyper hands a request to the
//! service (`owe`) until its response is written. It lets it through (`release`) as soon
//! as waiting could hide a departed client: the app answers later (async), answers with a
//! stream, or takes the connection (hijack, WebSocket), or a body being read stalls (it was
//! cut short).
//!
//! A real departure looks the same (a FIN), so a request whose client left is now run and
//! answered as under Thin and Puma, instead of being dropped unread from the queue. HTTP/2
//! is not concerned: a request ends with its stream, and the socket's end is the client leaving.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::task::{Context, Waker};

use crate::sync::lock;

/// A complete answer is owed now: an end-of-stream is held.
const OWED: u8 = 1;
/// The client's end-of-stream was read and is being held.
const EOF_HELD: u8 = 2;

#[derive(Debug, Default)]
pub struct HalfClose {
    state: AtomicU8,
    /// The connection task, waiting for its held end-of-stream.
    reader: Mutex<Option<Waker>>,
}

impl HalfClose {
    /// hyper handed an HTTP/1 request to the service: until it is answered, an
    /// end-of-stream is held.
    pub fn owe(&self) {
        self.state.fetch_or(OWED, Ordering::AcqRel);
    }

    /// Nothing complete is owed right now: a held end-of-stream goes through (the reader is
    /// woken to read it again).
    pub fn release(&self) {
        if self.state.load(Ordering::Acquire) & OWED == 0 {
            return; // the common case: one load
        }
        let before = self.state.fetch_and(!OWED, Ordering::AcqRel);
        if before & EOF_HELD != 0 {
            if let Some(reader) = lock(&self.reader).take() {
                reader.wake();
            }
        }
    }

    /// The transport read the client's end-of-stream: whether to hold it back (the caller
    /// then returns `Pending`; `cx` is woken on `release`).
    pub fn hold_eof(&self, cx: &mut Context<'_>) -> bool {
        if self.state.load(Ordering::Acquire) & OWED == 0 {
            return false;
        }
        *lock(&self.reader) = Some(cx.waker().clone());
        // Marked after the waker is in place, and OWED read in the same step: a release
        // before it is seen here, one after it finds the waker.
        self.state.fetch_or(EOF_HELD, Ordering::AcqRel) & OWED != 0
    }

    /// A body being read has no more bytes for now: with the end-of-stream held, it never
    /// will (hyper needs the end-of-stream to report the body cut short).
    pub fn body_stalled(&self) {
        if self.state.load(Ordering::Acquire) & EOF_HELD != 0 {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter::default());
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn an_eof_is_held_only_while_an_answer_is_owed() {
        let (woken, waker) = waker();
        let mut cx = Context::from_waker(&waker);
        let half_close = HalfClose::default();
        assert!(!half_close.hold_eof(&mut cx), "nothing owed: the end-of-stream goes through");
        half_close.owe();
        assert!(half_close.hold_eof(&mut cx), "owed: held");
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        half_close.release();
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "the reader is woken to see it");
        assert!(!half_close.hold_eof(&mut cx), "released: through");
        half_close.release();
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "woken once");
    }

    #[test]
    fn a_stalled_body_lets_a_held_eof_through() {
        let (woken, waker) = waker();
        let half_close = HalfClose::default();
        half_close.owe();
        half_close.body_stalled();
        assert!(half_close.hold_eof(&mut Context::from_waker(&waker)), "no end-of-stream yet: a stall is only a slow client");
        half_close.body_stalled();
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(!half_close.hold_eof(&mut Context::from_waker(&waker)));
    }
}
