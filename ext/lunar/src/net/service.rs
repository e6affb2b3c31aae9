//! The per-request path on the I/O side, as a hyper service: refuse what must not reach the
//! app, read the body (`intake`), queue the job for a Ruby thread, and await its reply while
//! hyper watches the connection. If the client leaves (HTTP/1 EOF, an HTTP/2 reset), hyper
//! drops this future, and its armed `DisconnectWatch` tells Ruby.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::{header, Method, Request, Response, StatusCode};
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
        return Ok(body::prepare(plain(StatusCode::BAD_REQUEST, true), false)); // RFC 9112 §3.2
    }
    let head_request = req.method() == Method::HEAD;
    let (parts, incoming) = req.into_parts();
    // Boxed: a held request's future should not carry the body reader's state.
    let body = match Box::pin(intake::read_body(incoming, &parts.headers, &shared.config)).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Ok(body::prepare(plain(StatusCode::PAYLOAD_TOO_LARGE, true), false)),
        Err(BodyError::Io) => return Err(CloseConnection),
    };
    let reply = dispatch(Box::new(parts), body, connection, &shared).await?;
    Ok(body::prepare(reply, head_request))
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
