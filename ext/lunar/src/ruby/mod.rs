//! What Ruby sees: the native server and request objects, the Rack env built from a job, the
//! Rack response turned into a reply, the writer of streamed bodies, `Topic` (the fan-out's
//! face), and the errors native code raises. Everything here runs on Ruby threads; only
//! plain data from `bridge` and `fanout` goes to the tokio side.

pub mod body_writer;
pub mod env;
pub mod error;
pub mod gvl;
pub mod headers;
pub mod inbox;
pub mod lent;
pub mod native_listener;
pub mod native_request;
pub mod native_server;
pub mod response;
pub mod server_config;
pub mod topic;

use magnus::typed_data::TypedData;
use magnus::{Error, RModule, Ruby};

/// `Lunar::Native.configure_log(format, level)`: the native side's log lines in the format
/// and at the level `Lunar::Log` uses.
fn configure_log(ruby: &Ruby, format: String, level: String) -> Result<(), Error> {
    use crate::ruby::error::OrRaise;
    let level = crate::log::Level::parse(&level).ok_or_else(|| crate::error::Error::Config(format!("unknown log level {level:?}"))).or_raise(ruby)?;
    crate::log::configure(format == "json", level);
    Ok(())
}

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    use magnus::{function, Object};
    native.define_singleton_method("configure_log", function!(configure_log, 2))?;
    native_server::NativeServer::define(ruby, native)?;
    native_listener::define(native)?;
    native_request::NativeRequest::define(ruby, native)?;
    body_writer::BodyWriter::define(ruby, native)?;
    inbox::RubyInbox::define(ruby, native)?;
    lent::define(ruby, native)?;
    topic::Topic::define(ruby, native)?;
    error::define_classes(ruby);
    resolve_class::<native_server::NativeServer>(ruby);
    resolve_class::<native_request::NativeRequest>(ruby);
    resolve_class::<body_writer::BodyWriter>(ruby);
    resolve_class::<inbox::RubyInbox>(ruby);
    resolve_class::<topic::Topic>(ruby);
    Ok(())
}

/// `#[magnus::wrap]` finds a wrapped type's Ruby class lazily, the first time an object is
/// made: a `OnceLock` whose initializer calls `const_get`, and a Ruby call may switch
/// threads. A second thread reaching the same lock then blocks on it holding the GVL, and
/// the first can never finish: five workers making their inboxes at once deadlocked the
/// process. Resolved here, at load time, on one thread.
pub fn resolve_class<T: TypedData>(ruby: &Ruby) {
    let _ = T::class(ruby);
}
