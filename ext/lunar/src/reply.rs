//! A reply: what Ruby hands back to tokio for one request. Head plus a body that is
//! complete bytes, a file tokio reads itself, or a stream of chunks written later.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::http::{header, HeaderValue, Response, StatusCode};
use tokio::io::{AsyncRead, ReadBuf};

use crate::stream::ChunkStream;

/// How Ruby answered a request.
pub enum Reply {
    Response(Response<ReplyBody>),
    /// Close the connection without writing a byte (a `nil` Rack result).
    Close,
    /// A held long-poll answered by a `Topic`: Ruby did not write it, so the I/O side tells
    /// Ruby afterwards (a Closed notice) to finish the exchange (async.close and the rest).
    Published(Response<ReplyBody>),
}

const FILE_CHUNK: usize = 64 * 1024;

/// The response body types Lunar writes. Implements hyper's `Body`.
pub enum ReplyBody {
    Empty,
    Full(Option<Bytes>),
    /// Chunks as Ruby writes them (see `stream`); ends when the writer closes, as an error
    /// (so hyper closes the connection instead of completing the body) if it aborted.
    Chunks(Box<ChunkStream>),
    File(FileBody),
}

/// A file served by tokio, so no Ruby thread waits on disk or socket.
pub struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: Vec<u8>,
}

impl FileBody {
    pub fn new(file: std::fs::File, len: u64) -> Self {
        FileBody { file: tokio::fs::File::from_std(file), remaining: len, buf: Vec::new() }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ReplyBody::Empty => Poll::Ready(None),
            ReplyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ReplyBody::Chunks(stream) => stream.poll_chunk(cx),
            ReplyBody::File(f) => f.poll_chunk(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Empty => true,
            ReplyBody::Full(data) => data.is_none(),
            ReplyBody::Chunks(..) => false,
            ReplyBody::File(f) => f.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyBody::Empty => SizeHint::with_exact(0),
            ReplyBody::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            ReplyBody::Chunks(..) => SizeHint::default(),
            ReplyBody::File(f) => SizeHint::with_exact(f.remaining),
        }
    }
}

impl FileBody {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (self.remaining as usize).min(FILE_CHUNK);
        self.buf.resize(want, 0);
        let mut read_buf = ReadBuf::new(&mut self.buf);
        match Pin::new(&mut self.file).poll_read(cx, &mut read_buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if read_buf.filled().is_empty() => {
                // The file shrank under us: end short, so hyper closes the connection.
                Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file truncated"))))
            }
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(read_buf.filled());
                self.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }
}

/// A short plain-text answer the server gives on its own (400, 413, 503 …).
pub fn plain(status: StatusCode, close: bool) -> Response<ReplyBody> {
    let text = format!("{}\n", status.canonical_reason().unwrap_or("Error"));
    let mut res = Response::new(ReplyBody::Full(Some(Bytes::from(text))));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
