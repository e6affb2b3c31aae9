//! The crossing between tokio and Ruby: plain Rust data only. Both sides use it; it uses
//! neither.

pub mod disconnect;
pub mod dispatch;
pub mod idle;
pub mod inbox;
pub mod job;
pub mod reactor_waker;
pub mod reply;
pub mod stream;
