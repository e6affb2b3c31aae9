//! Releasing Ruby's GVL around a blocking wait, interruptibly.
//!
//! Ruby calls the unblock function from another thread when this thread must wake
//! (`Thread#kill`, `Timeout`, a signal, VM shutdown), so every wait here must have a way to
//! be cut short. The work and the unblock callbacks get separate data pointers, as Ruby
//! may call them concurrently.

use std::ffi::c_void;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use magnus::{Error, Ruby};
use tokio::sync::oneshot;

use crate::net::driver::Driver;
use crate::sync::lock;

struct Work<'a, F, R> {
    func: &'a mut F,
    result: Option<std::thread::Result<R>>,
}

extern "C" fn run_work<F: FnMut() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `&mut Work` passed by `call_once` below, alive for the whole
    // call and touched by no one else while Ruby runs this callback.
    let work = unsafe { &mut *(data as *mut Work<'_, F, R>) };
    work.result = Some(catch_unwind(AssertUnwindSafe(&mut *work.func)));
    std::ptr::null_mut()
}

extern "C" fn run_unblock<U: Fn()>(data: *mut c_void) {
    // SAFETY: `data` is the `&U` passed by `call_once`; `U: Sync` (checked there), so a
    // shared reference from Ruby's interrupting thread is sound.
    let unblock = unsafe { &*(data as *const U) };
    let _ = catch_unwind(AssertUnwindSafe(unblock));
}

/// One `rb_thread_call_without_gvl2`: `None` if Ruby had an interrupt pending and did not
/// run `func`. gvl2 (unlike gvl) does not raise on the way out, so whatever `func`
/// returned (a request job) always reaches the caller.
fn call_once<F, R, U>(func: &mut F, unblock: &U) -> Option<std::thread::Result<R>>
where
    F: FnMut() -> R,
    U: Fn() + Sync,
{
    let mut work = Work { func, result: None };
    // SAFETY: called on a Ruby thread holding the GVL (every caller is a Ruby method). Both
    // pointers outlive the call, and neither callback touches Ruby objects.
    unsafe {
        rb_sys::rb_thread_call_without_gvl2(
            Some(run_work::<F, R>),
            &mut work as *mut Work<'_, F, R> as *mut c_void,
            Some(run_unblock::<U>),
            unblock as *const U as *mut c_void,
        );
    }
    work.result
}

/// Lets Ruby act on pending interrupts: thread switches run, and `Thread#kill`, `raise`
/// or a signal's exception come back as `Err`, for the caller to return to Ruby.
pub fn check_interrupts(ruby: &Ruby) -> Result<(), Error> {
    use magnus::rb_sys::AsRawValue;
    let nil = ruby.qnil().as_raw();
    magnus::rb_sys::protect(|| {
        // SAFETY: called with the GVL held; `protect` turns a raise into `Err` instead of a
        // longjmp through Rust frames.
        unsafe { rb_sys::rb_thread_check_ints() };
        nil
    })
    .map(|_| ())
}

/// Runs `func` with the GVL released; `unblock` must make it return soon. When Ruby has an
/// interrupt pending, it is processed first (raising `Err` for kills and signals; a mere
/// thread-switch tick just lets other threads run) and the wait is tried again.
pub fn without_gvl<F, R, U>(ruby: &Ruby, mut func: F, unblock: U) -> Result<R, Error>
where
    F: FnMut() -> R,
    U: Fn() + Sync,
{
    loop {
        match call_once(&mut func, &unblock) {
            Some(Ok(r)) => return Ok(r),
            Some(Err(_)) => {
                return Err(Error::new(ruby.exception_runtime_error(), "lunar: internal panic while waiting"));
            }
            None => check_interrupts(ruby)?,
        }
    }
}

/// How one `wait_on_io` attempt ended.
enum Waited<T> {
    Done(T),
    /// The inline runtime is gone (the server stopped).
    Gone,
    /// Ruby's unblock function cut it short.
    Interrupted,
}

/// Waits, GVL released, for `future` on `driver` (inline: this thread drives the runtime
/// meanwhile, since no other would). An interrupt (`Thread#kill`, `Timeout`, a signal)
/// pauses the wait; Ruby acts on it (a kill comes back as `Err`) and the same future is
/// awaited again. `None` when the runtime is gone. Every wait of a Ruby thread for the I/O
/// side goes through here: room in a stream, a hijacked socket's hand-over.
pub fn wait_on_io<F: Future>(ruby: &Ruby, driver: &Driver, future: F) -> Result<Option<F::Output>, Error> {
    let mut future = std::pin::pin!(future);
    loop {
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        let cancel = Mutex::new(Some(cancel_tx));
        let mut cancel_rx = Some(cancel_rx);
        let attempt = || {
            let Some(cancel_rx) = cancel_rx.take() else { return Waited::Interrupted };
            let waited = driver.block_on(async {
                tokio::select! {
                    out = future.as_mut() => Waited::Done(out),
                    _ = cancel_rx => Waited::Interrupted,
                }
            });
            waited.unwrap_or(Waited::Gone)
        };
        let unblock = || {
            if let Some(c) = lock(&cancel).take() {
                let _ = c.send(());
            }
        };
        match without_gvl(ruby, attempt, unblock)? {
            Waited::Done(out) => return Ok(Some(out)),
            Waited::Gone => return Ok(None),
            Waited::Interrupted => check_interrupts(ruby)?, // act on it, then wait again
        }
    }
}
