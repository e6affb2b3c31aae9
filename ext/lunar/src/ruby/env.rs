//! RackEnv: builds the Rack env Hash for one request job, on a Ruby thread.
//!
//! The server-constant entries (`rack.version`, `rack.errors`, `SCRIPT_NAME`, …) live in a
//! base Hash that Ruby builds once; each request starts from a copy of it. Keys are frozen
//! interned Strings made once, so a request allocates only its values.

use magnus::{value::Lazy, value::ReprValue, Error, RHash, RString, Ruby, Value};

use crate::bridge::connection::ConnectionInfo;
use crate::config::ServerConfig;
use crate::ruby::headers::{authority_host, cgi_name, has_underscore, split_host};
use http::request::Parts;
use http::{Method, Version};

macro_rules! frozen_keys {
    ($($name:ident = $text:expr;)*) => {
        $(static $name: Lazy<RString> = Lazy::new(|ruby| ruby.str_new($text).to_interned_str());)*
    };
}

frozen_keys! {
    REQUEST_METHOD = "REQUEST_METHOD";
    PATH_INFO = "PATH_INFO";
    REQUEST_PATH = "REQUEST_PATH";
    QUERY_STRING = "QUERY_STRING";
    REQUEST_URI = "REQUEST_URI";
    SERVER_NAME = "SERVER_NAME";
    SERVER_PORT = "SERVER_PORT";
    SERVER_PROTOCOL = "SERVER_PROTOCOL";
    HTTP_VERSION = "HTTP_VERSION";
    REMOTE_ADDR = "REMOTE_ADDR";
    CONTENT_TYPE = "CONTENT_TYPE";
    CONTENT_LENGTH = "CONTENT_LENGTH";
    HTTP_HOST = "HTTP_HOST";
    HTTP_USER_AGENT = "HTTP_USER_AGENT";
    HTTP_ACCEPT = "HTTP_ACCEPT";
    HTTP_ACCEPT_ENCODING = "HTTP_ACCEPT_ENCODING";
    HTTP_ACCEPT_LANGUAGE = "HTTP_ACCEPT_LANGUAGE";
    HTTP_CONNECTION = "HTTP_CONNECTION";
    HTTP_COOKIE = "HTTP_COOKIE";
    HTTP_REFERER = "HTTP_REFERER";
    HTTP_CACHE_CONTROL = "HTTP_CACHE_CONTROL";
    HTTP_X_FORWARDED_FOR = "HTTP_X_FORWARDED_FOR";
    HTTP_X_FORWARDED_PROTO = "HTTP_X_FORWARDED_PROTO";
    HTTP_ORIGIN = "HTTP_ORIGIN";
    HTTP_AUTHORIZATION = "HTTP_AUTHORIZATION";
    HTTP_IF_NONE_MATCH = "HTTP_IF_NONE_MATCH";
    HTTP_IF_MODIFIED_SINCE = "HTTP_IF_MODIFIED_SINCE";
    HTTP_UPGRADE = "HTTP_UPGRADE";
    V_HTTP_1_1 = "HTTP/1.1";
    V_HTTP_1_0 = "HTTP/1.0";
    V_HTTP_2 = "HTTP/2";
    RACK_URL_SCHEME = "rack.url_scheme";
    RACK_RESPONSE_FINISHED = "rack.response_finished";
    RACK_AFTER_REPLY = "rack.after_reply";
    HTTPS = "HTTPS";
    SCHEME_HTTPS = "https";
    ON = "on";
    M_GET = "GET";
    M_POST = "POST";
    M_HEAD = "HEAD";
}

/// The interned key for common headers; `None` means build it with `cgi_name`.
fn common_header_key(name: &str) -> Option<&'static Lazy<RString>> {
    Some(match name {
        "host" => &HTTP_HOST,
        "user-agent" => &HTTP_USER_AGENT,
        "accept" => &HTTP_ACCEPT,
        "accept-encoding" => &HTTP_ACCEPT_ENCODING,
        "accept-language" => &HTTP_ACCEPT_LANGUAGE,
        "connection" => &HTTP_CONNECTION,
        "cookie" => &HTTP_COOKIE,
        "referer" => &HTTP_REFERER,
        "cache-control" => &HTTP_CACHE_CONTROL,
        "x-forwarded-for" => &HTTP_X_FORWARDED_FOR,
        "x-forwarded-proto" => &HTTP_X_FORWARDED_PROTO,
        "origin" => &HTTP_ORIGIN,
        "authorization" => &HTTP_AUTHORIZATION,
        "if-none-match" => &HTTP_IF_NONE_MATCH,
        "if-modified-since" => &HTTP_IF_MODIFIED_SINCE,
        "upgrade" => &HTTP_UPGRADE,
        _ => return None,
    })
}

/// The env's per-request entries, gathered on the stack and inserted with one
/// `rb_hash_bulk_insert`: the table grows once instead of rehashing as ~25 entries arrive one
/// by one (which cost more than building every String). Being a stack array, it keeps the
/// Strings it holds visible to Ruby's conservative GC until they are in the Hash.
struct Pairs {
    buf: [Value; Pairs::CAPACITY],
    len: usize,
}

impl Pairs {
    /// 17 CGI entries + hyper's default limit of 100 headers, as key/value pairs, with room to spare.
    const CAPACITY: usize = 256;

    fn new(ruby: &Ruby) -> Self {
        Pairs { buf: [ruby.qnil().as_value(); Pairs::CAPACITY], len: 0 }
    }

    fn push(&mut self, env: RHash, key: RString, value: impl ReprValue) {
        if self.len + 2 > Pairs::CAPACITY {
            self.flush(env);
        }
        self.buf[self.len] = key.as_value();
        self.buf[self.len + 1] = value.as_value();
        self.len += 2;
    }

    fn flush(&mut self, env: RHash) {
        use magnus::rb_sys::AsRawValue;
        // SAFETY: on a Ruby thread with the GVL; `env` is the fresh, unfrozen Hash made in
        // `build`, and `buf[..len]` holds live String keys and values (on this stack frame),
        // so rb_hash_bulk_insert cannot raise: no frozen-hash error, no user #hash to call.
        unsafe {
            rb_sys::rb_hash_bulk_insert(self.len as std::os::raw::c_long, self.buf.as_ptr() as *const rb_sys::VALUE, env.as_raw());
        }
        self.len = 0;
    }
}

/// What the env is built from: the request head and where the connection came from.
pub struct JobView<'a> {
    pub head: &'a Parts,
    pub connection: &'a ConnectionInfo,
    /// The body's size, read in full before the job was dispatched.
    pub body_len: u64,
}

/// Builds the env for a request from a copy of `base`.
pub fn build(ruby: &Ruby, base: RHash, job: &JobView<'_>, cfg: &ServerConfig) -> Result<RHash, Error> {
    // SAFETY: `base` is a live Hash (a Ruby argument on this Ruby thread, so on the stack and
    // marked); rb_hash_dup returns a new Hash we hold on the stack too.
    let env = unsafe {
        use magnus::rb_sys::{AsRawValue, FromRawValue};
        RHash::from_value(magnus::Value::from_raw(rb_sys::rb_hash_dup(base.as_raw())))
    }
    .ok_or_else(|| Error::new(ruby.exception_type_error(), "base env is not a Hash"))?;

    let head = job.head;
    let mut pairs = Pairs::new(ruby);
    add_request_line(ruby, env, &mut pairs, head, cfg);
    pairs.push(env, ruby.get_inner(&REMOTE_ADDR), ruby.str_new(&job.connection.remote_ip()));
    if job.connection.tls {
        pairs.push(env, ruby.get_inner(&RACK_URL_SCHEME), ruby.get_inner(&SCHEME_HTTPS));
        pairs.push(env, ruby.get_inner(&HTTPS), ruby.get_inner(&ON));
    }
    let host_from_target = add_host(ruby, env, &mut pairs, job);
    let chunked = head.headers.contains_key(http::header::TRANSFER_ENCODING);
    add_headers(ruby, env, &mut pairs, head, host_from_target, chunked)?;
    add_body_length(ruby, env, &mut pairs, job, chunked);
    // Callables to run after the response, each a fresh Array: Rack 3's (Rails 8.1 relies on
    // it) and Puma's and Unicorn's (apps push to it unguarded: Pact Broker's webhooks).
    pairs.push(env, ruby.get_inner(&RACK_RESPONSE_FINISHED), ruby.ary_new());
    pairs.push(env, ruby.get_inner(&RACK_AFTER_REPLY), ruby.ary_new());
    pairs.flush(env);
    Ok(env)
}

/// `REQUEST_METHOD`, `PATH_INFO`, `REQUEST_PATH`, `QUERY_STRING`, `REQUEST_URI` and the
/// protocol (`SERVER_PROTOCOL`, `HTTP_VERSION`).
fn add_request_line(ruby: &Ruby, env: RHash, pairs: &mut Pairs, head: &Parts, cfg: &ServerConfig) {
    let method = match head.method {
        Method::GET => ruby.get_inner(&M_GET),
        Method::POST => ruby.get_inner(&M_POST),
        Method::HEAD => ruby.get_inner(&M_HEAD),
        ref m => ruby.str_new(m.as_str()),
    };
    pairs.push(env, ruby.get_inner(&REQUEST_METHOD), method);

    let (path, query) = request_target(head, cfg);
    pairs.push(env, ruby.get_inner(&PATH_INFO), ruby.str_from_slice(path.as_bytes()));
    pairs.push(env, ruby.get_inner(&REQUEST_PATH), ruby.str_from_slice(path.as_bytes()));
    pairs.push(env, ruby.get_inner(&QUERY_STRING), ruby.str_from_slice(query.as_bytes()));
    // The target's path and query as the client wrote them (`/q?` keeps its `?`, as under
    // Puma and Thin); rebuilt only where the target had none of its own (`OPTIONS *`).
    match head.uri.path_and_query().map(|pq| pq.as_str()).filter(|pq| pq.starts_with('/')) {
        Some(target) => pairs.push(env, ruby.get_inner(&REQUEST_URI), ruby.str_new(target)),
        None => {
            let uri = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
            pairs.push(env, ruby.get_inner(&REQUEST_URI), ruby.str_from_slice(uri.as_bytes()));
        }
    }

    let version = match head.version {
        Version::HTTP_10 => &V_HTTP_1_0,
        Version::HTTP_2 => &V_HTTP_2,
        _ => &V_HTTP_1_1,
    };
    pairs.push(env, ruby.get_inner(&SERVER_PROTOCOL), ruby.get_inner(version));
    pairs.push(env, ruby.get_inner(&HTTP_VERSION), ruby.get_inner(version));
}

/// `SERVER_NAME`, `SERVER_PORT`, and `HTTP_HOST` when the target names the host. Returns
/// whether it did: then the Host header is not the host.
fn add_host(ruby: &Ruby, env: RHash, pairs: &mut Pairs, job: &JobView<'_>) -> bool {
    let head = job.head;
    // The target's authority, when it has one, is the host: HTTP/2's `:authority`, and an
    // HTTP/1.1 absolute-form target, where the Host header must be ignored (RFC 9112
    // §3.2.2). Rack apps read it as HTTP_HOST; add_headers then skips the Host header.
    let authority = head.uri.authority().map(|a| authority_host(a.as_str()));
    if let Some(authority) = authority {
        pairs.push(env, ruby.get_inner(&HTTP_HOST), ruby.str_new(authority));
    }
    let host_header = head.headers.get("host").and_then(|h| h.to_str().ok());
    let local;
    let (name, port) = match authority.or(host_header) {
        Some(h) => split_host(h, if job.connection.tls { "443" } else { "80" }),
        None => {
            local = job.connection.local_host_port();
            (local.0.as_str(), local.1.as_str())
        }
    };
    pairs.push(env, ruby.get_inner(&SERVER_NAME), ruby.str_new(name));
    pairs.push(env, ruby.get_inner(&SERVER_PORT), ruby.str_new(port));
    authority.is_some()
}

/// A body sent chunked (or on HTTP/2 without a length) has been read in full: its size is its
/// CONTENT_LENGTH, as Puma gives it. Rails reads `raw_post` as `read(content_length)`, so
/// without it a chunked JSON upload reached the app as empty params.
fn add_body_length(ruby: &Ruby, env: RHash, pairs: &mut Pairs, job: &JobView<'_>, chunked: bool) {
    // A bodiless GET looks nothing up; a Content-Length beside the chunked coding is not the body's.
    if chunked || (job.body_len > 0 && !job.head.headers.contains_key(http::header::CONTENT_LENGTH)) {
        pairs.push(env, ruby.get_inner(&CONTENT_LENGTH), ruby.str_new(&job.body_len.to_string()));
    }
}

/// `PATH_INFO` and `QUERY_STRING`, raw (still %-encoded). An absolute-form target gives its
/// path; `OPTIONS *` gives `""` or `"*"` depending on the Rack version.
pub(crate) fn request_target<'a>(head: &'a Parts, cfg: &ServerConfig) -> (&'a str, &'a str) {
    let uri = &head.uri;
    if uri.path() == "*" {
        return (if cfg.asterisk_path_info { "*" } else { "" }, "");
    }
    let path = if uri.authority().is_some() || uri.path().starts_with('/') { uri.path() } else { "/" };
    (path, uri.query().unwrap_or(""))
}

/// `HTTP_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`. Repeated headers are joined with `", "`
/// (HeaderMap yields a name's values consecutively). The Host header is skipped when the
/// target named the host, the framing headers when the body came `chunked` (its length is
/// `add_body_length`'s).
fn add_headers(ruby: &Ruby, env: RHash, pairs: &mut Pairs, head: &Parts, host_from_target: bool, chunked: bool) -> Result<(), Error> {
    let mut previous: Option<(&http::HeaderName, RString)> = None;
    // Rare: a Vec allocates only when a name with `_` comes.
    let mut underscored: Vec<(&http::HeaderName, &http::HeaderValue)> = Vec::new();
    for (name, value) in head.headers.iter() {
        if let Some((prev_name, prev_value)) = &previous {
            if *prev_name == name {
                prev_value.cat(joiner(name));
                prev_value.cat(value.as_bytes());
                continue;
            }
        }
        let text = name.as_str();
        let key = match text {
            "content-type" => ruby.get_inner(&CONTENT_TYPE),
            // Read and unchunked already (its length is CONTENT_LENGTH, above): Puma drops both.
            "content-length" | "transfer-encoding" if chunked => continue,
            "content-length" => ruby.get_inner(&CONTENT_LENGTH),
            "host" if host_from_target => continue,
            _ if has_underscore(text) => {
                underscored.push((name, value));
                continue;
            }
            _ => match common_header_key(text) {
                Some(k) => ruby.get_inner(k),
                None => match cgi_name(text) {
                    Some(k) => ruby.str_new(&k).to_interned_str(),
                    None => continue,
                },
            },
        };
        let val = ruby.str_from_slice(value.as_bytes());
        pairs.push(env, key, val);
        previous = Some((name, val));
    }
    add_underscored(ruby, env, pairs, &underscored)
}

/// Repeated lines join with ", " (RFC 9110 §5.3), but Cookie with "; ": an HTTP/2 client
/// splits its cookies into one field each (RFC 9113 §8.2.3, as browsers do), and Rack
/// parses HTTP_COOKIE on ";" only.
fn joiner(name: &http::HeaderName) -> &'static [u8] {
    if name == http::header::COOKIE {
        b"; "
    } else {
        b", "
    }
}

/// Names with `_` (`X_Api_Key`), by Puma's rule: each is the key its dashed twin would make,
/// added only when no header already set that key, so a client's `X_Forwarded_For` never
/// replaces a proxy's `X-Forwarded-For` (nor can two spellings of one name merge).
fn add_underscored(ruby: &Ruby, env: RHash, pairs: &mut Pairs, underscored: &[(&http::HeaderName, &http::HeaderValue)]) -> Result<(), Error> {
    if underscored.is_empty() {
        return Ok(());
    }
    pairs.flush(env); // the dashed keys must be in the Hash to be looked up
    for group in underscored.chunk_by(|a, b| a.0 == b.0) {
        let Some(key) = cgi_name(group[0].0.as_str()) else { continue };
        let key = ruby.str_new(&key).to_interned_str();
        if env.get(key).is_some() {
            continue;
        }
        let val = ruby.str_from_slice(group[0].1.as_bytes());
        for (name, value) in &group[1..] {
            val.cat(joiner(name));
            val.cat(value.as_bytes());
        }
        env.aset(key, val)?; // at once: a second spelling of the name must find it
    }
    Ok(())
}
