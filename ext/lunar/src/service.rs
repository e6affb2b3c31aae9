//! The per-request path on the I/O side: check limits, read the body, queue the job for
//! Ruby, and await its reply.

use std::fmt;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::http::{Request, Response, StatusCode};
use tokio::sync::oneshot;

use crate::disconnect::DisconnectWatch;
use crate::intake::{self, BodyError};
use crate::job::{ConnectionInfo, RequestJob};
use crate::reply::{plain, Reply, ReplyBody};
use crate::server::Shared;

/// Returned to hyper to end the connection without (more) response bytes.
#[derive(Debug)]
pub struct CloseConnection;

impl fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed by the application")
    }
}

impl std::error::Error for CloseConnection {}

pub async fn handle(
    req: Request<Incoming>,
    connection: Arc<ConnectionInfo>,
    shared: Arc<Shared>,
) -> Result<Response<ReplyBody>, CloseConnection> {
    // A request with both Content-Length and Transfer-Encoding never gets here as such:
    // hyper lets chunked framing win, drops Content-Length and closes the connection after
    // the response (RFC 9112 §6.1), so nothing smuggled after the body is ever parsed.
    let (head, body) = req.into_parts();
    let body = match intake::read_body(body, &head.headers, &shared.config).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, true)),
        Err(BodyError::Io) => return Err(CloseConnection),
    };
    let (reply, answer) = oneshot::channel();
    let id = shared.next_id();
    if shared.queue.push_request(RequestJob { id, head, body, connection, reply }).is_err() {
        return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, false));
    }
    // From here until Ruby finishes the response, this request's connection ending is news
    // for Ruby (async.close): dropping this future drops the watch armed.
    let watch = DisconnectWatch::new(id, shared.clone());
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
