//! `Driver`: who runs the tokio runtime, and how a Ruby thread waits on the I/O side.
//!
//! With I/O threads (`--io-threads N`, the default) tokio runs on threads of its own, and a
//! Ruby thread that waits for it (room in a stream, a hijacked socket) simply blocks.
//! Inline (`--io-threads 0`) there are none: the Ruby threads that run the app drive the
//! runtime themselves whenever they have nothing else to do, as Thin's one thread runs
//! both its reactor and the app. A request then crosses no thread: the thread reads every
//! connection that is ready, takes the requests they brought, runs the app for each, and
//! writes the answers on its next turn. The price is Thin's: while the app runs, that
//! thread serves nothing else.
//!
//! Every wait of a Ruby thread for the I/O side goes through `Driver::block_on` (by way of
//! `ruby::gvl::wait_on_io`), so that inline it drives the runtime meanwhile rather than
//! wait for a thread that never comes.
//! (A current-thread runtime is driven by one thread at a time; a second one in `block_on`
//! waits for its own future or for the first to leave, then takes over.)

use std::future::Future;
use std::sync::{Arc, Weak};

use tokio::runtime::{Handle, Runtime};

use crate::bridge::idle::IdleDrivers;

#[derive(Clone)]
pub struct Driver {
    handle: Handle,
    /// Inline mode's runtime (the server owns it; gone once the server stopped).
    inline: Option<Weak<Runtime>>,
}

impl Driver {
    /// A runtime with threads of its own.
    pub fn threaded(handle: Handle) -> Self {
        Driver { handle, inline: None }
    }

    /// A current-thread runtime, driven by whoever waits on it.
    pub fn inline(runtime: &Arc<Runtime>) -> Self {
        Driver { handle: runtime.handle().clone(), inline: Some(Arc::downgrade(runtime)) }
    }

    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` to its end on the calling thread, which must not be one of the
    /// runtime's: inline, the calling thread drives the runtime meanwhile. `None` when the
    /// inline runtime is gone (the server stopped).
    pub fn block_on<F: Future>(&self, future: F) -> Option<F::Output> {
        match &self.inline {
            Some(runtime) => runtime.upgrade().map(|runtime| runtime.block_on(future)),
            None => Some(self.handle.block_on(future)),
        }
    }

    /// Inline: drives the runtime on the calling Ruby thread until `ready()` says there is
    /// work for Ruby (checked whenever `idle` is rung), counted among the idle workers
    /// meanwhile. Before returning it lets every other task that is ready run once, so the
    /// thread takes the requests of all the connections ready now in one turn, and their
    /// answers leave together on the next.
    pub fn drive_until(&self, idle: &IdleDrivers, ready: impl Fn() -> bool) {
        let _idle = idle.enter();
        self.block_on(async {
            idle.rung_until(ready).await;
            tokio::task::yield_now().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn an_inline_runtime_runs_only_while_a_thread_drives_it_and_stops_when_rung() {
        let runtime = Arc::new(tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());
        let driver = Driver::inline(&runtime);
        let bell = Arc::new(IdleDrivers::default());
        let work = Arc::new(AtomicBool::new(false));
        // A task spawned from outside waits for a driver, then finds work and rings.
        driver.handle().spawn({
            let (bell, work) = (bell.clone(), work.clone());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                work.store(true, Ordering::SeqCst);
                bell.ring();
            }
        });
        driver.drive_until(&bell, || work.load(Ordering::SeqCst));
        assert!(work.load(Ordering::SeqCst));
        assert_eq!(bell.waiting(), 0);
        drop(runtime);
        assert_eq!(driver.block_on(async { 1 }), None, "the runtime is gone");
    }

    #[test]
    fn a_threaded_driver_blocks_on_the_runtime_threads() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let driver = Driver::threaded(runtime.handle().clone());
        assert!(!driver.is_inline());
        assert_eq!(driver.block_on(async { 2 }), Some(2));
    }
}
