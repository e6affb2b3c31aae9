//! Lunar's native core. tokio + hyper own every socket and every byte; Ruby threads own
//! every Ruby object; the dispatch queue is the one narrow crossing between them.
//!
//! The data path, module by module:
//! `listener` → `connection` → `service` (+ `intake` for bodies) → `job` → `dispatch`
//! → (Ruby thread) `native_server` / `native_request` + `env` → app →
//! `response` + `headers` → `reply` (+ `body_writer` → `stream` for streamed bodies)
//! → back to `connection`. `disconnect` carries "the client left" back to Ruby.

mod body_writer;
mod config;
mod connection;
mod disconnect;
mod dispatch;
mod env;
mod gvl;
pub mod headers;
mod intake;
mod job;
mod listener;
mod native_request;
mod native_server;
mod reply;
mod response;
mod server;
mod service;
mod stream;

use magnus::{Error, Module, Ruby};

#[magnus::init(name = "lunar")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    let lunar = ruby.define_module("Lunar")?;
    let native = lunar.define_module("Native")?;
    native_server::NativeServer::define(ruby, native)?;
    native_request::NativeRequest::define(ruby, native)?;
    body_writer::BodyWriter::define(ruby, native)?;
    Ok(())
}
