//! `Lunar::Native::Server`: the Ruby handle on a running native server.
//!
//! Ruby threads call `next_event` to take work: it returns at once while events are queued
//! (the GVL is kept across a burst) and releases the GVL only to wait.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use magnus::{value::ReprValue, Error, IntoValue, RHash, Ruby, Value};

use crate::bridge::dispatch::Event;
use crate::bridge::inbox::Inbox;
use crate::net::server::ServerHandle;
use crate::ruby::error::OrRaise;
use crate::ruby::gvl::{check_interrupts, without_gvl};
use crate::ruby::inbox::RubyInbox;
use crate::ruby::native_request::NativeRequest;
use crate::ruby::server_config;

#[magnus::wrap(class = "Lunar::Native::Server", free_immediately, size)]
pub struct NativeServer {
    handle: ServerHandle,
    /// The soft open-file limit before and after starting (raised to the hard limit).
    open_files: (u64, u64),
}

/// One look at the queue for a Ruby thread (`NativeServer::look`).
enum Look {
    Empty,
    /// A request whose client left while it was queued.
    Gone,
    Event(Value),
}

impl NativeServer {
    fn start(ruby: &Ruby, opts: RHash) -> Result<NativeServer, Error> {
        let (config, open_files) = server_config::from_options(ruby, opts)?;
        let handle = ServerHandle::start(config).or_raise(ruby)?;
        Ok(NativeServer { handle, open_files })
    }

    fn addresses(&self) -> Vec<String> {
        self.handle.addresses.clone()
    }

    /// An event as Ruby sees it: a `Request`, or the Integer id of a request whose
    /// connection ended before its response did. `None` for a request whose client left
    /// while it was queued (its Closed notice follows; no need to run the app).
    fn event_value(&self, ruby: &Ruby, event: Event) -> Option<Value> {
        match event {
            Event::Request(job) if job.reply.is_closed() => None,
            Event::Request(job) => Some(NativeRequest::new(job, Arc::clone(&self.handle.state)).into_value_with(ruby)),
            Event::Closed(id) => Some(id.into_value_with(ruby)),
            // [id, message]; the permit is released once the message is Ruby's.
            Event::Message { id, data, permit: _permit } => {
                Some(ruby.ary_new_from_values(&[id.into_value_with(ruby), ruby.str_from_slice(&data).as_value()]).as_value())
            }
        }
    }

    /// The next event without waiting, or nil; `true` when `inbox` has tokens (parked bodies
    /// that can go on: see `Lunar::Parking`); `false` for a request whose client left while
    /// it was queued, so a reactor turn counting the events it took counts that one too.
    fn try_next_event(ruby: &Ruby, rb_self: &Self, inbox: Option<&RubyInbox>) -> Option<Value> {
        match rb_self.look(ruby, inbox) {
            Look::Empty => None,
            Look::Gone => Some(ruby.qfalse().as_value()),
            Look::Event(v) => Some(v),
        }
    }

    fn look(&self, ruby: &Ruby, inbox: Option<&RubyInbox>) -> Look {
        crate::ruby::lent::return_loans(ruby); // lent Strings the connections are done with
        if inbox.is_some_and(|i| i.inbox().is_ready()) {
            return Look::Event(ruby.qtrue().as_value());
        }
        match self.handle.state.queue.try_pop() {
            None => Look::Empty,
            Some(event) => self.event_value(ruby, event).map_or(Look::Gone, Look::Event),
        }
    }

    /// The next event (or `true`, as `try_next_event`); waits with the GVL released. nil
    /// once the server has stopped. Interrupts (`Thread#kill`, `Timeout`, signals) cut the
    /// wait short and raise.
    fn next_event(ruby: &Ruby, rb_self: &Self, inbox: Option<&RubyInbox>) -> Result<Option<Value>, Error> {
        let queue = &rb_self.handle.state.queue;
        loop {
            match rb_self.look(ruby, inbox) {
                Look::Event(v) => return Ok(Some(v)),
                Look::Gone => continue, // nothing to run for it (its Closed notice follows): look again
                Look::Empty => {}
            }
            if queue.is_closed() {
                return Ok(None);
            }
            let interrupted = AtomicBool::new(false);
            match rb_self.wait(ruby, &interrupted, inbox.map(RubyInbox::inbox))? {
                Some(ev) => {
                    if let Some(v) = rb_self.event_value(ruby, ev) {
                        return Ok(Some(v));
                    }
                }
                // Woken without an event: the queue closed (checked above), an interrupt, or
                // (inline) whatever the next look finds.
                None if interrupted.load(Ordering::Acquire) => check_interrupts(ruby)?,
                None => {}
            }
        }
    }

    /// Waits with the GVL released: parked until an event comes (`Some`) or, inline
    /// (`--io-threads 0`), driving the runtime until events wait, since no other thread
    /// would. `None` when woken without one (interrupted, closed, a token in `inbox`).
    fn wait(&self, ruby: &Ruby, interrupted: &AtomicBool, inbox: Option<&Inbox>) -> Result<Option<Event>, Error> {
        let state = &self.handle.state;
        let queue = &state.queue;
        if state.runtime.is_inline() {
            let ready = || queue.events() > 0 || queue.is_closed() || interrupted.load(Ordering::Acquire) || inbox.is_some_and(Inbox::is_ready);
            let drive = || state.runtime.drive_until(queue.notices().drivers(), ready);
            let unblock = || {
                interrupted.store(true, Ordering::Release);
                queue.notices().wake_drivers();
            };
            return without_gvl(ruby, drive, unblock).map(|()| None);
        }
        let me = std::thread::current();
        let unblock = || {
            interrupted.store(true, Ordering::Release);
            me.unpark();
        };
        without_gvl(ruby, || queue.wait_pop(interrupted, inbox), unblock)
    }

    /// An inbox for the calling thread (see `Lunar::Parking`).
    fn new_inbox(&self) -> RubyInbox {
        RubyInbox::new(Inbox::new(self.handle.state.queue.notices().clone()))
    }

    /// The eventfd that becomes readable when events are queued (evented mode watches it).
    fn notify_fd(ruby: &Ruby, rb_self: &Self) -> Result<i32, Error> {
        let waker = rb_self.handle.state.queue.notices().reactor_waker().map_err(crate::error::Error::io("making the reactor's eventfd"));
        Ok(waker.or_raise(ruby)?.raw_fd())
    }

    /// Resets the eventfd before the reactor drains the queue.
    fn rearm_notify(&self) {
        if let Ok(w) = self.handle.state.queue.notices().reactor_waker() {
            w.rearm();
        }
    }

    /// Graceful stop: waits up to `grace` seconds for in-flight requests, GVL released. An
    /// interrupt (`Thread#kill` of the stopping thread, a signal's exception) ends the grace
    /// at once, as `hurry` does: the stop completes, then the interrupt is acted on.
    fn stop(ruby: &Ruby, rb_self: &Self, grace: f64) -> Result<(), Error> {
        let grace = Duration::try_from_secs_f64(grace.max(0.0)).unwrap_or(Duration::MAX); // tokio's timeout takes MAX as never
        let mut once = Some(());
        let stop = || {
            if once.take().is_some() {
                rb_self.handle.stop(grace)
            }
        };
        without_gvl(ruby, stop, || rb_self.handle.hurry())
    }

    fn hurry(&self) {
        self.handle.hurry();
    }

    /// Whether the Ruby threads drive the I/O themselves (`--io-threads 0`).
    fn is_inline(&self) -> bool {
        self.handle.state.runtime.is_inline()
    }

    fn is_running(&self) -> bool {
        !self.handle.state.queue.is_closed()
    }

    fn max_connections(&self) -> usize {
        self.handle.state.config.max_connections
    }

    fn live_connections(&self) -> usize {
        self.handle.state.live_connections()
    }

    fn websockets(&self) -> usize {
        self.handle.state.websockets()
    }

    fn hijacked_sockets(&self) -> usize {
        self.handle.state.handed.open()
    }

    fn requests_count(&self) -> u64 {
        self.handle.state.requests_count()
    }

    fn queue_length(&self) -> usize {
        self.handle.state.queue.len()
    }

    /// Events waiting (requests and notices): how many the reactor takes in one turn.
    fn queued_events(&self) -> usize {
        self.handle.state.queue.events()
    }

    /// `[soft limit before, soft limit now]` for open files: the server raised it to the hard
    /// limit when it started.
    fn open_files(&self) -> (u64, u64) {
        self.open_files
    }

    pub fn define(ruby: &Ruby, native: magnus::RModule) -> Result<(), Error> {
        use magnus::{function, method, Module, Object};
        let class = native.define_class("Server", ruby.class_object())?;
        class.define_singleton_method("start", function!(NativeServer::start, 1))?;
        class.define_method("addresses", method!(NativeServer::addresses, 0))?;
        class.define_method("next_event", method!(NativeServer::next_event, 1))?;
        class.define_method("try_next_event", method!(NativeServer::try_next_event, 1))?;
        class.define_method("new_inbox", method!(NativeServer::new_inbox, 0))?;
        class.define_method("notify_fd", method!(NativeServer::notify_fd, 0))?;
        class.define_method("rearm_notify", method!(NativeServer::rearm_notify, 0))?;
        class.define_method("stop", method!(NativeServer::stop, 1))?;
        class.define_method("hurry", method!(NativeServer::hurry, 0))?;
        class.define_method("running?", method!(NativeServer::is_running, 0))?;
        class.define_method("inline?", method!(NativeServer::is_inline, 0))?;
        class.define_method("live_connections", method!(NativeServer::live_connections, 0))?;
        class.define_method("requests_count", method!(NativeServer::requests_count, 0))?;
        class.define_method("websockets", method!(NativeServer::websockets, 0))?;
        class.define_method("hijacked_sockets", method!(NativeServer::hijacked_sockets, 0))?;
        class.define_method("max_connections", method!(NativeServer::max_connections, 0))?;
        class.define_method("open_files", method!(NativeServer::open_files, 0))?;
        class.define_method("queue_length", method!(NativeServer::queue_length, 0))?;
        class.define_method("queued_events", method!(NativeServer::queued_events, 0))?;
        Ok(())
    }
}
