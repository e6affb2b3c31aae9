//! `Lunar::Native::BodyWriter`: the Ruby end of a streamed response body.
//!
//! `write` takes the chunk's bytes (lent if the String is large and frozen, else copied:
//! see `lent`) and queues them for the connection; it is callable from
//! any Ruby thread. Past the connection's byte cap (see `stream::StreamSender`) it waits,
//! GVL released, for the client to read: without limit when `max_wait` is nil (a worker
//! thread), else at most `max_wait` seconds, after which the client is cut off as too slow
//! (the reactor thread must not stall on one client). Once the client is gone, `write`
//! returns false and drops the chunk. It raises only what the thread was interrupted with
//! while it waited (`Thread#kill`, a signal's exception, `Timeout`).
//!
//! A body that may park (Ruby's `Lunar::Parking`) uses `try_write` and `park` instead: the
//! waiting is a tokio task's, and its thread serves other requests meanwhile.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use magnus::{Error, RString, Ruby};

use crate::bridge::stream::{Queued, Room, StreamSender};
use crate::net::driver::Driver;
use crate::ruby::gvl::wait_on_io;
use crate::ruby::inbox::RubyInbox;
use crate::ruby::lent;
use crate::sync::lock;

/// The moment `seconds` from now; `None` (no deadline) when that is past what a clock can
/// hold. Negative and NaN mean now.
fn deadline_after(seconds: f64) -> Option<tokio::time::Instant> {
    let wait = Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX);
    tokio::time::Instant::now().checked_add(wait)
}

#[magnus::wrap(class = "Lunar::Native::BodyWriter", free_immediately, size)]
pub struct BodyWriter {
    sender: Mutex<Option<StreamSender>>,
    runtime: Driver,
}

impl BodyWriter {
    pub fn new(sender: StreamSender, runtime: Driver) -> Self {
        BodyWriter { sender: Mutex::new(Some(sender)), runtime }
    }

    /// A copy of the sender, for a `Topic` to write into this stream itself.
    pub fn sender(&self) -> Option<StreamSender> {
        lock(&self.sender).clone()
    }

    /// Offers one chunk without waiting. The common case runs under the lock, without
    /// cloning the sender for every chunk.
    fn offer(&self, bytes: Bytes) -> Queued {
        match lock(&self.sender).as_ref() {
            Some(sender) if bytes.is_empty() => {
                if sender.is_closed() {
                    Queued::Gone
                } else {
                    Queued::Sent
                }
            }
            Some(sender) => sender.try_send(bytes),
            _ => Queued::Gone,
        }
    }

    /// Queues one chunk. `false` once the client is gone or the writer closed. Past the byte
    /// cap it waits, GVL released, for the client to read (at most `max_wait` seconds).
    fn write(ruby: &Ruby, rb_self: &Self, chunk: RString, max_wait: Option<f64>) -> Result<bool, Error> {
        let mut bytes = match rb_self.offer(lent::chunk_bytes(ruby, chunk)) {
            Queued::Sent => return Ok(true),
            Queued::Gone => return Ok(false),
            Queued::Full(bytes) => bytes,
        };
        // No room: wait with a copy of the sender, so `close` from another thread is not
        // blocked behind this wait.
        let Some(sender) = rb_self.sender() else { return Ok(false) };
        let deadline = max_wait.and_then(deadline_after);
        loop {
            match rb_self.wait_for_room(ruby, &sender, bytes.len(), deadline)? {
                Room::Ready => {}
                Room::Gone => return Ok(false),
                Room::Stalled => {
                    sender.cut();
                    return Ok(false);
                }
            }
            bytes = match sender.try_send(bytes) {
                Queued::Sent => return Ok(true),
                Queued::Gone => return Ok(false),
                Queued::Full(bytes) => bytes,
            };
        }
    }

    /// Queues one chunk if it fits: `true` sent, `false` the client is gone, `nil` full (the
    /// chunk was not taken; see `park`).
    fn try_write(ruby: &Ruby, rb_self: &Self, chunk: RString) -> Option<bool> {
        match rb_self.offer(lent::chunk_bytes(ruby, chunk)) {
            Queued::Sent => Some(true),
            Queued::Gone => Some(false),
            Queued::Full(_) => None,
        }
    }

    /// After a full `try_write`: puts `token` in `inbox` once `len` bytes fit, the client is
    /// gone, or it read nothing for `max_wait` seconds, in which case it is cut off first.
    /// Returns at once; the waiting is a tokio task's.
    fn park(&self, inbox: &RubyInbox, token: u64, len: usize, max_wait: f64) {
        let inbox = inbox.shared();
        let Some(sender) = self.sender() else { return inbox.push(token) };
        let deadline = deadline_after(max_wait);
        self.runtime.handle().spawn(async move {
            if let Room::Stalled = sender.room(len, deadline).await {
                sender.cut();
            }
            inbox.push(token);
        });
    }

    /// Waits, GVL released, until the client has read enough for `len` more bytes (a
    /// stopped server has no room). Interrupts (`Thread#kill`, a signal) are acted on and
    /// the wait resumes.
    fn wait_for_room(&self, ruby: &Ruby, sender: &StreamSender, len: usize, deadline: Option<tokio::time::Instant>) -> Result<Room, Error> {
        Ok(wait_on_io(ruby, &self.runtime, sender.room(len, deadline))?.unwrap_or(Room::Gone))
    }

    /// Ends the body normally. Idempotent.
    fn close(&self) {
        if let Some(sender) = lock(&self.sender).take() {
            sender.finish();
        }
    }

    /// Ends the body as failed: what was written still goes out, then the connection
    /// closes rather than the body completing, so the client can tell it is incomplete.
    fn abort(&self) {
        if let Some(sender) = lock(&self.sender).take() {
            sender.fail();
        }
    }

    fn is_closed(&self) -> bool {
        lock(&self.sender).as_ref().is_none_or(StreamSender::is_closed)
    }

    pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
        use magnus::{method, Module};
        let class = native.define_class("BodyWriter", ruby.class_object())?;
        class.define_method("write", method!(BodyWriter::write, 2))?;
        class.define_method("try_write", method!(BodyWriter::try_write, 1))?;
        class.define_method("park", method!(BodyWriter::park, 4))?;
        class.define_method("close", method!(BodyWriter::close, 0))?;
        class.define_method("abort", method!(BodyWriter::abort, 0))?;
        class.define_method("closed?", method!(BodyWriter::is_closed, 0))?;
        Ok(())
    }
}
