//! The per-request path on the I/O side, as a hyper service: refuse what must not reach the
//! app, read the body (`intake`), queue the job for a Ruby thread, and await its reply while
//! hyper watches the connection. If the client leaves (HTTP/1 EOF, an HTTP/2 reset), hyper
//! drops this future, and its armed `DisconnectWatch` tells Ruby.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::bridge::disconnect::DisconnectWatch;
use crate::bridge::job::{ConnectionInfo, RequestBody, RequestJob};
use crate::bridge::reply::{plain, Reply, ReplyBody};
use crate::net::body::{self, ResponseBody};
use crate::net::intake::{self, BodyError};
use crate::net::server::Shared;

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

pub async fn handle(req: Request<Incoming>, connection: Arc<ConnectionInfo>, shared: Arc<Shared>) -> Result<Response<ResponseBody>, CloseConnection> {
    // What hyper parses but leaves to the server. A request with both Content-Length and
    // Transfer-Encoding arrives here chunked, its Content-Length removed, and hyper closes
    // the connection after it (RFC 9112 §6.1), so nothing smuggled after it is read.
    if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
        return Ok(body::prepare(*plain(StatusCode::BAD_REQUEST, true), false)); // RFC 9112 §3.2
    }
    let head_request = req.method() == Method::HEAD;
    let wants_keep_alive = wants_keep_alive(&req);
    let (parts, incoming) = req.into_parts();
    // Boxed: a held request's future should not carry the body reader's state.
    let body = match Box::pin(intake::read_body(incoming, &parts.headers, &shared.config)).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Ok(body::prepare(*plain(StatusCode::PAYLOAD_TOO_LARGE, true), false)),
        Err(BodyError::Io) => return Err(CloseConnection),
    };
    let mut reply = dispatch(Box::new(parts), body, connection.clone(), &shared).await?;
    if wants_keep_alive && !shared.keep_alive_allowed(&connection) {
        // hyper closes the connection after a response that says so.
        reply.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(body::prepare(*reply, head_request))
}

/// Whether the client lets an HTTP/1 connection stay open after this request (HTTP/1.1
/// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`). HTTP/2
/// connections are not counted.
fn wants_keep_alive(req: &Request<Incoming>) -> bool {
    let says = |token: &str| req.headers().get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    });
    match req.version() {
        Version::HTTP_11 => !says("close"),
        Version::HTTP_10 => says("keep-alive"),
        _ => false,
    }
}

/// Queues the request for a Ruby thread and waits for the reply.
async fn dispatch(head: Box<Parts>, body: RequestBody, connection: Arc<ConnectionInfo>, shared: &Shared) -> Result<Box<Response<ReplyBody>>, CloseConnection> {
    let (reply, answer) = oneshot::channel();
    let id = shared.next_id();
    if shared.queue.push_request(RequestJob { id, head, body, connection, reply }).is_err() {
        return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, false));
    }
    // From here until Ruby finishes the response, this request's connection ending is news
    // for Ruby (async.close): dropping this future drops the watch armed.
    let watch = DisconnectWatch::new(id, shared.queue.clone());
    match answer.await {
        Ok(Reply::Response(mut res)) => {
            match res.body_mut() {
                ReplyBody::Chunks(stream) => stream.watch(watch),
                _ => watch.disarm(),
            }
            Ok(res)
        }
        Ok(Reply::Published(res)) => {
            drop(watch); // armed: Ruby learns the exchange ended and finishes it
            Ok(res)
        }
        Ok(Reply::Close) => {
            watch.disarm();
            Err(CloseConnection)
        }
        // The Ruby side let go of the request unanswered (a killed thread, a stop).
        Err(_) => {
            watch.disarm();
            Ok(plain(StatusCode::SERVICE_UNAVAILABLE, true))
        }
    }
}
