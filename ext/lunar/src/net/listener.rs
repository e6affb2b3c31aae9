//! Listeners: parse bind URIs, bind sockets, and accept connections until shutdown.
//!
//! `tcp://HOST:PORT`, `unix:///PATH`, and Puma's `ssl://HOST:PORT?cert=PATH&key=PATH`
//! (TLS, with HTTP/2 offered by ALPN). Past `max_connections` a new connection gets a short
//! 503 (plain binds) or is closed (TLS binds) while the held ones are served as before.

use std::io;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio_rustls::TlsAcceptor;

use crate::bridge::job::ConnectionInfo;
use crate::net::connection;
use crate::net::server::Shared;
use crate::net::socket::Transport;
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

pub fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Binds `tcp://host:port`, `ssl://host:port?cert=…&key=…` or `unix:///path`.
pub fn bind(uri: &str) -> io::Result<Bound> {
    if let Some(path) = uri.strip_prefix("unix://") {
        return bind_unix(path);
    }
    if let Some(rest) = uri.strip_prefix("ssl://") {
        let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
        let acceptor = tls::acceptor(query).map_err(|e| invalid(format!("bind {uri:?}: {e}")))?;
        let (listener, port) = bind_tcp(uri, hostport)?;
        return Ok(Bound { socket: BoundSocket::Tcp(listener), tls: Some(acceptor), address: format!("ssl://{port}"), unix_path: None });
    }
    let hostport = uri.strip_prefix("tcp://").ok_or_else(|| invalid(format!("bind {uri:?}: expected tcp://HOST:PORT, ssl://HOST:PORT?cert=PATH&key=PATH or unix:///PATH")))?;
    let (listener, port) = bind_tcp(uri, hostport)?;
    Ok(Bound { socket: BoundSocket::Tcp(listener), tls: None, address: format!("tcp://{port}"), unix_path: None })
}

/// A listening TCP socket and the address it got (`host:port`, real port).
fn bind_tcp(uri: &str, hostport: &str) -> io::Result<(std::net::TcpListener, String)> {
    let addrs: Vec<_> = hostport.to_socket_addrs().map_err(|e| invalid(format!("bind {uri:?}: {e}")))?.collect();
    // `localhost` resolves to both families; prefer IPv4 as clients and other servers do.
    let addr = *addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .ok_or_else(|| invalid(format!("bind {uri:?}: no address")))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("bind {uri}: {e}")))?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    let listener: std::net::TcpListener = socket.into();
    let local = listener.local_addr()?.to_string();
    Ok((listener, local))
}

fn bind_unix(path: &str) -> io::Result<Bound> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::metadata(path).map(|m| m.file_type().is_socket()).unwrap_or(false) {
        std::fs::remove_file(path)?; // a stale socket from an earlier run
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("bind unix://{path}: {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(Bound { socket: BoundSocket::Unix(listener), tls: None, address: format!("unix://{path}"), unix_path: Some(path.into()) })
}

/// A listener registered with tokio (needs a runtime context to build).
pub struct Listener {
    socket: ListenSocket,
    tls: Option<TlsAcceptor>,
}

enum ListenSocket {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    pub fn from_bound(b: Bound) -> io::Result<Listener> {
        let socket = match b.socket {
            BoundSocket::Tcp(l) => ListenSocket::Tcp(tokio::net::TcpListener::from_std(l)?),
            BoundSocket::Unix(l) => ListenSocket::Unix(tokio::net::UnixListener::from_std(l)?),
        };
        Ok(Listener { socket, tls: b.tls })
    }

    async fn accept_one(&self, shared: &Arc<Shared>) -> io::Result<()> {
        let (transport, info) = match &self.socket {
            ListenSocket::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                let info = ConnectionInfo::tcp(peer, stream.local_addr()?, self.tls.is_some());
                (Transport::Tcp(stream), info)
            }
            ListenSocket::Unix(l) => (Transport::Unix(l.accept().await?.0), ConnectionInfo::unix()),
        };
        // Counted after the accept: it may have waited while connections came and went.
        if shared.live_connections() >= shared.config.max_connections {
            tokio::spawn(connection::refuse(transport, self.tls.clone()));
            return Ok(());
        }
        tokio::spawn(connection::serve(transport, self.tls.clone(), Arc::new(info), shared.clone()));
        Ok(())
    }
}

/// Accepts until shutdown. Out of file descriptors (or memory), it pauses briefly instead of
/// spinning, and keeps serving the connections it has.
pub async fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            accepted = listener.accept_one(&shared) => {
                if let Err(e) = accepted {
                    if is_resource_exhaustion(&e) {
                        eprintln!("lunar: accept paused: {e}");
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
