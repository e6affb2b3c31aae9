//! `ServerState`: what every connection and every Ruby-side request of one server can see:
//! the settings, hyper's connection builders, the dispatch queue, the shutdown signal, and
//! the counts of live and kept-alive connections.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{watch, Notify};

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::dispatch::DispatchQueue;
use crate::config::ServerConfig;
use crate::net::driver::Driver;
use crate::net::handed::HandedSockets;

/// hyper refuses a smaller read buffer; it is also the request-head limit.
const HYPER_MIN_BUF: usize = 8192;

pub struct ServerState {
    pub config: ServerConfig,
    /// The tokio runtime, and how a Ruby thread waits on it (inline mode: by driving it).
    pub runtime: Driver,
    pub queue: Arc<DispatchQueue>,
    pub shutdown: watch::Receiver<bool>,
    /// hyper's per-connection settings, one builder per protocol (each connection uses the
    /// one it speaks; see `connection::Protocol`).
    pub http1: http1::Builder,
    pub http2: http2::Builder<TokioExecutor>,
    next_id: AtomicU64,
    live_connections: AtomicUsize,
    /// Accept loops still running: a stop waits for them too (see `all_connections_closed`).
    accepting: AtomicUsize,
    persistent_connections: AtomicUsize,
    websockets: AtomicUsize,
    /// Sockets given to the app whole by `rack.hijack`.
    pub handed: HandedSockets,
    all_closed: Notify,
}

impl ServerState {
    pub fn new(config: ServerConfig, runtime: Driver, shutdown: watch::Receiver<bool>) -> Self {
        let (http1, http2) = http_builders(&config);
        let inline = runtime.is_inline();
        ServerState {
            runtime,
            queue: Arc::new(DispatchQueue::new(config.queue_capacity, inline)),
            shutdown,
            http1,
            http2,
            next_id: AtomicU64::new(1),
            live_connections: AtomicUsize::new(0),
            accepting: AtomicUsize::new(0),
            persistent_connections: AtomicUsize::new(0),
            websockets: AtomicUsize::new(0),
            handed: HandedSockets::default(),
            all_closed: Notify::new(),
            config,
        }
    }
}

impl ServerState {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Requests received since the start (Puma's `requests_count`): every request takes an id.
    pub fn requests_count(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed) - 1
    }

    /// Counts a native WebSocket (`Topic#websocket`) as open until the returned guard drops.
    pub fn track_websocket(self: &Arc<Self>) -> WebSocketGuard {
        self.websockets.fetch_add(1, Ordering::Relaxed);
        WebSocketGuard(self.clone())
    }

    /// Native WebSockets open (they no longer count as connections: see `websocket`).
    pub fn websockets(&self) -> usize {
        self.websockets.load(Ordering::Relaxed)
    }

    /// Counts a connection as live until the returned guard drops.
    pub fn track_connection(self: &Arc<Self>) -> ConnectionGuard {
        self.live_connections.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }

    pub fn live_connections(&self) -> usize {
        self.live_connections.load(Ordering::Acquire)
    }

    /// Counts an accept loop as running until the returned guard drops.
    pub fn track_accepting(self: &Arc<Self>) -> AcceptingGuard {
        self.accepting.fetch_add(1, Ordering::AcqRel);
        AcceptingGuard(self.clone())
    }

    /// Whether `--max-conns` is reached: connections Lunar serves (relayed hijacks among
    /// them) plus sockets handed to the app that it has not closed yet. Which handed sockets
    /// are closed is looked at only once the cheap count says the limit is reached.
    pub fn at_capacity(&self) -> bool {
        let max = self.config.max_connections;
        let live = self.live_connections();
        live + self.handed.counted() >= max && live + self.handed.open() >= max
    }

    /// Whether `connection` may stay open after this response: it already counts among
    /// the kept-alive ones, or there is room for it (`--max-persistent-conns`).
    pub fn keep_alive_allowed(&self, connection: &ConnectionInfo) -> bool {
        let Some(max) = self.config.max_persistent else { return true };
        if connection.persistent.load(Ordering::Acquire) {
            return true;
        }
        let counted = self.persistent_connections.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1));
        if counted.is_ok() {
            connection.persistent.store(true, Ordering::Release);
        }
        counted.is_ok()
    }

    /// A connection ends: it no longer counts as kept alive.
    pub fn connection_closed(&self, connection: &ConnectionInfo) {
        if connection.persistent.swap(false, Ordering::AcqRel) {
            self.persistent_connections.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// One live connection or accept loop fewer (their guards' drop): the last one out tells
    /// `all_connections_closed` to look again.
    fn count_down(&self, counter: &AtomicUsize) {
        if counter.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.all_closed.notify_waiters();
        }
    }

    /// Once no connection is live and no accept loop runs (a stop ends the loops first). An
    /// accept loop that took a connection as the stop began has counted it before spawning
    /// its task, and waiting for the loops closes the last gap: a stop that looked before
    /// then would drop the connection unserved, and its client would see a reset.
    pub async fn all_connections_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            if self.live_connections() == 0 && self.accepting.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub struct WebSocketGuard(Arc<ServerState>);

impl Drop for WebSocketGuard {
    fn drop(&mut self) {
        self.0.websockets.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct ConnectionGuard(Arc<ServerState>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.count_down(&self.0.live_connections);
    }
}

pub struct AcceptingGuard(Arc<ServerState>);

impl Drop for AcceptingGuard {
    fn drop(&mut self) {
        self.0.count_down(&self.0.accepting);
    }
}

/// How hyper serves every connection. Lunar writes no HTTP itself: these are hyper's own
/// limits (head size → 431, more than 100 header lines → 431) and manners (title-cased
/// names as Thin and Puma write them, a Date on every response). hyper's header timeout is
/// off: its clock also runs while a keep-alive connection waits for its next request, which
/// `persistent_timeout` governs; `connection::Timer` times request heads instead.
/// hyper's header-count limit is left at its default of 100: setting it, even to 100,
/// makes hyper fill its 100 header slots one by one for every request.
fn http_builders(config: &ServerConfig) -> (http1::Builder, http2::Builder<TokioExecutor>) {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new()).header_read_timeout(None).max_buf_size(config.max_header_size.max(HYPER_MIN_BUF)).title_case_headers(true).keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new()).max_header_list_size(u32::try_from(config.max_header_size).unwrap_or(u32::MAX));
    (h1, h2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(max_persistent: Option<usize>) -> (tokio::runtime::Runtime, ServerState) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = ServerConfig { max_persistent, ..ServerConfig::default() };
        let state = ServerState::new(config, Driver::threaded(runtime.handle().clone()), watch::channel(false).1);
        (runtime, state)
    }

    /// Thin's `--max-persistent-conns`: a connection, once counted, stays allowed; others
    /// wait for one to close.
    #[test]
    fn keep_alive_is_allowed_up_to_the_limit() {
        let (_runtime, state) = state(Some(1));
        let (a, b) = (ConnectionInfo::unix(), ConnectionInfo::unix());
        assert!(state.keep_alive_allowed(&a));
        assert!(state.keep_alive_allowed(&a), "already counted");
        assert!(!state.keep_alive_allowed(&b));
        state.connection_closed(&a);
        state.connection_closed(&a); // once only
        assert!(state.keep_alive_allowed(&b));
        assert!(!state.keep_alive_allowed(&a));

        let (_runtime, none) = super::tests::state(Some(0));
        assert!(!none.keep_alive_allowed(&ConnectionInfo::unix()));
        let (_runtime, unlimited) = super::tests::state(None);
        assert!((0..100).all(|_| unlimited.keep_alive_allowed(&ConnectionInfo::unix())));
    }
}
