//! One connection: the TLS handshake if any, then hyper (HTTP/1.1 or HTTP/2, see
//! `Protocol`) until the client leaves, plus what hyper does not do for us:
//!
//! - the inactivity timeout: no bytes in either direction for `--timeout`, also while a
//!   response is pending (Thin's rule), stamped by `ActivityIo`;
//! - a deadline for the first bytes (hyper's header timeout starts only once it knows the
//!   connection speaks HTTP/1);
//! - HTTP/2's deadlines, where PINGs would otherwise keep anything alive (see `Outbox`): with
//!   no request under way, a complete request head must come within `--header-timeout`;
//!   responses whose bytes wait for the client's window for `--timeout` close it;
//! - the cut switch (`ConnectionInfo::cut`): a streamed response cut off as too slow closes
//!   the connection at once, even while hyper waits to write;
//! - graceful stop: hyper's own `graceful_shutdown` (idle keep-alive connections close,
//!   HTTP/2 sends GOAWAY, in-flight requests finish).
//!
//! Dropping hyper's connection drops the in-flight request futures, which is how a pending
//! async response learns its client is gone (see `bridge::disconnect`).

use std::future::{poll_fn, Future};
use std::ops::DerefMut;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::reply::ReplyBody;
use crate::net::service;
use crate::net::socket::{ActivityIo, Transport};
use crate::net::state::ServerState;

/// How long a connection accepted just before a stop may take to send its first request.
const FIRST_REQUEST_ON_STOP: Duration = Duration::from_millis(500);

/// Serves one accepted connection until the client leaves, it idles out, or the server stops.
pub async fn serve(transport: Transport, tls: Option<TlsAcceptor>, info: Arc<ConnectionInfo>, state: Arc<ServerState>) {
    let _live = state.track_connection();
    // Before hyper has the connection, a stop closes it after FIRST_REQUEST_ON_STOP: a
    // client that connected just before the stop gets to send its request, and a browser's
    // preconnect that never sends a byte does not hold the stop for its whole grace period.
    let mut shutdown = state.shutdown.clone();
    let stopped_then_waited = async {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
        Box::pin(tokio::time::sleep(FIRST_REQUEST_ON_STOP)).await; // boxed: rarely needed, kept out of every task
    };
    let opened = tokio::select! {
        opened = Box::pin(open(transport, tls, state.config.header_timeout)) => opened,
        _ = stopped_then_waited => None,
    };
    let Some((transport, protocol)) = opened else { return };
    let io = TokioIo::new(ActivityIo::new(transport, info.clone()));
    let service = {
        let (info, state) = (info.clone(), state.clone());
        service_fn(move |req| service::handle(req, info.clone(), state.clone()))
    };
    // Pinned here, not inside `drive`: an async fn keeps its arguments, and a connection
    // moved from an argument into a pinned local would be stored twice.
    let _counted = PersistentGuard(&info, &state);
    match protocol {
        // With upgrades: `rack.hijack` hands the connection over through hyper's upgrade.
        Protocol::Http1 => {
            let conn = std::pin::pin!(state.http1.serve_connection(io, service).with_upgrades());
            drive(conn, |c| c.graceful_shutdown(), &info, &state).await;
        }
        // Boxed: hyper's HTTP/2 connection is 1.5 KiB, its HTTP/1 one 0.6; the task is sized
        // by its largest state, and most held connections are HTTP/1.
        Protocol::Http2 => {
            info.speaks_http2();
            let conn = Box::pin(state.http2.serve_connection(io, service));
            drive(conn, |c| c.graceful_shutdown(), &info, &state).await;
        }
    }
}

/// The TLS handshake if any, then the protocol: `None` if either fails or takes longer than
/// `header_timeout`. Boxed by the caller: its state is large and over before the
/// connection's long life.
async fn open(transport: Transport, tls: Option<TlsAcceptor>, header_timeout: Duration) -> Option<(Transport, Protocol)> {
    let transport = match (tls, transport) {
        (Some(acceptor), Transport::Tcp(tcp)) => match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(session)) => Transport::Tls(Box::new(session)),
            _ => return None, // a failed or too slow handshake: nothing to answer
        },
        (_, plain) => plain,
    };
    let protocol = tokio::time::timeout(header_timeout, Protocol::of(&transport)).await.ok()?;
    Some((transport, protocol))
}

/// Takes the connection off the kept-alive count when it ends, however it ends.
struct PersistentGuard<'a>(&'a ConnectionInfo, &'a ServerState);

impl Drop for PersistentGuard<'_> {
    fn drop(&mut self) {
        self.1.connection_closed(self.0);
    }
}

/// Polls hyper's connection until it ends, the timer says close, the connection is cut,
/// or (on a stop, through `graceful`) hyper's graceful shutdown has run its course.
///
/// hyper's graceful shutdown closes at once a connection that has not started a request;
/// one opened less than FIRST_REQUEST_ON_STOP ago gets that long to send it first (its
/// client connected before the stop, and a phased restart must not fail its request).
async fn drive<C: Future>(mut conn: Pin<impl DerefMut<Target = C>>, graceful: impl Fn(Pin<&mut C>), info: &ConnectionInfo, state: &ServerState) {
    let mut shutdown = state.shutdown.clone();
    let mut draining = false;
    let opened = Instant::now();
    // Boxed, and only on a stop: a timer in every connection's task would cost its size.
    let mut young: Option<Pin<Box<Sleep>>> = None;
    let mut timer = Timer::new(state.config.idle_timeout, state.config.header_timeout, opened);
    loop {
        let stopping = !draining && *shutdown.borrow();
        if stopping && young.is_none() {
            let drain_from = opened + FIRST_REQUEST_ON_STOP;
            if Instant::now() >= drain_from {
                draining = true;
                graceful(conn.as_mut());
            } else {
                young = Some(Box::pin(tokio::time::sleep_until(drain_from)));
            }
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = timer.fired(), if timer.is_set() => {
                if !timer.rearm(info, opened) {
                    return; // dropping `conn` closes the socket
                }
            }
            _ = poll_fn(|cx| info.poll_cut(cx)) => return, // a response was cut off: close now
            changed = shutdown.changed(), if !stopping && !draining => if changed.is_err() { return },
            _ = async { young.as_mut().expect("set when stopping").await }, if young.is_some() && !draining => {
                draining = true;
                graceful(conn.as_mut());
            }
        }
    }
}

/// Which protocol hyper is to speak, decided without consuming a byte: ALPN on TLS, a
/// `peek` at the HTTP/2 preface on TCP (h2c with prior knowledge, RFC 9113 §3.4), HTTP/1
/// on Unix sockets (what proxies speak there). Then hyper's own HTTP/1 or HTTP/2 builder
/// serves it.
///
/// Why not hyper-util's `auto::Builder`, which does this for you (measured, bare hyper,
/// 10,000 held requests): it hands hyper the sniffed bytes as a read of their own, after
/// which hyper grows its 8 KiB read buffer by reallocation, and every held connection keeps
/// 11.8 KiB more touched memory (19.6 vs 7.8 KiB per held request); and its connection is an enum
/// sized for HTTP/2 (1,528 bytes in every task, against 632 for HTTP/1).
enum Protocol {
    Http1,
    Http2,
}

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Protocol {
    async fn of(transport: &Transport) -> Protocol {
        match transport {
            Transport::Tls(session) if session.get_ref().1.alpn_protocol() == Some(b"h2") => Protocol::Http2,
            Transport::Tcp(tcp) => Self::sniff(tcp).await,
            _ => Protocol::Http1,
        }
    }

    async fn sniff(tcp: &tokio::net::TcpStream) -> Protocol {
        let mut start = [0u8; 24];
        loop {
            match tcp.peek(&mut start).await {
                Ok(24) if &start == H2_PREFACE => return Protocol::Http2,
                Ok(n) if n > 0 && n < 24 && start[..n] == H2_PREFACE[..n] => {
                    // The preface so far, split across packets: look again shortly.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                _ => return Protocol::Http1, // anything else, EOF or an error: hyper's to answer
            }
        }
    }
}

/// The connection's one timer: the deadline for its first bytes, then (if `--timeout` is
/// set) the inactivity check, and on HTTP/2 the progress checks. Boxed, and dropped when
/// there is nothing to check: a held Comet connection with `--timeout 0` keeps no timer.
struct Timer {
    sleep: Option<std::pin::Pin<Box<Sleep>>>,
    idle: Option<Duration>,
    /// The first bytes, and on HTTP/2 each request head when none is under way, must come
    /// within this (`--header-timeout`).
    head: Duration,
}

impl Timer {
    fn new(idle: Option<Duration>, head: Duration, opened: Instant) -> Self {
        let first = idle.map_or(head, |i| i.min(head));
        Timer { sleep: Some(Box::pin(tokio::time::sleep_until(opened + first))), idle, head }
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
    fn rearm(&mut self, info: &ConnectionInfo, opened: Instant) -> bool {
        let now = Instant::now();
        let since_open = now - opened;
        let activity = &info.activity;
        let mut next: Option<Instant> = None;
        // Whether `elapsed` is still under `limit`; if so the check is due again at the end.
        let mut within = |elapsed: Duration, limit: Duration| {
            let left = limit.checked_sub(elapsed).filter(|left| !left.is_zero());
            if let Some(left) = left {
                next = Some(next.map_or(now + left, |n: Instant| n.min(now + left)));
            }
            left.is_some()
        };
        if !activity.ever_active() && !within(since_open, self.head) {
            return false;
        }
        if let Some(limit) = self.idle {
            if !within(activity.quiet_for().min(since_open), limit) {
                return false;
            }
        }
        if info.is_multiplexed() {
            let still = activity.responses_still_for().min(since_open);
            if info.outbox.open_responses() == 0 {
                if !within(still, self.head) {
                    return false; // no complete request head in time, PINGs notwithstanding
                }
            } else if let Some(limit) = self.idle.filter(|_| info.outbox.has_pending()) {
                if !within(still, limit) {
                    return false; // responses stalled on the client's window
                }
            } else {
                within(Duration::ZERO, self.head); // look again: the state may change
            }
        }
        match (next, self.sleep.as_mut()) {
            (Some(at), Some(sleep)) => sleep.as_mut().reset(at),
            (Some(at), None) => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            (None, _) => self.sleep = None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;
    use crate::net::server::ServerHandle;

    /// A held connection costs its task (plus hyper's buffers and the socket): keep it
    /// small. The future is sized by its largest state, so a big local kept across an
    /// `.await` anywhere shows up here (hyper's HTTP/1 connection alone is 632 bytes).
    #[test]
    fn a_connection_task_stays_small() {
        let config = ServerConfig { binds: vec!["tcp://127.0.0.1:0".into()], io_threads: 1, ..ServerConfig::default() };
        let server = ServerHandle::start(config).expect("server starts");
        let state = server.state.clone();
        let size = state.runtime.clone().block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (stream, peer) = listener.accept().await.unwrap();
            let info = Arc::new(ConnectionInfo::tcp(peer, stream.local_addr().unwrap(), false));
            std::mem::size_of_val(&serve(Transport::Tcp(stream), None, info, state.clone()))
        });
        server.stop(Duration::from_millis(10));
        eprintln!("connection task: {size} bytes");
        assert!(size <= 1152, "connection task grew to {size} bytes");
    }

    fn deadline(timer: &Timer) -> Option<Instant> {
        timer.sleep.as_ref().map(|s| s.deadline())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    /// The first bytes must come within the header timeout; after them, no traffic either
    /// way for the idle timeout closes; with no idle timeout, the timer goes away.
    #[test]
    fn the_timer_rearms_for_first_bytes_then_inactivity() {
        let runtime = runtime();
        let _entered = runtime.enter();
        let (idle, first) = (Duration::from_secs(30), Duration::from_secs(10));
        let silent = ConnectionInfo::unix();

        let opened = Instant::now();
        let mut timer = Timer::new(Some(idle), first, opened);
        assert_eq!(deadline(&timer), Some(opened + first));
        assert!(timer.rearm(&silent, opened), "a silent connection younger than the header timeout stays");
        assert!(deadline(&timer).is_some_and(|at| at <= opened + first));

        let old = Instant::now() - first - Duration::from_millis(1);
        assert!(!Timer::new(Some(idle), first, old).rearm(&silent, old), "no first bytes within the header timeout: closed");

        let talking = ConnectionInfo::unix();
        talking.activity.touch();
        let mut timer = Timer::new(Some(idle), first, old);
        assert!(timer.rearm(&talking, old));
        let next = deadline(&timer).expect("rearmed for inactivity");
        assert!(next > Instant::now() + idle - Duration::from_secs(1) && next <= Instant::now() + idle);

        let mut no_idle = Timer::new(None, first, old);
        assert!(no_idle.rearm(&talking, old));
        assert!(!no_idle.is_set(), "no inactivity timeout: no timer kept");
    }

    #[test]
    fn a_quiet_connection_idles_out() {
        let runtime = runtime();
        let _entered = runtime.enter();
        let info = ConnectionInfo::unix();
        info.activity.touch();
        let opened = Instant::now();
        let mut timer = Timer::new(Some(Duration::from_millis(20)), Duration::from_secs(10), opened);
        std::thread::sleep(Duration::from_millis(40)); // the clock the activity stamps is real time
        assert!(!timer.rearm(&info, opened));
    }

    /// HTTP/2: bytes (PINGs) do not keep a connection with no request under way past the
    /// header timeout, nor one whose responses wait on the client's window past `--timeout`;
    /// a held response with nothing to send keeps Thin's rule.
    #[test]
    fn http2_connections_must_make_progress() {
        let runtime = runtime();
        let _entered = runtime.enter();
        let ms = Duration::from_millis;
        let h2 = || {
            let info = ConnectionInfo::unix();
            info.speaks_http2();
            info.activity.touch();
            info
        };
        let opened = Instant::now() - ms(100);

        let idle_connection = h2();
        let mut timer = Timer::new(Some(Duration::from_secs(30)), ms(30), opened);
        assert!(timer.rearm(&idle_connection, opened));
        std::thread::sleep(ms(50));
        idle_connection.activity.touch(); // a PING
        assert!(!timer.rearm(&idle_connection, opened), "no request head within the header timeout");

        let stalled = h2();
        stalled.outbox.response_began();
        stalled.outbox.handed();
        let mut timer = Timer::new(Some(ms(30)), Duration::from_secs(10), opened);
        std::thread::sleep(ms(50));
        stalled.activity.touch(); // a PING
        assert!(!timer.rearm(&stalled, opened), "a response stalled on the window for --timeout");

        let held = h2();
        held.outbox.response_began(); // a long-poll: nothing to send yet
        let mut timer = Timer::new(Some(ms(30)), Duration::from_secs(10), opened);
        std::thread::sleep(ms(50));
        held.activity.touch();
        assert!(timer.rearm(&held, opened), "traffic keeps a held response, as Thin's --timeout");
        let mut forever = Timer::new(None, Duration::from_secs(10), opened);
        assert!(forever.rearm(&held, opened) && forever.is_set(), "HTTP/2 keeps looking, even with --timeout 0");
    }
}
