//! A request job: one HTTP request as plain Rust data, on its way from tokio to a Ruby thread.
//!
//! Nothing here is a Ruby object, so a job may be built on an I/O thread and moved freely.

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::http::request::Parts;
use tokio::sync::oneshot;

use crate::reply::Reply;

/// The request body, fully read before the job is dispatched.
pub enum RequestBody {
    Empty,
    Memory(Bytes),
    /// Larger than the spool threshold: an already-unlinked temporary file, rewound.
    Spooled(std::fs::File),
}

/// Where a connection came from and which local address it reached.
#[derive(Clone, Debug)]
pub struct ConnectionAddrs {
    /// Peer IP as Rack's `REMOTE_ADDR` wants it (`127.0.0.1` for Unix sockets, like Puma).
    pub remote_ip: String,
    /// Local host and port, the `SERVER_NAME`/`SERVER_PORT` fallback when there is no Host.
    pub local_host: String,
    pub local_port: String,
}

impl ConnectionAddrs {
    pub fn tcp(peer: SocketAddr, local: SocketAddr) -> Self {
        let local_host = match local {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        ConnectionAddrs {
            remote_ip: peer.ip().to_string(),
            local_host,
            local_port: local.port().to_string(),
        }
    }

    pub fn unix() -> Self {
        ConnectionAddrs {
            remote_ip: "127.0.0.1".into(),
            local_host: "localhost".into(),
            local_port: "80".into(),
        }
    }
}

/// One request for Ruby to answer. `reply` is a one-shot slot: the first answer wins.
pub struct RequestJob {
    pub id: u64,
    pub head: Parts,
    pub body: RequestBody,
    pub addrs: std::sync::Arc<ConnectionAddrs>,
    pub reply: oneshot::Sender<Reply>,
}
