//! `Unchunk`: a response body the app chunk-encoded itself, turned back into plain data.
//!
//! Rack 2 apps (through `Rack::Chunked`, or by hand) may set `Transfer-Encoding: chunked`
//! and yield chunk-framed bytes. hyper always frames bodies itself and has no pass-through
//! mode, so sending those bytes as they are would frame them twice; on HTTP/2 chunked
//! framing does not exist at all. The one place hyper cannot do what Lunar needs: the size
//! lines are read with httparse's `parse_chunk_size` (the parser hyper's own stack uses),
//! the data is handed on, and hyper frames it once. Trailers the app wrote are dropped.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame};

use crate::bridge::reply::ReplyBody;

enum Step {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF that ends a chunk's data.
    DataEnd,
    /// The last chunk was seen: the body is over (trailers are ignored).
    Done,
}

pub struct Unchunk {
    inner: ReplyBody,
    pending: BytesMut,
    step: Step,
}

impl Unchunk {
    pub fn new(inner: ReplyBody) -> Self {
        Unchunk { inner, pending: BytesMut::new(), step: Step::Size }
    }

    /// Decodes what `pending` holds: `Some(frame)` when there is data (or the end),
    /// `None` when more input is needed.
    fn decode(&mut self) -> Option<Option<io::Result<Bytes>>> {
        loop {
            match self.step {
                Step::Done => return Some(None),
                Step::Size => match httparse::parse_chunk_size(&self.pending) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.pending.advance(used);
                        self.step = if size == 0 { Step::Done } else { Step::Data(size) };
                    }
                    Ok(httparse::Status::Partial) => return None,
                    Err(_) => return Some(Some(Err(malformed("bad chunk size line")))),
                },
                Step::Data(_) if self.pending.is_empty() => return None,
                Step::Data(left) => {
                    let take = left.min(self.pending.len() as u64);
                    self.step = if take == left { Step::DataEnd } else { Step::Data(left - take) };
                    return Some(Some(Ok(self.pending.split_to(take as usize).freeze())));
                }
                Step::DataEnd if self.pending.len() < 2 => return None,
                Step::DataEnd if self.pending.starts_with(b"\r\n") => {
                    self.pending.advance(2);
                    self.step = Step::Size;
                }
                Step::DataEnd => return Some(Some(Err(malformed("chunk data not followed by CRLF")))),
            }
        }
    }
}

/// The error that closes the connection, said in the log as well: hyper drops a body's
/// error without a word, and the client sees only a connection cut (or an empty reply, if
/// the head had not gone out yet); only the app can mend it.
fn malformed(what: &'static str) -> io::Error {
    let message = format!("a body the app marked Transfer-Encoding: chunked is not chunk-encoded ({what}); its connection closes");
    crate::log::warn(&message);
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Body for Unchunk {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        loop {
            if let Some(next) = this.decode() {
                return Poll::Ready(next.map(|r| r.map(Frame::data)));
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.pending.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(Some(Err(malformed("it ended before its last chunk")))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.step, Step::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::bridge::connection::ConnectionInfo;
    use crate::bridge::stream::{channel, Caps};
    use std::sync::Arc;

    /// Each piece arrives as a frame of its own, as an app's `each` yields them.
    fn unchunk(pieces: &[&str]) -> Result<String, String> {
        let (sender, stream) = channel(Arc::new(ConnectionInfo::unix()), Caps { stream: 1 << 20, connection: 1 << 20 });
        for piece in pieces {
            let _ = sender.try_send(Bytes::copy_from_slice(piece.as_bytes()));
        }
        sender.finish();
        let mut body = Unchunk::new(ReplyBody::Chunks(Box::new(stream)));
        let mut out = Vec::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        loop {
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => out.extend_from_slice(&frame.into_data().unwrap()),
                Poll::Ready(Some(Err(e))) => return Err(e.to_string()),
                Poll::Ready(None) => return Ok(String::from_utf8(out).unwrap()),
                Poll::Pending => unreachable!("every piece was queued before polling"),
            }
        }
    }

    #[test]
    fn decodes_chunks_extensions_and_ignores_trailers() {
        assert_eq!(unchunk(&["5\r\nhello\r\n", "6;ext=1\r\n world\r\n", "0\r\nX-Trailer: 1\r\n\r\n"]), Ok("hello world".into()));
        // size lines, data and CRLFs split across frames
        assert_eq!(unchunk(&["5", "\r\nhe", "llo\r", "\n", "1\r\n!\r\n0\r", "\n\r\n"]), Ok("hello!".into()));
        assert_eq!(unchunk(&["0\r\n\r\n"]), Ok(String::new()));
    }

    #[test]
    fn refuses_malformed_framing() {
        assert!(unchunk(&["zz\r\nabc\r\n0\r\n\r\n"]).is_err());
        assert!(unchunk(&["3\r\nabcX\r\n0\r\n\r\n"]).is_err());
        assert!(unchunk(&["5\r\nhel"]).is_err()); // ended early
    }
}
