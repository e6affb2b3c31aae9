//! `Lunar::Native::Request`: one request as Ruby sees it, and its one-shot reply slot.
//!
//! The slot may be filled from any Ruby thread (a worker, the EventMachine reactor, a plain
//! `Thread`); the first answer wins and later ones return `false`. This is what
//! `async.callback` is built on. If the object is collected unanswered, dropping the slot
//! makes the I/O side answer 503, so no request is ever left hanging.

use std::sync::{Arc, Mutex};

use http::request::Parts;
use magnus::{Error, IntoValue, RHash, RString, Ruby, Value};
use tokio::sync::oneshot;

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::handover;
use crate::bridge::job::{RequestBody, RequestJob};
use crate::bridge::reply::{self, switching_protocols, Counted, FileBody, Reply, ReplyBody};
use crate::bridge::stream::{self, Caps, ChunkStream};
use crate::net::state::ServerState;
use crate::ruby::body_writer::BodyWriter;
use crate::ruby::env;
use crate::ruby::error::OrRaise;
use crate::ruby::gvl::wait_on_io;
use crate::ruby::response::{self, WholeBody};
use crate::sync::lock;

#[magnus::wrap(class = "Lunar::Native::Request", free_immediately, size)]
pub struct NativeRequest {
    id: u64,
    /// Taken by `env`: a held request keeps no copy of its head.
    head: Mutex<Option<Box<Parts>>>,
    /// Let go of once the connection is handed to the app (`rack.hijack`): an app such as
    /// faye-websocket keeps the env, so this object, for the socket's whole life, and a
    /// connection's state kept that long pins allocator pages its short-lived neighbours left.
    connection: Mutex<Option<Arc<ConnectionInfo>>>,
    body: Mutex<Option<RequestBody>>,
    reply: Mutex<Option<oneshot::Sender<Reply>>>,
    state: Arc<ServerState>,
    /// An HTTP/1.1 request that asked for an upgrade: hyper can write a 101 and hand over.
    upgradable: bool,
    /// HTTP/1.0 or 1.1: the connection can be taken (`rack.hijack`); HTTP/2 streams cannot.
    hijackable: bool,
}

impl NativeRequest {
    pub fn new(job: RequestJob, state: Arc<ServerState>) -> Self {
        NativeRequest {
            id: job.id,
            hijackable: job.head.version <= http::Version::HTTP_11,
            head: Mutex::new(Some(job.head)),
            connection: Mutex::new(Some(job.connection)),
            body: Mutex::new(Some(job.body)),
            reply: Mutex::new(Some(job.reply)),
            state,
            upgradable: job.upgradable,
        }
    }

    fn id(&self) -> u64 {
        self.id
    }

    /// The Rack env, built from the server's base env. Once: the head is dropped after.
    fn env(ruby: &Ruby, rb_self: &Self, base: RHash) -> Result<RHash, Error> {
        let head = lock(&rb_self.head).take();
        let head = head.ok_or_else(|| Error::new(ruby.exception_runtime_error(), "Lunar::Native::Request#env was already built"))?;
        let connection = rb_self.connection().ok_or_else(|| Error::new(ruby.exception_runtime_error(), "Lunar::Native::Request#env after a hijack"))?;
        let body_len = lock(&rb_self.body).as_ref().map_or(0, RequestBody::len);
        let job_view = env::JobView { head: &head, connection: &connection, body_len };
        env::build(ruby, base, &job_view, &rb_self.state.config)
    }

    /// The body, once: a binary String, an Integer fd of a spooled temp file, or nil.
    fn take_body(ruby: &Ruby, rb_self: &Self) -> Value {
        let body = lock(&rb_self.body).take();
        match body {
            Some(RequestBody::Memory(bytes)) => ruby.str_from_slice(&bytes).into_value_with(ruby),
            Some(RequestBody::Spooled(file)) => {
                use std::os::fd::IntoRawFd;
                (file.into_raw_fd() as i64).into_value_with(ruby)
            }
            Some(RequestBody::Empty) | None => ruby.qnil().into_value_with(ruby),
        }
    }

    fn send(&self, reply: Reply) -> bool {
        let slot = lock(&self.reply).take();
        match slot {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    /// Hands the reply slot to someone else (a `Topic`), once.
    pub fn take_reply(&self) -> Option<oneshot::Sender<Reply>> {
        lock(&self.reply).take()
    }

    fn is_answered(&self) -> bool {
        lock(&self.reply).is_none()
    }

    /// Whether the client is still there to be answered.
    fn is_open(&self) -> bool {
        lock(&self.reply).as_ref().is_some_and(|tx| !tx.is_closed())
    }

    /// A complete response; `body` is a String, an Array of Strings, or nil. Whether it was
    /// handed to the connection (false: already answered, or the client is gone); nil when
    /// the body does not fit the connection's budget (its HTTP/2 streams wait on a slow
    /// client): then nothing was copied or sent, and Ruby streams the body instead.
    fn respond(ruby: &Ruby, rb_self: &Self, status: i64, headers: Value, body: Value) -> Result<Option<bool>, Error> {
        let status = response::status(ruby, status, false)?;
        let map = response::header_map(ruby, headers)?;
        let body = WholeBody::of(ruby, body)?;
        let len = body.len()?;
        let reply_body = if len == 0 {
            ReplyBody::Empty
        } else {
            let connection = lock(&rb_self.connection); // no Arc clone per response: the lock is enough
            let Some(connection) = connection.as_ref() else { return Ok(Some(false)) }; // hijacked: answered
            match Counted::reserve(connection, len, rb_self.state.config.connection_buffer) {
                Some(slot) => slot.with(body.to_bytes(ruby)?),
                None => return Ok(None),
            }
        };
        Ok(Some(rb_self.send(Reply::Response(reply::response(status, map, reply_body)))))
    }

    /// A response whose body tokio reads from `path` (Rack `to_path`).
    fn respond_file(ruby: &Ruby, rb_self: &Self, status: i64, headers: Value, path: RString) -> Result<bool, Error> {
        let status = response::status(ruby, status, false)?;
        let map = response::header_map(ruby, headers)?;
        let path = path.to_string()?;
        let file = std::fs::File::open(&path).map_err(|source| crate::error::Error::File { path: path.clone(), source }).or_raise(ruby)?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(rb_self.send(Reply::Response(reply::response(status, map, ReplyBody::File(Box::new(FileBody::new(file, len)))))))
    }

    /// Sends the head now and returns a writer for the body chunks (nil if already answered).
    fn stream(ruby: &Ruby, rb_self: &Self, status: i64, headers: Value) -> Result<Option<BodyWriter>, Error> {
        let status = response::status(ruby, status, false)?;
        let map = response::header_map(ruby, headers)?;
        let Some((stream, writer)) = rb_self.stream_pair() else { return Ok(None) };
        let sent = rb_self.send(Reply::Response(reply::response(status, map, ReplyBody::Chunks(stream))));
        Ok(sent.then_some(writer))
    }

    /// Accepts a WebSocket handshake natively (`Topic#websocket`): hyper writes the 101, and
    /// every chunk written to the returned writer goes out as one message. `key` is the
    /// request's `Sec-WebSocket-Key`; `messages`: the client's messages are delivered to
    /// Ruby. nil if the request cannot be upgraded or was already answered.
    fn websocket(&self, key: RString, messages: bool) -> Option<BodyWriter> {
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
        if !self.upgradable || self.is_answered() {
            return None;
        }
        // SAFETY: `key` is a live Ruby String argument on this thread, read before any Ruby call.
        let accept = derive_accept_key(unsafe { key.as_slice() });
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::UPGRADE, http::HeaderValue::from_static("websocket"));
        headers.insert(http::header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, http::HeaderValue::from_str(&accept).ok()?);
        let (outgoing, writer) = self.stream_pair()?;
        self.send(Reply::WebSocket { head: switching_protocols(headers), outgoing, messages }).then_some(writer)
    }

    /// A streamed body's two ends: the connection's, and Ruby's writer (byte-capped); None
    /// once the connection was hijacked.
    fn stream_pair(&self) -> Option<(Box<ChunkStream>, BodyWriter)> {
        let caps = Caps { stream: self.state.config.stream_buffer, connection: self.state.config.connection_buffer };
        let (sender, stream) = stream::channel(self.connection()?, caps);
        Some((Box::new(stream), BodyWriter::new(sender, self.state.runtime.clone())))
    }

    fn connection(&self) -> Option<Arc<ConnectionInfo>> {
        lock(&self.connection).clone()
    }

    /// Whether the request asked for an upgrade (a partial hijack needs one: hyper writes its
    /// 101, then hands over).
    fn is_upgradable(&self) -> bool {
        self.upgradable
    }

    /// Whether `rack.hijack` is offered: every HTTP/1.0 and 1.1 request.
    fn is_hijackable(&self) -> bool {
        self.hijackable
    }

    /// Full `rack.hijack`: the connection becomes the app's. Returns `[fd, tcp?]`: the
    /// client's own socket where nothing sits in between, else the app's end of a socket
    /// pair the I/O side relays to the client (nil if the request cannot be hijacked or
    /// was already answered). The app writes its own response bytes.
    fn hijack(ruby: &Ruby, rb_self: &Self) -> Result<Option<(i32, bool)>, Error> {
        rb_self.hand_over(ruby, None)
    }

    /// Partial hijack (a `rack.hijack` response header): Lunar writes `status` and `headers`,
    /// then the connection is the app's, as for `hijack`. A 101 goes through hyper's upgrade
    /// (the request must have asked for one). Any other status is written by hyper as an
    /// HTTP/1.0 head with `Connection: close` and no framing of its own (the app's bytes are
    /// the body, ended by the close); a head that declares its own framing (Content-Length,
    /// Transfer-Encoding) cannot be written that way and is refused.
    fn upgrade(ruby: &Ruby, rb_self: &Self, status: i64, headers: Value) -> Result<Option<(i32, bool)>, Error> {
        use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
        let status = response::status(ruby, status, true)?;
        let headers = response::header_map(ruby, headers)?;
        if status == http::StatusCode::SWITCHING_PROTOCOLS {
            if !rb_self.upgradable {
                return Ok(None);
            }
            return rb_self.hand_over(ruby, Some(reply::response(status, headers, ReplyBody::Empty)));
        }
        if headers.contains_key(CONTENT_LENGTH) || headers.contains_key(TRANSFER_ENCODING) {
            return Err(Error::new(
                ruby.exception_arg_error(),
                "a rack.hijack response header with Content-Length or Transfer-Encoding: hyper frames what it writes, \
                 so Lunar sends a partial hijack's head unframed (HTTP/1.0, ended by the close); drop those headers, \
                 or take the whole connection with env['rack.hijack'].call",
            ));
        }
        let mut head = reply::response(status, headers, ReplyBody::Unframed);
        *head.version_mut() = http::Version::HTTP_10;
        head.headers_mut().insert(CONNECTION, http::HeaderValue::from_static("close"));
        rb_self.hand_over(ruby, Some(head))
    }

    /// Answers the request with the hijack, then waits (GVL released; microseconds: until
    /// hyper lets go of the connection) for the descriptor the I/O side hands over.
    fn hand_over(&self, ruby: &Ruby, head: Option<Box<http::Response<ReplyBody>>>) -> Result<Option<(i32, bool)>, Error> {
        use std::os::fd::IntoRawFd;
        if !self.hijackable || self.is_answered() {
            return Ok(None);
        }
        let (giver, taker) = handover::channel();
        if !self.send(Reply::Hijack { giver, head }) {
            return Ok(None);
        }
        match wait_on_io(ruby, &self.state.runtime, taker.taken())? {
            Some(Ok(handed)) => {
                lock(&self.connection).take(); // the app's now: nothing of it is kept here
                lock(&self.body).take();
                Ok(Some((handed.fd.into_raw_fd(), handed.kind == handover::Kind::Tcp)))
            }
            // The connection went away first (or the server stopped).
            _ => Err(Error::new(ruby.exception_io_error(), "rack.hijack: the client went away before the connection could be handed over")),
        }
    }

    /// Closes the connection without a byte of response (a `nil` Rack result).
    fn close_connection(&self) -> bool {
        self.send(Reply::Close)
    }

    /// The app answers later (async): the connection stops holding back its client's
    /// end-of-stream (see `bridge::half_close`), so a client that leaves is noticed.
    fn answering_later(&self) {
        if let Some(connection) = lock(&self.connection).as_ref() {
            connection.release_eof();
        }
    }

    pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
        use magnus::{method, Module};
        let class = native.define_class("Request", ruby.class_object())?;
        class.define_method("id", method!(NativeRequest::id, 0))?;
        class.define_method("env", method!(NativeRequest::env, 1))?;
        class.define_method("take_body", method!(NativeRequest::take_body, 0))?;
        class.define_method("respond", method!(NativeRequest::respond, 3))?;
        class.define_method("respond_file", method!(NativeRequest::respond_file, 3))?;
        class.define_method("stream", method!(NativeRequest::stream, 2))?;
        class.define_method("close_connection", method!(NativeRequest::close_connection, 0))?;
        class.define_method("answering_later", method!(NativeRequest::answering_later, 0))?;
        class.define_method("upgradable?", method!(NativeRequest::is_upgradable, 0))?;
        class.define_method("hijackable?", method!(NativeRequest::is_hijackable, 0))?;
        class.define_method("hijack", method!(NativeRequest::hijack, 0))?;
        class.define_method("upgrade", method!(NativeRequest::upgrade, 2))?;
        class.define_method("websocket", method!(NativeRequest::websocket, 2))?;
        class.define_method("answered?", method!(NativeRequest::is_answered, 0))?;
        class.define_method("open?", method!(NativeRequest::is_open, 0))?;
        Ok(())
    }
}
