//! Listeners: parse bind URIs, bind sockets, and accept connections until shutdown.
//!
//! `tcp://HOST:PORT`, `unix:///PATH`, and Puma's `ssl://HOST:PORT?cert=PATH&key=PATH`
//! (TLS, with HTTP/2 offered by ALPN). A bind may also be a listening socket this process
//! inherited (a cluster master bound it before forking, or systemd passed it): then that
//! socket is served as the URI says, and never unlinked or rebound. Past `max_connections` a
//! new connection gets a short 503 (plain binds) or is closed (TLS binds) while the held ones
//! are served as before. A cluster worker whose Ruby threads are all busy leaves new
//! connections to its siblings (`accept_when_free`).

use std::io;
use std::net::ToSocketAddrs;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio_rustls::TlsAcceptor;

use crate::bridge::connection::ConnectionInfo;
use crate::error::{Error, Result};
use crate::net::connection;
use crate::net::socket::Transport;
use crate::net::state::ServerState;
use crate::net::tls;

/// A bound, listening socket not yet handed to tokio.
pub struct Bound {
    socket: BoundSocket,
    tls: Option<TlsAcceptor>,
    /// The address as the boot line shows it, with the real port when 0 was asked for.
    pub address: String,
    pub unix_path: Option<PathBuf>,
}

enum BoundSocket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

const BACKLOG: i32 = 1024;

/// Binds `tcp://host:port`, `ssl://host:port?cert=…&key=…` or `unix:///path`; or, given
/// `inherited`, serves that already listening socket as `uri`.
pub fn bind(uri: &str, inherited: Option<RawFd>) -> Result<Bound> {
    if let Some(path) = uri.strip_prefix("unix://") {
        return match inherited {
            Some(fd) => adopt(fd, uri, None),
            None => bind_unix(uri, path),
        };
    }
    let (hostport, tls) = match uri.strip_prefix("ssl://") {
        Some(rest) => {
            let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
            (hostport, Some(tls::acceptor(query).map_err(|e| Error::Tls(format!("bind {uri:?}: {e}")))?))
        }
        None => (
            uri.strip_prefix("tcp://")
                .ok_or_else(|| Error::Config(format!("bind {uri:?}: expected tcp://HOST:PORT, ssl://HOST:PORT?cert=PATH&key=PATH or unix:///PATH")))?,
            None,
        ),
    };
    if let Some(fd) = inherited {
        return adopt(fd, uri, tls);
    }
    let (listener, local) = bind_tcp(uri, hostport)?;
    let scheme = if tls.is_some() { "ssl" } else { "tcp" };
    Ok(Bound { socket: BoundSocket::Tcp(listener), tls, address: format!("{scheme}://{local}"), unix_path: None })
}

/// Serves a copy of the inherited listening socket `fd` (the original stays open: a cluster
/// master hands the same one to every worker it forks, now and later).
fn adopt(fd: RawFd, uri: &str, tls: Option<TlsAcceptor>) -> Result<Bound> {
    // SAFETY: `fd` is a descriptor this process inherited and keeps open for its whole life
    // (the master never closes its listeners; systemd's stay open); it is only borrowed
    // here, to duplicate it.
    let owned =
        unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned().map_err(|e| Error::Config(format!("bind {uri:?}: inherited descriptor {fd}: {e}")))?;
    let address = describe(owned.as_fd()).map_err(|e| Error::Config(format!("bind {uri:?}: inherited descriptor {fd}: {e}")))?;
    let socket = Socket::from(owned);
    socket.set_nonblocking(true).map_err(Error::bind(uri))?;
    if address.starts_with("unix://") {
        let listener = std::os::unix::net::UnixListener::from(OwnedFd::from(socket));
        return Ok(Bound { socket: BoundSocket::Unix(listener), tls: None, address, unix_path: None });
    }
    let address = if tls.is_some() { address.replacen("tcp://", "ssl://", 1) } else { address };
    Ok(Bound { socket: BoundSocket::Tcp(socket.into()), tls, address, unix_path: None })
}

/// `tcp://ip:port` or `unix:///path` for a listening stream socket; an error for anything
/// else (a datagram socket, a socket not listening, not a socket at all).
pub fn describe(fd: BorrowedFd<'_>) -> Result<String> {
    let socket = socket2::SockRef::from(&fd);
    let not_listening = || Error::Config("not a listening stream socket".into());
    if socket.r#type().map_err(|_| not_listening())? != Type::STREAM || !socket.is_listener().map_err(|_| not_listening())? {
        return Err(not_listening());
    }
    let local = socket.local_addr().map_err(|_| not_listening())?;
    if let Some(addr) = local.as_socket() {
        return Ok(format!("tcp://{addr}"));
    }
    match local.as_pathname() {
        Some(path) => Ok(format!("unix://{}", path.display())),
        None => Err(Error::Config("an unnamed or abstract Unix socket".into())),
    }
}

impl Bound {
    /// The listening socket's descriptor, left open for this process's children (a cluster
    /// master binds, then forks workers that serve it).
    pub fn into_raw_fd(self) -> RawFd {
        match self.socket {
            BoundSocket::Tcp(l) => l.into_raw_fd(),
            BoundSocket::Unix(l) => l.into_raw_fd(),
        }
    }
}

/// A listening TCP socket and the address it got (`host:port`, real port).
fn bind_tcp(uri: &str, hostport: &str) -> Result<(std::net::TcpListener, String)> {
    let addrs: Vec<_> = hostport.to_socket_addrs().map_err(|e| Error::Config(format!("bind {uri:?}: {e}")))?.collect();
    // `localhost` resolves to both families; prefer IPv4 as clients and other servers do.
    let addr = *addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).ok_or_else(|| Error::Config(format!("bind {uri:?}: no address")))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(Error::bind(uri))?;
    socket.set_reuse_address(true).map_err(Error::bind(uri))?;
    socket.bind(&addr.into()).map_err(Error::bind(uri))?;
    socket.listen(BACKLOG).map_err(Error::bind(uri))?;
    socket.set_nonblocking(true).map_err(Error::bind(uri))?;
    let listener: std::net::TcpListener = socket.into();
    let local = listener.local_addr().map_err(Error::bind(uri))?.to_string();
    Ok((listener, local))
}

fn bind_unix(uri: &str, path: &str) -> Result<Bound> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::metadata(path).map(|m| m.file_type().is_socket()).unwrap_or(false) {
        std::fs::remove_file(path).map_err(Error::bind(uri))?; // a stale socket from an earlier run
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(Error::bind(uri))?;
    listener.set_nonblocking(true).map_err(Error::bind(uri))?;
    Ok(Bound { socket: BoundSocket::Unix(listener), tls: None, address: format!("unix://{path}"), unix_path: Some(path.into()) })
}

/// A listener registered with tokio (needs a runtime context to build).
pub struct Listener {
    socket: ListenSocket,
    tls: Option<TlsAcceptor>,
}

/// Accepted through `AsyncFd` rather than tokio's listeners: they accept as soon as the
/// socket is readable, and a worker must be able to look at its threads first.
enum ListenSocket {
    Tcp(AsyncFd<std::net::TcpListener>),
    Unix(AsyncFd<std::os::unix::net::UnixListener>),
}

impl Listener {
    // `AsyncFd::new` is deprecated (tokio#8587) because an arbitrary `T` could close or swap
    // its descriptor while registered; a std listener owned by the `AsyncFd` cannot (its fd
    // lives exactly as long as it does, and only `get_ref` reaches it), so the safe
    // constructor is sound here, and keeps `unsafe` at the Ruby boundary alone.
    #[allow(deprecated)]
    pub fn from_bound(b: Bound) -> io::Result<Listener> {
        let socket = match b.socket {
            BoundSocket::Tcp(l) => ListenSocket::Tcp(AsyncFd::new(l)?),
            BoundSocket::Unix(l) => ListenSocket::Unix(AsyncFd::new(l)?),
        };
        Ok(Listener { socket, tls: b.tls })
    }

    async fn accept_one(&self, state: &Arc<ServerState>) -> io::Result<()> {
        let (transport, info) = match &self.socket {
            ListenSocket::Tcp(l) => {
                let (stream, peer) = accept_when_free(l, state, std::net::TcpListener::accept).await?;
                stream.set_nonblocking(true)?;
                let stream = tokio::net::TcpStream::from_std(stream)?;
                let _ = stream.set_nodelay(true);
                let info = ConnectionInfo::tcp(peer, stream.local_addr()?, self.tls.is_some());
                (Transport::Tcp(stream), info)
            }
            ListenSocket::Unix(l) => {
                let (stream, _) = accept_when_free(l, state, std::os::unix::net::UnixListener::accept).await?;
                stream.set_nonblocking(true)?;
                (Transport::Unix(tokio::net::UnixStream::from_std(stream)?), ConnectionInfo::unix())
            }
        };
        // Counted after the accept: it may have waited while connections came and went.
        if state.at_capacity() {
            tokio::spawn(connection::refuse(transport, self.tls.clone()));
            return Ok(());
        }
        // Counted now, not when its task first runs: a stop looking in between would think
        // it gone and drop it unserved.
        let live = state.track_connection();
        tokio::spawn(connection::serve(transport, self.tls.clone(), Arc::new(info), live, state.clone()));
        Ok(())
    }
}

/// The next connection, once one is waiting. In a cluster worker (`less_busy_wait`) whose
/// Ruby threads are all busy, a waiting connection is left in the kernel's queue, where a
/// sibling worker blocked in accept on the same socket takes it (Puma's
/// `wait_for_less_busy_worker`); this worker looks again once one of its threads is free.
/// The check comes after the socket turns readable, not before waiting: a worker that became
/// busy while it waited must not take the connection that woke it.
async fn accept_when_free<L: std::os::fd::AsRawFd, T>(listener: &AsyncFd<L>, state: &ServerState, accept: impl Fn(&L) -> io::Result<T>) -> io::Result<T> {
    loop {
        let mut ready = listener.readable().await?;
        if let Some(wait) = state.config.less_busy_wait.filter(|_| state.queue.idle_workers() == 0) {
            drop(ready); // readiness kept: the next look comes at once
            let poll = wait.min(Duration::from_millis(1));
            while state.queue.idle_workers() == 0 {
                tokio::time::sleep(poll).await;
            }
            continue;
        }
        match ready.try_io(|inner| accept(inner.get_ref())) {
            Ok(accepted) => return accepted,
            Err(_would_block) => continue, // a sibling took it: readiness cleared, wait again
        }
    }
}

/// Accepts until shutdown. Out of file descriptors (or memory), it pauses briefly instead of
/// spinning, and keeps serving the connections it has.
pub async fn accept_loop(listener: Listener, state: Arc<ServerState>) {
    let _accepting = state.track_accepting();
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            accepted = listener.accept_one(&state) => {
                if let Err(e) = accepted {
                    if is_resource_exhaustion(&e) {
                        crate::log::warn(&format!("accept paused: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn describes_listening_sockets_only() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert_eq!(describe(tcp.as_fd()).unwrap(), format!("tcp://127.0.0.1:{port}"));

        let path = std::env::temp_dir().join(format!("lunar-describe-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(describe(unix.as_fd()).unwrap(), format!("unix://{}", path.display()));
        let _ = std::fs::remove_file(&path);

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(describe(udp.as_fd()).is_err());
        let connected = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(describe(connected.as_fd()).is_err());
    }

    #[test]
    fn serves_an_inherited_socket_as_its_bind() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let bound = bind("tcp://127.0.0.1:0", Some(tcp.as_raw_fd())).unwrap();
        assert_eq!(bound.address, format!("tcp://127.0.0.1:{port}"));
        assert!(bound.unix_path.is_none());
        drop(bound); // a copy: the original still listens
        assert_eq!(describe(tcp.as_fd()).unwrap(), format!("tcp://127.0.0.1:{port}"));
    }
}
