//! The crossing between tokio and Ruby: plain Rust data only. Both sides use it; it uses
//! neither.
//!
//! A request's way in: `job` (with its `connection`) through the `dispatch` queue to a Ruby
//! thread; its way out: a `reply`, whose body may be a `stream` Ruby writes later, its bytes
//! handed to hyper against the connection's `outbox` (`handoff`). What travels back besides
//! requests (`disconnect` watches, messages) goes through `notices`, whose doorbell wakes
//! parked workers (`idle`) or the reactor (`reactor_waker`); a thread's `inbox` tells it a
//! parked body can go on; a hijacked connection reaches Ruby through `handover`; a
//! client's end-of-stream waits in `half_close` while its answer is owed.

pub mod connection;
pub mod disconnect;
pub mod dispatch;
pub mod half_close;
pub mod handoff;
pub mod handover;
pub mod idle;
pub mod inbox;
pub mod job;
pub mod notices;
pub mod outbox;
pub mod reactor_waker;
pub mod reply;
pub mod stream;
