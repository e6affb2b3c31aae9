//! The native server: a tokio runtime, its listeners, and an orderly stop.
//!
//! `Shared` is what every connection and every Ruby-side request object can see: the
//! settings, the dispatch queue, the shutdown signal and the live-connection count.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::{watch, Notify};

use crate::config::ServerConfig;
use crate::dispatch::DispatchQueue;
use crate::listener;

pub struct Shared {
    pub config: ServerConfig,
    pub runtime: Handle,
    pub queue: DispatchQueue,
    pub shutdown: watch::Receiver<bool>,
    next_id: AtomicU64,
    live_connections: AtomicUsize,
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

pub struct ServerHandle {
    pub shared: Arc<Shared>,
    pub addresses: Vec<String>,
    runtime: Mutex<Option<Runtime>>,
    shutdown_tx: watch::Sender<bool>,
    unix_paths: Vec<std::path::PathBuf>,
}

impl ServerHandle {
    /// Binds every address, then starts the I/O threads. Errors name the failing bind.
    pub fn start(config: ServerConfig) -> io::Result<ServerHandle> {
        let bound = config.binds.iter().map(|b| listener::bind(b)).collect::<io::Result<Vec<_>>>()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.io_threads.max(1))
            .thread_name("lunar-io")
            .enable_all()
            .build()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            runtime: runtime.handle().clone(),
            queue: DispatchQueue::new(config.queue_capacity),
            shutdown: shutdown_rx,
            next_id: AtomicU64::new(1),
            live_connections: AtomicUsize::new(0),
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
        Ok(ServerHandle { shared, addresses, runtime: Mutex::new(Some(runtime)), shutdown_tx, unix_paths })
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then closes the
    /// rest. Blocks: call it with the GVL released so Ruby threads can finish their work.
    pub fn stop(&self, grace: Duration) {
        let Some(runtime) = self.runtime.lock().ok().and_then(|mut r| r.take()) else { return };
        let _ = self.shutdown_tx.send(true);
        let shared = self.shared.clone();
        runtime.block_on(async move {
            let _ = tokio::time::timeout(grace, shared.all_connections_closed()).await;
        });
        self.shared.queue.close();
        runtime.shutdown_timeout(Duration::from_millis(200));
        for path in &self.unix_paths {
            let _ = std::fs::remove_file(path);
        }
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
