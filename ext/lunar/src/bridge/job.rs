//! A request job: one HTTP request as plain Rust data, on its way from tokio to a Ruby thread.
//!
//! Nothing here is a Ruby object, so a job may be built on an I/O thread and moved freely.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use tokio::sync::oneshot;

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::reply::Reply;

/// The request body, fully read before the job is dispatched.
pub enum RequestBody {
    Empty,
    Memory(Bytes),
    /// Larger than the spool threshold: an already-unlinked temporary file, rewound.
    Spooled(std::fs::File),
}

impl RequestBody {
    /// Its size in bytes (a spooled file's as the file system says; 0 if it cannot say).
    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Empty => 0,
            RequestBody::Memory(bytes) => bytes.len() as u64,
            RequestBody::Spooled(file) => file.metadata().map_or(0, |m| m.len()),
        }
    }
}

/// One request for Ruby to answer. `reply` is a one-shot slot: the first answer wins.
pub struct RequestJob {
    pub id: u64,
    pub head: Box<Parts>,
    pub body: RequestBody,
    pub connection: Arc<ConnectionInfo>,
    pub reply: oneshot::Sender<Reply>,
    /// An HTTP/1.1 request that asked for an upgrade: it may be hijacked (`rack.hijack`).
    pub upgradable: bool,
}
