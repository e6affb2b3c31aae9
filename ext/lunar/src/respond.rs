//! Writing a reply on the I/O side: the head `http1::encode` chose, then the body in its
//! framing, in as few system calls as the body allows.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::Response;

use crate::connection::Conn;
use crate::http1::encode::{self, BodyLen, Framing, RequestFacts, CHUNKED_END};
use crate::reply::{FileBody, ReplyBody};
use crate::socket::Socket;
use crate::stream::ChunkStream;

/// Bodies up to this size are copied behind the head and go out in one write.
const COPY_LIMIT: usize = 16 * 1024;
/// The most a streamed body gathers from its queue for one write.
const BATCH_BYTES: usize = 1024 * 1024;

/// Writes `res`. Returns whether the connection may carry another request.
pub async fn write<S: Socket>(conn: &mut Conn<S>, res: Box<Response<ReplyBody>>, req: RequestFacts) -> io::Result<bool> {
    let draining = *conn.shared.shutdown.borrow();
    let (parts, body) = (*res).into_parts();
    let len = body.known_len().map_or(BodyLen::Stream, BodyLen::Known);
    let head = encode::encode(parts.status, &parts.headers, len, req, draining);
    let mut bytes = head.bytes;
    match (head.framing, body) {
        (Framing::None, _) | (_, ReplyBody::Empty) => conn.write_all(&bytes).await?,
        (_, ReplyBody::Full(data)) if data.len() <= COPY_LIMIT => {
            bytes.extend_from_slice(&data);
            conn.write_all(&bytes).await?;
        }
        (_, ReplyBody::Full(data)) => conn.write_all_vectored(&mut [IoSlice::new(&bytes), IoSlice::new(&data)]).await?,
        (_, ReplyBody::File(file)) => write_file(conn, &bytes, file).await?,
        (framing, ReplyBody::Chunks(stream)) => write_stream(conn, bytes, stream, framing).await?,
    }
    Ok(head.keep_alive)
}

/// The file's bytes as they are: its size is the Content-Length, or the app framed them.
async fn write_file<S: Socket>(conn: &mut Conn<S>, head: &[u8], mut file: FileBody) -> io::Result<()> {
    conn.write_all(head).await?;
    while let Some(chunk) = file.next_chunk().await? {
        conn.write_all(chunk).await?;
    }
    Ok(())
}

/// Writes chunks as Ruby queues them until it closes the body. Whatever is already queued
/// goes out together: the head with the first chunks, the last chunks with the end of the
/// body; the head alone only when no chunk is ready. Returns an error, so the connection
/// closes, when the client leaves, the body is aborted, or an app-set Content-Length turns
/// out wrong.
async fn write_stream<S: Socket>(conn: &mut Conn<S>, head: Vec<u8>, mut stream: Box<ChunkStream>, framing: Framing) -> io::Result<()> {
    let chunked = framing == Framing::Chunked;
    let mut left = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let mut prefix = head;
    let mut batch = Vec::new();
    loop {
        let ended = gather(&mut stream, &mut batch)?;
        if let Some(left) = left.as_mut() {
            let total: u64 = batch.iter().map(|b| b.len() as u64).sum();
            *left = left.checked_sub(total).ok_or_else(|| invalid("body longer than its Content-Length"))?;
        }
        if ended {
            if left.is_some_and(|l| l > 0) {
                write_batch(conn, &prefix, &batch, chunked, b"").await?;
                return Err(invalid("body shorter than its Content-Length"));
            }
            return write_batch(conn, &prefix, &batch, chunked, if chunked { CHUNKED_END } else { b"" }).await;
        }
        if !prefix.is_empty() || !batch.is_empty() {
            write_batch(conn, &prefix, &batch, chunked, b"").await?;
            prefix.clear();
            batch.clear();
        }
        // Nothing queued: wait for Ruby, or for the client to leave.
        let next = tokio::select! {
            next = poll_fn(|cx| stream.poll_chunk(cx)) => next,
            _ = conn.peer_closed() => return Err(io::ErrorKind::ConnectionAborted.into()),
        };
        match next {
            Some(Ok(chunk)) => batch.push(chunk),
            Some(Err(e)) => return Err(e),
            None => {} // the end, which `gather` sees again
        }
    }
}

/// Takes what the stream has queued now, without waiting. True when the body has ended.
fn gather(stream: &mut ChunkStream, batch: &mut Vec<Bytes>) -> io::Result<bool> {
    let mut cx = Context::from_waker(Waker::noop()); // the real waker is registered before any wait
    let mut total: usize = batch.iter().map(Bytes::len).sum();
    while total < BATCH_BYTES {
        match stream.poll_chunk(&mut cx) {
            Poll::Ready(Some(Ok(data))) => {
                total += data.len();
                batch.push(data);
            }
            Poll::Ready(Some(Err(e))) => return Err(e),
            Poll::Ready(None) => return Ok(true),
            Poll::Pending => break,
        }
    }
    Ok(false)
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One write: `prefix` (a head, or nothing), the chunks (chunk-framed when `chunked`), then
/// `suffix` (the end of a chunked body, or nothing).
async fn write_batch<S: Socket>(conn: &mut Conn<S>, prefix: &[u8], batch: &[Bytes], chunked: bool, suffix: &[u8]) -> io::Result<()> {
    let chunks: Vec<&Bytes> = batch.iter().filter(|c| !c.is_empty()).collect();
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    if total <= COPY_LIMIT {
        let mut out = Vec::with_capacity(prefix.len() + total + chunks.len() * 12 + suffix.len());
        out.extend_from_slice(prefix);
        for chunk in &chunks {
            if chunked {
                encode::chunk_size_line(chunk.len(), &mut out);
            }
            out.extend_from_slice(chunk);
            if chunked {
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(suffix);
        return if out.is_empty() { Ok(()) } else { conn.write_all(&out).await };
    }
    // Large chunks are not copied: size lines live in one buffer, the data where it is.
    let mut lines = Vec::new();
    let mut ends = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        if chunked {
            encode::chunk_size_line(chunk.len(), &mut lines);
        }
        ends.push(lines.len());
    }
    let mut slices = Vec::with_capacity(chunks.len() * 3 + 2);
    slices.push(IoSlice::new(prefix));
    let mut start = 0;
    for (chunk, &end) in chunks.iter().zip(&ends) {
        if chunked {
            slices.push(IoSlice::new(&lines[start..end]));
        }
        slices.push(IoSlice::new(chunk));
        if chunked {
            slices.push(IoSlice::new(b"\r\n"));
        }
        start = end;
    }
    slices.push(IoSlice::new(suffix));
    slices.retain(|s| !s.is_empty());
    conn.write_all_vectored(&mut slices).await
}
