//! `Lunar::Native::Topic`: Lunar's native fan-out (`fanout`), as Ruby sees it. One `publish` from any
//! Ruby thread reaches every attached connection without a Ruby call per subscriber.
//!
//! An in-process topic delivers on the publishing thread. A topic shared through Redis
//! (`Topic.redis`) publishes to Redis instead, and its messages come back, from every
//! process that publishes, through this process's Redis link (`fanout::redis`), which
//! delivers them to the same local subscribers. The link is joined on first use in each
//! process, never at load.

use std::sync::{Arc, Mutex};

use magnus::{Error, IntoValue, RString, Ruby, Value};

use crate::fanout::redis::{self, Command, Link};
use crate::fanout::subscribers::{Message, StreamId, Subscriber, Subscribers};
use crate::ruby::body_writer::BodyWriter;
use crate::ruby::error::OrRaise;
use crate::ruby::gvl::without_gvl;
use crate::ruby::native_request::NativeRequest;
use crate::ruby::response;
use crate::sync::lock;

/// How long the first subscriber in a process waits for the Redis subscription, so that a
/// message published right after it joined reaches it. When Redis is down it goes on (the
/// link keeps trying).
const JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A topic's place in Redis, and the link this process joined for it.
struct RedisBinding {
    url: String,
    channel: String,
    history: usize,
    /// The link this process joined, by pid: a forked child joins its own.
    joined: Mutex<Option<(u32, Arc<Link>)>>,
}

#[magnus::wrap(class = "Lunar::Native::Topic", free_immediately, size)]
pub struct Topic {
    subscribers: Arc<Subscribers>,
    redis: Option<RedisBinding>,
}

/// A Redis topic collected by Ruby's GC: its link stops delivering to it (and leaves the
/// channel when no other topic here is on it). Only plain data crosses: no Ruby call.
impl Drop for Topic {
    fn drop(&mut self) {
        let Some(binding) = &self.redis else { return };
        if let Some((pid, link)) = lock(&binding.joined).as_ref() {
            if *pid == std::process::id() {
                link.send(Command::Unsubscribe { channel: binding.channel.clone(), subscribers: self.subscribers.clone() });
            }
        }
    }
}

impl Topic {
    fn new() -> Self {
        Topic { subscribers: Arc::default(), redis: None }
    }

    /// A topic shared through the Redis at `url` on `channel`, keeping the last `history`
    /// messages (0: none) for streams that reconnect. Checks the URL; connects later.
    fn redis(ruby: &Ruby, url: String, channel: String, history: usize) -> Result<Self, Error> {
        redis::check_url(&url).or_raise(ruby)?;
        let binding = RedisBinding { url, channel, history, joined: Mutex::new(None) };
        Ok(Topic { subscribers: Arc::default(), redis: Some(binding) })
    }

    /// This process's Redis link, subscribed to the channel (joined on first use). The
    /// first subscriber waits (GVL released, at most JOIN_WAIT, cut short by an interrupt)
    /// for the subscription, so that a message published right after it joined reaches it.
    fn link(&self, ruby: &Ruby) -> Result<Option<Arc<Link>>, Error> {
        let Some(binding) = &self.redis else { return Ok(None) };
        let pid = std::process::id();
        let mut joined = lock(&binding.joined);
        if let Some((p, link)) = joined.as_ref() {
            if *p == pid {
                return Ok(Some(link.clone()));
            }
        }
        let link = redis::link(&binding.url).or_raise(ruby)?;
        let (subscribed, done) = std::sync::mpsc::channel();
        let interrupt = subscribed.clone();
        link.send(Command::Subscribe { channel: binding.channel.clone(), subscribers: self.subscribers.clone(), subscribed });
        *joined = Some((pid, link.clone()));
        drop(joined);
        let wait = || {
            let _ = done.recv_timeout(JOIN_WAIT);
        };
        without_gvl(ruby, wait, || {
            let _ = interrupt.send(());
        })?;
        Ok(Some(link))
    }

    /// Holds a long-poll request until the next message: its answer is `status`, `headers`
    /// and the message as the body. False if the request was already answered.
    fn hold(ruby: &Ruby, rb_self: &Self, request: &NativeRequest, status: i64, headers: Value) -> Result<bool, Error> {
        let head = (response::status(ruby, status, false)?, response::header_map(ruby, headers)?);
        rb_self.link(ruby)?;
        let Some(reply) = request.take_reply() else { return Ok(false) };
        rb_self.subscribers.hold(reply, head);
        Ok(true)
    }

    /// Attaches an open stream: `first` is written at once, then every message between
    /// `prefix` and `suffix`, after an SSE `id:` line when `ids`. Nothing published after
    /// `first` can pass it by: both happen under the subscribers' lock. With
    /// `last_event_id` (a reconnecting browser's `Last-Event-ID`) on a Redis topic, the
    /// history after it comes next.
    /// `framing` is `[prefix, suffix, ids]`.
    fn attach(
        ruby: &Ruby,
        rb_self: &Self,
        writer: &BodyWriter,
        framing: (RString, RString, bool),
        last_event_id: Option<String>,
        first: Option<RString>,
    ) -> Result<bool, Error> {
        let Some(sender) = writer.sender() else { return Ok(false) };
        let (prefix, suffix, ids) = framing;
        let first = first.map(|f| f.to_bytes());
        let subscriber = Subscriber::Stream { sender, prefix: prefix.to_bytes(), suffix: suffix.to_bytes(), socket: false, ids, after: None };
        let since = last_event_id.as_deref().and_then(StreamId::parse);
        match (rb_self.link(ruby)?, since, &rb_self.redis) {
            (Some(link), Some(since), Some(binding)) => {
                if let (Some(first), Subscriber::Stream { sender, .. }) = (first, &subscriber) {
                    sender.try_send(first);
                }
                let subscribers = rb_self.subscribers.clone();
                link.send(Command::Replay { channel: binding.channel.clone(), since, subscriber, subscribers });
            }
            _ => rb_self.subscribers.add_after(first, subscriber),
        }
        Ok(true)
    }

    /// Joins this process's Redis link now (a no-op in-process): a subscriber that says it
    /// is ready only after this misses no message published later.
    fn join(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        rb_self.link(ruby).map(|_| ())
    }

    /// Attaches a native WebSocket: every message is one WebSocket message.
    fn attach_socket(ruby: &Ruby, rb_self: &Self, writer: &BodyWriter) -> Result<bool, Error> {
        let Some(sender) = writer.sender() else { return Ok(false) };
        rb_self.link(ruby)?;
        rb_self.subscribers.add(Subscriber::Stream { sender, prefix: Default::default(), suffix: Default::default(), socket: true, ids: false, after: None });
        Ok(true)
    }

    /// In process: delivers `message` and returns how many subscribers it reached. Through
    /// Redis: hands it to the link (it reaches this process's subscribers when Redis sends
    /// it back) and returns true.
    /// A process that only publishes does not subscribe (nor wait for it).
    fn publish(ruby: &Ruby, rb_self: &Self, message: RString) -> Result<Value, Error> {
        let Some(binding) = &rb_self.redis else {
            return Ok(rb_self.subscribers.deliver(&Message { body: message.to_bytes(), id: None }, true).into_value_with(ruby));
        };
        let link = redis::link(&binding.url).or_raise(ruby)?;
        link.send(Command::Publish { channel: binding.channel.clone(), history: binding.history, message: message.to_bytes() });
        Ok(true.into_value_with(ruby))
    }

    /// Writes `bytes` as is to this process's streams only (an SSE heartbeat, say); held
    /// long-polls and WebSockets stay as they are.
    fn publish_raw(&self, bytes: RString) -> usize {
        self.subscribers.deliver(&Message { body: bytes.to_bytes(), id: None }, false)
    }

    fn size(&self) -> usize {
        self.subscribers.size()
    }

    fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// `Lunar::Native::Topic.redis_links`: `[[url, connected, publishes dropped], …]`, for the stats.
    fn redis_links() -> Vec<(String, bool, u64)> {
        redis::health()
    }

    pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
        use magnus::{function, method, Module, Object};
        let class = native.define_class("Topic", ruby.class_object())?;
        class.define_singleton_method("new", function!(Topic::new, 0))?;
        class.define_singleton_method("redis", function!(Topic::redis, 3))?;
        class.define_singleton_method("redis_links", function!(Topic::redis_links, 0))?;
        class.define_method("hold", method!(Topic::hold, 3))?;
        class.define_method("attach", method!(Topic::attach, 4))?;
        class.define_method("join", method!(Topic::join, 0))?;
        class.define_method("attach_socket", method!(Topic::attach_socket, 1))?;
        class.define_method("publish", method!(Topic::publish, 1))?;
        class.define_method("publish_raw", method!(Topic::publish_raw, 1))?;
        class.define_method("size", method!(Topic::size, 0))?;
        class.define_method("redis?", method!(Topic::is_shared, 0))?;
        Ok(())
    }
}
