//! A reply: what Ruby hands back to tokio for one request. A head (`http::Response`) plus a
//! body hyper polls: complete bytes, a file tokio reads itself, or a stream of chunks Ruby
//! writes later.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::handoff::Handoff;
use crate::bridge::handover::Giver;
use crate::bridge::stream::ChunkStream;

/// How Ruby answered a request.
pub enum Reply {
    /// Boxed, like every response on its way: a held request's reply slot (and its future)
    /// should cost a pointer, not a whole response.
    Response(Box<Response<ReplyBody>>),
    /// Close the connection without writing a byte (a `nil` Rack result).
    Close,
    /// A held long-poll answered by a `Topic`: Ruby did not write it, so the I/O side tells
    /// Ruby afterwards (a Closed notice) to finish the exchange (async.close and the rest).
    Published(Box<Response<ReplyBody>>),
    /// `rack.hijack`: once hyper lets go of the connection (through its upgrade, or after an
    /// empty response to a request that asked for none), it is given to the waiting Ruby
    /// thread through `giver`. `head`: the 101 the app asked Lunar to write (partial
    /// hijack); `None` for a full hijack, where the app writes its own and hyper's is dropped.
    Hijack { giver: Giver, head: Option<Box<Response<ReplyBody>>> },
    /// A native WebSocket (`Topic#websocket`): hyper writes `head` (the 101 handshake), then
    /// every chunk queued in `outgoing` goes out as one message; incoming messages go to
    /// Ruby when `messages` (the app gave a block).
    WebSocket { head: Box<Response<ReplyBody>>, outgoing: Box<ChunkStream>, messages: bool },
}

const FILE_CHUNK: usize = 64 * 1024;

/// The response body types Lunar writes. A known length (`Full`, `Counted`, `File`,
/// `Empty`) becomes the Content-Length hyper writes; a stream is chunked on HTTP/1.1 unless
/// the app set one.
pub enum ReplyBody {
    Empty,
    /// Bytes the server already holds for other reasons (its own short answers, a message
    /// published to many): outside any budget.
    Full(Bytes),
    /// A complete body copied out of Ruby for this response: counted in its connection's
    /// budget until hyper takes it (see `Counted::reserve`).
    Counted(Box<Counted>),
    /// Chunks as Ruby writes them (see `stream`); ends when the writer closes, as an error
    /// (so the connection closes instead of the body completing) if it aborted.
    Chunks(Box<ChunkStream>),
    File(Box<FileBody>),
    /// No bytes and no length: hyper frames nothing after the head (an HTTP/1.0 response is
    /// close-delimited). The head of a partial hijack, whose body the app writes itself.
    Unframed,
}

/// A complete body counted in its connection's `Outbox` until hyper takes it, handed over
/// in slices on HTTP/2 (see `handoff`).
pub struct Counted {
    rest: Bytes,
    handoff: Handoff,
}

impl Counted {
    /// Counts `len` bytes against `connection`'s budget, if they fit: then the caller copies
    /// the body (`with`). `None`: over budget; the body stays Ruby's, to be streamed.
    pub fn reserve(connection: &Arc<ConnectionInfo>, len: usize, limit: usize) -> Option<CountedSlot> {
        connection.outbox.try_reserve(len, limit).then(|| CountedSlot { connection: Some(connection.clone()), len })
    }

    fn poll_data(&mut self) -> Option<Bytes> {
        self.handoff.polled();
        (!self.rest.is_empty()).then(|| self.handoff.hand(&mut self.rest))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.handoff.drop_unsent(self.rest.len());
    }
}

/// Room reserved for a complete body not copied yet. Dropped unused, it gives the room back.
pub struct CountedSlot {
    /// `None` once the body took the room over.
    connection: Option<Arc<ConnectionInfo>>,
    len: usize,
}

impl CountedSlot {
    /// The body, counted as reserved. `data` must be the `len` bytes reserved for.
    pub fn with(mut self, data: Bytes) -> ReplyBody {
        debug_assert_eq!(data.len(), self.len);
        let connection = self.connection.take().expect("a slot is used once");
        ReplyBody::Counted(Box::new(Counted { rest: data, handoff: Handoff::new(connection) }))
    }
}

impl Drop for CountedSlot {
    fn drop(&mut self) {
        if let Some(connection) = &self.connection {
            connection.outbox.release(self.len);
        }
    }
}

/// A file served by tokio, so no Ruby thread waits on disk or socket.
pub struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl FileBody {
    pub fn new(file: std::fs::File, len: u64) -> Self {
        FileBody { file: tokio::fs::File::from_std(file), remaining: len, buf: BytesMut::new() }
    }

    /// The next slice of the file, `None` at its end. A file that shrank under us is an
    /// error, so the connection closes rather than the response looking complete.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (self.remaining as usize).min(FILE_CHUNK);
        self.buf.resize(want, 0);
        let mut read = ReadBuf::new(&mut self.buf[..want]);
        if let Err(e) = ready!(Pin::new(&mut self.file).poll_read(cx, &mut read)) {
            return Poll::Ready(Some(Err(e)));
        }
        let n = read.filled().len();
        if n == 0 {
            return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file truncated"))));
        }
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(self.buf.split_to(n).freeze())))
    }
}

impl ReplyBody {
    /// The body's length when known before writing (a stream's is not).
    pub fn known_len(&self) -> Option<u64> {
        match self {
            ReplyBody::Empty => Some(0),
            ReplyBody::Full(data) => Some(data.len() as u64),
            ReplyBody::Counted(counted) => Some(counted.rest.len() as u64),
            ReplyBody::Chunks(..) | ReplyBody::Unframed => None,
            ReplyBody::File(f) => Some(f.remaining),
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        let next = match this {
            ReplyBody::Empty | ReplyBody::Unframed => return Poll::Ready(None),
            ReplyBody::Full(_) => match std::mem::replace(this, ReplyBody::Empty) {
                ReplyBody::Full(data) if !data.is_empty() => Some(Ok(data)),
                _ => None,
            },
            ReplyBody::Counted(counted) => counted.poll_data().map(Ok),
            ReplyBody::Chunks(stream) => ready!(stream.poll_chunk(cx)),
            ReplyBody::File(file) => ready!(file.poll_chunk(cx)),
        };
        Poll::Ready(next.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Empty => true,
            ReplyBody::Full(data) => data.is_empty(),
            ReplyBody::Counted(counted) => counted.rest.is_empty(),
            ReplyBody::File(f) => f.remaining == 0,
            ReplyBody::Chunks(_) | ReplyBody::Unframed => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.known_len().map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// A response from its parts, already HTTP's: the caller turned the app's status into a
/// `StatusCode` (one HTTP cannot carry is the app's error, raised on the Ruby side).
pub fn response(status: StatusCode, headers: HeaderMap, body: ReplyBody) -> Box<Response<ReplyBody>> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    Box::new(res)
}

/// A `101 Switching Protocols` head with `headers`, no body: hyper writes it, then hands the
/// connection over (a hijack, a native WebSocket).
pub fn switching_protocols(headers: HeaderMap) -> Box<Response<ReplyBody>> {
    let mut res = Response::new(ReplyBody::Empty);
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *res.headers_mut() = headers;
    Box::new(res)
}

/// A short plain-text answer the server gives on its own (400, 413, 503 …).
pub fn plain(status: StatusCode, close: bool) -> Box<Response<ReplyBody>> {
    let text = format!("{}\n", status.canonical_reason().unwrap_or("Error"));
    let mut res = Response::new(ReplyBody::Full(Bytes::from(text)));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Box::new(res)
}
