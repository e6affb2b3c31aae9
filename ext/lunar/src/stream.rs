//! A streamed response body: chunks Ruby writes after the head has gone.
//!
//! Memory per connection is capped in bytes (`stream_buffer`): a write that would queue
//! more than the cap waits until the client has read enough. The writer decides how long
//! it may wait (a worker thread may wait as long as the client is there; the reactor
//! thread only briefly, then the slow client is disconnected). `finished` tells a normal
//! end (Ruby closed the body) from the client leaving first.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::{mpsc, Notify};

use crate::disconnect::DisconnectWatch;

/// Shared by the Ruby writer and the hyper body.
pub struct StreamState {
    /// Bytes written by Ruby and not yet taken by hyper.
    pub queued: AtomicUsize,
    /// Signalled whenever hyper takes a chunk.
    pub room: Notify,
    pub finished: AtomicBool,
    pub aborted: AtomicBool,
}

impl StreamState {
    pub fn new() -> Arc<Self> {
        Arc::new(StreamState {
            queued: AtomicUsize::new(0),
            room: Notify::new(),
            finished: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
        })
    }
}

/// The hyper end of a streamed body.
pub struct ChunkStream {
    rx: mpsc::UnboundedReceiver<Bytes>,
    state: Arc<StreamState>,
    /// Armed until Ruby finishes the body; see `DisconnectWatch`.
    watch: Option<DisconnectWatch>,
}

impl ChunkStream {
    pub fn new(rx: mpsc::UnboundedReceiver<Bytes>, state: Arc<StreamState>) -> Self {
        ChunkStream { rx, state, watch: None }
    }

    pub fn watch(&mut self, watch: DisconnectWatch) {
        self.watch = Some(watch);
    }

    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match Pin::new(&mut self.rx).poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(data)) => {
                self.state.queued.fetch_sub(data.len(), Ordering::AcqRel);
                self.state.room.notify_waiters();
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(None) if self.state.aborted.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::Interrupted, "response aborted"))))
            }
            Poll::Ready(None) => Poll::Ready(None),
        }
    }
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        // Close first, then wake a writer waiting for room: it must see the channel closed
        // when it looks again, or it would wait for a notice that never comes.
        self.rx.close();
        self.state.room.notify_waiters();
        if let Some(watch) = self.watch.take() {
            if self.state.finished.load(Ordering::Acquire) {
                watch.disarm();
            } // else dropping it armed tells Ruby the client left mid-stream
        }
    }
}
