//! Listeners: parse bind URIs, bind sockets, and accept connections until shutdown.

use std::io;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use crate::connection;
use crate::job::ConnectionInfo;
use crate::server::Shared;

/// A bound, listening socket not yet handed to tokio.
pub struct Bound {
    socket: BoundSocket,
    /// The address as the boot line shows it, with the real port when 0 was asked for.
    pub address: String,
    pub unix_path: Option<PathBuf>,
}

enum BoundSocket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

const BACKLOG: i32 = 1024;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Binds `tcp://host:port` or `unix:///path`.
pub fn bind(uri: &str) -> io::Result<Bound> {
    if let Some(path) = uri.strip_prefix("unix://") {
        return bind_unix(path);
    }
    let hostport = uri.strip_prefix("tcp://").ok_or_else(|| invalid(format!("bind {uri:?}: expected tcp://HOST:PORT or unix:///PATH")))?;
    let connection: Vec<_> = hostport.to_socket_addrs().map_err(|e| invalid(format!("bind {uri:?}: {e}")))?.collect();
    // `localhost` resolves to both families; prefer IPv4 as clients and other servers do.
    let addr = *connection
        .iter()
        .find(|a| a.is_ipv4())
        .or(connection.first())
        .ok_or_else(|| invalid(format!("bind {uri:?}: no address")))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("bind {uri}: {e}")))?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    let listener: std::net::TcpListener = socket.into();
    let address = format!("tcp://{}", listener.local_addr()?);
    Ok(Bound { socket: BoundSocket::Tcp(listener), address, unix_path: None })
}

fn bind_unix(path: &str) -> io::Result<Bound> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::metadata(path).map(|m| m.file_type().is_socket()).unwrap_or(false) {
        std::fs::remove_file(path)?; // a stale socket from an earlier run
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("bind unix://{path}: {e}")))?;
    listener.set_nonblocking(true)?;
    Ok(Bound { socket: BoundSocket::Unix(listener), address: format!("unix://{path}"), unix_path: Some(path.into()) })
}

/// A listener registered with tokio (needs a runtime context to build).
pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

impl Listener {
    pub fn from_bound(b: Bound) -> io::Result<Listener> {
        Ok(match b.socket {
            BoundSocket::Tcp(l) => Listener::Tcp(tokio::net::TcpListener::from_std(l)?),
            BoundSocket::Unix(l) => Listener::Unix(tokio::net::UnixListener::from_std(l)?),
        })
    }

    async fn accept_one(&self, shared: &Arc<Shared>) -> io::Result<()> {
        // Counted after the accept: it may have waited while connections came and went.
        let full = || shared.live_connections() >= shared.config.max_connections;
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                if full() {
                    tokio::spawn(refuse(stream));
                    return Ok(());
                }
                let _ = stream.set_nodelay(true);
                let connection = ConnectionInfo::tcp(peer, stream.local_addr()?);
                tokio::spawn(connection::serve(stream, Arc::new(connection), shared.clone()));
            }
            Listener::Unix(l) => {
                let (stream, _) = l.accept().await?;
                if full() {
                    tokio::spawn(refuse(stream));
                    return Ok(());
                }
                tokio::spawn(connection::serve(stream, Arc::new(ConnectionInfo::unix()), shared.clone()));
            }
        }
        Ok(())
    }
}

/// At `max_connections`: a short 503 and a close, so the client knows to come back later,
/// while the connections already held are served as before.
async fn refuse<S: tokio::io::AsyncWrite + Unpin>(mut stream: S) {
    use tokio::io::AsyncWriteExt;
    const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 20\r\nconnection: close\r\nretry-after: 1\r\n\r\nServer at capacity.\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(FULL)).await;
    let _ = stream.shutdown().await;
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
