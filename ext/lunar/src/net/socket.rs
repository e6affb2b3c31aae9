//! The connection's byte stream as hyper sees it: `Transport` (TCP, Unix, or TLS over TCP,
//! one type so hyper is instantiated once) wrapped in `ActivityIo`, which stamps every byte
//! moved for the inactivity timeout (hyper has no notion of "no traffic either way for N
//! seconds, also while a response is pending", Thin's `--timeout`), drops hyper's
//! writes while a full `rack.hijack` hands the connection over, and holds back a client's
//! end-of-stream while its answer is owed (`bridge::half_close`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;

use crate::bridge::connection::ConnectionInfo;

pub enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Boxed: a TLS session is large, and most connections are not TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

macro_rules! each_transport {
    ($self:expr, $io:ident => $body:expr) => {
        match $self.get_mut() {
            Transport::Tcp($io) => {
                let $io = Pin::new($io);
                $body
            }
            Transport::Unix($io) => {
                let $io = Pin::new($io);
                $body
            }
            Transport::Tls($io) => {
                let $io = Pin::new(&mut **$io);
                $body
            }
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

/// The transport, stamping the connection's `Activity` on every read or write that moved
/// bytes. While the connection is muted (a full `rack.hijack`: the app writes its own
/// handshake), hyper's writes are dropped; the relay unmutes it before writing the app's.
pub struct ActivityIo {
    inner: Transport,
    info: Arc<ConnectionInfo>,
}

impl ActivityIo {
    pub fn new(inner: Transport, info: Arc<ConnectionInfo>) -> Self {
        ActivityIo { inner, info }
    }

    /// The socket itself, once hyper has let go of it (a hijack).
    pub fn into_inner(self) -> Transport {
        self.inner
    }
}

impl AsyncRead for ActivityIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) {
            if buf.filled().len() > before {
                self.info.activity.touch();
                if self.info.outbox.open_responses() == 0 {
                    self.info.activity.head_arriving();
                }
            } else if room && self.info.hold_eof(cx) {
                return Poll::Pending; // woken on release, to read the end-of-stream again
            }
        }
        res
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.info.is_muted() {
            return Poll::Ready(Ok(data.len()));
        }
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.info.activity.touch();
        }
        res
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        if self.info.is_muted() {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.info.activity.touch();
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
        if self.info.is_muted() || self.info.is_handing_over() {
            return Poll::Ready(Ok(())); // being handed over: the app's, not hyper's, to end
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
