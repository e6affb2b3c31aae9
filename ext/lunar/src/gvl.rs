//! Releasing Ruby's GVL around a blocking wait, interruptibly.
//!
//! Ruby calls the unblock function from another thread when this thread must wake
//! (`Thread#kill`, `Timeout`, a signal, VM shutdown), so every wait here must have a way to
//! be cut short. The work and the unblock callbacks get separate data pointers, as Ruby
//! may call them concurrently.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

struct Work<F, R> {
    func: Option<F>,
    result: Option<R>,
}

extern "C" fn run_work<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `&mut Work<F, R>` passed by `without_gvl` below, alive for the
    // whole call and touched by no one else while Ruby runs this callback.
    let work = unsafe { &mut *(data as *mut Work<F, R>) };
    if let Some(func) = work.func.take() {
        match catch_unwind(AssertUnwindSafe(func)) {
            Ok(r) => work.result = Some(r),
            Err(_) => eprintln!("lunar: internal panic while waiting without the GVL"),
        }
    }
    std::ptr::null_mut()
}

extern "C" fn run_unblock<U: Fn()>(data: *mut c_void) {
    // SAFETY: `data` is the `&U` passed by `without_gvl`; `U: Sync` (checked there), so a
    // shared reference from Ruby's interrupting thread is sound.
    let unblock = unsafe { &*(data as *const U) };
    let _ = catch_unwind(AssertUnwindSafe(unblock));
}

/// Runs `func` with the GVL released. `unblock` must make `func` return soon.
/// Returns `None` when Ruby had an interrupt pending and did not run `func` at all
/// (or `func` panicked); the caller then returns to Ruby, which raises the interrupt.
///
/// Uses `rb_thread_call_without_gvl2`, which does not raise interrupts on the way out:
/// whatever `func` returned (a request job) reaches the caller and is never lost to a
/// non-local exit.
pub fn without_gvl<F, R, U>(func: F, unblock: U) -> Option<R>
where
    F: FnOnce() -> R,
    U: Fn() + Sync,
{
    let mut work = Work { func: Some(func), result: None };
    // SAFETY: called on a Ruby thread holding the GVL (every caller is a Ruby method). Both
    // pointers outlive the call, and neither callback touches Ruby objects.
    unsafe {
        rb_sys::rb_thread_call_without_gvl2(
            Some(run_work::<F, R>),
            &mut work as *mut Work<F, R> as *mut c_void,
            Some(run_unblock::<U>),
            &unblock as *const U as *mut c_void,
        );
    }
    work.result
}
