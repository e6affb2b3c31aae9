//! The fuzzing harness: properties of the pure parts that take outside bytes, checked on
//! random inputs (proptest, stable Rust) on every `cargo test`. Each property states what
//! must hold whatever the input; a failing case is shrunk and kept in
//! `proptest-regressions/fuzz.txt`, which is committed and replayed first, so anything once
//! found stays a regression test.
//!
//! - `net::unchunk`: a body the app chunk-encoded itself, in any split;
//! - `ruby::headers`: response header names and values from Ruby, `Host` for the env;
//! - `ruby::env::request_target`: `PATH_INFO` and `QUERY_STRING` from any request target.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body;
use proptest::prelude::*;

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::reply::ReplyBody;
use crate::bridge::stream::{channel, Caps};
use crate::config::ServerConfig;
use crate::net::unchunk::Unchunk;
use crate::ruby::env::request_target;
use crate::ruby::headers::{append_lines, cgi_name, has_underscore, header_name, split_host};

/// Feeds `pieces` to `Unchunk` as an app's `each` yields them; the decoded bytes or the error.
fn unchunk(pieces: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let (sender, stream) = channel(Arc::new(ConnectionInfo::unix()), Caps { stream: usize::MAX, connection: usize::MAX });
    for piece in pieces {
        let _ = sender.try_send(Bytes::copy_from_slice(piece));
    }
    sender.finish();
    let mut body = Unchunk::new(ReplyBody::Chunks(Box::new(stream)));
    let mut out = Vec::new();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => out.extend_from_slice(&frame.into_data().unwrap_or_default()),
            Poll::Ready(Some(Err(e))) => return Err(e.to_string()),
            Poll::Ready(None) => return Ok(out),
            Poll::Pending => return Err("pending with every piece queued".into()),
        }
    }
}

/// `data` chunk-encoded in chunks of the given sizes (cycled), then cut at `cuts`.
fn chunked(data: &[u8], sizes: &[usize], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut encoded = Vec::new();
    let mut rest = data;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        encoded.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        encoded.extend_from_slice(&rest[..n]);
        encoded.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    encoded.extend_from_slice(b"0\r\n\r\n");
    let mut pieces = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (encoded.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts {
        pieces.push(encoded[at..cut.max(at)].to_vec());
        at = cut.max(at);
    }
    pieces.push(encoded[at..].to_vec());
    pieces
}

proptest! {
    /// Whatever the app yields, unframing ends (data or a clean error) without panicking.
    #[test]
    fn unchunk_never_panics(pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let _ = unchunk(&pieces);
    }

    /// A well-formed chunked body decodes to what was encoded, however it is split.
    #[test]
    fn unchunk_round_trips(data in prop::collection::vec(any::<u8>(), 0..512), sizes in prop::collection::vec(1usize..64, 1..6), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        prop_assert_eq!(unchunk(&chunked(&data, &sizes, &cuts)), Ok(data));
    }

    /// No header line ever carries CR, LF or NUL (response splitting), and Rack-level keys
    /// are never headers, whatever the app's names and values.
    #[test]
    fn header_lines_never_split(name in prop::collection::vec(any::<u8>(), 0..24), value in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut map = HeaderMap::new();
        if let Some(header) = header_name(&name) {
            prop_assert!(!name.to_ascii_lowercase().starts_with(b"rack."));
            append_lines(&mut map, &header, &value);
        }
        for (_, v) in map.iter() {
            prop_assert!(!v.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
        }
    }

    /// `SERVER_PORT` is digits (or the default), whatever the Host header says.
    #[test]
    fn host_ports_are_digits(host in ".{0,40}") {
        let (_, port) = split_host(&host, "80");
        prop_assert!(!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    }

    /// CGI names as RFC 3875 §4.1.18 makes them (`HTTP_`, upper case, `-` → `_`, other
    /// token characters as they are); never the two Rack keeps apart, however spelled, nor
    /// an underscored Transfer-Encoding.
    #[test]
    fn cgi_names_are_clean(name in "[a-z0-9!#$%&'*+.^_`|~-]{1,32}") {
        let dashed = name.replace('_', "-");
        match cgi_name(&name) {
            Some(key) => {
                prop_assert_eq!(&key[5..], name.to_ascii_uppercase().replace('-', "_"));
                prop_assert!(key.starts_with("HTTP_") && key != "HTTP_CONTENT_TYPE" && key != "HTTP_CONTENT_LENGTH");
                prop_assert!(!(has_underscore(&name) && dashed == "transfer-encoding"));
            }
            None => prop_assert!(dashed == "content-type" || dashed == "content-length" || dashed == "transfer-encoding"),
        }
    }

    /// Any target http accepts gives a PATH_INFO that is empty, `*` or starts with `/`; an
    /// origin-form target splits at its first `?`, raw, without a fragment.
    #[test]
    fn request_targets_give_rack_paths(target in "[ -~]{0,60}", asterisk in any::<bool>()) {
        if let Ok(request) = http::Request::builder().uri(target.as_str()).body(()) {
            let (parts, ()) = request.into_parts();
            let config = ServerConfig { asterisk_path_info: asterisk, ..ServerConfig::default() };
            let (path, query) = request_target(&parts, &config);
            prop_assert!(path.is_empty() || path == "*" || path.starts_with('/'), "{path:?} from {target:?}");
            if target.starts_with('/') {
                let without_fragment = target.split('#').next().unwrap_or_default();
                let (raw_path, raw_query) = without_fragment.split_once('?').unwrap_or((without_fragment, ""));
                prop_assert_eq!((path, query), (raw_path, raw_query));
            }
        }
    }
}
