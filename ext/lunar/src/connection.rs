//! One connection: the HTTP/1.x exchange loop (head → body → Ruby → response, again while
//! keep-alive holds), plus the inactivity timeout, the graceful-stop signal and the cut
//! switch (`ConnectionInfo::cut`).
//!
//! Inactivity means no bytes in either direction, also while a response is pending (Thin's
//! rule): `ActivityIo` stamps every read and write, and one timer per connection checks the
//! stamp. Closing drops the pending request's reply slot, which tells Ruby (see
//! `DisconnectWatch`). An idle or held connection owns no read buffer: `Conn` frees it
//! whenever it is empty and waits for readiness instead.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::{Method, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::http1::encode::RequestFacts;
use crate::http1::head::{self, BodyFraming, HeadError, RequestHead};
use crate::intake::{self, BodyError};
use crate::job::{ConnectionInfo, RequestBody};
use crate::reply::plain;
use crate::server::Shared;
use crate::socket::{Activity, ActivityIo, Socket};
use crate::{respond, service};

/// Read sizes: a request head, and a body's next slice.
const HEAD_READ: usize = 4096;
pub const BODY_READ: usize = 64 * 1024;
/// After refusing a request, how long and how much of the rest is read and dropped, so the
/// close does not reset the connection before the client has read the refusal.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 256 * 1024;

/// Serves HTTP/1.x on `io` until the client leaves, the connection idles out, or the
/// server stops.
pub async fn serve<T: Socket>(io: T, info: Arc<ConnectionInfo>, shared: Arc<Shared>) {
    let _live = shared.track_connection();
    let activity = Arc::new(Activity::new());
    let conn = Conn { io: ActivityIo::new(io, activity.clone()), buf: BytesMut::new(), info: info.clone(), shared: shared.clone() };
    let driver = conn.run();
    tokio::pin!(driver);

    // Boxed, and only with a timeout: Comet servers run with none (`--timeout 0`).
    let mut check = shared.config.idle_timeout.map(|limit| Box::pin(tokio::time::sleep(limit)));
    loop {
        tokio::select! {
            _ = driver.as_mut() => return,
            _ = async { check.as_mut().expect("guarded").as_mut().await }, if check.is_some() => {
                let limit = shared.config.idle_timeout.unwrap_or_default();
                let quiet = activity.quiet_for();
                if quiet >= limit {
                    return; // dropping the driver closes the socket
                }
                if let Some(timer) = check.as_mut() {
                    timer.as_mut().reset(Instant::now() + (limit - quiet));
                }
            }
            _ = poll_fn(|cx| info.poll_cut(cx)) => return, // a response was cut off: close now
        }
    }
}

/// The socket and what its exchanges share: bytes read ahead (a pipelined request, or the
/// rest of a body), who the peer is, and the server.
pub struct Conn<S> {
    pub io: S,
    pub buf: BytesMut,
    pub info: Arc<ConnectionInfo>,
    pub shared: Arc<Shared>,
}

enum Next {
    Request(RequestHead),
    Refuse(StatusCode),
    Close,
}

impl<S: Socket> Conn<S> {
    async fn run(mut self) {
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            // Boxed: waiting for a head and running an exchange are never live together,
            // and the task should be sized by the exchange alone (a held request).
            let timeout = self.shared.config.header_timeout;
            let next = Box::pin(tokio::time::timeout(timeout, self.next_head(&mut shutdown))).await.unwrap_or(Next::Close);
            let keep_alive = match next {
                Next::Request(head) => self.exchange(head).await,
                Next::Refuse(status) => Box::pin(self.refuse(status)).await,
                Next::Close => false,
            };
            if !keep_alive || *shutdown.borrow() {
                return;
            }
        }
    }

    /// Waits for the next request head. While nothing is buffered, a stop closes the
    /// connection instead.
    async fn next_head(&mut self, shutdown: &mut watch::Receiver<bool>) -> Next {
        let max = self.shared.config.max_header_size;
        // Bytes already seen without a line end: a head arriving a byte at a time is parsed
        // once per line, not once per byte (each parse starts over from the first byte).
        let mut scanned = 0;
        loop {
            if self.buf.is_empty() {
                if *shutdown.borrow() {
                    return Next::Close;
                }
                self.release_buffer();
                tokio::select! {
                    ready = poll_fn(|cx| self.io.poll_read_ready(cx)) => if ready.is_err() { return Next::Close },
                    changed = shutdown.changed() => if changed.is_err() { return Next::Close },
                }
            } else if self.buf[scanned..].contains(&b'\n') || self.buf.len() >= max {
                scanned = self.buf.len();
                match head::parse(&self.buf, max) {
                    Ok(Some((head, len))) => {
                        self.buf.advance(len);
                        self.release_buffer();
                        return Next::Request(head);
                    }
                    Ok(None) => {}
                    Err(HeadError::TooLarge) => return Next::Refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
                    Err(HeadError::Invalid(_)) => return Next::Refuse(StatusCode::BAD_REQUEST),
                }
            }
            match self.read_more(HEAD_READ).await {
                Ok(0) | Err(_) => return Next::Close,
                Ok(_) => {}
            }
        }
    }

    /// One request: its body, Ruby's answer, the response. Returns whether the connection
    /// stays open for another.
    async fn exchange(&mut self, head: RequestHead) -> bool {
        let facts = RequestFacts {
            head_method: head.parts.method == Method::HEAD,
            http10: head.parts.version == Version::HTTP_10,
            keep_alive: head.keep_alive,
        };
        // Reading a body and writing a response are boxed: a task is as large as its largest
        // state, and a held request (waiting in `dispatch`) should not pay for them.
        let body = match head.framing {
            BodyFraming::None => RequestBody::Empty,
            _ => match Box::pin(intake::read_body(self, &head)).await {
                Ok(body) => body,
                Err(BodyError::TooLarge) => return Box::pin(self.refuse(StatusCode::PAYLOAD_TOO_LARGE)).await,
                Err(BodyError::Invalid) => return Box::pin(self.refuse(StatusCode::BAD_REQUEST)).await,
                Err(BodyError::Io) => return false,
            },
        };
        match service::dispatch(self, head.parts, body).await {
            Some(response) => Box::pin(respond::write(self, response, facts)).await.unwrap_or(false),
            None => false,
        }
    }

    /// Answers `status` and closes, reading (and dropping) what the client still sends for
    /// a moment first. Always `false`: the connection does not go on.
    async fn refuse(&mut self, status: StatusCode) -> bool {
        let facts = RequestFacts { head_method: false, http10: false, keep_alive: false };
        if respond::write(self, plain(status, true), facts).await.is_ok() && self.io.shutdown().await.is_ok() {
            let mut scratch = vec![0u8; 8192];
            let drain = async {
                let mut total = 0;
                while total < LINGER_BYTES {
                    match self.io.read(&mut scratch).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        }
        false
    }

    /// Reads more into the buffer, making room for at least `room` bytes. `Ok(0)` at EOF.
    pub async fn read_more(&mut self, room: usize) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < room / 4 {
            self.buf.reserve(room);
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// Completes when the peer has closed the connection (or it failed). Bytes arriving
    /// meanwhile (a pipelined request) are kept for later, up to the head size limit.
    pub async fn peer_closed(&mut self) {
        loop {
            if self.buf.len() >= self.shared.config.max_header_size {
                return std::future::pending().await;
            }
            if poll_fn(|cx| self.io.poll_read_ready(cx)).await.is_err() {
                return;
            }
            match self.read_more(512).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// A connection with nothing read ahead keeps no buffer (idle, or its request held).
    pub fn release_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.io.write_all(data).await
    }

    pub async fn write_all_vectored(&mut self, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
        while !slices.is_empty() {
            let n = self.io.write_vectored(slices).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut slices, n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;
    use crate::server::ServerHandle;

    /// A held connection costs its task's future (plus the socket): keep that small. The
    /// future is sized by its largest state, so a big local kept across an `.await`
    /// anywhere in the exchange shows up here.
    #[test]
    fn a_connection_task_stays_small() {
        let config = ServerConfig { binds: vec!["tcp://127.0.0.1:0".into()], io_threads: 1, ..ServerConfig::default() };
        let server = ServerHandle::start(config).expect("server starts");
        let shared = server.shared.clone();
        let size = shared.runtime.clone().block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (stream, peer) = listener.accept().await.unwrap();
            let info = Arc::new(ConnectionInfo::tcp(peer, stream.local_addr().unwrap()));
            let task = serve(stream, info, shared);
            drop(client);
            std::mem::size_of_val(&task)
        });
        server.stop(Duration::from_millis(10));
        eprintln!("connection task: {size} bytes");
        assert!(size <= 768, "connection task grew to {size} bytes");
    }
}
