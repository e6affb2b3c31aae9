//! Topics across processes and machines, through Redis pub/sub (redis-rs on tokio).
//!
//! One `Link` per Redis URL per process: a task on a runtime of its own (one thread,
//! `lunar-redis`) holding one subscriber connection, with one subscription per topic, and
//! one connection for publishing. A message from Redis is delivered to the topic's local
//! subscribers from that thread (`Subscribers::deliver`): no Ruby call per subscriber, and
//! none per message. Everything starts on first use, never at load: a cluster master that
//! loads the app forks workers that start their own (a link made before a fork is left to
//! the parent).
//!
//! `publish` runs one Lua script: `XADD` to the topic's history (a Redis stream capped at
//! `history` entries, `MAXLEN ~`) and `PUBLISH` of the message wrapped with its entry id,
//! so that SSE streams carry `id:` lines and a browser reconnecting with `Last-Event-ID`
//! is replayed what it missed. A plain `PUBLISH` (redis-cli, another program) reaches every
//! subscriber too, without an id. When Redis goes away the link reconnects with backoff,
//! resubscribes, and catches each topic up from its history; publishes made meanwhile wait
//! (up to OUTBOX_LIMIT) and go out on reconnect.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::streams::StreamRangeReply;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::fanout::subscribers::{Message, StreamId, Subscriber, Subscribers};
use crate::log;
use crate::sync::lock;

/// What Lunar puts before a message it publishes: the marker, the history id, a newline.
const ENVELOPE: &[u8] = b"\x1elunar ";
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Publishes held while Redis is unreachable; past it the oldest are dropped (and logged).
const OUTBOX_LIMIT: usize = 10_000;

const PUBLISH_SCRIPT: &str = r"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'm', ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[3] .. id .. '\n' .. ARGV[1])
return id
";

/// The Redis key of a topic's history.
pub fn history_key(channel: &str) -> String {
    format!("lunar:history:{channel}")
}

pub enum Command {
    /// Deliver the channel's messages to `subscribers` (one topic's; several topics here
    /// may share a channel); `subscribed` hears once it is.
    Subscribe {
        channel: String,
        subscribers: Arc<Subscribers>,
        subscribed: std_mpsc::Sender<()>,
    },
    /// The topic is gone: stop delivering to `subscribers`, and leave the channel when no
    /// topic here is left on it.
    Unsubscribe {
        channel: String,
        subscribers: Arc<Subscribers>,
    },
    Publish {
        channel: String,
        history: usize,
        message: Bytes,
    },
    /// Write the channel's history after `since` to `subscriber`, then attach it to
    /// `subscribers`.
    Replay {
        channel: String,
        since: StreamId,
        subscriber: Subscriber,
        subscribers: Arc<Subscribers>,
    },
}

pub struct Link {
    commands: mpsc::UnboundedSender<Command>,
    health: Arc<Health>,
}

/// What the stats show of a link: connected now, and publishes dropped since it started
/// (past OUTBOX_LIMIT while unreachable, or refused by Redis).
#[derive(Default)]
struct Health {
    connected: AtomicBool,
    dropped: AtomicU64,
}

impl Link {
    pub fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }
}

struct Links {
    pid: u32,
    runtime: Runtime,
    by_url: HashMap<String, Arc<Link>>,
}

static LINKS: Mutex<Option<Links>> = Mutex::new(None);

/// This process's link to `url`, started on first use.
pub fn link(url: &str) -> Result<Arc<Link>> {
    let mut links = lock(&LINKS);
    let pid = std::process::id();
    if links.as_ref().is_some_and(|l| l.pid != pid) {
        // Made before a fork: its thread lives in the parent only. Dropping the runtime
        // would wait for that thread; leave it be.
        std::mem::forget(links.take());
    }
    if links.is_none() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lunar-redis")
            .enable_all()
            .build()
            .map_err(|e| Error::Redis(format!("cannot start the Redis thread: {e}")))?;
        *links = Some(Links { pid, runtime, by_url: HashMap::new() });
    }
    let links = links.as_mut().expect("set just above");
    if let Some(link) = links.by_url.get(url) {
        return Ok(link.clone());
    }
    let client = open(url)?;
    let (commands, inbox) = mpsc::unbounded_channel();
    let health = Arc::new(Health::default());
    links.runtime.spawn(run(client, url.to_string(), inbox, health.clone()));
    let link = Arc::new(Link { commands, health });
    links.by_url.insert(url.to_string(), link.clone());
    Ok(link)
}

/// This process's links: `(url, connected, publishes dropped)` each.
pub fn health() -> Vec<(String, bool, u64)> {
    let links = lock(&LINKS);
    let Some(links) = links.as_ref().filter(|l| l.pid == std::process::id()) else { return Vec::new() };
    links.by_url.iter().map(|(url, link)| (url.clone(), link.health.connected.load(Ordering::Relaxed), link.health.dropped.load(Ordering::Relaxed))).collect()
}

/// Checks a Redis URL without connecting.
pub fn check_url(url: &str) -> Result<()> {
    open(url).map(drop)
}

fn open(url: &str) -> Result<redis::Client> {
    redis::Client::open(url).map_err(|e| Error::Config(format!("Redis URL {url:?}: {e}")))
}

struct Channel {
    /// The subscribers of every topic on this channel in this process.
    topics: Vec<Arc<Subscribers>>,
    /// The last history id delivered: where a catch-up after an outage starts.
    last: Option<StreamId>,
    waiting: Vec<std_mpsc::Sender<()>>,
}

/// What a link keeps across reconnections.
struct State {
    url: String,
    channels: HashMap<String, Channel>,
    outbox: VecDeque<(String, usize, Bytes)>,
    dropped: usize,
    health: Arc<Health>,
}

async fn run(client: redis::Client, url: String, mut commands: mpsc::UnboundedReceiver<Command>, health: Arc<Health>) {
    let mut state = State { url, channels: HashMap::new(), outbox: VecDeque::new(), dropped: 0, health };
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u32;
    let mut lost = false;
    loop {
        match Session::open(&client, &mut state).await {
            Ok(mut session) => {
                if lost || failures > 0 {
                    log::info(&format!("Redis {}: connected again, {} topic(s) resubscribed", state.url, state.channels.len()));
                }
                failures = 0;
                backoff = MIN_BACKOFF;
                state.health.connected.store(true, Ordering::Relaxed);
                let served = session.serve(&mut state, &mut commands).await;
                state.health.connected.store(false, Ordering::Relaxed);
                match served {
                    Ok(()) => return, // the process is going away
                    Err(e) => log::warn(&format!("Redis {}: connection lost ({e}); reconnecting", state.url)),
                }
                lost = true;
            }
            Err(e) => {
                if failures == 0 {
                    log::warn(&format!("Redis {}: cannot connect ({e}); retrying every {}s at most", state.url, MAX_BACKOFF.as_secs()));
                }
                failures += 1;
            }
        }
        // Wait out the backoff, still taking commands (kept for the next connection).
        let until = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                command = commands.recv() => match command {
                    Some(command) => state.keep(command),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

impl State {
    /// A command while Redis is unreachable: remembered, to act on once connected.
    fn keep(&mut self, command: Command) {
        match command {
            Command::Subscribe { channel, subscribers, subscribed } => self.channel(channel, subscribers).waiting.push(subscribed),
            Command::Unsubscribe { channel, subscribers } => {
                self.leave(&channel, &subscribers);
            }
            Command::Publish { channel, history, message } => {
                if self.outbox.len() >= OUTBOX_LIMIT {
                    self.outbox.pop_front();
                    self.dropped += 1;
                    self.health.dropped.fetch_add(1, Ordering::Relaxed);
                }
                self.outbox.push_back((channel, history, message));
            }
            // No history to read now: it joins live, skipping nothing.
            Command::Replay { subscriber, subscribers, .. } => subscribers.add(subscriber),
        }
    }

    fn channel(&mut self, name: String, subscribers: Arc<Subscribers>) -> &mut Channel {
        let channel = self.channels.entry(name).or_insert_with(|| Channel { topics: Vec::new(), last: None, waiting: Vec::new() });
        if !channel.topics.iter().any(|t| Arc::ptr_eq(t, &subscribers)) {
            channel.topics.push(subscribers);
        }
        channel
    }

    /// Forgets one topic's subscribers; true when the channel has no topic left here.
    fn leave(&mut self, name: &str, subscribers: &Arc<Subscribers>) -> bool {
        let Some(channel) = self.channels.get_mut(name) else { return false };
        channel.topics.retain(|t| !Arc::ptr_eq(t, subscribers));
        if channel.topics.is_empty() {
            self.channels.remove(name);
            return true;
        }
        false
    }

    /// A message from Redis, to the channel's subscribers here.
    fn receive(&mut self, channel: &str, payload: &[u8]) {
        if let Some(c) = self.channels.get_mut(channel) {
            c.deliver(&unwrap_envelope(payload));
        }
    }
}

impl Channel {
    /// To every topic on the channel here, once: a message whose history id is not past
    /// the last one delivered came both live and from a catch-up.
    fn deliver(&mut self, message: &Message) {
        if let Some(id) = message.id {
            if self.last.is_some_and(|last| id <= last) {
                return;
            }
            self.last = Some(id);
        }
        for topic in &self.topics {
            topic.deliver(message, true);
        }
    }
}

/// `\x1elunar ID\nMESSAGE` (Lunar's publish) → the message with its id; anything else is a
/// plain message.
fn unwrap_envelope(payload: &[u8]) -> Message {
    if let Some(rest) = payload.strip_prefix(ENVELOPE) {
        if let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let id = std::str::from_utf8(&rest[..newline]).ok().and_then(StreamId::parse);
            if id.is_some() {
                return Message { body: Bytes::copy_from_slice(&rest[newline + 1..]), id };
            }
        }
    }
    Message { body: Bytes::copy_from_slice(payload), id: None }
}

/// One connection's worth of link: the subscriber connection (split: subscriptions are
/// added while messages are read) and the connection publishes and history reads use.
struct Session {
    sink: PubSubSink,
    messages: PubSubStream,
    conn: MultiplexedConnection,
    script: redis::Script,
}

impl Session {
    async fn open(client: &redis::Client, state: &mut State) -> redis::RedisResult<Session> {
        let (mut sink, messages) = client.get_async_pubsub().await?.split();
        let conn = client.get_multiplexed_async_connection().await?;
        let names: Vec<String> = state.channels.keys().cloned().collect();
        if !names.is_empty() {
            sink.subscribe(&names).await?;
        }
        let mut session = Session { sink, messages, conn, script: redis::Script::new(PUBLISH_SCRIPT) };
        for name in names {
            session.catch_up(state, &name).await?;
            if let Some(c) = state.channels.get_mut(&name) {
                c.waiting.drain(..).for_each(|w| {
                    let _ = w.send(());
                });
            }
        }
        Ok(session)
    }

    /// Until the process lets go of the link (`Ok`) or the connection fails (`Err`).
    async fn serve(&mut self, state: &mut State, commands: &mut mpsc::UnboundedReceiver<Command>) -> redis::RedisResult<()> {
        loop {
            self.flush(state).await?;
            tokio::select! {
                command = commands.recv() => match command {
                    None => return Ok(()),
                    Some(command) => self.act(state, command).await?,
                },
                message = self.messages.next() => match message {
                    Some(msg) => state.receive(msg.get_channel_name(), msg.get_payload_bytes()),
                    None => return Err(redis::RedisError::from((redis::ErrorKind::Io, "subscriber connection closed"))),
                },
            }
        }
    }

    async fn act(&mut self, state: &mut State, command: Command) -> redis::RedisResult<()> {
        match command {
            Command::Subscribe { channel, subscribers, subscribed } => {
                // Recorded first: if subscribing fails, the reconnection subscribes it (and
                // tells the waiter) with the rest.
                let new = !state.channels.contains_key(&channel);
                state.channel(channel.clone(), subscribers).waiting.push(subscribed);
                if new {
                    self.sink.subscribe(&channel).await?;
                }
                if let Some(c) = state.channels.get_mut(&channel) {
                    c.waiting.drain(..).for_each(|w| {
                        let _ = w.send(());
                    });
                }
            }
            Command::Unsubscribe { channel, subscribers } => {
                if state.leave(&channel, &subscribers) {
                    self.sink.unsubscribe(&channel).await?;
                }
            }
            Command::Publish { .. } => state.keep(command),
            Command::Replay { channel, since, subscriber, subscribers } => match self.history(&channel, since).await {
                Ok(missed) => {
                    if let Some(subscriber) = subscriber.replayed(&missed) {
                        subscribers.add(subscriber);
                    }
                }
                // No history to replay (a connection error, or a Redis without it): the
                // stream still joins, live.
                Err(e) => {
                    subscribers.add(subscriber);
                    if is_fatal(&e) {
                        return Err(e);
                    }
                }
            },
        }
        Ok(())
    }

    /// Sends what waits in the outbox.
    async fn flush(&mut self, state: &mut State) -> redis::RedisResult<()> {
        if state.dropped > 0 {
            log::warn(&format!("Redis {}: {} publish(es) dropped while unreachable (more than {OUTBOX_LIMIT} waiting)", state.url, state.dropped));
            state.dropped = 0;
        }
        while let Some((channel, history, message)) = state.outbox.front() {
            let sent = if *history == 0 {
                redis::cmd("PUBLISH").arg(channel).arg(&message[..]).query_async::<i64>(&mut self.conn).await.map(drop)
            } else {
                let mut invocation = self.script.key(history_key(channel));
                invocation.key(channel).arg(&message[..]).arg(*history).arg(ENVELOPE);
                invocation.invoke_async::<String>(&mut self.conn).await.map(drop)
            };
            match sent {
                Err(e) if is_fatal(&e) => return Err(e), // sent again once reconnected
                // Refused by Redis itself (a wrong key type, out of memory): retrying the
                // same publish would block every one behind it.
                Err(e) => {
                    state.health.dropped.fetch_add(1, Ordering::Relaxed);
                    log::warn(&format!("Redis {}: publish to {channel:?} refused ({e}); dropped", state.url));
                }
                Ok(()) => {}
            }
            state.outbox.pop_front();
        }
        Ok(())
    }

    /// The channel's history after `since`, oldest first.
    async fn history(&mut self, channel: &str, since: StreamId) -> redis::RedisResult<Vec<Message>> {
        let reply: StreamRangeReply = redis::cmd("XRANGE").arg(history_key(channel)).arg(format!("({since}")).arg("+").query_async(&mut self.conn).await?;
        Ok(reply
            .ids
            .into_iter()
            .filter_map(|entry| {
                let id = StreamId::parse(&entry.id)?;
                let body: Vec<u8> = entry.get("m")?;
                Some(Message { body: body.into(), id: Some(id) })
            })
            .collect())
    }

    /// After a reconnection: what the channel missed, from its history.
    async fn catch_up(&mut self, state: &mut State, name: &str) -> redis::RedisResult<()> {
        let Some(since) = state.channels.get(name).and_then(|c| c.last) else { return Ok(()) };
        let missed = self.history(name, since).await?;
        if let Some(c) = state.channels.get_mut(name) {
            missed.iter().for_each(|m| c.deliver(m));
        }
        Ok(())
    }
}

/// Whether an error ends the connection (then the link reconnects), rather than only the
/// command (a refusal from Redis itself, such as a wrong key type).
fn is_fatal(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_carry_the_history_id() {
        let m = unwrap_envelope(b"\x1elunar 17-3\nhello\nworld");
        assert_eq!(m.id, Some(StreamId(17, 3)));
        assert_eq!(&m.body[..], b"hello\nworld");
        let plain = unwrap_envelope(b"from redis-cli");
        assert_eq!(plain.id, None);
        assert_eq!(&plain.body[..], b"from redis-cli");
        let broken = unwrap_envelope(b"\x1elunar nonsense\nx");
        assert_eq!(broken.id, None);
    }
}
