//! `Lunar::Native::Topic`: Lunar's native fan-out. One `publish` from any Ruby thread
//! reaches every attached connection without a Ruby call per subscriber.
//!
//! Subscribers are held long-polls (answered by the next message, then gone) and open
//! streams (every message written with the framing each chose, e.g. SSE's `data: …\n\n`).
//! The message is copied out of Ruby once; each framing is built once per publish; streams
//! share the framed bytes (reference-counted). A stream whose client has not read its
//! buffer (`stream_buffer`) is cut off rather than waited for: one slow subscriber must not
//! delay the others. Connections that ended are pruned as they are found.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use magnus::{Error, RString, Ruby, Value};
use tokio::sync::oneshot;

use crate::ruby::body_writer::BodyWriter;
use crate::ruby::native_request::NativeRequest;
use crate::bridge::reply::{Reply, ReplyBody};
use crate::ruby::response;
use crate::bridge::stream::{Queued, StreamSender};

enum Subscriber {
    /// `head` is shared by every subscriber held with the same status and headers.
    Poll { reply: oneshot::Sender<Reply>, head: Arc<(i64, HeaderMap)> },
    /// An open stream, or a native WebSocket (`socket`: each chunk is one message, and raw
    /// publishes such as SSE heartbeats are not for it).
    Stream { sender: StreamSender, prefix: Bytes, suffix: Bytes, socket: bool },
}

impl Subscriber {
    fn is_gone(&self) -> bool {
        match self {
            Subscriber::Poll { reply, .. } => reply.is_closed(),
            Subscriber::Stream { sender, .. } => sender.is_closed(),
        }
    }
}

#[magnus::wrap(class = "Lunar::Native::Topic", free_immediately, size)]
pub struct Topic {
    subscribers: Mutex<Vec<Subscriber>>,
}

/// Framed messages built during one publish, by framing (most subscribers share one).
struct Frames<'a> {
    message: &'a Bytes,
    built: Vec<(Bytes, Bytes, Bytes)>,
}

impl Frames<'_> {
    fn framed(&mut self, prefix: &Bytes, suffix: &Bytes) -> Bytes {
        if prefix.is_empty() && suffix.is_empty() {
            return self.message.clone();
        }
        if let Some((_, _, f)) = self.built.iter().find(|(p, s, _)| p == prefix && s == suffix) {
            return f.clone();
        }
        let mut buf = BytesMut::with_capacity(prefix.len() + self.message.len() + suffix.len());
        buf.extend_from_slice(prefix);
        buf.extend_from_slice(self.message);
        buf.extend_from_slice(suffix);
        let framed = buf.freeze();
        self.built.push((prefix.clone(), suffix.clone(), framed.clone()));
        framed
    }
}

impl Topic {
    fn new() -> Self {
        Topic { subscribers: Mutex::new(Vec::new()) }
    }

    fn add(&self, sub: Subscriber) {
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.push(sub);
        }
    }

    /// Holds a long-poll request until the next message: its answer is `status`, `headers`
    /// and the message as the body. False if the request was already answered.
    fn hold(ruby: &Ruby, rb_self: &Self, request: &NativeRequest, status: i64, headers: Value) -> Result<bool, Error> {
        let head = (status, response::header_map(ruby, headers)?);
        let Some(reply) = request.take_reply() else { return Ok(false) };
        if let Ok(mut subs) = rb_self.subscribers.lock() {
            // Subscribers are held alike: share the last one's head when it is the same.
            let shared = match subs.last() {
                Some(Subscriber::Poll { head: h, .. }) => Some(h.clone()),
                _ => None,
            };
            let head = match shared {
                Some(h) if *h == head => h,
                _ => Arc::new(head),
            };
            subs.push(Subscriber::Poll { reply, head });
        }
        Ok(true)
    }

    /// Attaches an open stream: every message is written between `prefix` and `suffix`.
    fn attach(&self, writer: &BodyWriter, prefix: RString, suffix: RString) -> bool {
        let Some(sender) = writer.sender() else { return false };
        self.add(Subscriber::Stream { sender, prefix: prefix.to_bytes(), suffix: suffix.to_bytes(), socket: false });
        true
    }

    /// Attaches a native WebSocket: every message is one WebSocket message.
    fn attach_socket(&self, writer: &BodyWriter) -> bool {
        let Some(sender) = writer.sender() else { return false };
        self.add(Subscriber::Stream { sender, prefix: Bytes::new(), suffix: Bytes::new(), socket: true });
        true
    }

    /// Delivers `message` to every subscriber. Returns how many it reached.
    fn publish(&self, message: RString) -> usize {
        self.deliver(message.to_bytes(), true)
    }

    /// Writes `bytes` as is to the streams only (an SSE heartbeat comment, say); held
    /// long-polls stay held.
    fn publish_raw(&self, bytes: RString) -> usize {
        self.deliver(bytes.to_bytes(), false)
    }

    fn deliver(&self, message: Bytes, framed: bool) -> usize {
        let Ok(mut subs) = self.subscribers.lock() else { return 0 };
        let mut frames = Frames { message: &message, built: Vec::new() };
        let mut reached = 0;
        let mut kept = Vec::with_capacity(subs.len());
        for sub in subs.drain(..) {
            match sub {
                _ if sub.is_gone() => {}
                Subscriber::Poll { .. } | Subscriber::Stream { socket: true, .. } if !framed => kept.push(sub),
                Subscriber::Poll { reply, head } => {
                    let body = ReplyBody::Full(message.clone());
                    if reply.send(Reply::Published(response::build(head.0, head.1.clone(), body))).is_ok() {
                        reached += 1;
                    }
                }
                Subscriber::Stream { ref sender, ref prefix, ref suffix, .. } => {
                    let bytes = if framed { frames.framed(prefix, suffix) } else { message.clone() };
                    match sender.try_send(bytes) {
                        Queued::Sent => {
                            reached += 1;
                            kept.push(sub);
                        }
                        // Too slow: cut it off (its connection closes; async.close fires).
                        Queued::Full(_) => sender.cut(),
                        Queued::Gone => {}
                    }
                }
            }
        }
        *subs = kept;
        reached
    }

    fn size(&self) -> usize {
        self.subscribers.lock().map(|mut subs| {
            subs.retain(|s| !s.is_gone());
            subs.len()
        }).unwrap_or(0)
    }

    pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
        use magnus::{function, method, Module, Object};
        let class = native.define_class("Topic", ruby.class_object())?;
        class.define_singleton_method("new", function!(Topic::new, 0))?;
        class.define_method("hold", method!(Topic::hold, 3))?;
        class.define_method("attach", method!(Topic::attach, 3))?;
        class.define_method("attach_socket", method!(Topic::attach_socket, 1))?;
        class.define_method("publish", method!(Topic::publish, 1))?;
        class.define_method("publish_raw", method!(Topic::publish_raw, 1))?;
        class.define_method("size", method!(Topic::size, 0))?;
        Ok(())
    }
}
