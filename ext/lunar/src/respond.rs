//! Writing a reply on the I/O side: the head `http1::encode` chose, then the body in its
//! framing, in as few system calls as the body allows.

use std::future::poll_fn;
use std::io::{self, IoSlice};

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
        (Framing::None, _) | (_, ReplyBody::Empty) | (_, ReplyBody::Full(None)) => conn.write_all(&bytes).await?,
        (_, ReplyBody::Full(Some(data))) if data.len() <= COPY_LIMIT => {
            bytes.extend_from_slice(&data);
            conn.write_all(&bytes).await?;
        }
        (_, ReplyBody::Full(Some(data))) => conn.write_all_vectored(&mut [IoSlice::new(&bytes), IoSlice::new(&data)]).await?,
        (_, ReplyBody::File(file)) => write_file(conn, &bytes, file).await?,
        (framing, ReplyBody::Chunks(stream)) => {
            conn.write_all(&bytes).await?; // the head goes out before the first chunk
            write_stream(conn, stream, framing).await?;
        }
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

/// Writes chunks as Ruby queues them until it closes the body. Returns an error, so the
/// connection closes, when the client leaves, the body is aborted, or an app-set
/// Content-Length turns out wrong.
async fn write_stream<S: Socket>(conn: &mut Conn<S>, mut stream: Box<ChunkStream>, framing: Framing) -> io::Result<()> {
    let mut batch = Vec::new();
    let mut left = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    loop {
        batch.clear();
        let next = tokio::select! {
            next = poll_fn(|cx| stream.poll_batch(cx, &mut batch, BATCH_BYTES)) => next,
            _ = conn.peer_closed() => return Err(io::ErrorKind::ConnectionAborted.into()),
        };
        match next {
            None => break,
            Some(Err(e)) => return Err(e),
            Some(Ok(())) => {}
        }
        if let Some(left) = left.as_mut() {
            let total: u64 = batch.iter().map(|b| b.len() as u64).sum();
            if total > *left {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "body longer than its Content-Length"));
            }
            *left -= total;
        }
        write_batch(conn, &batch, framing == Framing::Chunked).await?;
    }
    match (framing, left) {
        (Framing::Chunked, _) => conn.write_all(CHUNKED_END).await,
        (_, Some(left)) if left > 0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body shorter than its Content-Length")),
        _ => Ok(()),
    }
}

/// One write for a batch of chunks, with chunk framing when `chunked`.
async fn write_batch<S: Socket>(conn: &mut Conn<S>, batch: &[Bytes], chunked: bool) -> io::Result<()> {
    let total: usize = batch.iter().map(Bytes::len).sum();
    if total <= COPY_LIMIT {
        let mut out = Vec::with_capacity(total + batch.len() * 12);
        for chunk in batch.iter().filter(|c| !c.is_empty()) {
            if chunked {
                encode::chunk_size_line(chunk.len(), &mut out);
            }
            out.extend_from_slice(chunk);
            if chunked {
                out.extend_from_slice(b"\r\n");
            }
        }
        return conn.write_all(&out).await;
    }
    // Large chunks are not copied: size lines live in one buffer, the data where it is.
    let chunks: Vec<&Bytes> = batch.iter().filter(|c| !c.is_empty()).collect();
    let mut lines = Vec::new();
    let mut ends = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        if chunked {
            encode::chunk_size_line(chunk.len(), &mut lines);
        }
        ends.push(lines.len());
    }
    let mut slices = Vec::with_capacity(chunks.len() * 3);
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
    conn.write_all_vectored(&mut slices).await
}
