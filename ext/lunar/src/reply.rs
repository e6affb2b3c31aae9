//! A reply: what Ruby hands back to tokio for one request. Head plus a body that is
//! complete bytes, a file tokio reads itself, or a stream of chunks written later.

use std::io;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use tokio::io::AsyncReadExt;

use crate::stream::ChunkStream;

/// How Ruby answered a request.
pub enum Reply {
    /// Boxed, like every response on its way: a held request's reply slot (and its task)
    /// should cost a pointer, not a whole response.
    Response(Box<Response<ReplyBody>>),
    /// Close the connection without writing a byte (a `nil` Rack result).
    Close,
    /// A held long-poll answered by a `Topic`: Ruby did not write it, so the I/O side tells
    /// Ruby afterwards (a Closed notice) to finish the exchange (async.close and the rest).
    Published(Box<Response<ReplyBody>>),
}

const FILE_CHUNK: usize = 64 * 1024;

/// The response body types Lunar writes (see `respond`).
pub enum ReplyBody {
    Empty,
    Full(Bytes),
    /// Chunks as Ruby writes them (see `stream`); ends when the writer closes, as an error
    /// (so the connection closes instead of the body completing) if it aborted.
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

impl ReplyBody {
    /// The body's length when known before writing (a stream's is not).
    pub fn known_len(&self) -> Option<u64> {
        match self {
            ReplyBody::Empty => Some(0),
            ReplyBody::Full(data) => Some(data.len() as u64),
            ReplyBody::Chunks(..) => None,
            ReplyBody::File(f) => Some(f.remaining),
        }
    }
}

impl FileBody {
    /// The next slice of the file, `None` at its end. A file that shrank under us is an
    /// error, so the connection closes rather than the response looking complete.
    pub async fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let want = (self.remaining as usize).min(FILE_CHUNK);
        self.buf.resize(want, 0);
        let n = self.file.read(&mut self.buf).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file truncated"));
        }
        self.remaining -= n as u64;
        Ok(Some(&self.buf[..n]))
    }
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
