//! Rack response headers → HTTP header lines, by the Rack rules (pure Rust, unit-tested).
//!
//! A String value with `"\n"` becomes several lines, an Array value one line per element
//! (the caller splits arrays and feeds each element here). `rack.*` and `status` keys are
//! never written, and neither is a line holding CR or NUL or a name that is not a token:
//! that is what stops response splitting.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The HTTP name of a Rack header key; `None` for Rack-level keys and names that are not
/// tokens.
pub fn header_name(name: &[u8]) -> Option<HeaderName> {
    if is_server_internal(name) {
        return None;
    }
    HeaderName::from_bytes(name).ok()
}

/// Appends a String value under a name already checked (`header_name`): one line per
/// `"\n"`-separated part. Returns how many lines were written.
pub fn append_lines(map: &mut HeaderMap, name: &HeaderName, value: &[u8]) -> usize {
    // HeaderValue refuses CR, NUL and other controls except tab. One bad line drops the
    // whole value: what remains of a poisoned value is not what the app meant to send.
    if !value.contains(&b'\n') {
        // Nearly every value is one line: no list to gather it in (this runs for every
        // header of every response, on the Ruby thread).
        let Ok(line) = HeaderValue::from_bytes(value) else { return 0 };
        map.append(name.clone(), line);
        return 1;
    }
    let lines: Result<Vec<HeaderValue>, _> = value.split(|&b| b == b'\n').map(HeaderValue::from_bytes).collect();
    let Ok(lines) = lines else { return 0 };
    let written = lines.len();
    for v in lines {
        map.append(name.clone(), v);
    }
    written
}

/// `rack.hijack`, `rack.*` and `status` are Rack-level keys, not HTTP headers.
pub fn is_server_internal(name: &[u8]) -> bool {
    name.len() >= 5 && name[..5].eq_ignore_ascii_case(b"rack.") || name.eq_ignore_ascii_case(b"status")
}

/// A URI authority's host and port, without the `user:password@` a client may put first.
pub fn authority_host(authority: &str) -> &str {
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
}

/// Splits a `Host` header into Rack's `SERVER_NAME` and `SERVER_PORT`, keeping IPv6 brackets.
/// A missing or malformed port yields `default_port`.
pub fn split_host<'a>(host: &'a str, default_port: &'a str) -> (&'a str, &'a str) {
    let (name, port) = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => (&host[..=end], host[end + 1..].strip_prefix(':')),
            None => (host, None),
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => default_port,
    };
    (name, port)
}

/// `X-Foo` → `HTTP_X_FOO` (RFC 3875 §4.1.18). `None` for the names Rack keeps out of `HTTP_*`
/// (content type and length, however spelled) and for `Transfer_Encoding`, which must not
/// pose as the framing header. A name with `_` maps to its dashed twin's key: the env adds
/// it only where that twin is absent (Puma's rule, `has_underscore`).
pub fn cgi_name(lower: &str) -> Option<String> {
    let spelled = |framing: &str| lower.len() == framing.len() && lower.bytes().zip(framing.bytes()).all(|(l, f)| l == f || (l == b'_' && f == b'-'));
    if spelled("content-type") || spelled("content-length") || (has_underscore(lower) && spelled("transfer-encoding")) {
        return None;
    }
    let mut key = String::with_capacity(5 + lower.len());
    key.push_str("HTTP_");
    key.extend(lower.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }));
    Some(key)
}

/// A header name with `_`, which could pose as the one with `-` (`X_Forwarded_For`).
pub fn has_underscore(lower: &str) -> bool {
    lower.contains('_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One Rack header (name, String value), as `response::append_pair` writes it.
    fn append_rack_header(map: &mut HeaderMap, name: &[u8], value: &[u8]) -> usize {
        header_name(name).map_or(0, |name| append_lines(map, &name, value))
    }

    fn lines(map: &HeaderMap, name: &str) -> Vec<String> {
        map.get_all(name).iter().map(|v| v.to_str().unwrap().to_string()).collect()
    }

    #[test]
    fn newline_separated_values_become_lines() {
        let mut m = HeaderMap::new();
        assert_eq!(append_rack_header(&mut m, b"Set-Cookie", b"a=1\nb=2"), 2);
        assert_eq!(lines(&m, "set-cookie"), ["a=1", "b=2"]);
    }

    #[test]
    fn response_splitting_is_refused() {
        let mut m = HeaderMap::new();
        assert_eq!(append_rack_header(&mut m, b"X-A", b"ok\r"), 0);
        assert_eq!(append_rack_header(&mut m, b"X-B", b"nul\0byte"), 0);
        assert_eq!(append_rack_header(&mut m, b"X-C\r\nEvil", b"1"), 0);
        assert_eq!(append_rack_header(&mut m, b"X-D", b"fine\r\nInjected: 1"), 0);
        assert_eq!(append_rack_header(&mut m, b"X-E", b"Injected: 1\nbad\0"), 0);
        assert!(m.is_empty());
    }

    #[test]
    fn rack_keys_are_not_headers() {
        let mut m = HeaderMap::new();
        assert_eq!(append_rack_header(&mut m, b"rack.hijack", b"x"), 0);
        assert_eq!(append_rack_header(&mut m, b"Rack.Foo", b"x"), 0);
        assert_eq!(append_rack_header(&mut m, b"Status", b"200"), 0);
        assert_eq!(append_rack_header(&mut m, b"X-Rack", b"kept"), 1);
    }

    #[test]
    fn host_splitting() {
        assert_eq!(split_host("example.com:8080", "80"), ("example.com", "8080"));
        assert_eq!(split_host("example.com", "80"), ("example.com", "80"));
        assert_eq!(split_host("[::1]:9292", "80"), ("[::1]", "9292"));
        assert_eq!(split_host("[::1]", "80"), ("[::1]", "80"));
        assert_eq!(split_host("host:abc", "80"), ("host", "80"));
    }

    #[test]
    fn authority_hosts() {
        assert_eq!(authority_host("example.com:8080"), "example.com:8080");
        assert_eq!(authority_host("user:secret@example.com"), "example.com");
        assert_eq!(authority_host("[::1]:9292"), "[::1]:9292");
    }

    #[test]
    fn cgi_names() {
        assert_eq!(cgi_name("x-forwarded-for").as_deref(), Some("HTTP_X_FORWARDED_FOR"));
        assert_eq!(cgi_name("content-type"), None);
        assert_eq!(cgi_name("content-length"), None);
        assert_eq!(cgi_name("x_forwarded_for").as_deref(), Some("HTTP_X_FORWARDED_FOR"));
        assert_eq!(cgi_name("content_type"), None);
        assert_eq!(cgi_name("content_length"), None);
        assert_eq!(cgi_name("transfer_encoding"), None);
        assert_eq!(cgi_name("transfer-encoding").as_deref(), Some("HTTP_TRANSFER_ENCODING"));
    }
}
