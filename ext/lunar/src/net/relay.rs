//! A hijacked connection given to the app (`rack.hijack`), once hyper has let go of it:
//! the client's own socket when nothing sits in between, else the app's end of a socket
//! pair whose other end this module joins to the client (TLS, whose bytes Ruby cannot read
//! raw; or bytes hyper had already read past the request, which must come first).
//!
//! A plain TCP or Unix client is relayed by readiness: each read goes through a buffer on
//! the stack, and a connection keeps memory only for bytes the other side could not take
//! yet. A held WebSocket then costs no relay buffers at all, where tokio's
//! `copy_bidirectional` keeps two for the connection's whole life. TLS clients (whose
//! session has buffers of its own anyway) are copied through a small buffer each way.
//! Either way EOF travels as a half-close. The two directions end on their own: an app
//! that writes its response and closes without reading what the client sent after the
//! request makes writing to it fail, and its response must still reach the client.

use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

use crate::bridge::handover::{Giver, Kind};
use crate::net::socket::{ActivityIo, Transport};
use crate::net::state::ServerState;

/// Bytes moved per read on the copying path (TLS): WebSocket messages are small.
const COPY_BUF: usize = 4096;
/// The stack buffer of the readiness path.
const READ_BUF: usize = 16 * 1024;

/// Gives a connection hyper let go of (`transport`, with `read_buf`: what hyper had read
/// past the request) to the Ruby thread waiting in `rack.hijack`: the client's own socket
/// when nothing sits in between (plain TCP or Unix, nothing buffered), one descriptor and
/// no task; else the app's end of a socket pair, relayed to the client until both are done.
/// Either way it counts against `--max-conns` until the app closes it: a relay holds a
/// connection's place for its life, a socket given whole is remembered in `state.handed`.
pub async fn hand_over(transport: Transport, read_buf: Bytes, giver: Giver, state: Arc<ServerState>) {
    let transport = match transport {
        Transport::Tcp(client) if read_buf.is_empty() => return give_own(client.into_std(), Kind::Tcp, giver, &state),
        Transport::Unix(client) if read_buf.is_empty() => return give_own(client.into_std(), Kind::Unix, giver, &state),
        other => other,
    };
    let _live = state.track_connection();
    if let Some(relay_end) = give_pair_end(giver) {
        relay(transport, read_buf, relay_end).await;
    }
}

/// Gives the app one end of a new socket pair; returns the other, for the relay. None when
/// no pair can be made (out of descriptors): the giver is dropped, and the hijack fails.
fn give_pair_end(giver: Giver) -> Option<UnixStream> {
    let (relay_end, app_end) = std::os::unix::net::UnixStream::pair().ok()?;
    let relay_end = relay_end.set_nonblocking(true).and_then(|()| UnixStream::from_std(relay_end)).ok()?;
    giver.give(app_end.into(), Kind::Unix);
    Some(relay_end)
}

fn give_own<S: Into<OwnedFd>>(socket: io::Result<S>, kind: Kind, giver: Giver, state: &ServerState) {
    if let Ok(socket) = socket {
        let socket: OwnedFd = socket.into();
        state.handed.record(&socket);
        giver.give(socket, kind); // dropped, so closed, if Ruby gave up waiting
    }
}

/// After an upgrade: the connection back from hyper's `Upgraded`, then as `hand_over`.
pub async fn hand_over_upgraded(upgraded: Upgraded, giver: Giver, state: Arc<ServerState>) {
    // Not our transport cannot happen (every connection is one); if it did, the giver is
    // dropped and the waiting `rack.hijack` raises rather than get a socket nobody relays.
    if let Ok(parts) = upgraded.downcast::<TokioIo<ActivityIo>>() {
        hand_over(parts.io.into_inner().into_inner(), parts.read_buf, giver, state).await;
    }
}

/// Joins the client to the app's end of the socket pair until both directions are done,
/// `read_buf` (what the client sent past its request, already read by hyper) first.
/// Towards the app, a failure ends that direction alone: an app that answered and closed
/// without reading makes writing to it fail, and its answer, still queued on our end, must
/// reach the client. Towards the client, a failure ends both (the app reset, or the client
/// is gone): nothing more can be delivered.
async fn relay(transport: Transport, read_buf: Bytes, app: UnixStream) {
    match transport {
        Transport::Tcp(client) => join_pumps(&client, &app, read_buf).await,
        Transport::Unix(client) => join_pumps(&client, &app, read_buf).await,
        Transport::Tls(client) => join_copies(*client, app, read_buf).await,
    }
}

async fn join_pumps(client: &impl Endpoint, app: &impl Endpoint, read_buf: Bytes) {
    let to_app = async {
        write_all(app, read_buf).await?;
        pump(client, app).await
    };
    let _ = tokio::try_join!(alone(to_app), pump(app, client));
}

/// A relay direction whose failure ends it alone (see `relay`).
async fn alone(direction: impl std::future::Future<Output = io::Result<()>>) -> io::Result<()> {
    let _ = direction.await;
    Ok(())
}

/// The copying path (TLS), each direction through a `COPY_BUF` buffer.
async fn join_copies(client: tokio_rustls::server::TlsStream<TcpStream>, mut app: UnixStream, read_buf: Bytes) {
    use tokio::io::{AsyncWriteExt, BufReader};
    let (client_read, mut client_write) = tokio::io::split(client);
    let (app_read, mut app_write) = app.split();
    let to_app = async {
        app_write.write_all(&read_buf).await?;
        tokio::io::copy_buf(&mut BufReader::with_capacity(COPY_BUF, client_read), &mut app_write).await?;
        app_write.shutdown().await
    };
    let to_client = async {
        tokio::io::copy_buf(&mut BufReader::with_capacity(COPY_BUF, app_read), &mut client_write).await?;
        client_write.shutdown().await
    };
    let _ = tokio::try_join!(alone(to_app), to_client);
}

/// A socket relayed by readiness.
trait Endpoint {
    async fn readable(&self) -> io::Result<()>;
    async fn writable(&self) -> io::Result<()>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
    fn shutdown_write(&self);
}

macro_rules! endpoint {
    ($t:ty) => {
        impl Endpoint for $t {
            async fn readable(&self) -> io::Result<()> {
                <$t>::readable(self).await
            }
            async fn writable(&self) -> io::Result<()> {
                <$t>::writable(self).await
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$t>::try_read(self, buf)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, buf)
            }
            fn shutdown_write(&self) {
                let _ = socket2::SockRef::from(self).shutdown(Shutdown::Write);
            }
        }
    };
}
endpoint!(TcpStream);
endpoint!(UnixStream);

/// Moves bytes from `src` to `dst` until `src` ends (then `dst` is half-closed).
async fn pump(src: &impl Endpoint, dst: &impl Endpoint) -> io::Result<()> {
    loop {
        src.readable().await?;
        match move_once(src, dst)? {
            Moved::All | Moved::Nothing => {}
            Moved::Part(rest) => write_all(dst, rest).await?,
            Moved::End => {
                dst.shutdown_write();
                return Ok(());
            }
        }
    }
}

enum Moved {
    /// Everything read was written.
    All,
    /// `dst` took only part of it: the rest, to write once it can.
    Part(Bytes),
    /// Not readable after all (a spurious wake-up).
    Nothing,
    End,
}

/// One read and one write, with the buffer on the stack: a synchronous function, so the
/// buffer is never part of the task's saved state.
fn move_once(src: &impl Endpoint, dst: &impl Endpoint) -> io::Result<Moved> {
    let mut buf = [0u8; READ_BUF];
    let n = match src.try_read(&mut buf) {
        Ok(0) => return Ok(Moved::End),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Moved::Nothing),
        Err(e) => return Err(e),
    };
    match dst.try_write(&buf[..n]) {
        Ok(written) if written == n => Ok(Moved::All),
        Ok(written) => Ok(Moved::Part(Bytes::copy_from_slice(&buf[written..n]))),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Moved::Part(Bytes::copy_from_slice(&buf[..n]))),
        Err(e) => Err(e),
    }
}

/// Writes `pending` to `dst` as it can take it.
async fn write_all(dst: &impl Endpoint, mut pending: Bytes) -> io::Result<()> {
    while !pending.is_empty() {
        dst.writable().await?;
        match dst.try_write(&pending) {
            Ok(written) => drop(pending.split_to(written)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes both ways, more than a socket buffer holds (the partial-write path), then a
    /// half-close each way.
    #[test]
    fn relays_both_ways_and_half_closes() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (mut client, client_end) = UnixStream::pair().unwrap();
            let (app_end, mut app) = UnixStream::pair().unwrap();
            let relay = tokio::spawn(async move { tokio::try_join!(pump(&client_end, &app_end), pump(&app_end, &client_end)) });
            let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
            let sent = big.clone();
            let writer = tokio::spawn(async move {
                client.write_all(&sent).await.unwrap();
                client.shutdown().await.unwrap(); // half-close: the app must see EOF
                let mut back = Vec::new();
                client.read_to_end(&mut back).await.unwrap();
                back
            });
            let mut got = Vec::new();
            app.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, big);
            app.write_all(b"answer").await.unwrap();
            app.shutdown().await.unwrap();
            assert_eq!(writer.await.unwrap(), b"answer");
            relay.await.unwrap().unwrap();
        });
    }
}
