//! One connection: hyper's HTTP/1 state machine plus the inactivity timeout, the
//! graceful-stop signal, and the cut switch (`ConnectionInfo::cut`).
//!
//! Inactivity means no bytes in either direction, also while a response is pending (Thin's
//! rule): `ActivityIo` stamps every successful read and write, and a single timer per
//! connection checks the stamp. Closing drops the pending request's reply slot.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::job::ConnectionInfo;
use crate::server::Shared;
use crate::service;

/// Serves HTTP/1.x on `io` until the client leaves, the connection idles out, or the
/// server stops.
pub async fn serve<T>(io: T, info: Arc<ConnectionInfo>, shared: Arc<Shared>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _live = shared.track_connection();
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(ActivityIo { inner: io, activity: activity.clone() });
    let (svc_info, svc_shared) = (info.clone(), shared.clone());
    let svc = service_fn(move |req| service::handle(req, svc_info.clone(), svc_shared.clone()));
    let conn = shared.http.serve_connection(io, svc);
    tokio::pin!(conn);

    let idle = shared.config.idle_timeout;
    let check = tokio::time::sleep(idle.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(check);
    let mut shutdown = shared.shutdown.clone();
    let mut draining = *shutdown.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = check.as_mut(), if idle.is_some() => {
                let limit = idle.unwrap_or_default();
                let quiet = activity.quiet_for();
                if quiet >= limit {
                    return; // dropping `conn` closes the socket
                }
                check.as_mut().reset(Instant::now() + (limit - quiet));
            }
            _ = info.cut_requested() => return, // a response was cut off: close now
            _ = shutdown.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// When the connection last moved a byte, in milliseconds since it opened.
struct Activity {
    opened: std::time::Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity { opened: std::time::Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        self.last_ms.store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let now = self.opened.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The socket, stamping `Activity` on every read or write that moved bytes.
struct ActivityIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
