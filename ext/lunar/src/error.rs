//! `Error`: every failure the native core reports, one kind per cause, as plain Rust data.
//!
//! Each side builds these; only `ruby::error` turns one into a Ruby exception (the class a
//! user can rescue and the one-line message they can act on). No other code builds Ruby
//! errors from Rust errors by hand.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// A setting that cannot work as given (a bind URI, a Redis URL): the user's to fix.
    Config(String),
    /// A certificate or private key that cannot be used: the user's to fix too.
    Tls(String),
    /// A socket that could not be bound, or an inherited one that could not be served.
    Bind { bind: String, source: io::Error },
    /// A file the app named (a `to_path` body) that cannot be opened.
    File { path: String, source: io::Error },
    /// The operating system refused something else (threads, an eventfd, a socket pair).
    Io { doing: &'static str, source: io::Error },
    /// The link to Redis could not start.
    Redis(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(doing: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { doing, source }
    }

    pub fn bind(bind: &str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Bind { bind: bind.to_string(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(message) | Error::Tls(message) => f.write_str(message),
            Error::Bind { bind, source } => write!(f, "bind {bind}: {source}"),
            Error::Io { doing, source } => write!(f, "{doing}: {source}"),
            Error::File { path, source } => write!(f, "cannot open {path}: {source}"),
            Error::Redis(message) => write!(f, "Redis: {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Io { source, .. } | Error::File { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_failed() {
        let refused = io::Error::from(io::ErrorKind::AddrInUse);
        assert_eq!(Error::bind("tcp://0.0.0.0:80")(refused).to_string(), format!("bind tcp://0.0.0.0:80: {}", io::Error::from(io::ErrorKind::AddrInUse)));
        assert_eq!(Error::Redis("no such host".into()).to_string(), "Redis: no such host");
        assert_eq!(Error::Tls("certificate c.pem: no PEM certificate in it".into()).to_string(), "certificate c.pem: no PEM certificate in it");
    }
}
