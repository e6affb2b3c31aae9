//! The response as hyper gets it. hyper frames every body (Content-Length, chunked, or
//! close-delimited on HTTP/1.0; DATA frames on HTTP/2) from the headers and the body's size;
//! `prepare` makes the headers the app gave say what Lunar's Rack rules mean:
//!
//! - a body whose length the server knows (`to_ary`, `to_path`) gets the server's count;
//!   the app's Content-Length would be trusted blindly by hyper;
//! - a streamed body keeps the app's Content-Length (hyper writes no byte past it and
//!   closes the connection if the body ends short), unless it is not a number;
//! - an app that chunk-encoded its body itself (`Transfer-Encoding: chunked`, Rack 2's
//!   `Rack::Chunked`) gets it unframed (`Unchunk`), so hyper frames it once;
//! - no Content-Length on a 204.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::reply::ReplyBody;
use crate::net::gather::Gathered;
use crate::net::unchunk::Unchunk;

pub struct ResponseBody {
    kind: Kind,
    /// The body's error, held back one poll (see `poll_frame`).
    failing: Option<io::Error>,
    /// The response counts as under way until hyper drops its body.
    _open: Option<OpenResponse>,
}

enum Kind {
    Reply(ReplyBody),
    Unchunked(Box<Unchunk>),
}

impl ResponseBody {
    fn of(kind: Kind) -> Self {
        ResponseBody { kind, failing: None, _open: None }
    }

    /// Counts the response as under way on its connection until the body is over.
    pub fn keep_open(&mut self, open: OpenResponse) {
        self._open = Some(open);
    }
}

/// A response under way, for its connection's `Outbox` and timers: from the request's
/// arrival until hyper drops its body (sent, or the stream reset).
pub struct OpenResponse(Arc<ConnectionInfo>);

impl OpenResponse {
    pub fn began(connection: &Arc<ConnectionInfo>) -> Self {
        connection.outbox.response_began();
        connection.activity.response_began();
        OpenResponse(connection.clone())
    }
}

impl Drop for OpenResponse {
    fn drop(&mut self) {
        self.0.release_eof(); // answered: a half-closed client's end-of-stream goes through
        if self.0.outbox.response_ended() {
            self.0.activity.went_idle();
        } else {
            self.0.activity.response_moved();
        }
    }
}

pub fn prepare(res: Response<ReplyBody>, head_request: bool) -> Response<ResponseBody> {
    let (mut parts, mut body) = res.into_parts();
    if parts.status.canonical_reason().is_none() {
        // A status with no standard name (499, 520, 999): hyper would write "<none>" as its
        // reason (and one must be written); Puma's word, which clients already see there.
        parts.extensions.insert(hyper::ext::ReasonPhrase::from_static(b"CUSTOM"));
    }
    let headers = &mut parts.headers;
    let mut coded = headers.contains_key(TRANSFER_ENCODING); // one lookup for the common case
    if coded && only_identity(headers) {
        // `identity` is no coding (RFC 2616's, gone since RFC 7230): hyper would add `chunked`
        // after it; the body is framed as if the app had said nothing, as Puma and Thin send it.
        headers.remove(TRANSFER_ENCODING);
        coded = false;
    }
    if coded {
        headers.remove(CONTENT_LENGTH);
        if last_coding_is_chunked(headers) {
            headers.remove(TRANSFER_ENCODING);
            return Response::from_parts(parts, ResponseBody::of(Kind::Unchunked(Box::new(Unchunk::new(body)))));
        }
        // Another coding (gzip, …): hyper adds `chunked` after it, as HTTP/1.1 requires.
    } else if parts.status == StatusCode::NO_CONTENT || (body.known_len().is_some() && !head_request) {
        headers.remove(CONTENT_LENGTH);
    } else if let Some(declared) = headers.get(CONTENT_LENGTH) {
        match (parse_length(declared.as_bytes()), &mut body) {
            (None, _) => drop(headers.remove(CONTENT_LENGTH)), // not a length (hyper would refuse the response): framed by hyper instead
            (Some(len), ReplyBody::Chunks(stream)) if !head_request && parts.status != StatusCode::NOT_MODIFIED => stream.promise(len),
            _ => {}
        }
    }
    Response::from_parts(parts, ResponseBody::of(Kind::Reply(body)))
}

/// Whether the Transfer-Encoding lines (there is one at least) name `identity` and nothing else.
fn only_identity(headers: &HeaderMap) -> bool {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().flat_map(|v| v.as_bytes().split(|&b| b == b','));
    codings.all(|c| c.trim_ascii().eq_ignore_ascii_case(b"identity"))
}

/// Whether the last transfer coding (of all Transfer-Encoding lines) is `chunked`.
fn last_coding_is_chunked(headers: &HeaderMap) -> bool {
    let last_line = headers.get_all(TRANSFER_ENCODING).iter().next_back();
    let last_coding = last_line.and_then(|v| v.as_bytes().split(|&b| b == b',').next_back());
    last_coding.is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// A Content-Length value: digits only (no sign, no spaces inside), within u64.
fn parse_length(raw: &[u8]) -> Option<u64> {
    let digits = raw.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

impl Body for ResponseBody {
    type Data = Gathered;
    type Error = io::Error;

    /// A body that fails (the app raised mid-stream, an app-chunked body that is not chunk
    /// encoded, a file that shrank) ends the response with its connection. hyper drops what
    /// it has not written yet when a body errs, the head too if it still holds it: the error
    /// waits one `Pending`, in which hyper writes, so the client gets every byte there was.
    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Gathered>>>> {
        let this = self.get_mut();
        if let Some(error) = this.failing.take() {
            return Poll::Ready(Some(Err(error)));
        }
        match ready!(this.poll_inner(cx)) {
            Some(Err(error)) => {
                this.failing = Some(error);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            frame => Poll::Ready(frame),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failing.is_none()
            && match &self.kind {
                Kind::Reply(body) => body.is_end_stream(),
                Kind::Unchunked(body) => body.is_end_stream(),
            }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Reply(body) => body.size_hint(),
            Kind::Unchunked(_) => SizeHint::default(),
        }
    }
}

impl ResponseBody {
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Gathered>>>> {
        let frame = match &mut self.kind {
            Kind::Reply(ReplyBody::Chunks(stream)) => {
                let frame = ready!(Pin::new(&mut **stream).poll_chunk(cx));
                // What else the writer queued meanwhile goes in the same write.
                return Poll::Ready(frame.map(|r| r.map(|first| Frame::data(Gathered::gather(first, || stream.take_ready())))));
            }
            Kind::Reply(body) => ready!(Pin::new(body).poll_frame(cx)),
            Kind::Unchunked(body) => ready!(Pin::new(&mut **body).poll_frame(cx)),
        };
        Poll::Ready(frame.map(|r| r.map(|f| f.map_data(Gathered::One))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::connection::ConnectionInfo;
    use crate::bridge::stream::{channel, Caps};
    use bytes::Bytes;
    use http::HeaderValue;
    use std::sync::Arc;

    fn response(headers: &[(&'static str, &'static str)], body: ReplyBody) -> Response<ReplyBody> {
        let mut res = Response::new(body);
        for (k, v) in headers {
            res.headers_mut().append(*k, HeaderValue::from_static(v));
        }
        res
    }

    fn stream() -> ReplyBody {
        sent(&[], false)
    }

    /// A stream the app wrote `chunks` to, then finished or failed.
    fn sent(chunks: &[&'static [u8]], fail: bool) -> ReplyBody {
        let (sender, stream) = channel(Arc::new(ConnectionInfo::unix()), Caps { stream: 1 << 20, connection: 1 << 20 });
        for chunk in chunks {
            sender.try_send(Bytes::from_static(chunk));
        }
        if fail {
            sender.fail();
        } else {
            sender.finish();
        }
        ReplyBody::Chunks(Box::new(stream))
    }

    fn poll(body: &mut ResponseBody) -> Poll<Option<io::Result<Frame<Gathered>>>> {
        Pin::new(body).poll_frame(&mut Context::from_waker(std::task::Waker::noop()))
    }

    /// hyper drops what it has not written when a body errs: the error comes one poll late,
    /// for every kind of body, and the body is not over meanwhile.
    #[test]
    fn a_body_error_waits_one_poll() {
        let failed = prepare(response(&[], sent(&[b"abc"], true)), false);
        let not_chunked = prepare(response(&[("transfer-encoding", "chunked")], sent(&[b"hello"], false)), false);
        for mut res in [failed, not_chunked] {
            let body = res.body_mut();
            let mut paused = false;
            loop {
                match poll(body) {
                    Poll::Ready(Some(Ok(_))) => assert!(!paused, "data after the pause"),
                    Poll::Pending => {
                        assert!(!paused && !body.is_end_stream(), "one pause, the body not over");
                        paused = true;
                    }
                    Poll::Ready(Some(Err(_))) => break assert!(paused, "the error came without a pause"),
                    Poll::Ready(None) => panic!("the body ended without its error"),
                }
            }
        }
    }

    #[test]
    fn unnamed_statuses_get_a_reason() {
        let unnamed = Response::builder().status(499).body(ReplyBody::Empty).unwrap();
        assert_eq!(prepare(unnamed, false).extensions().get::<hyper::ext::ReasonPhrase>().unwrap().as_bytes(), b"CUSTOM");
        assert!(prepare(response(&[], ReplyBody::Empty), false).extensions().get::<hyper::ext::ReasonPhrase>().is_none());
    }

    #[test]
    fn known_lengths_are_the_servers() {
        let res = prepare(response(&[("content-length", "99")], ReplyBody::Full(Bytes::from_static(b"abcd"))), false);
        assert!(!res.headers().contains_key(CONTENT_LENGTH));
        assert_eq!(res.body().size_hint().exact(), Some(4));
    }

    #[test]
    fn head_keeps_the_apps_length() {
        let res = prepare(response(&[("content-length", "5")], ReplyBody::Empty), true);
        assert_eq!(res.headers()[CONTENT_LENGTH], "5");
    }

    #[test]
    fn streams_keep_a_valid_length_and_lose_a_bad_one() {
        assert_eq!(prepare(response(&[("content-length", "10")], stream()), false).headers()[CONTENT_LENGTH], "10");
        assert!(!prepare(response(&[("content-length", "+5")], stream()), false).headers().contains_key(CONTENT_LENGTH));
    }

    #[test]
    fn app_chunked_bodies_are_unframed_once() {
        let res = prepare(response(&[("transfer-encoding", "chunked"), ("content-length", "5")], stream()), false);
        assert!(!res.headers().contains_key(TRANSFER_ENCODING) && !res.headers().contains_key(CONTENT_LENGTH));
        assert!(matches!(res.body().kind, Kind::Unchunked(_)));
        let gzip = prepare(response(&[("transfer-encoding", "gzip")], stream()), false);
        assert_eq!(gzip.headers()[TRANSFER_ENCODING], "gzip");
        let identity = prepare(response(&[("transfer-encoding", "Identity")], ReplyBody::Full(Bytes::from_static(b"abc"))), false);
        assert!(!identity.headers().contains_key(TRANSFER_ENCODING));
        assert_eq!(identity.body().size_hint().exact(), Some(3));
    }

    #[test]
    fn lengths_are_digits_only() {
        assert_eq!(parse_length(b" 42 "), Some(42));
        for bad in [&b"+5"[..], b"-1", b"", b"4 2", b"99999999999999999999"] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
    }
}
