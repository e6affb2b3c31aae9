//! `Lunar::Native::BodyWriter`: the Ruby end of a streamed response body.
//!
//! Each `write` copies the chunk into Rust and queues it for the connection. The queue holds
//! at most `stream_buffer_chunks` chunks: when a slow reader lets it fill, `write` waits with
//! the GVL released (interruptibly) instead of buffering without limit. After the client is
//! gone, `write` returns false and drops the chunk; it never raises.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use magnus::{Error, RString, Ruby};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::gvl::{check_interrupts, without_gvl};

#[magnus::wrap(class = "Lunar::Native::BodyWriter", free_immediately, size)]
pub struct BodyWriter {
    tx: Mutex<Option<mpsc::Sender<Bytes>>>,
    aborted: Arc<AtomicBool>,
    runtime: Handle,
}

impl BodyWriter {
    pub fn new(tx: mpsc::Sender<Bytes>, aborted: Arc<AtomicBool>, runtime: Handle) -> Self {
        BodyWriter { tx: Mutex::new(Some(tx)), aborted, runtime }
    }

    fn sender(&self) -> Option<mpsc::Sender<Bytes>> {
        self.tx.lock().ok().and_then(|g| g.clone())
    }

    /// Queues one chunk. `false` once the client is gone or the writer closed.
    fn write(ruby: &Ruby, rb_self: &Self, chunk: RString) -> Result<bool, Error> {
        let Some(tx) = rb_self.sender() else { return Ok(false) };
        let bytes = chunk.to_bytes();
        if bytes.is_empty() {
            return Ok(!tx.is_closed());
        }
        match tx.try_send(bytes) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Full(bytes)) => rb_self.wait_and_send(ruby, tx, bytes),
        }
    }

    /// The queue is full: wait for room without the GVL. A Ruby interrupt cuts the wait
    /// short and raises (the chunk is then not sent).
    fn wait_and_send(&self, ruby: &Ruby, tx: mpsc::Sender<Bytes>, bytes: Bytes) -> Result<bool, Error> {
        loop {
            let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
            let cancel = Mutex::new(Some(cancel_tx));
            let mut wait = Some((tx.clone(), bytes.clone(), cancel_rx));
            let outcome = without_gvl(
                ruby,
                || {
                    let (tx, bytes, cancel_rx) = wait.take()?;
                    Some(self.runtime.block_on(async move {
                        tokio::select! {
                            permit = tx.reserve() => Some(permit.map(|p| p.send(bytes)).is_ok()),
                            _ = cancel_rx => None,
                        }
                    }))
                },
                || {
                    if let Some(c) = cancel.lock().ok().and_then(|mut c| c.take()) {
                        let _ = c.send(());
                    }
                },
            )?;
            match outcome.flatten() {
                Some(sent) => return Ok(sent),
                None => check_interrupts(ruby)?, // cancelled: act on the interrupt, then retry
            }
        }
    }

    /// Ends the body. Idempotent.
    fn close(&self) {
        if let Ok(mut guard) = self.tx.lock() {
            guard.take();
        }
    }

    /// Ends the body as failed: the connection is closed rather than the body completed,
    /// so the client can tell the response is incomplete.
    fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.close();
    }

    fn is_closed(&self) -> bool {
        self.tx.lock().map(|g| g.as_ref().is_none_or(|tx| tx.is_closed())).unwrap_or(true)
    }

    pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
        use magnus::{method, Module};
        let class = native.define_class("BodyWriter", ruby.class_object())?;
        class.define_method("write", method!(BodyWriter::write, 1))?;
        class.define_method("close", method!(BodyWriter::close, 0))?;
        class.define_method("abort", method!(BodyWriter::abort, 0))?;
        class.define_method("closed?", method!(BodyWriter::is_closed, 0))?;
        Ok(())
    }
}
