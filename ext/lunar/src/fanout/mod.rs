//! Fan-out: one publish reaching many held connections from Rust, without a Ruby call per
//! subscriber, as plain data: `subscribers` (the held connections of one topic, and the
//! delivery of a message to them) and `redis` (topics shared across processes and machines).
//! What Ruby sees of it, `Lunar::Native::Topic`, is `ruby::topic`.

pub mod redis;
pub mod subscribers;
