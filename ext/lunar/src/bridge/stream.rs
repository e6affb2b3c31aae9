//! A streamed response body: chunks Ruby writes after the head has gone.
//!
//! Memory is capped in bytes twice, by `StreamSender`: per response (`stream_buffer`) and
//! per connection across all its responses (`connection_buffer`, the `Outbox`: HTTP/2
//! multiplexes many). A chunk that does not fit comes back to the writer, which either
//! waits for the client to read (a worker thread may wait as long as the client is there;
//! the reactor thread only briefly) or cuts the client off (`cut`, which closes the
//! connection). `finished` tells a normal end (Ruby closed the body) from the client
//! leaving first.
//!
//! On HTTP/2 chunks are handed to hyper in slices, the rest staying counted here (see
//! `handoff`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::disconnect::DisconnectWatch;
use crate::bridge::handoff::Handoff;

/// Shared by the Ruby writer and the connection writing the body.
pub struct StreamState {
    /// Bytes written by Ruby and not yet taken by the connection.
    pub queued: AtomicUsize,
    /// Signalled when the connection takes a chunk and leaves no more than `low_water`
    /// queued (and when it ends): a writer waiting for room wakes once the stream has half
    /// drained, not once per chunk (every wake is a thread switch).
    pub room: Notify,
    low_water: usize,
    pub finished: AtomicBool,
    /// The body failed (the app raised, or the client was cut off): no more chunks are
    /// taken, and the response ends as an error instead of completing.
    pub failed: AtomicBool,
}

/// The two byte caps a streamed body obeys: its own, and its connection's.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub stream: usize,
    pub connection: usize,
}

/// A streamed body's two ends: the writer's, and the connection's.
pub fn channel(connection: Arc<ConnectionInfo>, caps: Caps) -> (StreamSender, ChunkStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    let caps = Caps { stream: caps.stream.max(1), connection: caps.connection.max(1) };
    let state = Arc::new(StreamState {
        queued: AtomicUsize::new(0),
        room: Notify::new(),
        low_water: caps.stream / 2,
        finished: AtomicBool::new(false),
        failed: AtomicBool::new(false),
    });
    let sender = StreamSender { tx, state: state.clone(), caps, connection: connection.clone() };
    let stream = ChunkStream { rx, state, rest: None, handoff: Handoff::new(connection), watch: None, flushed: false, promised: None };
    (sender, stream)
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
    /// No room: the client is more than a cap behind. The chunk comes back.
    Full(Bytes),
    /// The client is gone or the stream ended.
    Gone,
}

/// The writing end of a streamed body, for any Ruby thread (`BodyWriter`) and for a
/// `Topic`. The byte caps and the cut-off live here, so every writer obeys the same rules.
#[derive(Clone)]
pub struct StreamSender {
    tx: mpsc::UnboundedSender<Bytes>,
    pub state: Arc<StreamState>,
    caps: Caps,
    connection: Arc<ConnectionInfo>,
}

impl StreamSender {
    /// Whether `len` more bytes fit under both caps; a chunk is always taken when nothing
    /// is queued.
    pub fn has_room(&self, len: usize) -> bool {
        let queued = self.state.queued.load(Ordering::Acquire);
        (queued == 0 || queued + len <= self.caps.stream) && self.connection.outbox.has_room(len, self.caps.connection)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.state.failed.load(Ordering::Acquire)
    }

    pub fn try_send(&self, bytes: Bytes) -> Queued {
        if self.is_closed() {
            return Queued::Gone;
        }
        let len = bytes.len();
        let queued = self.state.queued.load(Ordering::Acquire);
        if queued != 0 && queued + len > self.caps.stream {
            return Queued::Full(bytes);
        }
        if !self.connection.outbox.try_reserve(len, self.caps.connection) {
            return Queued::Full(bytes);
        }
        self.state.queued.fetch_add(len, Ordering::AcqRel);
        match self.tx.send(bytes) {
            Ok(()) => Queued::Sent,
            Err(_) => {
                self.state.queued.fetch_sub(len, Ordering::AcqRel);
                self.connection.outbox.release(len);
                Queued::Gone
            }
        }
    }

    /// Waits until the client has read enough for `len` more bytes, it is gone, or
    /// `deadline` passes.
    pub async fn room(&self, len: usize, deadline: Option<tokio::time::Instant>) -> Room {
        loop {
            let (stream, connection) = (self.state.room.notified(), self.connection.outbox.room.notified());
            tokio::pin!(stream, connection);
            // Registered before the check: no wake-up is missed. The connection's budget,
            // signalled on every byte hyper takes, is listened to only while it is what
            // holds this writer back (HTTP/2 streams sharing a slow client).
            stream.as_mut().enable();
            let connection_full = !self.connection.outbox.has_room(len, self.caps.connection);
            if connection_full {
                connection.as_mut().enable();
            }
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
                _ = stream => {}
                _ = connection, if connection_full => {}
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
    /// What is left of the chunk being handed over in slices (HTTP/2).
    rest: Option<Bytes>,
    handoff: Handoff,
    /// Armed until Ruby finishes the body; see `DisconnectWatch`.
    watch: Option<DisconnectWatch>,
    /// A body that ended short of its Content-Length has given hyper one chance to flush
    /// what it took before the connection closes (see `poll_end`).
    flushed: bool,
    /// Bytes the app's Content-Length still promises (None: it declared none).
    promised: Option<u64>,
}

impl ChunkStream {
    /// Hands over (the next slice of) `data`, keeping the rest for the next poll.
    fn hand(&mut self, mut data: Bytes) -> Bytes {
        let now = self.handoff.hand(&mut data);
        if let Some(promised) = &mut self.promised {
            *promised = promised.saturating_sub(now.len() as u64);
        }
        let left = self.state.queued.fetch_sub(now.len(), Ordering::AcqRel) - now.len();
        if left <= self.state.low_water {
            self.state.room.notify_waiters();
        }
        if !data.is_empty() {
            self.rest = Some(data);
        }
        now
    }

    /// Arms `watch` for the stream's life: Ruby must learn if the client leaves meanwhile, so
    /// the connection stops holding a half-closed client's end-of-stream (a stream may wait on
    /// the app for long; see `half_close`).
    pub fn watch(&mut self, watch: DisconnectWatch) {
        self.handoff.connection().release_eof();
        self.watch = Some(watch);
    }

    /// The app declared this many bytes (a valid Content-Length hyper will hold it to).
    pub fn promise(&mut self, len: u64) {
        self.promised = Some(len);
    }

    /// The next chunk Ruby wrote (from the connection's side, any thread).
    fn next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        match self.rest.take() {
            Some(rest) => Poll::Ready(Some(rest)),
            None => Pin::new(&mut self.rx).poll_recv(cx),
        }
    }

    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        self.handoff.polled();
        if self.state.failed.load(Ordering::Acquire) {
            return self.poll_failed();
        }
        match self.next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(data)) => Poll::Ready(Some(Ok(self.hand(data)))),
            // Every sender is gone: the end, unless the body failed meanwhile.
            Poll::Ready(None) if self.state.failed.load(Ordering::Acquire) => self.poll_failed(),
            Poll::Ready(None) => self.poll_end(cx),
        }
    }

    /// The writer closed. Short of a declared Content-Length, hyper closes the connection and
    /// drops what it has not written yet (the head too, if it is still buffered): as for a
    /// failed body (`ResponseBody::poll_frame`), one `Pending` first lets it flush, so the
    /// client gets every byte the app wrote and then the close. Said once in the log: only
    /// the app can mend it.
    fn poll_end(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        match self.promised.filter(|&left| left > 0) {
            Some(left) if !self.flushed => {
                self.flushed = true;
                crate::log::warn(&format!("a streamed response ended {left} bytes short of its Content-Length; its connection closes"));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => Poll::Ready(None),
        }
    }

    /// The next chunk if one is queued already, to go out in the same write as the one just
    /// taken (`net::gather`); none on HTTP/2 (handed in slices, a chunk's `rest` first), or
    /// once the body failed.
    pub fn take_ready(&mut self) -> Option<Bytes> {
        if self.handoff.multiplexed() || self.state.failed.load(Ordering::Acquire) {
            return None;
        }
        let data = self.rx.try_recv().ok()?;
        Some(self.hand(data))
    }

    /// A failed body: the chunks the app had already yielded, then the error, which closes
    /// the connection (once hyper has written what it holds: `ResponseBody::poll_frame`).
    fn poll_failed(&mut self) -> Poll<Option<io::Result<Bytes>>> {
        if let Some(data) = self.rest.take().or_else(|| self.rx.try_recv().ok()) {
            return Poll::Ready(Some(Ok(self.hand(data))));
        }
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::Interrupted, "the response body failed"))))
    }
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        // Close first, then wake a writer waiting for room: it must see the channel closed
        // when it looks again, or it would wait for a notice that never comes.
        self.rx.close();
        // What was queued and never handed leaves the connection's budget.
        let unsent = self.rest.take().map_or(0, |r| r.len()) + std::iter::from_fn(|| self.rx.try_recv().ok()).map(|b| b.len()).sum::<usize>();
        self.handoff.drop_unsent(unsent);
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
    use crate::bridge::handoff::HTTP2_SLICE;
    use std::task::Waker;

    fn pair(cap: usize) -> (StreamSender, ChunkStream) {
        channel(Arc::new(ConnectionInfo::unix()), Caps { stream: cap, connection: usize::MAX })
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

    /// What a write gathers (`net::gather`): the chunks queued behind the one polled, in
    /// order and out of the cap; on HTTP/2 nothing (chunks go to hyper in slices).
    #[test]
    fn queued_chunks_are_taken_without_waiting_on_http1_only() {
        let (sender, mut stream) = pair(100);
        for n in [1, 2, 3] {
            sender.try_send(bytes(n));
        }
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(b))) if b.len() == 1));
        assert_eq!(stream.take_ready().map(|b| b.len()), Some(2));
        assert_eq!(stream.take_ready().map(|b| b.len()), Some(3));
        assert!(stream.take_ready().is_none(), "nothing queued: no wait");
        assert_eq!(sender.state.queued.load(Ordering::Acquire), 0);

        let connection = Arc::new(ConnectionInfo::unix());
        connection.speaks_http2();
        let (sender, mut stream) = channel(connection, Caps { stream: 100, connection: usize::MAX });
        sender.try_send(bytes(1));
        assert!(stream.take_ready().is_none());
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

    /// Short of a declared Content-Length, the end waits one poll (hyper flushes, then closes
    /// the connection); at or past it, or with none declared, it ends at once.
    #[test]
    fn a_body_short_of_its_length_lets_hyper_flush_before_it_ends() {
        for (promised, sent, waits) in [(Some(10), 3, true), (Some(3), 3, false), (None, 3, false)] {
            let (sender, mut stream) = pair(100);
            if let Some(len) = promised {
                stream.promise(len);
            }
            sender.try_send(bytes(sent));
            sender.finish();
            assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(b))) if b.len() == sent));
            assert_eq!(poll(&mut stream).is_pending(), waits, "promised {promised:?}");
            assert!(matches!(poll(&mut stream), Poll::Ready(None)));
        }
    }

    /// What the app yielded before failing still goes out, then the error that closes the
    /// connection.
    #[test]
    fn a_failed_body_sends_what_it_had_then_errs() {
        let (sender, mut stream) = pair(100);
        sender.try_send(bytes(1));
        sender.try_send(bytes(2));
        sender.fail();
        assert!(matches!(sender.try_send(bytes(1)), Queued::Gone), "nothing more is taken");
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(b))) if b.len() == 1));
        assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(b))) if b.len() == 2));
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

    #[test]
    fn a_waiting_writer_is_woken_once_the_stream_has_half_drained_not_per_chunk() {
        use std::future::Future;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let (sender, mut stream) = pair(8);
            for _ in 0..4 {
                sender.try_send(bytes(2));
            }
            let room = sender.room(2, None);
            tokio::pin!(room);
            let mut cx = Context::from_waker(Waker::noop());
            assert!(room.as_mut().poll(&mut cx).is_pending());
            let notified = sender.state.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(_)))), "6 bytes left: above half");
            assert!(notified.as_mut().poll(&mut cx).is_pending(), "no wake-up for one chunk taken");
            assert!(matches!(poll(&mut stream), Poll::Ready(Some(Ok(_)))), "4 bytes left: half");
            assert!(notified.as_mut().poll(&mut cx).is_ready());
            assert!(matches!(room.as_mut().poll(&mut cx), Poll::Ready(Room::Ready)));
        });
    }

    /// Streams of one connection share its budget: a second stream waits while the first
    /// holds it, and gets room when the client takes the first's bytes.
    #[test]
    fn the_connection_budget_spans_its_streams() {
        let connection = Arc::new(ConnectionInfo::unix());
        let caps = Caps { stream: 100, connection: 150 };
        let (first, mut first_body) = channel(connection.clone(), caps);
        let (second, second_body) = channel(connection.clone(), caps);
        assert!(matches!(first.try_send(bytes(100)), Queued::Sent));
        assert!(matches!(second.try_send(bytes(60)), Queued::Full(_)), "over the connection's budget");
        assert!(matches!(second.try_send(bytes(50)), Queued::Sent));
        assert_eq!(connection.outbox.queued(), 150);
        assert!(matches!(poll(&mut first_body), Poll::Ready(Some(Ok(_)))));
        assert!(second.has_room(50), "room again once the client took the first stream's bytes");
        drop(second_body); // a stream reset with bytes queued gives them back
        assert_eq!(connection.outbox.queued(), 0);
    }

    /// On HTTP/2 hyper gets a chunk a slice at a time; the rest stays counted, and the
    /// connection knows hyper holds data of this body until it polls again.
    #[test]
    fn http2_bodies_are_handed_over_in_slices() {
        let connection = Arc::new(ConnectionInfo::unix());
        connection.speaks_http2();
        let (sender, mut body) = channel(connection.clone(), Caps { stream: 1 << 20, connection: 1 << 20 });
        sender.try_send(bytes(HTTP2_SLICE * 2 + 10));
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(b))) if b.len() == HTTP2_SLICE));
        assert_eq!(connection.outbox.queued(), HTTP2_SLICE + 10);
        assert!(connection.outbox.has_pending());
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(b))) if b.len() == HTTP2_SLICE));
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(b))) if b.len() == 10));
        assert_eq!(connection.outbox.queued(), 0);
        assert!(connection.outbox.has_pending(), "hyper holds the last slice until it polls again");
        drop(sender);
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert!(!connection.outbox.has_pending());
    }
}
