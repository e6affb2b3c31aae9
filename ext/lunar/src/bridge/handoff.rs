//! `Handoff`: a body's side of its connection's `Outbox` as hyper takes its bytes.
//!
//! On HTTP/2, hyper takes a chunk before it has window to send it and keeps it while the
//! client's window stays shut; chunks are handed to it in `HTTP2_SLICE`s so that what it
//! holds per stream stays small, and the rest stays counted by the body. A `Handoff` tells
//! the connection which bodies hyper holds data of without coming back (see `Outbox`).
//! Used by streamed bodies (`stream`) and complete ones (`reply::Counted`).

use std::sync::Arc;

use bytes::Bytes;

use crate::bridge::connection::ConnectionInfo;

/// What hyper is handed at a time on an HTTP/2 connection: one DATA frame's worth (the
/// protocol's default maximum frame size).
pub const HTTP2_SLICE: usize = 16 * 1024;

/// A body's side of its connection's `Outbox` on HTTP/2: whether it handed hyper data that
/// hyper has not come back for, and slicing what it hands over. On HTTP/1 it only
/// releases bytes.
pub struct Handoff {
    connection: Arc<ConnectionInfo>,
    handed: bool,
}

impl Handoff {
    pub fn new(connection: Arc<ConnectionInfo>) -> Self {
        Handoff { connection, handed: false }
    }

    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// HTTP/2: bytes go to hyper in slices, and one body's bytes must not be gathered.
    pub fn multiplexed(&self) -> bool {
        self.connection.is_multiplexed()
    }

    /// hyper polls the body: whatever it was handed before, it came back for.
    pub fn polled(&mut self) {
        if self.handed {
            self.handed = false;
            self.connection.outbox.came_back();
            self.connection.activity.response_moved();
        }
    }

    /// Takes what hyper gets now out of `data` (all of it on HTTP/1, a slice on HTTP/2),
    /// leaving the rest; releases it from the outbox and notes the handoff.
    pub fn hand(&mut self, data: &mut Bytes) -> Bytes {
        let multiplexed = self.connection.is_multiplexed();
        let now = if multiplexed && data.len() > HTTP2_SLICE { data.split_to(HTTP2_SLICE) } else { std::mem::take(data) };
        self.connection.outbox.release(now.len());
        if multiplexed && !now.is_empty() {
            self.handed = true;
            self.connection.outbox.handed();
            self.connection.activity.response_moved();
        }
        now
    }

    /// Bytes that will never be handed (the body was dropped): out of the budget.
    pub fn drop_unsent(&self, len: usize) {
        self.connection.outbox.release(len);
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        self.polled();
    }
}
