//! What Ruby sees: the native server and request objects, the Rack env built from a job, the
//! Rack response turned into a reply, and the writer of streamed bodies. Everything here runs
//! on Ruby threads; only plain data from `bridge` goes to the tokio side.

pub mod body_writer;
pub mod env;
pub mod gvl;
pub mod headers;
pub mod native_request;
pub mod native_server;
pub mod response;

use magnus::{Error, RModule, Ruby};

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    native_server::NativeServer::define(ruby, native)?;
    native_request::NativeRequest::define(ruby, native)?;
    body_writer::BodyWriter::define(ruby, native)?;
    Ok(())
}
