//! Response heads: status, the app's headers, and the framing Lunar chooses by the Rack
//! rules (pure; unit-tested).
//!
//! - No body and no framing for HEAD, 1xx, 204 and 304.
//! - An app-set Transfer-Encoding passes through with the body bytes untouched (the app, or
//!   Rack::Chunked, framed them already).
//! - Otherwise a known body length is written as Content-Length (the server's count wins),
//!   a stream keeps the app's Content-Length, or is chunked on HTTP/1.1 and close-delimited
//!   on HTTP/1.0.
//! - `Connection` is the server's to decide; the app can only ask for `close`.

use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, SystemTime};

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode};

use super::head::{has_token, is_chunked, parse_length};

/// What of the request shapes the response.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts {
    pub head_method: bool,
    pub http10: bool,
    pub keep_alive: bool,
}

/// The body's length as far as the server knows it before writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    Known(u64),
    Stream,
}

/// How the body bytes go on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body is written (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// As given by the app, which set Transfer-Encoding itself.
    Raw,
    /// Raw, and the connection closes to end it.
    UntilClose,
}

pub struct EncodedHead {
    pub bytes: Vec<u8>,
    pub framing: Framing,
    pub keep_alive: bool,
}

pub fn encode(status: StatusCode, headers: &HeaderMap, body: BodyLen, req: RequestFacts, draining: bool) -> EncodedHead {
    let code = status.as_u16();
    let app_te = headers.contains_key(TRANSFER_ENCODING);
    let app_length = headers.get(CONTENT_LENGTH).and_then(|v| parse_length(v.as_bytes()));
    let mut keep_alive = req.keep_alive && !draining && !has_token(headers, CONNECTION, "close");
    let (mut strip_length, mut strip_te) = (false, false);
    let mut add_length = None;
    let mut add_chunked = false;
    let framing = if status.is_informational() || code == 204 {
        (strip_length, strip_te) = (true, true);
        Framing::None
    } else if code == 304 {
        Framing::None
    } else if req.head_method {
        if !app_te && app_length.is_none() {
            if let BodyLen::Known(n) = body {
                add_length = Some(n);
            }
        }
        Framing::None
    } else if app_te {
        strip_length = true;
        if req.http10 || !is_chunked(headers) {
            keep_alive = false;
            Framing::UntilClose
        } else {
            Framing::Raw
        }
    } else {
        match (body, app_length) {
            (BodyLen::Known(n), _) => {
                (strip_length, add_length) = (true, Some(n));
                Framing::Length(n)
            }
            (BodyLen::Stream, Some(n)) => Framing::Length(n),
            (BodyLen::Stream, None) if !req.http10 => {
                add_chunked = true;
                Framing::Chunked
            }
            (BodyLen::Stream, None) => {
                keep_alive = false;
                Framing::UntilClose
            }
        }
    };

    let mut out = Vec::with_capacity(128 + headers.len() * 32);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        let skip = name == CONNECTION || (strip_length && name == CONTENT_LENGTH) || (strip_te && name == TRANSFER_ENCODING);
        if !skip {
            push_title_case(&mut out, name.as_str());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if let Some(n) = add_length {
        out.extend_from_slice(b"Content-Length: ");
        let _ = write!(out, "{n}"); // into a Vec: cannot fail, allocates nothing more
        out.extend_from_slice(b"\r\n");
    }
    if add_chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if req.http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    push_date(&mut out);
    out.extend_from_slice(b"\r\n");
    EncodedHead { bytes: out, framing, keep_alive }
}

/// `content-type` → `Content-Type`, as Thin and Puma write names.
fn push_title_case(out: &mut Vec<u8>, lower: &str) {
    let mut upper_next = true;
    for &b in lower.as_bytes() {
        out.push(if upper_next { b.to_ascii_uppercase() } else { b });
        upper_next = b == b'-';
    }
}

thread_local! {
    /// The Date line, rebuilt at most once a second per I/O thread.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((0, Vec::new())) };
}

fn push_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs || cached.1.is_empty() {
            *cached = (secs, format!("Date: {}\r\n", httpdate::fmt_http_date(now)).into_bytes());
        }
        out.extend_from_slice(&cached.1);
    });
}

/// The size line that starts one chunk of a chunked body.
pub fn chunk_size_line(len: usize, out: &mut Vec<u8>) {
    let _ = write!(out, "{len:X}\r\n");
}

pub const CHUNKED_END: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const GET11: RequestFacts = RequestFacts { head_method: false, http10: false, keep_alive: true };

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    fn text(h: &EncodedHead) -> String {
        String::from_utf8(h.bytes.clone()).unwrap()
    }

    #[test]
    fn known_length_wins_over_the_apps() {
        let h = encode(StatusCode::OK, &map(&[("content-length", "99"), ("x-a", "1")]), BodyLen::Known(4), GET11, false);
        assert_eq!(h.framing, Framing::Length(4));
        let t = text(&h);
        assert!(t.starts_with("HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 4\r\nDate: "), "{t}");
        assert!(!t.contains("99") && t.ends_with("\r\n\r\n") && h.keep_alive);
    }

    #[test]
    fn streams_are_chunked_on_11_and_close_delimited_on_10() {
        assert_eq!(encode(StatusCode::OK, &HeaderMap::new(), BodyLen::Stream, GET11, false).framing, Framing::Chunked);
        let old = RequestFacts { http10: true, keep_alive: true, ..GET11 };
        let h = encode(StatusCode::OK, &HeaderMap::new(), BodyLen::Stream, old, false);
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        assert!(text(&h).contains("Connection: close\r\n"));
        let kept = encode(StatusCode::OK, &HeaderMap::new(), BodyLen::Known(1), old, false);
        assert!(kept.keep_alive && text(&kept).contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn app_transfer_encoding_passes_through() {
        let h = encode(StatusCode::OK, &map(&[("transfer-encoding", "chunked"), ("content-length", "5")]), BodyLen::Stream, GET11, false);
        assert_eq!(h.framing, Framing::Raw);
        let t = text(&h);
        assert!(t.contains("Transfer-Encoding: chunked\r\n") && !t.contains("Content-Length"));
    }

    #[test]
    fn no_body_statuses_and_head() {
        let h = encode(StatusCode::NO_CONTENT, &map(&[("content-length", "0")]), BodyLen::Known(5), GET11, false);
        assert_eq!(h.framing, Framing::None);
        assert!(!text(&h).contains("Content-Length"));
        let head = RequestFacts { head_method: true, ..GET11 };
        let h = encode(StatusCode::OK, &HeaderMap::new(), BodyLen::Known(5), head, false);
        assert_eq!(h.framing, Framing::None);
        assert!(text(&h).contains("Content-Length: 5\r\n"));
    }

    #[test]
    fn connection_close_from_the_app_the_client_or_a_stop() {
        let h = encode(StatusCode::OK, &map(&[("connection", "close")]), BodyLen::Known(0), GET11, false);
        assert!(!h.keep_alive && text(&h).matches("Connection").count() == 1);
        assert!(!encode(StatusCode::OK, &HeaderMap::new(), BodyLen::Known(0), GET11, true).keep_alive);
        let asked = RequestFacts { keep_alive: false, ..GET11 };
        assert!(!encode(StatusCode::OK, &HeaderMap::new(), BodyLen::Known(0), asked, false).keep_alive);
    }
}
