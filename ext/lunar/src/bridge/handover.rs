//! A hijacked connection on its way to Ruby (`rack.hijack`). The Ruby thread that calls it
//! waits (GVL released, `ruby::gvl::wait_on_io`) for the I/O side to hand over a descriptor: the client's own socket
//! when nothing sits between the two (plain TCP or Unix, no bytes hyper read past the
//! request), else the app's end of a socket pair the I/O side relays to the client (TLS,
//! buffered bytes). It comes once hyper has let go of the connection, microseconds after
//! the request is answered with the hijack.

use std::os::fd::OwnedFd;

use tokio::sync::oneshot;

/// What the descriptor is, so Ruby wraps it in the right class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The client's TCP socket itself.
    Tcp,
    /// A Unix socket: the client's own, or the app's end of the relayed pair.
    Unix,
}

#[derive(Debug)]
pub struct Handed {
    pub fd: OwnedFd,
    pub kind: Kind,
}

/// The I/O side's end: `give` once the connection is free of hyper.
#[derive(Debug)]
pub struct Giver(oneshot::Sender<Handed>);

/// Ruby's end.
pub struct Taker(oneshot::Receiver<Handed>);

pub fn channel() -> (Giver, Taker) {
    let (tx, rx) = oneshot::channel();
    (Giver(tx), Taker(rx))
}

impl Giver {
    /// Hands the descriptor over; if Ruby stopped waiting it is dropped (closed) here.
    pub fn give(self, fd: OwnedFd, kind: Kind) {
        let _ = self.0.send(Handed { fd, kind });
    }
}

impl Taker {
    /// The descriptor once handed; `Err` when the connection went away first (the giver was
    /// dropped).
    pub async fn taken(self) -> Result<Handed, ()> {
        self.0.await.map_err(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    #[test]
    fn hands_over_once_or_says_the_connection_went_away() {
        let (giver, taker) = channel();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        giver.give(a.into(), Kind::Unix);
        assert_eq!(runtime().block_on(taker.taken()).unwrap().kind, Kind::Unix);

        let (giver, taker) = channel();
        drop(giver);
        assert!(runtime().block_on(taker.taken()).is_err());
    }

    /// Inline: the giver is a task of the runtime the waiting thread itself drives.
    #[test]
    fn a_wait_that_drives_the_runtime_runs_the_task_that_hands_over() {
        let runtime = runtime();
        let (giver, taker) = channel();
        runtime.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
            giver.give(a.into(), Kind::Unix);
        });
        assert_eq!(runtime.block_on(taker.taken()).unwrap().kind, Kind::Unix);
    }
}
