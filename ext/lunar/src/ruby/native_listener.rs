//! `Lunar::Native.listen` and `Lunar::Native.listen_address`: listening sockets made or
//! examined before any runtime exists. A cluster master binds with `listen` and forks
//! workers that serve the descriptors (`listen_fds:`); systemd's sockets are named with
//! `listen_address`. Neither starts a thread, so the master stays safe to fork.

use std::os::fd::{BorrowedFd, RawFd};

use magnus::{Error, Ruby};

use crate::net::listener;

/// Binds `uri` (reading its TLS files, to fail early) and returns the listening socket's
/// descriptor, inheritable by children forked later.
fn listen(ruby: &Ruby, uri: String) -> Result<RawFd, Error> {
    listener::bind(&uri, None).map(listener::Bound::into_raw_fd).map_err(|e| {
        let class = match e.kind() {
            std::io::ErrorKind::InvalidInput => ruby.exception_arg_error(),
            _ => ruby.exception_standard_error(),
        };
        Error::new(class, format!("could not bind: {e}"))
    })
}

/// `tcp://ip:port` or `unix:///path` for the listening socket `fd`; ArgumentError when it
/// is not one.
fn listen_address(ruby: &Ruby, fd: RawFd) -> Result<String, Error> {
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a valid argument.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(Error::new(ruby.exception_arg_error(), format!("descriptor {fd}: not open")));
    }
    // SAFETY: open (checked just above) and only inspected during this call.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    listener::describe(borrowed).map_err(|e| Error::new(ruby.exception_arg_error(), format!("descriptor {fd}: {e}")))
}

pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
    use magnus::{function, Object};
    let _ = ruby;
    native.define_singleton_method("listen", function!(listen, 1))?;
    native.define_singleton_method("listen_address", function!(listen_address, 1))?;
    Ok(())
}
