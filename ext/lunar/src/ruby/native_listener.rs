//! `Lunar::Native.listen` and `Lunar::Native.listen_address`: listening sockets made or
//! examined before any runtime exists. A cluster master binds with `listen` and forks
//! workers that serve the descriptors (`listen_fds:`); systemd's sockets are named with
//! `listen_address`. Neither starts a thread, so the master stays safe to fork.

use std::os::fd::{BorrowedFd, RawFd};

use magnus::{Error, Ruby};

use crate::error::Error::Config as ConfigError;
use crate::net::listener;
use crate::ruby::error::OrRaise;

/// Binds `uri` (reading its TLS files, to fail early) and returns the listening socket's
/// descriptor, inheritable by children forked later.
fn listen(ruby: &Ruby, uri: String) -> Result<RawFd, Error> {
    listener::bind(&uri, None).map(listener::Bound::into_raw_fd).or_raise(ruby)
}

/// `tcp://ip:port` or `unix:///path` for the listening socket `fd`; `Lunar::ConfigError`
/// (an ArgumentError) when it is not one.
fn listen_address(ruby: &Ruby, fd: RawFd) -> Result<String, Error> {
    describe_descriptor(fd).or_raise(ruby)
}

fn describe_descriptor(fd: RawFd) -> crate::error::Result<String> {
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a valid argument.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(ConfigError(format!("descriptor {fd}: not open")));
    }
    // SAFETY: open (checked just above) and only inspected during this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    listener::describe(borrowed).map_err(|e| ConfigError(format!("descriptor {fd}: {e}")))
}

pub fn define(native: magnus::RModule) -> Result<(), Error> {
    use magnus::{function, Object};
    native.define_singleton_method("listen", function!(listen, 1))?;
    native.define_singleton_method("listen_address", function!(listen_address, 1))?;
    Ok(())
}
