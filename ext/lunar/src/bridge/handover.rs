//! A hijacked connection on its way to Ruby (`rack.hijack`). The Ruby thread that calls it
//! waits (GVL released) for the I/O side to hand over a descriptor: the client's own socket
//! when nothing sits between the two (plain TCP or Unix, no bytes hyper read past the
//! request), else the app's end of a socket pair the I/O side relays to the client (TLS,
//! buffered bytes). It comes once hyper has let go of the connection, microseconds after
//! the request is answered with the hijack.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::Duration;

/// What the descriptor is, so Ruby wraps it in the right class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The client's TCP socket itself.
    Tcp,
    /// A Unix socket: the client's own, or the app's end of the relayed pair.
    Unix,
}

pub struct Handed {
    pub fd: OwnedFd,
    pub kind: Kind,
}

/// The I/O side's end: `give` once the connection is free of hyper.
#[derive(Debug)]
pub struct Giver(SyncSender<Handed>);

/// Ruby's end.
pub struct Taker(Receiver<Handed>);

pub fn channel() -> (Giver, Taker) {
    let (tx, rx) = sync_channel(1);
    (Giver(tx), Taker(rx))
}

impl Giver {
    /// Hands the descriptor over; if Ruby stopped waiting it is dropped (closed) here.
    pub fn give(self, fd: OwnedFd, kind: Kind) {
        let _ = self.0.send(Handed { fd, kind });
    }
}

/// How often a waiting Ruby thread looks at its interrupt flag.
const LOOK_EVERY: Duration = Duration::from_millis(10);

impl Taker {
    /// Waits for the descriptor: `Some(Ok)` once handed, `Some(Err(()))` when the connection
    /// went away first (the giver was dropped), `None` when `interrupted` was set (Ruby's
    /// unblock function: the caller handles the interrupt and waits again).
    pub fn wait(&self, interrupted: &AtomicBool) -> Option<Result<Handed, ()>> {
        loop {
            match self.0.recv_timeout(LOOK_EVERY) {
                Ok(handed) => return Some(Ok(handed)),
                Err(RecvTimeoutError::Disconnected) => return Some(Err(())),
                Err(RecvTimeoutError::Timeout) if interrupted.swap(false, Ordering::AcqRel) => return None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// `wait` for a thread that drives the runtime meanwhile (inline mode: the hand-over is
    /// the work of the very thread that waits for it), looking every millisecond.
    pub async fn wait_driving(&self, interrupted: &AtomicBool) -> Option<Result<Handed, ()>> {
        loop {
            match self.0.try_recv() {
                Ok(handed) => return Some(Ok(handed)),
                Err(TryRecvError::Disconnected) => return Some(Err(())),
                Err(TryRecvError::Empty) if interrupted.swap(false, Ordering::AcqRel) => return None,
                Err(TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_over_once_or_says_the_connection_went_away() {
        let (giver, taker) = channel();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        giver.give(a.into(), Kind::Unix);
        let interrupted = AtomicBool::new(false);
        assert_eq!(taker.wait(&interrupted).unwrap().unwrap().kind, Kind::Unix);

        let (giver, taker) = channel();
        drop(giver);
        assert!(taker.wait(&interrupted).unwrap().is_err());

        let (_giver, taker) = channel();
        interrupted.store(true, Ordering::Release);
        assert!(taker.wait(&interrupted).is_none()); // the interrupt is Ruby's to handle
    }

    /// Inline: the giver is a task of the runtime the waiting thread itself drives.
    #[test]
    fn a_driving_wait_runs_the_task_that_hands_over() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (giver, taker) = channel();
        runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            giver.give(a.into(), Kind::Unix);
        });
        let interrupted = AtomicBool::new(false);
        assert_eq!(runtime.block_on(taker.wait_driving(&interrupted)).unwrap().unwrap().kind, Kind::Unix);

        let (_giver, taker) = channel();
        interrupted.store(true, Ordering::Release);
        assert!(runtime.block_on(taker.wait_driving(&interrupted)).is_none());
    }
}
