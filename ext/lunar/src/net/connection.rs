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
//! - graceful stop: hyper's own `graceful_shutdown` (HTTP/2 sends GOAWAY, in-flight
//!   requests finish), after a moment's grace for HTTP/1 (see `drive`).
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
use crate::config::ServerConfig;
use crate::log::Throttled;
use crate::net::relay;
use crate::net::service;
use crate::net::socket::{ActivityIo, Transport};
use crate::net::state::{ConnectionGuard, ServerState};

/// How long, on a stop, a connection accepted just before it may take to send its first
/// request, and an idle HTTP/1 keep-alive connection its next one.
const NEXT_REQUEST_ON_STOP: Duration = Duration::from_millis(500);

/// Serves one accepted connection until the client leaves, it idles out, or the server stops.
/// `_live` counts it from its accept (`ServerState::track_connection`) until it ends.
pub async fn serve(transport: Transport, tls: Option<TlsAcceptor>, info: Arc<ConnectionInfo>, _live: ConnectionGuard, state: Arc<ServerState>) {
    // Before hyper has the connection, a stop closes it after NEXT_REQUEST_ON_STOP: a
    // client that connected just before the stop gets to send its request, and a browser's
    // preconnect that never sends a byte does not hold the stop for its whole grace period.
    let mut shutdown = state.shutdown.clone();
    let stopped_then_waited = async {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
        Box::pin(tokio::time::sleep(NEXT_REQUEST_ON_STOP)).await; // boxed: rarely needed, kept out of every task
    };
    let opened = tokio::select! {
        opened = Box::pin(open(transport, tls, state.config.first_data_timeout)) => opened,
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
            let mut conn = state.http1.serve_connection(io, service).with_upgrades();
            drive(Pin::new(&mut conn), |c| c.graceful_shutdown(), Linger::Always, &info, &state).await;
            // A full `rack.hijack` of a request that asked for no upgrade: hyper has let go
            // of the connection (without shutting it down); the app's relay takes it.
            // Its own task: the relay's state is no part of every connection's.
            if let (Some(giver), Some(parts)) = (info.take_handover(), conn.into_parts()) {
                tokio::spawn(relay::hand_over(parts.io.into_inner().into_inner(), parts.read_buf, giver, state.clone()));
            }
        }
        // Boxed: hyper's HTTP/2 connection is 1.5 KiB, its HTTP/1 one 0.6; the task is sized
        // by its largest state, and most held connections are HTTP/1.
        Protocol::Http2 => {
            info.speaks_http2();
            let conn = Box::pin(state.http2.serve_connection(io, service));
            drive(conn, |c| c.graceful_shutdown(), Linger::WhenYoung, &info, &state).await;
        }
    }
}

/// The TLS handshake if any, then the protocol: `None` if either fails or takes longer than
/// `first_data_timeout`. Boxed by the caller: its state is large and over before the
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

/// How long a connection is left to send a request once a stop begins, before hyper's
/// graceful shutdown (which closes at once a connection with no request under way).
#[derive(Clone, Copy)]
enum Linger {
    /// HTTP/1: NEXT_REQUEST_ON_STOP from the stop. A keep-alive client may be sending its
    /// next request as the stop begins; closing under it loses that request (the client
    /// sees a reset, and must not retry a POST). Meanwhile every response says
    /// `Connection: close` (`ConnectionInfo::end_keep_alive`), so busy connections end
    /// after their response.
    Always,
    /// HTTP/2: GOAWAY at once (it tells the client which streams will be served; it retries
    /// the rest elsewhere), unless the connection is younger than NEXT_REQUEST_ON_STOP.
    WhenYoung,
}

/// Polls hyper's connection until it ends, the timer says close, the connection is cut,
/// or (on a stop, through `graceful`) hyper's graceful shutdown has run its course. On a
/// stop, `linger` says how long the connection keeps taking requests first; a connection
/// opened less than NEXT_REQUEST_ON_STOP ago always gets that long from its opening (its
/// client connected before the stop, and a phased restart must not fail its request).
async fn drive<C: Future<Output = Result<(), hyper::Error>>>(
    mut conn: Pin<impl DerefMut<Target = C>>,
    graceful: impl Fn(Pin<&mut C>),
    linger: Linger,
    info: &ConnectionInfo,
    state: &ServerState,
) {
    let mut shutdown = state.shutdown.clone();
    let mut draining = false;
    let opened = Instant::now();
    // Boxed, and only on a stop: a timer in every connection's task would cost its size.
    let mut lingering: Option<Pin<Box<Sleep>>> = None;
    let mut timer = Timer::new(&state.config, opened);
    loop {
        let stopping = !draining && *shutdown.borrow();
        if stopping && lingering.is_none() {
            let drain_from = match linger {
                Linger::Always => {
                    info.end_keep_alive();
                    Instant::now() + NEXT_REQUEST_ON_STOP
                }
                Linger::WhenYoung => opened + NEXT_REQUEST_ON_STOP,
            };
            if Instant::now() >= drain_from {
                draining = true;
                graceful(conn.as_mut());
            } else {
                lingering = Some(Box::pin(tokio::time::sleep_until(drain_from)));
            }
        }
        tokio::select! {
            ended = conn.as_mut() => return log_refused_head(ended, &state.config),
            _ = timer.fired() => {
                if !timer.rearm(info, opened, &state.config) {
                    return; // dropping `conn` closes the socket
                }
            }
            _ = poll_fn(|cx| info.poll_cut(cx)) => return, // a response was cut off: close now
            changed = shutdown.changed(), if !stopping && !draining => if changed.is_err() { return },
            _ = async { lingering.as_mut().expect("set when stopping").await }, if lingering.is_some() && !draining => {
                draining = true;
                graceful(conn.as_mut());
            }
        }
    }
}

/// A request head over `--max-header-size` (or over hyper's 100 header lines), which hyper
/// answers 431 before Lunar sees a request, said at most once a minute: the log is the
/// only place an operator learns which limit a client ran into (Puma's is 112 KiB).
fn log_refused_head(ended: Result<(), hyper::Error>, config: &ServerConfig) {
    static HEAD_TOO_LARGE: Throttled = Throttled::new(Duration::from_secs(60));
    if ended.is_err_and(|e| e.is_parse_too_large()) {
        HEAD_TOO_LARGE.warn(|| format!("a request head over --max-header-size ({} bytes) or over 100 header lines, answered 431", config.max_header_size));
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

/// The connection's one timer. It looks at the connection when a deadline may have passed,
/// and closes it when one has (rules in `rearm`). A request beginning or ending changes
/// which deadline applies without telling the timer, so it never sleeps longer than the
/// shortest limit that could apply in any state: a change is seen within that, and each
/// deadline is computed from when its state began, so it is kept to the millisecond.
struct Timer {
    sleep: std::pin::Pin<Box<Sleep>>,
}

impl Timer {
    fn new(config: &ServerConfig, opened: Instant) -> Self {
        Timer { sleep: Box::pin(tokio::time::sleep_until(opened + Self::period(config))) }
    }

    /// The shortest limit of any state.
    fn period(config: &ServerConfig) -> Duration {
        let limits = [Some(config.first_data_timeout), Some(config.header_timeout), config.persistent_timeout, config.idle_timeout];
        limits.into_iter().flatten().filter(|d| !d.is_zero()).min().unwrap_or(config.header_timeout)
    }

    async fn fired(&mut self) {
        self.sleep.as_mut().await
    }

    /// After a firing: false when the connection must close, else the next check is set. With no request under way, a connection must send its first
    /// bytes within `first_data_timeout`, a head once begun within `header_timeout`, and
    /// otherwise (idle keep-alive) something within `persistent_timeout`. With one under
    /// way, Thin's `--timeout` applies (no traffic either way), and on HTTP/2 responses must
    /// not stall on the client's window for `--timeout` (PINGs are traffic, not progress).
    fn rearm(&mut self, info: &ConnectionInfo, opened: Instant, config: &ServerConfig) -> bool {
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
        let idle = info.outbox.open_responses() == 0;
        let alive = if idle {
            match activity.head_for() {
                Some(arriving) => within(arriving, config.header_timeout),
                None if !activity.has_answered() => within(since_open, config.first_data_timeout),
                None => config.persistent_timeout.is_none_or(|limit| within(activity.idle_for().min(since_open), limit)),
            }
        } else {
            let quiet = config.idle_timeout.is_none_or(|limit| within(activity.quiet_for().min(since_open), limit));
            let stalled = info.is_multiplexed() && info.outbox.has_pending();
            quiet && config.idle_timeout.filter(|_| stalled).is_none_or(|limit| within(activity.responses_still_for().min(since_open), limit))
        };
        if !alive {
            return false;
        }
        within(Duration::ZERO, Self::period(config)); // look again at least this often: requests come and go
        self.sleep.as_mut().reset(next.unwrap_or(now + Self::period(config)));
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
    #[cfg_attr(debug_assertions, ignore = "the bound is a release build's size: script/test runs cargo test --release")]
    fn a_connection_task_stays_small() {
        let config = ServerConfig { binds: vec!["tcp://127.0.0.1:0".into()], io_threads: 1, ..ServerConfig::default() };
        let server = ServerHandle::start(config).expect("server starts");
        let state = server.state.clone();
        let runtime = state.runtime.clone();
        let size = runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (stream, peer) = listener.accept().await.unwrap();
            let info = Arc::new(ConnectionInfo::tcp(peer, stream.local_addr().unwrap(), false));
            std::mem::size_of_val(&serve(Transport::Tcp(stream), None, info, state.track_connection(), state.clone()))
        });
        let size = size.expect("the runtime runs");
        server.stop(Duration::from_millis(10));
        eprintln!("connection task: {size} bytes");
        assert!(size <= 1152, "connection task grew to {size} bytes");
    }

    fn deadline(timer: &Timer) -> Option<Instant> {
        Some(timer.sleep.deadline())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn config(first_data: u64, head: u64, persistent: Option<u64>, idle: Option<u64>) -> ServerConfig {
        ServerConfig {
            first_data_timeout: ms(first_data),
            header_timeout: ms(head),
            persistent_timeout: persistent.map(ms),
            idle_timeout: idle.map(ms),
            ..ServerConfig::default()
        }
    }

    /// A request under way, then over: the connection waits for the next one.
    fn answered_once(info: &ConnectionInfo) {
        info.outbox.response_began();
        info.activity.response_began();
        assert!(info.outbox.response_ended());
        info.activity.went_idle();
    }

    /// Before its first request, a connection gets `first_data_timeout` for its first bytes
    /// and `header_timeout` for a head once begun.
    #[test]
    fn a_new_connection_must_send_its_first_request_in_time() {
        let runtime = runtime();
        let _entered = runtime.enter();
        let config = config(30_000, 10_000, Some(65_000), Some(30_000));
        let opened = Instant::now();
        let mut timer = Timer::new(&config, opened);
        assert_eq!(deadline(&timer), Some(opened + ms(10_000)));
        let silent = ConnectionInfo::unix();
        assert!(timer.rearm(&silent, opened, &config));
        assert!(deadline(&timer).is_some_and(|at| at <= opened + ms(30_000)));
        let old = Instant::now() - ms(30_001);
        assert!(!Timer::new(&config, old).rearm(&silent, old, &config), "no first bytes in time");

        let trickling = ConnectionInfo::unix();
        trickling.activity.head_arriving();
        let config = config_with_head(20);
        std::thread::sleep(ms(40));
        assert!(!Timer::new(&config, opened).rearm(&trickling, opened, &config), "a head begun must complete in time");
    }

    fn config_with_head(head: u64) -> ServerConfig {
        config(30_000, head, Some(65_000), Some(30_000))
    }

    /// Between requests, `persistent_timeout` (not Thin's `--timeout`) closes an idle
    /// keep-alive connection; `None` keeps it.
    #[test]
    fn an_idle_keep_alive_connection_gets_the_persistent_timeout() {
        let runtime = runtime();
        let _entered = runtime.enter();
        let opened = Instant::now();
        let idle = ConnectionInfo::unix();
        answered_once(&idle);
        let keep = config(30_000, 10_000, Some(20), Some(10));
        let mut timer = Timer::new(&keep, opened);
        assert!(timer.rearm(&idle, opened, &keep));
        std::thread::sleep(ms(40));
        assert!(!timer.rearm(&idle, opened, &keep), "idle past persistent_timeout");
        let forever = config(30_000, 10_000, None, Some(10));
        let mut timer = Timer::new(&forever, opened);
        assert!(timer.rearm(&idle, opened, &forever), "never: kept");
        assert!(deadline(&timer).is_some_and(|at| at <= Instant::now() + ms(10_000)), "looked at again within the shortest limit");
    }

    /// With a request under way, Thin's rule: no traffic either way for `--timeout` closes;
    /// without one, nothing does.
    #[test]
    fn a_request_under_way_gets_thins_timeout() {
        let runtime = runtime();
        let _entered = runtime.enter();
        let opened = Instant::now();
        let held = ConnectionInfo::unix();
        held.outbox.response_began();
        held.activity.response_began();
        held.activity.touch();
        let thin = config(30_000, 10_000, Some(65_000), Some(20));
        let mut timer = Timer::new(&thin, opened);
        assert!(timer.rearm(&held, opened, &thin));
        std::thread::sleep(ms(40));
        assert!(!timer.rearm(&held, opened, &thin), "quiet past --timeout");
        let never = config(30_000, 10_000, Some(65_000), None);
        let mut timer = Timer::new(&never, opened);
        assert!(timer.rearm(&held, opened, &never), "--timeout 0: held");
    }

    /// HTTP/2: bytes (PINGs) with no request under way are a head arriving, and must become
    /// one within the header timeout; responses stalled on the client's window close the
    /// connection after `--timeout`; a held response with nothing to send keeps Thin's rule.
    #[test]
    fn http2_connections_must_make_progress() {
        let runtime = runtime();
        let _entered = runtime.enter();
        let h2 = || {
            let info = ConnectionInfo::unix();
            info.speaks_http2();
            answered_once(&info);
            info
        };
        let opened = Instant::now() - ms(100);

        let pinging = h2();
        pinging.activity.head_arriving(); // a PING, no request under way
        let head = config_with_head(30);
        let mut timer = Timer::new(&head, opened);
        assert!(timer.rearm(&pinging, opened, &head));
        std::thread::sleep(ms(50));
        assert!(!timer.rearm(&pinging, opened, &head), "no request head within the header timeout");

        let stalled = h2();
        stalled.outbox.response_began();
        stalled.activity.response_began();
        stalled.outbox.handed();
        let thin = config_with_idle(30);
        let mut timer = Timer::new(&thin, opened);
        std::thread::sleep(ms(50));
        stalled.activity.touch(); // a PING
        assert!(!timer.rearm(&stalled, opened, &thin), "a response stalled on the window for --timeout");

        let held = h2();
        held.outbox.response_began(); // a long-poll: nothing to send yet
        held.activity.response_began();
        let mut timer = Timer::new(&thin, opened);
        std::thread::sleep(ms(50));
        held.activity.touch();
        assert!(timer.rearm(&held, opened, &thin), "traffic keeps a held response, as Thin's --timeout");
        let never = config(30_000, 10_000, Some(65_000), None);
        let mut forever = Timer::new(&never, opened);
        assert!(forever.rearm(&held, opened, &never), "--timeout 0: held, PINGs or not");
    }

    fn config_with_idle(idle: u64) -> ServerConfig {
        config(30_000, 10_000, Some(65_000), Some(idle))
    }
}
