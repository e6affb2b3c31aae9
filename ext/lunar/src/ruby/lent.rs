//! Large frozen Strings lent to the I/O side instead of copied.
//!
//! A streamed chunk used to be copied out of its String (a memmove per chunk, a tenth of a
//! 1 GiB stream's CPU). A frozen String's bytes cannot change, so a large one is lent: the
//! `Bytes` the connection gets points into the String's own buffer, and the String is held
//! in `LENDERS`, marked in place, until that `Bytes` is dropped. The drop may happen on a
//! tokio thread, which must not touch Ruby: it only sends the loan's slot number back, and a
//! Ruby thread lets the String go the next time it lends (`chunk_bytes`) or takes an event
//! (`return_loans`), or the GC does when it next marks (`Lenders::mark`).
//!
//! Only large frozen Strings are lent: their bytes are in a heap buffer (theirs, or a
//! frozen root's they share) that is never written again and never moves. `rb_gc_mark`
//! pins what it marks besides, so compaction leaves a lent String where it is.

use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use crossbeam_channel::{unbounded, Receiver, Sender};
use magnus::gc::Marker;
use magnus::typed_data::{DataTypeFunctions, Obj};
use magnus::value::{Lazy, Opaque, ReprValue};
use magnus::{RString, Ruby};

use crate::sync::lock;

/// Chunks below this are copied: a copy that small costs less than the loan's bookkeeping.
const LEND_MIN: usize = 16 * 1024;

/// The Strings on loan, by slot. Reachable forever (registered with the GC), so its mark
/// function keeps every lent String alive and in place.
#[derive(Default, magnus::TypedData)]
#[magnus(class = "Lunar::Native::Lenders", mark, free_immediately)]
struct Lenders {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    strings: Vec<Option<Opaque<RString>>>,
    free: Vec<usize>,
}

impl DataTypeFunctions for Lenders {
    fn mark(&self, marker: &Marker) {
        let mut slots = lock(&self.slots);
        // Loans returned since a Ruby thread last looked are over: left unmarked, their
        // Strings go with this GC, even in a server gone idle after serving them.
        slots.take_returns();
        // `mark`, not `mark_movable`: a lent String must stay where its Bytes point.
        for string in slots.strings.iter().flatten() {
            marker.mark(*string);
        }
    }
}

impl Slots {
    /// Empties the slots whose Bytes were dropped. Touches no Ruby object: safe in `mark`.
    fn take_returns(&mut self) {
        for slot in returns().1.try_iter() {
            self.strings[slot] = None;
            self.free.push(slot);
        }
    }
}

static LENDERS: Lazy<Obj<Lenders>> = Lazy::new(|ruby| {
    let lenders = ruby.obj_wrap(Lenders::default());
    ruby.gc_register_mark_object(lenders);
    lenders
});

/// The registry's class (magnus needs one to wrap it; nothing is done with it in Ruby), and
/// `Native.strings_on_loan`.
pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), magnus::Error> {
    use magnus::{function, Module, Object};
    native.define_class("Lenders", ruby.class_object())?;
    native.define_singleton_method("strings_on_loan", function!(strings_on_loan, 0))?;
    Ok(())
}

/// How many Strings the registry holds now, a loan whose Bytes are gone included until a
/// Ruby thread or the GC empties its slot. What a spec can ask without relying on when a
/// String itself is collected (Ruby scans thread stacks conservatively: a stale copy of
/// its reference on a parked worker's stack may keep it).
fn strings_on_loan(ruby: &Ruby) -> usize {
    let lenders = ruby.get_inner(&LENDERS);
    let slots = lock(&lenders.slots);
    slots.strings.len() - slots.free.len()
}

/// Slots whose Bytes were dropped, from any thread, for a Ruby thread to empty.
fn returns() -> &'static (Sender<usize>, Receiver<usize>) {
    static RETURNS: OnceLock<(Sender<usize>, Receiver<usize>)> = OnceLock::new();
    RETURNS.get_or_init(unbounded)
}

/// The owner of a lent String's bytes inside a `Bytes`.
struct Loan {
    ptr: *const u8,
    len: usize,
    slot: usize,
}

// SAFETY: `ptr..ptr+len` is the heap buffer of a large frozen String held (and pinned) in
// LENDERS until this Loan's drop returns its slot (see `lendable`); nothing writes to it,
// so reading it from any thread is sound.
unsafe impl Send for Loan {}
unsafe impl Sync for Loan {}

impl AsRef<[u8]> for Loan {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see `impl Send for Loan`: the buffer outlives the Loan, unchanged.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Loan {
    fn drop(&mut self) {
        let _ = returns().0.send(self.slot); // the receiver is static: never gone
    }
}

/// Whether `string`'s bytes may be lent (see the module's doc).
fn lendable(string: RString) -> bool {
    // No String of LEND_MIN bytes is embedded (Ruby embeds at most a slot's few hundred
    // bytes), and one sharing a buffer shares a frozen root's heap buffer, as large, which
    // lives while the lent String (marked, so marking its root) does. So a frozen one's
    // bytes sit in a malloc'd buffer that neither moves nor changes while it is held:
    // no look at the flag bits, whose layout differs between Ruby versions.
    string.len() >= LEND_MIN && string.is_frozen()
}

/// The bytes of a chunk for the I/O side: lent when `string` allows it, else copied.
pub fn chunk_bytes(ruby: &Ruby, string: RString) -> Bytes {
    return_loans(ruby);
    if !lendable(string) {
        return string.to_bytes();
    }
    // SAFETY: on a Ruby thread; the slice is read only for its address and length, and
    // the String is frozen, so they stay valid while it is held in LENDERS (below).
    let (ptr, len) = unsafe {
        let bytes = string.as_slice();
        (bytes.as_ptr(), bytes.len())
    };
    let lenders = ruby.get_inner(&LENDERS);
    let mut slots = lock(&lenders.slots);
    let slot = match slots.free.pop() {
        Some(slot) => {
            slots.strings[slot] = Some(string.into());
            slot
        }
        None => {
            slots.strings.push(Some(string.into()));
            slots.strings.len() - 1
        }
    };
    drop(slots);
    Bytes::from_owner(Loan { ptr, len, slot })
}

/// Lets go of the Strings whose Bytes are gone. Cheap when there are none.
pub fn return_loans(ruby: &Ruby) {
    let receiver = &returns().1;
    if receiver.is_empty() {
        return;
    }
    lock(&ruby.get_inner(&LENDERS).slots).take_returns();
}
