//! `ConnectionInfo`: one connection as its requests see it, plain data shared by the
//! connection's task (net), its requests on their way to Ruby (`job`) and their bodies
//! (`stream`, `reply`): where it came from, when it last moved a byte, its response bytes
//! on their way out (`outbox`), and a switch that closes it at once.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::bridge::half_close::HalfClose;
use crate::bridge::handover::Giver;
use crate::bridge::outbox::Outbox;
use crate::sync::lock;

/// One connection as its requests see it: where it came from, which local address it
/// reached, and a switch to close it at once (a streamed response cut off as too slow, or
/// aborted by an error).
#[derive(Debug)]
pub struct ConnectionInfo {
    /// Addresses as the socket gave them (`None` for a Unix socket); formatted only when an
    /// env is built, so a held connection keeps no Strings.
    peer: Option<IpAddr>,
    local: Option<SocketAddr>,
    /// Reached over TLS: `rack.url_scheme` is `https`.
    pub tls: bool,
    /// Counted among the connections kept alive (see `--max-persistent-conns`).
    pub persistent: AtomicBool,
    /// When a byte last moved either way, for the inactivity timeout.
    pub activity: Activity,
    /// Response bytes on their way out across the connection's streams (the budget), and
    /// how the client keeps up with them.
    pub outbox: Outbox,
    /// HTTP/2: many streams share the connection (set once the protocol is known).
    multiplexed: AtomicBool,
    /// hyper's writes are dropped (a full `rack.hijack`: the app writes its own handshake).
    muted: AtomicBool,
    /// HTTP/1 during a stop: every response says `Connection: close` (see `net::connection`).
    keep_alive_ended: AtomicBool,
    /// A full `rack.hijack` of a request that asked for no upgrade: the waiting Ruby thread's
    /// end, for the connection hyper gives back once it is done with it.
    handover: Mutex<Option<Giver>>,
    cut: CutSwitch,
    /// HTTP/1: the client's end-of-stream, held while a complete answer is owed.
    half_close: HalfClose,
}

impl ConnectionInfo {
    pub fn tcp(peer: SocketAddr, local: SocketAddr, tls: bool) -> Self {
        ConnectionInfo { peer: Some(peer.ip()), local: Some(local), tls, ..Self::unix() }
    }

    pub fn unix() -> Self {
        ConnectionInfo {
            peer: None,
            local: None,
            tls: false,
            persistent: AtomicBool::new(false),
            activity: Activity::new(),
            outbox: Outbox::default(),
            multiplexed: AtomicBool::new(false),
            muted: AtomicBool::new(false),
            keep_alive_ended: AtomicBool::new(false),
            handover: Mutex::new(None),
            cut: CutSwitch::default(),
            half_close: HalfClose::default(),
        }
    }

    /// Peer IP as Rack's `REMOTE_ADDR` wants it (`127.0.0.1` for Unix sockets, like Puma).
    pub fn remote_ip(&self) -> String {
        self.peer.map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
    }

    /// Local host and port, the `SERVER_NAME`/`SERVER_PORT` fallback when there is no Host
    /// (`localhost` and 80 for Unix sockets).
    pub fn local_host_port(&self) -> (String, String) {
        match self.local {
            Some(SocketAddr::V4(a)) => (a.ip().to_string(), a.port().to_string()),
            Some(SocketAddr::V6(a)) => (format!("[{}]", a.ip()), a.port().to_string()),
            None => ("localhost".into(), "80".into()),
        }
    }

    pub fn speaks_http2(&self) {
        self.multiplexed.store(true, Ordering::Release);
    }

    pub fn is_multiplexed(&self) -> bool {
        self.multiplexed.load(Ordering::Acquire)
    }

    pub fn mute(&self, muted: bool) {
        self.muted.store(muted, Ordering::Release);
    }

    pub fn is_muted(&self) -> bool {
        self.muted.load(Ordering::Acquire)
    }

    /// From now on each response says `Connection: close`, and hyper closes after it.
    pub fn end_keep_alive(&self) {
        self.keep_alive_ended.store(true, Ordering::Relaxed);
    }

    pub fn is_keep_alive_ended(&self) -> bool {
        self.keep_alive_ended.load(Ordering::Relaxed)
    }

    /// Gives the connection to `giver` once hyper lets go of it (see `take_handover`);
    /// meanwhile hyper will not shut the socket down, and with `mute` its writes are
    /// dropped (a full hijack: the app writes its own response; a partial one lets hyper
    /// write the head).
    pub fn hand_over_later(&self, giver: Giver, mute: bool) {
        self.mute(mute);
        *lock(&self.handover) = Some(giver);
    }

    /// Whether a hijack waits for the connection (hyper must not shut it down).
    pub fn is_handing_over(&self) -> bool {
        lock(&self.handover).is_some()
    }

    /// Where a hijack wants the connection to go, if one does.
    pub fn take_handover(&self) -> Option<Giver> {
        lock(&self.handover).take()
    }

    /// Asks the connection's task to close it now, whatever it is doing.
    pub fn cut(&self) {
        self.cut.cut();
    }

    /// Ready once `cut` was called (before or after the task started waiting).
    pub fn poll_cut(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.cut.poll(cx)
    }

    /// HTTP/1: hyper handed a request to the service; until a complete answer is written, the
    /// client's end-of-stream is held (see `half_close`).
    pub fn owe_answer(&self) {
        self.half_close.owe();
    }

    /// The transport (the connection's task, `cx`) read the client's end-of-stream: whether
    /// to hold it back. The task is woken to read it again on `release_eof`.
    pub fn hold_eof(&self, cx: &mut Context<'_>) -> bool {
        self.cut.register(cx); // before the hold is seen: a release then finds the waker
        self.half_close.hold_eof()
    }

    /// Nothing complete is owed right now: a held end-of-stream goes through.
    pub fn release_eof(&self) {
        if self.half_close.release() {
            self.cut.wake();
        }
    }

    /// A request body has no more bytes for now: with the end-of-stream held, it never will
    /// (hyper needs the end-of-stream to report the body cut short).
    pub fn body_stalled(&self) {
        if self.half_close.eof_held() {
            self.release_eof();
        }
    }
}

/// When the connection last moved a byte; when one of its responses last moved (a body
/// handed hyper data, a response began or ended); since when no request is under way; and
/// when the next request's head began to arrive. Milliseconds since it opened.
#[derive(Debug)]
pub struct Activity {
    opened: std::time::Instant,
    last_ms: AtomicU64,
    moved_ms: AtomicU64,
    idle_since_ms: AtomicU64,
    /// 0: no byte has come since the connection went idle.
    head_started_ms: AtomicU64,
    /// A response has begun on this connection: it is no longer waiting for its first request.
    answered: AtomicBool,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            opened: std::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            moved_ms: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            answered: AtomicBool::new(false),
        }
    }

    /// A request arrived (its response is under way).
    pub fn response_began(&self) {
        self.head_started_ms.store(0, Ordering::Relaxed);
        self.answered.store(true, Ordering::Relaxed);
        self.response_moved();
    }

    /// The last response under way ended: the connection waits for the next request.
    pub fn went_idle(&self) {
        let now = self.now_ms();
        self.idle_since_ms.store(now, Ordering::Relaxed);
        self.head_started_ms.store(0, Ordering::Relaxed);
        self.moved_ms.store(now, Ordering::Relaxed);
    }

    /// Bytes came while no request was under way: the next head has begun.
    pub fn head_arriving(&self) {
        if self.head_started_ms.load(Ordering::Relaxed) == 0 {
            self.head_started_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// How long the head under way has been arriving, if one is.
    pub fn head_for(&self) -> Option<Duration> {
        let started = self.head_started_ms.load(Ordering::Relaxed);
        (started > 0).then(|| Duration::from_millis(self.now_ms().saturating_sub(started)))
    }

    /// How long the connection has had no request under way (since it opened, or since its
    /// last response ended).
    pub fn idle_for(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.idle_since_ms.load(Ordering::Relaxed)))
    }

    /// Whether any request has arrived on the connection yet.
    pub fn has_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "nothing yet".
        (self.opened.elapsed().as_millis() as u64).max(1)
    }

    pub fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    pub fn quiet_for(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// A response moved (see `Outbox`): PINGs do not count here.
    pub fn response_moved(&self) {
        self.moved_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long since a response last moved (since the connection opened, if none has).
    pub fn responses_still_for(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.moved_ms.load(Ordering::Relaxed)))
    }
}

/// A one-way switch with one waiter: smaller to wait on than a `Notify` (every connection
/// task waits on one for its whole life). The waiter is the connection's task, so its
/// waker also serves other news for that task (`wake`: a held end-of-stream let through).
#[derive(Debug, Default)]
struct CutSwitch {
    on: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl CutSwitch {
    fn cut(&self) {
        self.on.store(true, Ordering::Release);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }

    /// Wakes the waiting task without cutting.
    fn wake(&self) {
        if let Some(waker) = lock(&self.waker).as_ref() {
            waker.wake_by_ref();
        }
    }

    fn register(&self, cx: &Context<'_>) {
        let mut slot = lock(&self.waker);
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.on.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.register(cx);
        // Checked again under the registration: a cut between the two is not missed.
        if self.on.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
