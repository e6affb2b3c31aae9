//! One connection: the TLS handshake if any, then hyper (HTTP/1.1 or HTTP/2, told apart by
//! the first bytes) until the client leaves, plus what hyper does not do for us:
//!
//! - the inactivity timeout: no bytes in either direction for `--timeout`, also while a
//!   response is pending (Thin's rule), stamped by `ActivityIo`;
//! - a deadline for the first bytes (hyper's header timeout starts only once it knows the
//!   connection speaks HTTP/1);
//! - the cut switch (`ConnectionInfo::cut`): a streamed response cut off as too slow closes
//!   the connection at once, even while hyper waits to write;
//! - graceful stop: hyper's own `graceful_shutdown` (idle keep-alive connections close,
//!   HTTP/2 sends GOAWAY, in-flight requests finish).
//!
//! Dropping hyper's connection drops the in-flight request futures, which is how a pending
//! async response learns its client is gone (see `bridge::disconnect`).

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::bridge::job::ConnectionInfo;
use crate::bridge::reply::ReplyBody;
use crate::net::server::Shared;
use crate::net::service;
use crate::net::socket::{Activity, ActivityIo, Transport};

/// Serves one accepted connection until the client leaves, it idles out, or the server stops.
pub async fn serve(transport: Transport, tls: Option<TlsAcceptor>, info: Arc<ConnectionInfo>, shared: Arc<Shared>) {
    let _live = shared.track_connection();
    let header_timeout = shared.config.header_timeout;
    let transport = match (tls, transport) {
        (Some(acceptor), Transport::Tcp(tcp)) => match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(session)) => Transport::Tls(Box::new(session)),
            _ => return, // a failed or too slow handshake: nothing to answer
        },
        (_, plain) => plain,
    };
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(ActivityIo::new(transport, activity.clone()));
    let service = {
        let (info, shared) = (info.clone(), shared.clone());
        service_fn(move |req| service::handle(req, info.clone(), shared.clone()))
    };
    let conn = shared.http.serve_connection(io, service);
    tokio::pin!(conn);

    let mut shutdown = shared.shutdown.clone();
    let mut draining = false;
    let opened = Instant::now();
    let mut timer = Timer::new(&shared, opened);
    loop {
        if !draining && *shutdown.borrow() {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = timer.fired(), if timer.is_set() => {
                if !timer.rearm(&activity, opened) {
                    return; // dropping `conn` closes the socket
                }
            }
            _ = poll_fn(|cx| info.poll_cut(cx)) => return, // a response was cut off: close now
            changed = shutdown.changed(), if !draining => if changed.is_err() { return },
        }
    }
}

/// The connection's one timer: first the deadline for its first bytes, then (if
/// `--timeout` is set) the inactivity check. Boxed and dropped when there is nothing to
/// check: a held Comet connection with `--timeout 0` keeps no timer.
struct Timer {
    sleep: Option<std::pin::Pin<Box<Sleep>>>,
    idle: Option<Duration>,
    first_bytes: Duration,
}

impl Timer {
    fn new(shared: &Shared, opened: Instant) -> Self {
        let (idle, first_bytes) = (shared.config.idle_timeout, shared.config.header_timeout);
        let first = idle.map_or(first_bytes, |i| i.min(first_bytes));
        Timer { sleep: Some(Box::pin(tokio::time::sleep_until(opened + first))), idle, first_bytes }
    }

    fn is_set(&self) -> bool {
        self.sleep.is_some()
    }

    async fn fired(&mut self) {
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().await,
            None => std::future::pending().await,
        }
    }

    /// After a firing: false when the connection must close, else the next deadline is set
    /// (or the timer dropped).
    fn rearm(&mut self, activity: &Activity, opened: Instant) -> bool {
        let now = Instant::now();
        let mut next = None;
        if !activity.ever_active() {
            let deadline = opened + self.first_bytes;
            if now >= deadline {
                return false;
            }
            next = Some(deadline);
        }
        if let Some(limit) = self.idle {
            let quiet = activity.quiet_for().min(now - opened);
            if quiet >= limit {
                return false;
            }
            let deadline = now + (limit - quiet);
            next = Some(next.map_or(deadline, |n: Instant| n.min(deadline)));
        }
        match (next, self.sleep.as_mut()) {
            (Some(at), Some(sleep)) => sleep.as_mut().reset(at),
            _ => self.sleep = None,
        }
        true
    }
}

/// Past `--max-conns`: hyper reads the request and answers a short 503 with
/// `Connection: close`, so the client knows to come back later. TLS connections are just
/// closed (no handshake is spent on a refusal).
pub async fn refuse(transport: Transport, tls: Option<TlsAcceptor>) {
    if tls.is_some() {
        return;
    }
    let service = service_fn(|_req| async {
        let mut res = Response::new(ReplyBody::Full(Bytes::from_static(b"Server at capacity.\n")));
        *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Ok::<_, std::convert::Infallible>(res)
    });
    let conn = hyper::server::conn::http1::Builder::new().keep_alive(false).serve_connection(TokioIo::new(transport), service);
    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
}
