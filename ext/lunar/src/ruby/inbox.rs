//! `Lunar::Native::Inbox`: the Ruby handle on one thread's `bridge::inbox::Inbox`, made by
//! `Lunar::Native::Server#new_inbox` on the thread that will read it.

use std::sync::Arc;

use magnus::{Error, Ruby};

use crate::bridge::inbox::Inbox;

#[magnus::wrap(class = "Lunar::Native::Inbox", free_immediately, size)]
pub struct RubyInbox(Arc<Inbox>);

impl RubyInbox {
    pub fn new(inbox: Inbox) -> Self {
        RubyInbox(Arc::new(inbox))
    }

    pub fn shared(&self) -> Arc<Inbox> {
        self.0.clone()
    }

    pub fn inbox(&self) -> &Inbox {
        &self.0
    }

    /// The tokens that arrived since the last call (those bodies can go on).
    fn take(&self) -> Vec<u64> {
        self.0.take()
    }

    /// Whether tokens have arrived (without taking them).
    fn is_ready(&self) -> bool {
        self.0.is_ready()
    }

    pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
        use magnus::{method, Module};
        let class = native.define_class("Inbox", ruby.class_object())?;
        class.define_method("take", method!(RubyInbox::take, 0))?;
        class.define_method("ready?", method!(RubyInbox::is_ready, 0))?;
        Ok(())
    }
}
