//! Fan-out: one publish reaching many held connections from Rust, without a Ruby call per
//! subscriber.

pub mod topic;

use magnus::{Error, RModule, Ruby};

pub fn define(ruby: &Ruby, native: RModule) -> Result<(), Error> {
    topic::Topic::define(ruby, native)?;
    crate::ruby::resolve_class::<topic::Topic>(ruby);
    Ok(())
}
