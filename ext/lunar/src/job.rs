//! A request job: one HTTP request as plain Rust data, on its way from tokio to a Ruby thread.
//!
//! Nothing here is a Ruby object, so a job may be built on an I/O thread and moved freely.

use std::net::SocketAddr;

use bytes::Bytes;
use http::request::Parts;
use tokio::sync::{oneshot, Notify};

use crate::reply::Reply;

/// The request body, fully read before the job is dispatched.
pub enum RequestBody {
    Empty,
    Memory(Bytes),
    /// Larger than the spool threshold: an already-unlinked temporary file, rewound.
    Spooled(std::fs::File),
}

/// One connection as its requests see it: where it came from, which local address it
/// reached, and a switch to close it at once (a streamed response cut off as too slow, or
/// aborted by an error).
#[derive(Debug)]
pub struct ConnectionInfo {
    /// Peer IP as Rack's `REMOTE_ADDR` wants it (`127.0.0.1` for Unix sockets, like Puma).
    pub remote_ip: String,
    /// Local host and port, the `SERVER_NAME`/`SERVER_PORT` fallback when there is no Host.
    pub local_host: String,
    pub local_port: String,
    cut: Notify,
}

impl ConnectionInfo {
    pub fn tcp(peer: SocketAddr, local: SocketAddr) -> Self {
        let local_host = match local {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        ConnectionInfo {
            remote_ip: peer.ip().to_string(),
            local_host,
            local_port: local.port().to_string(),
            cut: Notify::new(),
        }
    }

    pub fn unix() -> Self {
        ConnectionInfo {
            remote_ip: "127.0.0.1".into(),
            local_host: "localhost".into(),
            local_port: "80".into(),
            cut: Notify::new(),
        }
    }

    /// Asks the connection's task to close it now, whatever it is doing.
    pub fn cut(&self) {
        self.cut.notify_one(); // kept as a permit if the task is not waiting yet
    }

    /// Completes when `cut` is called.
    pub async fn cut_requested(&self) {
        self.cut.notified().await
    }
}

/// One request for Ruby to answer. `reply` is a one-shot slot: the first answer wins.
pub struct RequestJob {
    pub id: u64,
    pub head: Box<Parts>,
    pub body: RequestBody,
    pub connection: std::sync::Arc<ConnectionInfo>,
    pub reply: oneshot::Sender<Reply>,
}
