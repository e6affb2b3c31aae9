//! Request heads: bytes → `http::request::Parts` plus what framing and keep-alive need.
//! Pure (no I/O), unit-tested.
//!
//! The head is copied once into its own small buffer that headers and URI slice, so the
//! connection's read buffer can be freed while the request is held.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

/// More header lines than this is answered 431, as hyper did.
pub const MAX_HEADERS: usize = 100;

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

pub struct RequestHead {
    /// Boxed: it moves from here to a job to a Ruby object, and a task keeps none inline.
    pub parts: Box<Parts>,
    pub framing: BodyFraming,
    /// Whether the client lets the connection stay open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1: the client waits for a go-ahead before the body.
    pub expect_continue: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Over the head size limit or the header count: 431.
    TooLarge,
    /// Not HTTP, or framing that cannot be trusted: 400.
    Invalid(&'static str),
}

/// Parses a complete head at the front of `buf`: `Ok(None)` means more bytes are needed.
/// On success also returns the head's length in bytes.
pub fn parse(buf: &[u8], max_len: usize) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= max_len => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Invalid("malformed request head")),
    };
    if len > max_len {
        return Err(HeadError::TooLarge);
    }
    let head = Bytes::copy_from_slice(&buf[..len]);
    // Slices of `buf` become slices of `head` at the same offsets.
    let slice = |part: &[u8]| {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        head.slice(start..start + part.len())
    };
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes()).map_err(|_| HeadError::Invalid("bad method"))?;
    let uri = Uri::from_maybe_shared(slice(req.path.unwrap_or("").as_bytes())).map_err(|_| HeadError::Invalid("bad request target"))?;
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| HeadError::Invalid("bad header name"))?;
        let value = HeaderValue::from_maybe_shared(slice(h.value)).map_err(|_| HeadError::Invalid("bad header value"))?;
        headers.append(name, value);
    }
    let framing = body_framing(&headers)?;
    let keep_alive = match version {
        Version::HTTP_10 => has_token(&headers, CONNECTION, "keep-alive") && !has_token(&headers, CONNECTION, "close"),
        _ => !has_token(&headers, CONNECTION, "close"),
    };
    let expect_continue = version == Version::HTTP_11
        && headers.get(EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    let (parts, ()) = request.into_parts();
    Ok(Some((RequestHead { parts: Box::new(parts), framing, keep_alive, expect_continue }, len)))
}

/// Content-Length or chunked, refusing what a proxy in front could read differently
/// (request smuggling): both at once, disagreeing lengths, or a final coding not chunked.
fn body_framing(headers: &HeaderMap) -> Result<BodyFraming, HeadError> {
    if headers.contains_key(TRANSFER_ENCODING) {
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(HeadError::Invalid("both Content-Length and Transfer-Encoding"));
        }
        return if is_chunked(headers) { Ok(BodyFraming::Chunked) } else { Err(HeadError::Invalid("unsupported Transfer-Encoding")) };
    }
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let n = parse_length(item).ok_or(HeadError::Invalid("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Invalid("conflicting Content-Length"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) | None => BodyFraming::None,
        Some(n) => BodyFraming::Length(n),
    })
}

/// A Content-Length value: digits only (no sign, no spaces inside), within u64.
pub fn parse_length(raw: &[u8]) -> Option<u64> {
    let digits = raw.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether the last transfer coding (of all Transfer-Encoding lines) is `chunked`.
pub fn is_chunked(headers: &HeaderMap) -> bool {
    let last_line = headers.get_all(TRANSFER_ENCODING).iter().next_back();
    let last_coding = last_line.and_then(|v| v.as_bytes().split(|&b| b == b',').next_back());
    last_coding.is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Whether a comma-separated header (e.g. Connection) lists `token`, case-insensitively.
pub fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<(RequestHead, usize)>, HeadError> {
        parse(text.as_bytes(), 8192)
    }

    fn complete(text: &str) -> RequestHead {
        head(text).expect("valid").expect("complete").0
    }

    #[test]
    fn parses_a_simple_get() {
        let (h, len) = head("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y: z\r\n\r\nrest").unwrap().unwrap();
        assert_eq!(len, "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y: z\r\n\r\n".len());
        assert_eq!(h.parts.method, Method::GET);
        assert_eq!(h.parts.uri.path(), "/a");
        assert_eq!(h.parts.uri.query(), Some("b=1"));
        assert_eq!(h.parts.headers["x-y"], "z");
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
    }

    #[test]
    fn partial_heads_wait_and_oversized_ones_are_refused() {
        assert!(head("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(head(&big).err(), Some(HeadError::TooLarge));
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(head("THIS IS NOT HTTP\r\n\r\n"), Err(HeadError::Invalid(_))));
        assert!(matches!(head("GET / HTTP/1.1\r\nBad Header Line\r\n\r\n"), Err(HeadError::Invalid(_))));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        assert!(!complete("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!complete("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn framing_rules() {
        assert_eq!(complete("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").framing, BodyFraming::Length(12));
        assert_eq!(complete("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").framing, BodyFraming::Length(3));
        assert_eq!(complete("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").framing, BodyFraming::Chunked);
        for bad in [
            "POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ] {
            assert!(matches!(head(bad), Err(HeadError::Invalid(_))), "{bad:?}");
        }
    }

    #[test]
    fn expect_continue_only_on_http11() {
        assert!(complete("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
        assert!(!complete("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
    }

    #[test]
    fn absolute_and_asterisk_forms() {
        let h = complete("GET http://example.com/abs?q=1 HTTP/1.1\r\n\r\n");
        assert_eq!((h.parts.uri.host(), h.parts.uri.path()), (Some("example.com"), "/abs"));
        assert_eq!(complete("OPTIONS * HTTP/1.1\r\n\r\n").parts.uri, "*");
    }
}
