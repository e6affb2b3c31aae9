//! `Lunar::Native::BodyWriter`: the Ruby end of a streamed response body.
//!
//! `write` copies the chunk into Rust and queues it for the connection; it is callable from
//! any Ruby thread. Past the connection's byte cap (see `stream::StreamSender`) it waits,
//! GVL released, for the client to read: without limit when `max_wait` is nil (a worker
//! thread), else at most `max_wait` seconds, after which the client is cut off as too slow
//! (the reactor thread must not stall on one client). Once the client is gone, `write`
//! returns false and drops the chunk; it never raises.

use std::sync::Mutex;
use std::time::Duration;

use magnus::{Error, RString, Ruby};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::ruby::gvl::{check_interrupts, without_gvl};
use crate::bridge::stream::{Queued, StreamSender};

#[magnus::wrap(class = "Lunar::Native::BodyWriter", free_immediately, size)]
pub struct BodyWriter {
    sender: Mutex<Option<StreamSender>>,
    runtime: Handle,
}

/// How a wait for room ended.
enum Room {
    Ready,
    Gone,
    Stalled,
    Interrupted,
}

impl BodyWriter {
    pub fn new(sender: StreamSender, runtime: Handle) -> Self {
        BodyWriter { sender: Mutex::new(Some(sender)), runtime }
    }

    /// A copy of the sender, for a `Topic` to write into this stream itself.
    pub fn sender(&self) -> Option<StreamSender> {
        self.sender.lock().ok().and_then(|g| g.clone())
    }

    /// Queues one chunk. `false` once the client is gone or the writer closed.
    fn write(ruby: &Ruby, rb_self: &Self, chunk: RString, max_wait: Option<f64>) -> Result<bool, Error> {
        let bytes = chunk.to_bytes();
        // The common case under the lock, without cloning the sender for every chunk.
        let queued = match rb_self.sender.lock().as_deref() {
            Ok(Some(sender)) if bytes.is_empty() => return Ok(!sender.is_closed()),
            Ok(Some(sender)) => sender.try_send(bytes),
            _ => return Ok(false),
        };
        let mut bytes = match queued {
            Queued::Sent => return Ok(true),
            Queued::Gone => return Ok(false),
            Queued::Full(bytes) => bytes,
        };
        // No room: wait with a copy of the sender, so `close` from another thread is not
        // blocked behind this wait.
        let Some(sender) = rb_self.sender() else { return Ok(false) };
        loop {
            match rb_self.wait_for_room(ruby, &sender, bytes.len(), max_wait)? {
                Room::Ready => {}
                Room::Gone => return Ok(false),
                Room::Stalled => {
                    sender.abort();
                    return Ok(false);
                }
                Room::Interrupted => unreachable!("interrupts are raised by wait_for_room"),
            }
            bytes = match sender.try_send(bytes) {
                Queued::Sent => return Ok(true),
                Queued::Gone => return Ok(false),
                Queued::Full(bytes) => bytes,
            };
        }
    }

    /// Waits, GVL released, until the client has read enough for `len` more bytes.
    fn wait_for_room(&self, ruby: &Ruby, sender: &StreamSender, len: usize, max_wait: Option<f64>) -> Result<Room, Error> {
        let limit = max_wait.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
        loop {
            let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
            let cancel = Mutex::new(Some(cancel_tx));
            let mut cancel_rx = Some(cancel_rx);
            let outcome = without_gvl(
                ruby,
                || {
                    let cancel_rx = cancel_rx.take()?;
                    Some(self.runtime.block_on(room_or(sender, len, limit, cancel_rx)))
                },
                || {
                    if let Some(c) = cancel.lock().ok().and_then(|mut c| c.take()) {
                        let _ = c.send(());
                    }
                },
            )?;
            match outcome {
                Some(Room::Interrupted) | None => check_interrupts(ruby)?, // act on it, then retry
                Some(room) => return Ok(room),
            }
        }
    }

    /// Ends the body normally. Idempotent.
    fn close(&self) {
        if let Some(sender) = self.sender.lock().ok().and_then(|mut g| g.take()) {
            sender.finish();
        }
    }

    /// Ends the body as failed: the connection is closed rather than the body completed,
    /// so the client can tell the response is incomplete.
    fn abort(&self) {
        if let Some(sender) = self.sender.lock().ok().and_then(|mut g| g.take()) {
            sender.abort();
        }
    }

    fn is_closed(&self) -> bool {
        self.sender.lock().map(|s| s.as_ref().is_none_or(StreamSender::is_closed)).unwrap_or(true)
    }

    pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
        use magnus::{method, Module};
        let class = native.define_class("BodyWriter", ruby.class_object())?;
        class.define_method("write", method!(BodyWriter::write, 2))?;
        class.define_method("close", method!(BodyWriter::close, 0))?;
        class.define_method("abort", method!(BodyWriter::abort, 0))?;
        class.define_method("closed?", method!(BodyWriter::is_closed, 0))?;
        Ok(())
    }
}

async fn room_or(sender: &StreamSender, len: usize, limit: Option<tokio::time::Instant>, mut cancel: oneshot::Receiver<()>) -> Room {
    loop {
        let notified = sender.state.room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable(); // registered before the check: no wake-up is missed
        if sender.is_closed() {
            return Room::Gone;
        }
        if sender.has_room(len) {
            return Room::Ready;
        }
        let deadline = async {
            match limit {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = notified => {}
            _ = deadline => return Room::Stalled,
            _ = &mut cancel => return Room::Interrupted,
        }
    }
}
