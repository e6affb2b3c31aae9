//! The native server: a tokio runtime, its listeners, and an orderly stop. What its
//! connections share is `state::ServerState`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::{watch, Notify};

use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::net::driver::Driver;
use crate::net::listener;
use crate::net::state::ServerState;
use crate::sync::lock;

pub struct ServerHandle {
    pub state: Arc<ServerState>,
    pub addresses: Vec<String>,
    /// Shared, inline, with the Ruby threads that drive it (`Driver::block_on`).
    runtime: Mutex<Option<Arc<Runtime>>>,
    shutdown_tx: watch::Sender<bool>,
    unix_paths: Vec<std::path::PathBuf>,
    /// Ends a graceful stop's grace period early (`hurry`).
    hurry: Notify,
}

impl ServerHandle {
    /// Binds every address (loading TLS certificates), then starts the I/O threads (inline:
    /// the listeners wait for a Ruby thread to drive the runtime). Errors name the failing
    /// bind.
    pub fn start(config: ServerConfig) -> Result<ServerHandle> {
        let bound = config.binds.iter().map(|b| listener::bind(b, config.inherited.get(b).copied())).collect::<Result<Vec<_>>>()?;
        let runtime = Arc::new(runtime(config.io_threads)?);
        let driver = if config.io_threads == 0 { Driver::inline(&runtime) } else { Driver::threaded(runtime.handle().clone()) };
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = Arc::new(ServerState::new(config, driver, shutdown_rx));
        let addresses = bound.iter().map(|b| b.address.clone()).collect();
        let unix_paths = bound.iter().filter_map(|b| b.unix_path.clone()).collect();
        let _entered = runtime.enter();
        for b in bound {
            let accepting = listener::Listener::from_bound(b).map_err(Error::io("registering a listening socket"))?;
            runtime.spawn(listener::accept_loop(accepting, state.clone()));
        }
        drop(_entered);
        Ok(ServerHandle { state, addresses, runtime: Mutex::new(Some(runtime)), shutdown_tx, unix_paths, hurry: Notify::new() })
    }

    /// Stops accepting and asks hyper to shut every connection down gracefully (idle
    /// keep-alive connections close, HTTP/2 sends GOAWAY, in-flight requests finish), waits
    /// up to `grace`, then closes the rest. Blocks: call it with the GVL released so Ruby
    /// threads can finish their work.
    pub fn stop(&self, grace: Duration) {
        let Some(runtime) = lock(&self.runtime).take() else { return };
        let _ = self.shutdown_tx.send(true);
        let state = self.state.clone();
        runtime.block_on(async {
            tokio::select! {
                _ = tokio::time::timeout(grace, state.all_connections_closed()) => {}
                _ = self.hurry.notified() => {}
            }
        });
        self.state.queue.close();
        // Inline, a Ruby thread may still be leaving `block_on`: the last one out drops it.
        if let Ok(runtime) = Arc::try_unwrap(runtime) {
            runtime.shutdown_timeout(Duration::from_millis(200));
        }
        for path in &self.unix_paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// tokio's runtime: `io_threads` threads of its own, or none (inline mode).
fn runtime(io_threads: usize) -> Result<Runtime> {
    let mut builder = match io_threads {
        0 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n).thread_name("lunar-io");
            b
        }
    };
    builder.enable_all().build().map_err(Error::io("starting the I/O threads"))
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
        if let Some(runtime) = lock(&self.runtime).take() {
            self.state.queue.close();
            if let Ok(runtime) = Arc::try_unwrap(runtime) {
                runtime.shutdown_background();
            }
        }
    }
}
