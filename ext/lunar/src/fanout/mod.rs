//! Fan-out: one publish reaching many held connections from Rust, without a Ruby call per
//! subscriber: `subscribers` (the held connections and delivery, plain data), `topic` (what
//! Ruby sees), `redis` (topics shared across processes and machines).

pub mod redis;
pub mod subscribers;
pub mod topic;

use magnus::{Error, RModule, Ruby};

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    topic::Topic::define(ruby, native)?;
    crate::ruby::resolve_class::<topic::Topic>(ruby);
    Ok(())
}
