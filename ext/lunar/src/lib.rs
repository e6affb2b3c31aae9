//! Lunar's native core. tokio owns every socket and every byte; Ruby threads own every Ruby
//! object; the dispatch queue is the one narrow crossing between them.
//!
//! The data path, module by module:
//! `listener` → `connection` (on a `socket`; `http1` parses and frames) → `intake` (the
//! body) → `service` → `job` → `dispatch` → (Ruby thread) `native_server` /
//! `native_request` + `env` → app → `response` + `headers` → `reply` (+ `body_writer` →
//! `stream` for streamed bodies) → `respond` writes it on the connection. `disconnect`
//! carries "the client left" back to Ruby.

mod body_writer;
mod config;
mod connection;
mod disconnect;
mod dispatch;
mod env;
mod gvl;
pub mod headers;
pub mod http1;
mod intake;
mod job;
mod limits;
mod listener;
mod native_request;
mod native_server;
mod reply;
mod respond;
mod response;
mod server;
mod service;
mod socket;
mod stream;
mod topic;

use magnus::{Error, Module, Ruby};

/// Rust-side allocations (request bodies, response chunks, read buffers) use mimalloc, which
/// keeps freed pages for reuse: with glibc, each 64 KiB chunk copied out of Ruby and freed
/// after writing was handed back to the kernel (madvise) and faulted in again for the next,
/// doubling the kernel time of a streamed body. Ruby's own allocations are untouched.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[magnus::init(name = "lunar")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let lunar = ruby.define_module("Lunar")?;
    let native = lunar.define_module("Native")?;
    native_server::NativeServer::define(ruby, native)?;
    native_request::NativeRequest::define(ruby, native)?;
    body_writer::BodyWriter::define(ruby, native)?;
    topic::Topic::define(ruby, native)?;
    Ok(())
}
