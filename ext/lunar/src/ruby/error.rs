//! Native errors as Ruby sees them: the one place a `crate::error::Error` becomes a Ruby
//! exception, and the exception classes Lunar defines.
//!
//! - `Lunar::ConfigError < ArgumentError`: a setting, bind URI, certificate or Redis URL
//!   that cannot work as given (the CLI prints it as one line and exits 2);
//! - `Lunar::BindError < IOError`: a socket that could not be bound (in use, no permission);
//! - `Lunar::RedisError < StandardError`: the Redis link could not start;
//! - `IOError` for anything else the operating system refused.

use magnus::value::Lazy;
use magnus::{ExceptionClass, Module, RModule, Ruby};

use crate::error::Error;

static CONFIG_ERROR: Lazy<ExceptionClass> = Lazy::new(|ruby| define(ruby, "ConfigError", ruby.exception_arg_error()));
static BIND_ERROR: Lazy<ExceptionClass> = Lazy::new(|ruby| define(ruby, "BindError", ruby.exception_io_error()));
static REDIS_ERROR: Lazy<ExceptionClass> = Lazy::new(|ruby| define(ruby, "RedisError", ruby.exception_standard_error()));

fn define(ruby: &Ruby, name: &str, superclass: ExceptionClass) -> ExceptionClass {
    let lunar: RModule = ruby.define_module("Lunar").expect("module Lunar is defined at load");
    lunar.define_error(name, superclass).expect("Lunar's error classes are defined once, at load")
}

/// Defines the classes now, at load, on one thread (a `Lazy` first forced from two Ruby
/// threads at once could deadlock on its lock; see `ruby::resolve_class`).
pub fn define_classes(ruby: &Ruby) {
    for class in [&CONFIG_ERROR, &BIND_ERROR, &REDIS_ERROR] {
        Lazy::force(class, ruby);
    }
}

/// The Ruby exception for `error`.
pub fn raise(ruby: &Ruby, error: Error) -> magnus::Error {
    let class = match &error {
        Error::Config(_) | Error::Tls(_) => ruby.get_inner(&CONFIG_ERROR),
        Error::Bind { .. } => ruby.get_inner(&BIND_ERROR),
        Error::Redis(_) => ruby.get_inner(&REDIS_ERROR),
        Error::Io { .. } | Error::File { .. } => ruby.exception_io_error(),
    };
    magnus::Error::new(class, error.to_string())
}

/// `result.or_raise(ruby)`: a native `Result` as a Ruby method returns it.
pub trait OrRaise<T> {
    fn or_raise(self, ruby: &Ruby) -> Result<T, magnus::Error>;
}

impl<T> OrRaise<T> for crate::error::Result<T> {
    fn or_raise(self, ruby: &Ruby) -> Result<T, magnus::Error> {
        self.map_err(|e| raise(ruby, e))
    }
}
