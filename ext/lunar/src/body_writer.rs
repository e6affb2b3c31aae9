//! `Lunar::Native::BodyWriter`: the Ruby end of a streamed response body.
//!
//! `write` copies the chunk into Rust and queues it for the connection; it is callable from
//! any Ruby thread. Past the connection's byte cap it waits, GVL released, for the client to
//! read: without limit when `max_wait` is nil (a worker thread), else at most `max_wait`
//! seconds, after which the client is cut off as too slow (the reactor thread must not stall
//! on one client). Once the client is gone, `write` returns false and drops the chunk; it
//! never raises.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use magnus::{Error, RString, Ruby};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::gvl::{check_interrupts, without_gvl};
use crate::stream::StreamState;

#[magnus::wrap(class = "Lunar::Native::BodyWriter", free_immediately, size)]
pub struct BodyWriter {
    tx: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
    state: Arc<StreamState>,
    cap: usize,
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
    pub fn new(tx: mpsc::UnboundedSender<Bytes>, state: Arc<StreamState>, cap: usize, runtime: Handle) -> Self {
        BodyWriter { tx: Mutex::new(Some(tx)), state, cap: cap.max(1), runtime }
    }

    /// What a `Topic` needs to write into this stream itself.
    pub fn parts(&self) -> Option<(mpsc::UnboundedSender<Bytes>, Arc<StreamState>, usize)> {
        self.sender().map(|tx| (tx, self.state.clone(), self.cap))
    }

    fn sender(&self) -> Option<mpsc::UnboundedSender<Bytes>> {
        self.tx.lock().ok().and_then(|g| g.clone())
    }

    fn has_room(&self, len: usize) -> bool {
        let queued = self.state.queued.load(Ordering::Acquire);
        queued == 0 || queued + len <= self.cap
    }

    /// Queues one chunk. `false` once the client is gone or the writer closed.
    fn write(ruby: &Ruby, rb_self: &Self, chunk: RString, max_wait: Option<f64>) -> Result<bool, Error> {
        let Some(tx) = rb_self.sender() else { return Ok(false) };
        let bytes = chunk.to_bytes();
        if bytes.is_empty() || tx.is_closed() {
            return Ok(!tx.is_closed());
        }
        if !rb_self.has_room(bytes.len()) {
            match rb_self.wait_for_room(ruby, &tx, bytes.len(), max_wait)? {
                Room::Ready => {}
                Room::Gone => return Ok(false),
                Room::Stalled => {
                    rb_self.abort();
                    return Ok(false);
                }
                Room::Interrupted => unreachable!("interrupts are raised by wait_for_room"),
            }
        }
        rb_self.state.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        Ok(tx.send(bytes).is_ok())
    }

    /// Waits, GVL released, until the client has read enough for `len` more bytes.
    fn wait_for_room(&self, ruby: &Ruby, tx: &mpsc::UnboundedSender<Bytes>, len: usize, max_wait: Option<f64>) -> Result<Room, Error> {
        let limit = max_wait.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
        loop {
            let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
            let cancel = Mutex::new(Some(cancel_tx));
            let mut cancel_rx = Some(cancel_rx);
            let outcome = without_gvl(
                ruby,
                || {
                    let cancel_rx = cancel_rx.take()?;
                    Some(self.runtime.block_on(self.room_or(tx, len, limit, cancel_rx)))
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

    async fn room_or(&self, tx: &mpsc::UnboundedSender<Bytes>, len: usize, limit: Option<tokio::time::Instant>, mut cancel: oneshot::Receiver<()>) -> Room {
        loop {
            let notified = self.state.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable(); // registered before the check: no wake-up is missed
            if tx.is_closed() {
                return Room::Gone;
            }
            if self.has_room(len) {
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

    /// Ends the body normally. Idempotent.
    fn close(&self) {
        if let Ok(mut guard) = self.tx.lock() {
            if guard.take().is_some() && !self.state.aborted.load(Ordering::Acquire) {
                self.state.finished.store(true, Ordering::Release);
            }
        }
    }

    /// Ends the body as failed: the connection is closed rather than the body completed,
    /// so the client can tell the response is incomplete.
    fn abort(&self) {
        self.state.aborted.store(true, Ordering::Release);
        if let Ok(mut guard) = self.tx.lock() {
            guard.take();
        }
    }

    fn is_closed(&self) -> bool {
        self.tx.lock().map(|g| g.as_ref().is_none_or(|tx| tx.is_closed())).unwrap_or(true)
    }

    /// Bytes queued and not yet taken by the connection.
    fn buffered(&self) -> usize {
        self.state.queued.load(Ordering::Acquire)
    }

    pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
        use magnus::{method, Module};
        let class = native.define_class("BodyWriter", ruby.class_object())?;
        class.define_method("write", method!(BodyWriter::write, 2))?;
        class.define_method("close", method!(BodyWriter::close, 0))?;
        class.define_method("abort", method!(BodyWriter::abort, 0))?;
        class.define_method("closed?", method!(BodyWriter::is_closed, 0))?;
        class.define_method("buffered", method!(BodyWriter::buffered, 0))?;
        Ok(())
    }
}
