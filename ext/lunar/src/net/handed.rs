//! Sockets handed to the app whole (`rack.hijack` with nothing in between, see `relay`):
//! they still count against `--max-conns` until the app closes them, as Puma's and Thin's
//! hijacked sockets do.
//!
//! Once handed over, the descriptor is the app's and no task of Lunar's sees it close. Each
//! is remembered by its number and the inode of the socket behind it (sockfs inodes are
//! unique among open sockets, so a number reused for another socket does not look alive);
//! the list is looked at again only when the count reaches the limit, at most every
//! `RECOUNT_EVERY`, so a server far from its limit pays one `fstat` per hijack.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// How often, at most, a server at its limit checks which handed sockets are closed: each
/// look is one `stat` per socket (~1 µs), and refused connections must not multiply them.
const RECOUNT_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct HandedSockets(Mutex<Handed>);

#[derive(Default)]
struct Handed {
    sockets: Vec<(RawFd, u64)>,
    recounted: Option<Instant>,
}

impl HandedSockets {
    /// Remembers a socket about to be handed to the app.
    pub fn record(&self, socket: impl AsFd) {
        let fd = socket.as_fd().as_raw_fd();
        if let Some(inode) = inode_of(fd) {
            lock(&self.0).sockets.push((fd, inode));
        }
    }

    /// Handed sockets not yet seen closed (some may be: see `open`).
    pub fn counted(&self) -> usize {
        lock(&self.0).sockets.len()
    }

    /// Handed sockets the app still holds open: the list is pruned first, unless it was
    /// within `RECOUNT_EVERY`.
    pub fn open(&self) -> usize {
        let mut handed = lock(&self.0);
        if handed.recounted.is_none_or(|at| at.elapsed() >= RECOUNT_EVERY) {
            handed.sockets.retain(|&(fd, inode)| inode_of(fd) == Some(inode));
            handed.recounted = Some(Instant::now());
        }
        handed.sockets.len()
    }
}

/// The inode of the socket behind descriptor `fd` of this process, if it is one. Through
/// /proc rather than `fstat`: the descriptor is not ours to borrow once handed over.
fn inode_of(fd: RawFd) -> Option<u64> {
    let meta = std::fs::metadata(format!("/proc/self/fd/{fd}")).ok()?;
    meta.file_type().is_socket().then(|| meta.ino())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn counts_a_handed_socket_until_it_is_closed_even_if_its_number_is_reused() {
        let handed = HandedSockets::default();
        let (a, _peer) = UnixStream::pair().unwrap();
        handed.record(&a);
        assert_eq!((handed.counted(), handed.open()), (1, 1));
        drop(a);
        assert_eq!(handed.counted(), 1); // not looked at yet
                                         // A new socket very likely takes the closed one's number: it is another inode.
        let (_b, _c) = UnixStream::pair().unwrap();
        lock(&handed.0).recounted = None;
        assert_eq!(handed.open(), 0);
    }
}
