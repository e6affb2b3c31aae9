//! Idle Ruby workers, parked (GVL released) until the dispatch queue has work for them;
//! inline (`--io-threads 0`), driving the runtime until then (`IdleDrivers`).
//!
//! Why not crossbeam's blocking `select` over the queue's channels: its sender unparks the
//! waiting thread while still holding the channel's waker lock, and the woken thread, about
//! to unregister from the other channels, sleeps again on that lock. Measured with strace
//! on sequential requests: five futex calls per request. Here a push wakes one parked worker
//! with one `unpark`, made after the idle list's lock is released, and a worker parks with
//! one `park`: two futex calls per request when a worker was asleep, none when it was not.

use std::sync::atomic::{fence, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::{self, Thread};

use tokio::sync::Notify;

use crate::sync::lock;

#[derive(Default)]
pub struct IdleWorkers {
    parked: Mutex<Vec<Thread>>,
    /// `parked.len()`, readable without the lock: a push with nobody asleep costs one load.
    count: AtomicUsize,
    /// Workers woken and not yet back at the queue (see `wake_one`).
    waking: AtomicUsize,
}

impl IdleWorkers {
    /// Wakes one parked worker, if any: the most recently parked, whose cache is warm. Call it
    /// after publishing the work it is woken for.
    ///
    /// Not while another woken worker has yet to look at the queue: that one will take the
    /// work, and, finding more, wake the next itself (`DispatchQueue::wait_pop`). Waking one
    /// per push instead woke workers into an emptied queue and into one another's GVL:
    /// hello world under wrk -c64 on -t 4, 0.29 -> 0.11 worker sleeps per request and 8 %
    /// less CPU per request.
    pub fn wake_one(&self) {
        // Pairs with the fence in `park_unless`: either this sees the worker registered, or
        // the worker's last look sees the work (Dekker's handshake).
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::SeqCst) == 0 || self.waking.load(Ordering::SeqCst) > 0 {
            return;
        }
        let worker = lock(&self.parked).pop();
        if let Some(worker) = worker {
            self.count.fetch_sub(1, Ordering::SeqCst);
            self.waking.fetch_add(1, Ordering::SeqCst);
            worker.unpark(); // outside the lock, so the worker does not wake into it
        }
    }

    /// Workers parked now, waiting for work (a snapshot: for balancing, not for correctness).
    pub fn parked(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn wake_all(&self) {
        fence(Ordering::SeqCst);
        let workers = std::mem::take(&mut *lock(&self.parked));
        self.count.fetch_sub(workers.len(), Ordering::SeqCst);
        self.waking.fetch_add(workers.len(), Ordering::SeqCst);
        for worker in workers {
            worker.unpark();
        }
    }

    /// Parks the calling thread until `wake_one`/`wake_all`, an `unpark` from elsewhere (Ruby's
    /// unblock function), or a spurious wake-up; the caller loops. `ready` is asked after the
    /// thread is registered, so work published just before is not slept through.
    pub fn park_unless(&self, ready: impl Fn() -> bool) {
        let me = thread::current();
        lock(&self.parked).push(me.clone());
        self.count.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !ready() {
            thread::park();
        }
        self.forget(&me);
    }

    /// Removes `me` if a waker did not already take it off the list.
    fn forget(&self, me: &Thread) {
        let mut parked = lock(&self.parked);
        if let Some(i) = parked.iter().position(|t| t.id() == me.id()) {
            parked.swap_remove(i);
            self.count.fetch_sub(1, Ordering::SeqCst);
        } else {
            self.waking.fetch_sub(1, Ordering::SeqCst); // a waker took it off the list
        }
        drop(parked);
        // Pairs with `wake_one`'s fence: a push that saw this worker still waking either sees
        // it gone now, or this worker's next look at the queue sees the push.
        fence(Ordering::SeqCst);
    }
}

/// Inline mode's idle workers (`net::driver`): Ruby threads driving the runtime for want of
/// work. They wait on a bell rather than park, since a parked thread would not drive it.
#[derive(Default)]
pub struct IdleDrivers {
    rung: Notify,
    waiting: AtomicUsize,
}

impl IdleDrivers {
    /// Wakes one waiting driver: there is work for one Ruby thread.
    pub fn ring(&self) {
        self.rung.notify_one();
    }

    /// Wakes every waiting driver (the queue closed, or Ruby interrupts one of them).
    pub fn ring_all(&self) {
        self.rung.notify_waiters();
    }

    /// Threads driving the runtime while they wait for work.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Counts the calling thread as waiting until the guard drops.
    pub fn enter(&self) -> DriverWaiting<'_> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        DriverWaiting(self)
    }

    /// Resolves once `ready()`, looked at first and then each time the bell rings.
    pub async fn rung_until(&self, ready: impl Fn() -> bool) {
        loop {
            let rung = self.rung.notified();
            tokio::pin!(rung);
            rung.as_mut().enable(); // registered before looking: a ring in between is not lost
            if ready() {
                return;
            }
            rung.await;
        }
    }
}

pub struct DriverWaiting<'a>(&'a IdleDrivers);

impl Drop for DriverWaiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn a_published_flag_is_never_slept_through() {
        for _ in 0..200 {
            let idle = Arc::new(IdleWorkers::default());
            let work = Arc::new(AtomicBool::new(false));
            let worker = {
                let (idle, work) = (idle.clone(), work.clone());
                thread::spawn(move || {
                    while !work.load(Ordering::SeqCst) {
                        idle.park_unless(|| work.load(Ordering::SeqCst));
                    }
                })
            };
            work.store(true, Ordering::SeqCst);
            idle.wake_one();
            worker.join().expect("the worker saw the work and left");
            assert_eq!(idle.count.load(Ordering::SeqCst), 0);
        }
    }
}
