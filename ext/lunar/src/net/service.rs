//! The per-request path on the I/O side, as a hyper service: refuse what must not reach the
//! app, read the body (`intake`), queue the job for a Ruby thread, and await its reply while
//! hyper watches the connection. If the client leaves (an HTTP/2 reset; an HTTP/1 EOF once
//! no complete answer is owed, see `bridge::half_close`), hyper drops this future, and its
//! armed `DisconnectWatch` tells Ruby. A hijacked request hands its connection over through
//! hyper's upgrade (`hijack`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::{Body as _, Incoming};
use hyper::upgrade::OnUpgrade;
use tokio::sync::oneshot;

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::disconnect::DisconnectWatch;
use crate::bridge::handover::Giver;
use crate::bridge::job::{RequestBody, RequestJob};
use crate::bridge::reply::{plain, switching_protocols, Reply, ReplyBody};
use crate::bridge::stream::ChunkStream;
use crate::config::ServerConfig;
use crate::log::Throttled;
use crate::net::body::{self, OpenResponse, ResponseBody};
use crate::net::intake::{self, BodyError};
use crate::net::relay;
use crate::net::state::ServerState;
use crate::net::websocket;

/// Returned to hyper to end the connection without (more) response bytes (HTTP/1: close;
/// HTTP/2: reset the stream).
#[derive(Debug)]
pub struct CloseConnection;

impl fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed without a response")
    }
}

impl std::error::Error for CloseConnection {}

/// hyper's service: the request taken apart here, before any await, so that the future a
/// held request keeps alive (hyper boxes one per request, and a held long-poll keeps it for
/// its whole life) carries a boxed head rather than the whole `Request` its arguments would.
pub fn handle(
    mut req: Request<Incoming>,
    connection: Arc<ConnectionInfo>,
    state: Arc<ServerState>,
) -> impl Future<Output = Result<Response<ResponseBody>, CloseConnection>> + Send + 'static {
    // An HTTP/1.1 request asking for an upgrade (a WebSocket handshake) may be hijacked: keep
    // hyper's handle on the connection's handover. Other requests pay nothing for it.
    let upgrade = (req.version() == Version::HTTP_11 && req.headers().contains_key(header::UPGRADE)).then(|| hyper::upgrade::on(&mut req));
    // Here, as hyper hands the request over and before it reads again: a client that sent
    // its request and shut its write side is answered (see `bridge::half_close`).
    if req.version() < Version::HTTP_2 {
        connection.owe_answer();
    }
    let (parts, incoming) = req.into_parts();
    respond(Box::new(parts), incoming, upgrade, connection, state)
}

async fn respond(
    parts: Box<Parts>,
    incoming: Incoming,
    upgrade: Option<OnUpgrade>,
    connection: Arc<ConnectionInfo>,
    state: Arc<ServerState>,
) -> Result<Response<ResponseBody>, CloseConnection> {
    // What hyper parses but leaves to the server. A request with both Content-Length and
    // Transfer-Encoding arrives here chunked, its Content-Length removed, and hyper closes
    // the connection after it (RFC 9112 §6.1), so nothing smuggled after it is read.
    if parts.headers.get_all(header::HOST).iter().nth(1).is_some() {
        return Ok(refused(StatusCode::BAD_REQUEST, true)); // RFC 9112 §3.2
    }
    // HTTP/1 field values lose their surrounding whitespace in parsing; on HTTP/2 it would be
    // part of the value, which RFC 9113 §8.2.1 calls malformed.
    if parts.version == Version::HTTP_2 && parts.headers.values().any(|v| has_outer_whitespace(v.as_bytes())) {
        return Ok(refused(StatusCode::BAD_REQUEST, false));
    }
    // Under way until the response body is over (the connection's timers, its `Outbox`).
    let open = OpenResponse::began(&connection);
    let head_request = parts.method == Method::HEAD;
    let version = parts.version;
    // Only `--max-persistent-conns` needs to know (its header scan is skipped otherwise).
    let limit_keep_alive = state.config.max_persistent.is_some() && wants_keep_alive(parts.version, &parts.headers);
    // Boxed: a held request's future should not carry the body reader's state.
    // (A bodiless request, most of them, skips the box.)
    let body = if incoming.is_end_stream() {
        RequestBody::Empty
    } else {
        match Box::pin(intake::read_body(incoming, &parts.headers, &state.config, &connection)).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => return Ok(too_large(&parts, &state.config)),
            Err(BodyError::Malformed) => return Ok(refused(StatusCode::BAD_REQUEST, true)),
            Err(BodyError::Io) => return Err(CloseConnection),
        }
    };
    let id = state.next_id();
    let mut reply = match dispatch(id, parts, body, connection.clone(), upgrade.is_some(), &state).await? {
        Answer::Respond(reply) => reply,
        Answer::Hijack { giver, head } => return hijack(upgrade, giver, head, connection, state),
        Answer::WebSocket { head, outgoing, messages } => {
            let upgrade = upgrade.ok_or(CloseConnection)?; // Ruby only offers it on upgradable requests
            let route = websocket::MessageRoute { id, messages, notices: state.queue.notices().clone() };
            let limits = websocket::Limits { max_message: state.config.max_ws_message, write_timeout: state.config.write_timeout };
            let open = state.track_websocket();
            tokio::spawn(async move {
                let _open = open;
                websocket::serve(upgrade, outgoing, route, connection, limits).await
            });
            return Ok(body::prepare(*head, false));
        }
    };
    // hyper closes an HTTP/1 connection after a response that says so: past the keep-alive
    // limit, and once its connection is stopping (the client then opens its next connection
    // to whichever server is taking them, instead of losing a request to a close).
    if connection.is_keep_alive_ended() || (limit_keep_alive && !state.keep_alive_allowed(&connection)) {
        reply.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let mut response = body::prepare(*reply, head_request);
    if version == Version::HTTP_10 && !head_request {
        close_if_unframed(&mut response);
    }
    response.body_mut().keep_open(open);
    Ok(response)
}

/// Lunar's own answer to a request it will not pass to the app (`close`: and the connection
/// closes after it).
fn refused(status: StatusCode, close: bool) -> Response<ResponseBody> {
    body::prepare(*plain(status, close), false)
}

/// The 413 for a body over `--max-body`. It is refused before the app or the access log
/// sees it, so the log says which limit, at most once a minute (any client can send one).
fn too_large(parts: &Parts, config: &ServerConfig) -> Response<ResponseBody> {
    static BODY_TOO_LARGE: Throttled = Throttled::new(std::time::Duration::from_secs(60));
    let path = parts.uri.path();
    let path = path.get(..200).unwrap_or(path); // the client's own text: bounded
    BODY_TOO_LARGE.warn(|| format!("{} {path}: request body over --max-body ({} bytes), answered 413", parts.method, config.max_body));
    refused(StatusCode::PAYLOAD_TOO_LARGE, true)
}

/// An HTTP/1.0 response with no length can only end with the connection. hyper frames it
/// so, but has already said `Connection: keep-alive` to a client that asked for it, which
/// then waits on a connection that is about to close: say `close` instead, as Puma does.
/// (The response must be marked HTTP/1.0 too: to an HTTP/1.1 one hyper adds `keep-alive`
/// beside a `close`, before it rewrites the version for the HTTP/1.0 client.)
fn close_if_unframed(response: &mut Response<ResponseBody>) {
    if !response.headers().contains_key(header::CONTENT_LENGTH) && response.body().size_hint().exact().is_none() {
        *response.version_mut() = Version::HTTP_10;
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

fn has_outer_whitespace(value: &[u8]) -> bool {
    matches!(value.first(), Some(b' ' | b'\t')) || matches!(value.last(), Some(b' ' | b'\t'))
}

/// Whether the client lets an HTTP/1 connection stay open after this request (HTTP/1.1
/// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`). HTTP/2
/// connections are not counted.
fn wants_keep_alive(version: Version, headers: &HeaderMap) -> bool {
    let says = |token: &str| {
        headers.get_all(header::CONNECTION).iter().any(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes())))
    };
    match version {
        Version::HTTP_11 => !says("close"),
        Version::HTTP_10 => says("keep-alive"),
        _ => false,
    }
}

/// `rack.hijack`: hyper writes a 101 (the app's own, for a partial hijack; for a full one
/// a 101 the muted connection drops, since the app writes its handshake itself) and hands
/// the connection over, or, for a request without an upgrade, the head and then the
/// connection; `relay::hand_over` gives it to Ruby (the socket itself, or a relayed pair).
fn hijack(
    upgrade: Option<OnUpgrade>,
    giver: Giver,
    head: Option<Box<Response<ReplyBody>>>,
    connection: Arc<ConnectionInfo>,
    state: Arc<ServerState>,
) -> Result<Response<ResponseBody>, CloseConnection> {
    let switching = head.as_ref().is_none_or(|h| h.status() == StatusCode::SWITCHING_PROTOCOLS);
    let Some(upgrade) = upgrade.filter(|_| switching) else {
        // No upgrade: hyper writes the partial hijack's head (or, for a full hijack, an
        // empty response into the muted connection) and, told to close, gives the
        // connection back; `connection` takes it, with what hyper read past the request,
        // and gives it to `giver`.
        connection.hand_over_later(giver, head.is_none());
        let head = head.unwrap_or_else(|| {
            let mut closing = Response::new(ReplyBody::Empty);
            closing.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            Box::new(closing)
        });
        return Ok(body::prepare(*head, false));
    };
    let head = head.unwrap_or_else(|| {
        connection.mute(true);
        switching_protocols(HeaderMap::new())
    });
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        connection.mute(false); // hyper's 101 is out (dropped): from here on the app's bytes flow
        relay::hand_over_upgraded(upgraded, giver, state).await;
    });
    Ok(body::prepare(*head, false))
}

/// What Ruby answered, as the service sees it.
enum Answer {
    Respond(Box<Response<ReplyBody>>),
    Hijack { giver: Giver, head: Option<Box<Response<ReplyBody>>> },
    WebSocket { head: Box<Response<ReplyBody>>, outgoing: Box<ChunkStream>, messages: bool },
}

/// Queues the request for a Ruby thread and waits for the reply.
async fn dispatch(
    id: u64,
    head: Box<Parts>,
    body: RequestBody,
    connection: Arc<ConnectionInfo>,
    upgradable: bool,
    state: &ServerState,
) -> Result<Answer, CloseConnection> {
    let (reply, answer) = oneshot::channel();
    if state.queue.push_request(RequestJob { id, head, body, connection, reply, upgradable }).is_err() {
        return Ok(Answer::Respond(plain(StatusCode::SERVICE_UNAVAILABLE, false)));
    }
    // From here until Ruby finishes the response, this request's connection ending is news
    // for Ruby (async.close): dropping this future drops the watch armed.
    let watch = DisconnectWatch::new(id, state.queue.notices().clone());
    match answer.await {
        Ok(Reply::Response(mut res)) => {
            match res.body_mut() {
                ReplyBody::Chunks(stream) => stream.watch(watch),
                _ => watch.disarm(),
            }
            Ok(Answer::Respond(res))
        }
        Ok(Reply::Published(res)) => {
            drop(watch); // armed: Ruby learns the exchange ended and finishes it
            Ok(Answer::Respond(res))
        }
        Ok(Reply::Hijack { giver, head }) => {
            watch.disarm(); // the connection is the app's now
            Ok(Answer::Hijack { giver, head })
        }
        Ok(Reply::WebSocket { head, mut outgoing, messages }) => {
            outgoing.watch(watch); // armed until the socket ends: then async.close
            Ok(Answer::WebSocket { head, outgoing, messages })
        }
        Ok(Reply::Close) => {
            watch.disarm();
            Err(CloseConnection)
        }
        // The Ruby side let go of the request unanswered (a killed thread, a stop).
        Err(_) => {
            watch.disarm();
            Ok(Answer::Respond(plain(StatusCode::SERVICE_UNAVAILABLE, true)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(connection: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in connection {
            map.append(header::CONNECTION, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn keep_alive_is_what_the_client_asked_for() {
        assert!(wants_keep_alive(Version::HTTP_11, &headers(&[])));
        assert!(!wants_keep_alive(Version::HTTP_11, &headers(&["close"])));
        assert!(!wants_keep_alive(Version::HTTP_11, &headers(&["Upgrade, Close"])));
        assert!(!wants_keep_alive(Version::HTTP_11, &headers(&["foo", " CLOSE "])));
        assert!(wants_keep_alive(Version::HTTP_11, &headers(&["closed"]))); // a token, not a substring
        assert!(!wants_keep_alive(Version::HTTP_10, &headers(&[])));
        assert!(wants_keep_alive(Version::HTTP_10, &headers(&["Keep-Alive"])));
        assert!(!wants_keep_alive(Version::HTTP_2, &headers(&[])));
    }

    #[test]
    fn outer_whitespace_is_found() {
        assert!(has_outer_whitespace(b" a") && has_outer_whitespace(b"a\t") && has_outer_whitespace(b" "));
        assert!(!has_outer_whitespace(b"a b") && !has_outer_whitespace(b""));
    }
}
