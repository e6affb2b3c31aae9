//! Locking without a poisoned-lock path.
//!
//! A `Mutex` is poisoned when a thread panics while holding it. Every critical section in
//! Lunar is one step that leaves its data whole whatever happens (a push, a take, a swap of
//! an `Option`), and panics never cross into Ruby (they are caught at every FFI edge), so
//! the data behind a poisoned lock is still valid. Dropping it instead (`lock().ok()`)
//! would lose a parked body's token, a reply slot or a subscriber: the lock is taken back
//! on purpose, here, once.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_yields_its_data() {
        let mutex = std::sync::Arc::new(Mutex::new(vec![1]));
        let poisoner = mutex.clone();
        let _ = std::thread::spawn(move || {
            let mut guard = poisoner.lock().unwrap();
            guard.push(2);
            panic!("while holding the lock");
        })
        .join();
        assert!(mutex.is_poisoned());
        assert_eq!(*lock(&mutex), vec![1, 2]);
    }
}
