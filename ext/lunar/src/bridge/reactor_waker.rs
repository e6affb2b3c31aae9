//! `ReactorWaker`: the eventfd the EventMachine reactor watches (`EM.watch`) in evented
//! mode, so requests run on the reactor thread with no extra thread hop.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// An eventfd that becomes readable when events are queued. Written at most once until the
/// reader re-arms it, so a burst of a thousand requests costs one write and one wake-up.
pub struct ReactorWaker {
    fd: OwnedFd,
    armed: AtomicBool,
}

impl ReactorWaker {
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before it is owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(ReactorWaker { fd: unsafe { OwnedFd::from_raw_fd(fd) }, armed: AtomicBool::new(true) })
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    pub fn wake(&self) {
        if self.armed.swap(false, Ordering::AcqRel) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
            unsafe { libc::write(self.fd.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
        }
    }

    /// Called by the reader before it drains the queue: anything queued from now on
    /// writes the eventfd again.
    pub fn rearm(&self) {
        let mut counter: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd.
        unsafe { libc::read(self.fd.as_raw_fd(), &mut counter as *mut u64 as *mut libc::c_void, 8) };
        self.armed.store(true, Ordering::Release);
    }
}
