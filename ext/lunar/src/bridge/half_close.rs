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
//! stream (whose `DisconnectWatch` is armed: `ChunkStream::watch`), or takes the connection
//! (hijack, WebSocket), or a body being read stalls (it was cut short).
//!
//! This is the state alone, one byte beside the connection's other flags; the connection
//! (`ConnectionInfo::release_eof`) wakes its task, whose waker it already keeps, to read
//! the end-of-stream again.
//!
//! A real departure looks the same (a FIN), so a request whose client left is now run and
//! answered as under Thin and Puma, instead of being dropped unrun from the queue. HTTP/2
//! is not concerned: a request ends with its stream, and the socket's end is the client leaving.

use std::sync::atomic::{AtomicU8, Ordering};

/// A complete answer is owed now: an end-of-stream is held.
const OWED: u8 = 1;
/// The client's end-of-stream was read and is being held.
const EOF_HELD: u8 = 2;

#[derive(Debug, Default)]
pub struct HalfClose(AtomicU8);

impl HalfClose {
    /// hyper handed an HTTP/1 request to the service: until it is answered, an
    /// end-of-stream is held.
    pub fn owe(&self) {
        self.0.fetch_or(OWED, Ordering::AcqRel);
    }

    /// Nothing complete is owed right now. True when an end-of-stream was being held: the
    /// reader must be woken to read it again.
    pub fn release(&self) -> bool {
        if self.0.load(Ordering::Acquire) & OWED == 0 {
            return false; // the common case: one load
        }
        self.0.fetch_and(!OWED, Ordering::AcqRel) & EOF_HELD != 0
    }

    /// The transport read the client's end-of-stream: whether to hold it back. The caller
    /// has made sure first that a `release` from now on will wake it.
    pub fn hold_eof(&self) -> bool {
        if self.0.load(Ordering::Acquire) & OWED == 0 {
            return false;
        }
        // OWED read in the same step as EOF_HELD is set: a release before it is seen here,
        // one after it sees EOF_HELD and wakes the reader.
        self.0.fetch_or(EOF_HELD, Ordering::AcqRel) & OWED != 0
    }

    pub fn eof_held(&self) -> bool {
        self.0.load(Ordering::Acquire) & EOF_HELD != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eof_is_held_only_while_an_answer_is_owed() {
        let half_close = HalfClose::default();
        assert!(!half_close.hold_eof(), "nothing owed: the end-of-stream goes through");
        assert!(!half_close.release(), "nothing held: no one to wake");
        half_close.owe();
        assert!(!half_close.eof_held());
        assert!(half_close.hold_eof(), "owed: held");
        assert!(half_close.eof_held());
        assert!(half_close.release(), "held: the reader is woken to see it");
        assert!(!half_close.hold_eof(), "released: through");
        assert!(!half_close.release(), "woken once");
    }

    #[test]
    fn a_release_before_the_eof_lets_it_through() {
        let half_close = HalfClose::default();
        half_close.owe();
        assert!(!half_close.release(), "no end-of-stream yet: no one to wake");
        assert!(!half_close.hold_eof());
    }
}
