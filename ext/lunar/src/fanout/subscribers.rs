//! The subscribers of one topic in this process, and the delivery of one message to all of
//! them. Plain data: a publish from a Ruby thread (an in-process topic) and a message from
//! Redis (on the `lunar-redis` thread) deliver alike.
//!
//! Subscribers are held long-polls (answered by the next message, then gone) and open
//! streams (every message written with the framing each chose, e.g. SSE's `data: …\n\n`,
//! and, for messages that have one, an SSE `id:` line). The framing is built once per
//! publish and shared (reference-counted) by every stream that chose it. A stream whose
//! client has not read its buffer is cut off rather than waited for: one slow subscriber
//! must not delay the others. Connections that ended are pruned as they are found.

use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use tokio::sync::oneshot;

use crate::bridge::reply::{self, Reply, ReplyBody};
use crate::bridge::stream::{Queued, StreamSender};
use crate::sync::lock;

/// A Redis stream entry id (`milliseconds-sequence`): the order of a topic's history, and
/// the SSE `id:` a reconnecting browser sends back as `Last-Event-ID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    pub fn parse(text: &str) -> Option<StreamId> {
        let (ms, seq) = text.trim().split_once('-')?;
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// One published message: its bytes, and its place in the topic's history when it has one.
pub struct Message {
    pub body: Bytes,
    pub id: Option<StreamId>,
}

pub enum Subscriber {
    /// `head` is shared by every subscriber held with the same status and headers.
    Poll { reply: oneshot::Sender<Reply>, head: Arc<(StatusCode, HeaderMap)> },
    /// An open stream, or a native WebSocket (`socket`: each chunk is one message, and raw
    /// publishes such as SSE heartbeats are not for it). `ids`: precede each message that
    /// has an id with an SSE `id:` line. `after`: skip messages up to this id (it was
    /// replayed from history before the stream joined).
    Stream { sender: StreamSender, prefix: Bytes, suffix: Bytes, socket: bool, ids: bool, after: Option<StreamId> },
}

impl Subscriber {
    /// A stream joining late: writes `missed` (read from history) first, and will skip
    /// those messages when they also arrive live. `None` if it was cut off or is gone.
    pub fn replayed(mut self, missed: &[Message]) -> Option<Subscriber> {
        if let Subscriber::Stream { sender, prefix, suffix, ids, after, .. } = &mut self {
            for message in missed {
                let mut frames = Frames { message, built: Vec::new() };
                match sender.try_send(frames.framed(prefix, suffix, *ids)) {
                    Queued::Sent => *after = message.id,
                    Queued::Full(_) => {
                        sender.cut();
                        return None;
                    }
                    Queued::Gone => return None,
                }
            }
        }
        Some(self)
    }

    fn is_gone(&self) -> bool {
        match self {
            Subscriber::Poll { reply, .. } => reply.is_closed(),
            Subscriber::Stream { sender, .. } => sender.is_closed(),
        }
    }
}

/// Framed messages built during one publish, by framing (most subscribers share one).
struct Frames<'a> {
    message: &'a Message,
    built: Vec<(Bytes, Bytes, bool, Bytes)>,
}

impl Frames<'_> {
    fn framed(&mut self, prefix: &Bytes, suffix: &Bytes, ids: bool) -> Bytes {
        let id = if ids { self.message.id } else { None };
        if prefix.is_empty() && suffix.is_empty() && id.is_none() {
            return self.message.body.clone();
        }
        let with_id = id.is_some();
        if let Some((_, _, _, f)) = self.built.iter().find(|(p, s, i, _)| p == prefix && s == suffix && *i == with_id) {
            return f.clone();
        }
        let id_line = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
        let mut buf = BytesMut::with_capacity(id_line.len() + prefix.len() + self.message.body.len() + suffix.len());
        buf.extend_from_slice(id_line.as_bytes());
        buf.extend_from_slice(prefix);
        buf.extend_from_slice(&self.message.body);
        buf.extend_from_slice(suffix);
        let framed = buf.freeze();
        self.built.push((prefix.clone(), suffix.clone(), with_id, framed.clone()));
        framed
    }
}

#[derive(Default)]
pub struct Subscribers {
    list: Mutex<Vec<Subscriber>>,
}

impl Subscribers {
    pub fn add(&self, sub: Subscriber) {
        lock(&self.list).push(sub);
    }

    /// Adds a stream after writing `first` to it, both under the lock, so that no message
    /// delivered meanwhile can come before `first`.
    pub fn add_after(&self, first: Option<Bytes>, sub: Subscriber) {
        let mut subs = lock(&self.list);
        if let (Some(first), Subscriber::Stream { sender, .. }) = (first, &sub) {
            sender.try_send(first);
        }
        subs.push(sub);
    }

    /// Holds a long-poll until the next message, sharing the head of the last one held
    /// when it is the same (subscribers are held alike).
    pub fn hold(&self, reply: oneshot::Sender<Reply>, head: (StatusCode, HeaderMap)) {
        let mut subs = lock(&self.list);
        let shared = match subs.last() {
            Some(Subscriber::Poll { head: h, .. }) if **h == head => h.clone(),
            _ => Arc::new(head),
        };
        subs.push(Subscriber::Poll { reply, head: shared });
    }

    /// Delivers `message` to every subscriber (`framed`), or writes it as is to the plain
    /// streams only (not `framed`: an SSE heartbeat). Returns how many it reached.
    pub fn deliver(&self, message: &Message, framed: bool) -> usize {
        let mut subs = lock(&self.list);
        let mut frames = Frames { message, built: Vec::new() };
        let mut reached = 0;
        let mut kept = Vec::with_capacity(subs.len());
        for mut sub in subs.drain(..) {
            match sub {
                _ if sub.is_gone() => {}
                Subscriber::Poll { .. } | Subscriber::Stream { socket: true, .. } if !framed => kept.push(sub),
                Subscriber::Poll { reply, head } => {
                    let body = ReplyBody::Full(message.body.clone());
                    if reply.send(Reply::Published(reply::response(head.0, head.1.clone(), body))).is_ok() {
                        reached += 1;
                    }
                }
                Subscriber::Stream { ref mut after, .. } if matches!((*after, message.id), (Some(a), Some(id)) if id <= a) => {
                    kept.push(sub); // already replayed to it
                }
                Subscriber::Stream { ref sender, ref prefix, ref suffix, ids, ref mut after, .. } => {
                    if message.id.is_some() {
                        *after = None; // past what was replayed (a plain message has no place in it)
                    }
                    let bytes = if framed { frames.framed(prefix, suffix, ids) } else { message.body.clone() };
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

    /// Subscribers still connected.
    pub fn size(&self) -> usize {
        let mut subs = lock(&self.list);
        subs.retain(|s| !s.is_gone());
        subs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_parse_and_order() {
        let a = StreamId::parse("1700000000000-0").unwrap();
        let b = StreamId::parse("1700000000000-1").unwrap();
        let c = StreamId::parse("1700000000001-0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(a.to_string(), "1700000000000-0");
        assert_eq!(StreamId::parse("nonsense"), None);
        assert_eq!(StreamId::parse("12-x"), None);
    }

    #[test]
    fn frames_are_built_once_per_framing_with_ids_when_asked() {
        let message = Message { body: Bytes::from_static(b"hi"), id: StreamId::parse("5-1") };
        let mut frames = Frames { message: &message, built: Vec::new() };
        let (data, end) = (Bytes::from_static(b"data: "), Bytes::from_static(b"\n\n"));
        assert_eq!(&frames.framed(&data, &end, true)[..], b"id: 5-1\ndata: hi\n\n");
        assert_eq!(&frames.framed(&data, &end, false)[..], b"data: hi\n\n");
        assert_eq!(&frames.framed(&Bytes::new(), &Bytes::new(), false)[..], b"hi");
        frames.framed(&data, &end, true);
        assert_eq!(frames.built.len(), 2);
    }
}
