//! The native server: a tokio runtime, its listeners, hyper's connection builder, and an
//! orderly stop.
//!
//! `Shared` is what every connection and every Ruby-side request object can see: the
//! settings, the dispatch queue, the shutdown signal and the live-connection count.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{watch, Notify};

use crate::bridge::dispatch::DispatchQueue;
use crate::bridge::job::ConnectionInfo;
use crate::config::ServerConfig;
use crate::net::listener;

/// hyper refuses a smaller read buffer; it is also the request-head limit.
const HYPER_MIN_BUF: usize = 8192;

pub struct Shared {
    pub config: ServerConfig,
    pub runtime: Handle,
    pub queue: Arc<DispatchQueue>,
    pub shutdown: watch::Receiver<bool>,
    /// hyper's per-connection settings, one builder per protocol (each connection uses the
    /// one it speaks; see `connection::Protocol`).
    pub http1: http1::Builder,
    pub http2: http2::Builder<TokioExecutor>,
    next_id: AtomicU64,
    live_connections: AtomicUsize,
    persistent_connections: AtomicUsize,
    all_closed: Notify,
}

impl Shared {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a connection as live until the returned guard drops.
    pub fn track_connection(self: &Arc<Self>) -> ConnectionGuard {
        self.live_connections.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }

    pub fn live_connections(&self) -> usize {
        self.live_connections.load(Ordering::Acquire)
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

    async fn all_connections_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            if self.live_connections() == 0 {
                return;
            }
            notified.await;
        }
    }
}

pub struct ConnectionGuard(Arc<Shared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.live_connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

/// How hyper serves every connection. Lunar writes no HTTP itself: these are hyper's own
/// limits (head size → 431, more than 100 header lines → 431, slow head → closed) and
/// manners (title-cased names as Thin and Puma write them, a Date on every response).
/// hyper's header-count limit is left at its default of 100: setting it, even to 100,
/// makes hyper fill its 100 header slots one by one for every request.
fn http_builders(config: &ServerConfig) -> (http1::Builder, http2::Builder<TokioExecutor>) {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        .max_buf_size(config.max_header_size.max(HYPER_MIN_BUF))
        .title_case_headers(true)
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new()).max_header_list_size(u32::try_from(config.max_header_size).unwrap_or(u32::MAX));
    (h1, h2)
}

pub struct ServerHandle {
    pub shared: Arc<Shared>,
    pub addresses: Vec<String>,
    runtime: Mutex<Option<Runtime>>,
    shutdown_tx: watch::Sender<bool>,
    unix_paths: Vec<std::path::PathBuf>,
    /// Ends a graceful stop's grace period early (`hurry`).
    hurry: Notify,
}

impl ServerHandle {
    /// Binds every address (loading TLS certificates), then starts the I/O threads. Errors
    /// name the failing bind; `InvalidInput` means the configuration is wrong.
    pub fn start(config: ServerConfig) -> io::Result<ServerHandle> {
        let bound = config.binds.iter().map(|b| listener::bind(b, config.inherited.get(b).copied())).collect::<io::Result<Vec<_>>>()?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(config.io_threads.max(1)).thread_name("lunar-io").enable_all().build()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (http1, http2) = http_builders(&config);
        let shared = Arc::new(Shared {
            runtime: runtime.handle().clone(),
            queue: Arc::new(DispatchQueue::new(config.queue_capacity)),
            shutdown: shutdown_rx,
            http1,
            http2,
            next_id: AtomicU64::new(1),
            live_connections: AtomicUsize::new(0),
            persistent_connections: AtomicUsize::new(0),
            all_closed: Notify::new(),
            config,
        });
        let addresses = bound.iter().map(|b| b.address.clone()).collect();
        let unix_paths = bound.iter().filter_map(|b| b.unix_path.clone()).collect();
        let _entered = runtime.enter();
        for b in bound {
            let accepting = listener::Listener::from_bound(b)?;
            runtime.spawn(listener::accept_loop(accepting, shared.clone()));
        }
        drop(_entered);
        Ok(ServerHandle { shared, addresses, runtime: Mutex::new(Some(runtime)), shutdown_tx, unix_paths, hurry: Notify::new() })
    }

    /// Stops accepting and asks hyper to shut every connection down gracefully (idle
    /// keep-alive connections close, HTTP/2 sends GOAWAY, in-flight requests finish), waits
    /// up to `grace`, then closes the rest. Blocks: call it with the GVL released so Ruby
    /// threads can finish their work.
    pub fn stop(&self, grace: Duration) {
        let Some(runtime) = self.runtime.lock().ok().and_then(|mut r| r.take()) else { return };
        let _ = self.shutdown_tx.send(true);
        let shared = self.shared.clone();
        runtime.block_on(async {
            tokio::select! {
                _ = tokio::time::timeout(grace, shared.all_connections_closed()) => {}
                _ = self.hurry.notified() => {}
            }
        });
        self.shared.queue.close();
        runtime.shutdown_timeout(Duration::from_millis(200));
        for path in &self.unix_paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl ServerHandle {
    /// A stop under way closes what is left now instead of at the end of its grace period
    /// (INT after TERM). Before a stop, the next one will not wait.
    pub fn hurry(&self) {
        self.hurry.notify_one();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.get_mut().ok().and_then(|r| r.take()) {
            self.shared.queue.close();
            runtime.shutdown_background();
        }
    }
}
