//! Lunar's native core. hyper on a tokio runtime owns every socket and every byte; Ruby
//! threads own every Ruby object; the dispatch queue is the one narrow crossing between them.
//!
//! The folders follow a request's path, and imports run one way (`bridge` uses neither
//! side; `net` never touches a Ruby type):
//!
//! - [`net`]: the tokio side. `listener` accepts (TCP, Unix, TLS), `connection` hands the
//!   socket to hyper (HTTP/1.1 and HTTP/2) and enforces the inactivity timeout, `service`
//!   reads the body (`intake`), queues the request and awaits its reply.
//! - [`bridge`]: the crossing, plain Rust data only: the request `job`, the `dispatch` queue
//!   (+ the eventfd the EventMachine reactor watches), the `reply` and its streamed body
//!   (`stream`), and `disconnect` notices travelling back.
//! - [`ruby`]: what Ruby sees. `native_server` hands jobs to Ruby threads (GVL released only
//!   to wait, `gvl`), `native_request` builds the Rack env (`env`) and takes the Rack
//!   response (`response`, `headers`), `body_writer` is the Ruby end of a streamed body.
//! - [`fanout`]: one publish to many held connections without a Ruby call each (in this
//!   process, or through Redis); `ruby::topic` is its face.
//!
//! Beside them: `config` (the settings, plain data), `error` (every failure, one kind per
//! cause; `ruby::error` raises it), `log` (the native side's log lines, in Ruby's format),
//! `sync` (locking without a poisoned-lock path).

mod bridge;
mod config;
mod error;
mod fanout;
mod log;
mod net;
mod ruby;
mod sync;

#[cfg(test)]
mod fuzz;

use magnus::{Error, Module, Ruby};

/// Rust allocations use jemalloc. hyper keeps an 8 KiB read buffer and an 8 KiB write buffer
/// per connection; jemalloc leaves the pages a held connection never touched unbacked, where
/// glibc's inline chunk headers touch every page (14.2 vs 6.3 KiB per held request measured
/// on a bare hyper server). It also keeps freed pages for reuse, so streamed chunks copied
/// out of Ruby do not fault fresh pages in. Its symbols stay prefixed and it does not use the
/// initial-exec TLS model (we are dlopen'ed), so Ruby's own malloc is untouched.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[magnus::init(name = "lunar")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let lunar = ruby.define_module("Lunar")?;
    let native = lunar.define_module("Native")?;
    ruby::define(ruby, native)?;
    Ok(())
}
