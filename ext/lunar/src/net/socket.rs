//! The connection's byte stream as hyper sees it: `Transport` (TCP, Unix, or TLS over TCP,
//! one type so hyper is instantiated once) wrapped in `ActivityIo`, which stamps every byte
//! moved for the inactivity timeout. hyper has no notion of "no traffic either way for N
//! seconds, also while a response is pending" (Thin's `--timeout`), so this thin wrapper is
//! the one thing Lunar adds under it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;

pub enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Boxed: a TLS session is large, and most connections are not TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

macro_rules! each_transport {
    ($self:expr, $io:ident => $body:expr) => {
        match $self.get_mut() {
            Transport::Tcp($io) => { let $io = Pin::new($io); $body }
            Transport::Unix($io) => { let $io = Pin::new($io); $body }
            Transport::Tls($io) => { let $io = Pin::new(&mut **$io); $body }
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        each_transport!(self, io => io.poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        each_transport!(self, io => io.poll_write(cx, data))
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        each_transport!(self, io => io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Tcp(io) => io.is_write_vectored(),
            Transport::Unix(io) => io.is_write_vectored(),
            Transport::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_transport!(self, io => io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_transport!(self, io => io.poll_shutdown(cx))
    }
}

/// When the connection last moved a byte, in milliseconds since it opened.
pub struct Activity {
    opened: std::time::Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Activity { opened: std::time::Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        // Never 0, which means "nothing yet".
        let now = (self.opened.elapsed().as_millis() as u64).max(1);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    pub fn quiet_for(&self) -> Duration {
        let now = self.opened.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Whether any byte was ever read or written.
    pub fn ever_active(&self) -> bool {
        self.last_ms.load(Ordering::Relaxed) > 0
    }
}

/// The transport, stamping `Activity` on every read or write that moved bytes.
pub struct ActivityIo {
    inner: Transport,
    activity: Arc<Activity>,
}

impl ActivityIo {
    pub fn new(inner: Transport, activity: Arc<Activity>) -> Self {
        ActivityIo { inner, activity }
    }
}

impl AsyncRead for ActivityIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl AsyncWrite for ActivityIo {
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
