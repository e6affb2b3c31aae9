//! A streamed response body: chunks Ruby writes after the head has gone.
//!
//! Memory per connection is capped in bytes (`stream_buffer`), by `StreamSender`: a chunk
//! that does not fit comes back to the writer, which either waits for the client to read
//! (a worker thread may wait as long as the client is there; the reactor thread only
//! briefly) or cuts the client off (`cut`, which closes the connection). `finished`
//! tells a normal end (Ruby closed the body) from the client leaving first.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::disconnect::DisconnectWatch;

/// Shared by the Ruby writer and the connection writing the body.
pub struct StreamState {
    /// Bytes written by Ruby and not yet taken by the connection.
    pub queued: AtomicUsize,
    /// Signalled whenever the connection takes a chunk.
    pub room: Notify,
    pub finished: AtomicBool,
    /// The body failed (the app raised, or the client was cut off): no more chunks are
    /// taken, and the response ends as an error instead of completing.
    pub failed: AtomicBool,
}

impl StreamState {
    pub fn new() -> Arc<Self> {
        Arc::new(StreamState { queued: AtomicUsize::new(0), room: Notify::new(), finished: AtomicBool::new(false), failed: AtomicBool::new(false) })
    }
}

/// How a wait for room in a stream ended.
pub enum Room {
    /// `len` more bytes fit now.
    Ready,
    /// The client is gone or the stream ended.
    Gone,
    /// Nothing was read before the deadline.
    Stalled,
}

/// What happened to a chunk offered to a stream.
pub enum Queued {
    Sent,
    /// No room: the client is more than the buffer cap behind. The chunk comes back.
    Full(Bytes),
    /// The client is gone or the stream ended.
    Gone,
}

/// The writing end of a streamed body, for any Ruby thread (`BodyWriter`) and for a
/// `Topic`. The byte cap and the cut-off live here, so every writer obeys the same rules.
#[derive(Clone)]
pub struct StreamSender {
    tx: mpsc::UnboundedSender<Bytes>,
    pub state: Arc<StreamState>,
    cap: usize,
    connection: Arc<ConnectionInfo>,
}

impl StreamSender {
    pub fn new(tx: mpsc::UnboundedSender<Bytes>, state: Arc<StreamState>, cap: usize, connection: Arc<ConnectionInfo>) -> Self {
        StreamSender { tx, state, cap: cap.max(1), connection }
    }

    /// Whether `len` more bytes fit; a chunk is always taken when nothing is queued.
    pub fn has_room(&self, len: usize) -> bool {
        let queued = self.state.queued.load(Ordering::Acquire);
        queued == 0 || queued + len <= self.cap
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.state.failed.load(Ordering::Acquire)
    }

    pub fn try_send(&self, bytes: Bytes) -> Queued {
        if self.is_closed() {
            return Queued::Gone;
        }
        if !self.has_room(bytes.len()) {
            return Queued::Full(bytes);
        }
        let len = bytes.len();
        self.state.queued.fetch_add(len, Ordering::AcqRel);
        match self.tx.send(bytes) {
            Ok(()) => Queued::Sent,
            Err(_) => {
                self.state.queued.fetch_sub(len, Ordering::AcqRel);
                Queued::Gone
            }
        }
    }

    /// Waits until the client has read enough for `len` more bytes, it is gone, or
    /// `deadline` passes.
    pub async fn room(&self, len: usize, deadline: Option<tokio::time::Instant>) -> Room {
        loop {
            let notified = self.state.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable(); // registered before the check: no wake-up is missed
            if self.is_closed() {
                return Room::Gone;
            }
            if self.has_room(len) {
                return Room::Ready;
            }
            let passed = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = notified => {}
                _ = passed => return Room::Stalled,
            }
        }
    }

    /// The body ended normally (once every sender is dropped, the response completes).
    pub fn finish(self) {
        if !self.state.failed.load(Ordering::Acquire) {
            self.state.finished.store(true, Ordering::Release);
        }
    }

    /// Ends the response as failed (the app raised): what was already queued still goes
    /// out, then the connection closes, so the client never takes it for complete.
    pub fn fail(&self) {
        self.state.failed.store(true, Ordering::Release);
    }

    /// Ends the response as failed and closes its connection at once, even while other
    /// senders (a `Topic`, the Ruby writer) still hold the stream and the client reads
    /// nothing (hyper would not poll the body again until the client reads).
    pub fn cut(&self) {
        self.fail();
        self.connection.cut();
    }
}

/// The connection's end of a streamed body, polled by hyper. An app-declared
/// Content-Length is hyper's to keep: it writes no byte past it (the rest is dropped and
/// the connection stays correctly framed), and closes the connection if the body ends short.
pub struct ChunkStream {
    rx: mpsc::UnboundedReceiver<Bytes>,
    state: Arc<StreamState>,
    /// Armed until Ruby finishes the body; see `DisconnectWatch`.
    watch: Option<DisconnectWatch>,
    /// A failed body has given hyper one chance to flush what it took before the error.
    flushed: bool,
}

impl ChunkStream {
    pub fn new(rx: mpsc::UnboundedReceiver<Bytes>, state: Arc<StreamState>) -> Self {
        ChunkStream { rx, state, watch: None, flushed: false }
    }

    fn taken(&self, data: &Bytes) {
        self.state.queued.fetch_sub(data.len(), Ordering::AcqRel);
        self.state.room.notify_waiters();
    }

    pub fn watch(&mut self, watch: DisconnectWatch) {
        self.watch = Some(watch);
    }

    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.state.failed.load(Ordering::Acquire) {
            return self.poll_failed(cx);
        }
        match Pin::new(&mut self.rx).poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(data)) => {
                self.taken(&data);
                Poll::Ready(Some(Ok(data)))
            }
            // Every sender is gone: the end, unless the body failed meanwhile.
            Poll::Ready(None) if self.state.failed.load(Ordering::Acquire) => self.poll_failed(cx),
            Poll::Ready(None) => Poll::Ready(None),
        }
    }

    /// A failed body: the chunks the app had already yielded, then one `Pending` so hyper
    /// writes what it holds (it drops its buffer on a body error), then the error, which
    /// closes the connection.
    fn poll_failed(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if let Ok(data) = self.rx.try_recv() {
            self.taken(&data);
            return Poll::Ready(Some(Ok(data)));
        }
        if !self.flushed {
            self.flushed = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::Interrupted, "the response body failed"))))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn pair(cap: usize) -> (StreamSender, ChunkStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = StreamState::new();
        (StreamSender::new(tx, state.clone(), cap, Arc::new(ConnectionInfo::unix())), ChunkStream::new(rx, state))
    }

    fn poll(stream: &mut ChunkStream) -> Poll<Option<io::Result<Bytes>>> {
        stream.poll_chunk(&mut Context::from_waker(Waker::noop()))
    }

    fn bytes(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn the_cap_counts_bytes_not_yet_taken_and_an_empty_stream_takes_any_chunk() {
        let (sender, mut stream) = pair(10);
        assert!(matches!(sender.try_send(bytes(25)), Queued::Sent), "nothing queued: even an oversized chunk goes");
        assert!(matches!(sender.try_send(bytes(1)), Queued::Full(b) if b.len() == 1), "over the cap: the chunk comes back");
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(b))) if b.len() == 25));
        assert_eq!(sender.state.queued.load(Ordering::Acquire), 0);
        assert!(matches!(sender.try_send(bytes(6)), Queued::Sent));
        assert!(matches!(sender.try_send(bytes(4)), Queued::Sent), "exactly at the cap fits");
        assert!(!sender.has_room(1));
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(b))) if b.len() == 6));
        assert!(sender.has_room(6));
    }

    #[test]
    fn a_finished_body_ends_and_a_gone_client_refuses_chunks() {
        let (sender, mut stream) = pair(10);
        sender.try_send(bytes(3));
        sender.clone().finish();
        drop(sender);
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut stream), Poll::Ready(None)));

        let (sender, stream) = pair(10);
        drop(stream);
        assert!(sender.is_closed());
        assert!(matches!(sender.try_send(bytes(1)), Queued::Gone));
    }

    /// What the app yielded before failing still goes out; then one Pending (so hyper writes
    /// what it holds), then the error that closes the connection.
    #[test]
    fn a_failed_body_flushes_then_errs() {
        let (sender, mut stream) = pair(100);
        sender.try_send(bytes(1));
        sender.try_send(bytes(2));
        sender.fail();
        assert!(matches!(sender.try_send(bytes(1)), Queued::Gone), "nothing more is taken");
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(b))) if b.len() == 1));
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(b))) if b.len() == 2));
        assert!(poll(&mut stream).is_pending());
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(Err(_)))));
    }

    #[test]
    fn cut_fails_the_body_and_closes_its_connection() {
        let (sender, _stream) = pair(100);
        sender.cut();
        assert!(sender.is_closed());
        assert!(sender.connection.poll_cut(&mut Context::from_waker(Waker::noop())).is_ready());
    }

    #[test]
    fn a_writer_waiting_for_room_is_woken_when_the_client_reads() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let (sender, mut stream) = pair(4);
            sender.try_send(bytes(4));
            let waiter = {
                let sender = sender.clone();
                tokio::spawn(async move { matches!(sender.room(4, None).await, Room::Ready) })
            };
            tokio::task::yield_now().await;
            assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(_)))));
            assert!(waiter.await.unwrap());
            sender.try_send(bytes(4));
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(10);
            assert!(matches!(sender.room(1, Some(deadline)).await, Room::Stalled));
            drop(stream);
            assert!(matches!(sender.room(1, None).await, Room::Gone));
        });
    }
}
