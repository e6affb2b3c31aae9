//! DisconnectWatch: tells Ruby when a connection ends before its response did.
//!
//! One watch per request, armed while the response is Ruby's to finish: first inside the
//! request's future (an async response pending), then inside a streamed body. If it is
//! dropped while armed (the connection dropped the exchange or the body because the client
//! left, the connection idled out, or the server stopped), a `Closed(id)` notice goes to
//! Ruby, which fires `async.close` and fails a deferrable body. Complete replies disarm it.

use std::sync::Arc;

use crate::bridge::notices::{Notice, Notices};

pub struct DisconnectWatch {
    id: u64,
    notices: Option<Arc<Notices>>,
}

impl DisconnectWatch {
    pub fn new(id: u64, notices: Arc<Notices>) -> Self {
        DisconnectWatch { id, notices: Some(notices) }
    }

    /// The response no longer depends on Ruby: drop without telling it.
    pub fn disarm(mut self) {
        self.notices = None;
    }
}

impl Drop for DisconnectWatch {
    fn drop(&mut self) {
        if let Some(notices) = self.notices.take() {
            notices.push(Notice::Closed(self.id));
        }
    }
}
