//! Handing one request to Ruby and awaiting its answer on the I/O side, while watching for
//! the client to leave (a held request must notice that without reading anything).

use http::request::Parts;
use http::{Response, StatusCode};
use tokio::sync::oneshot;

use crate::connection::Conn;
use crate::disconnect::DisconnectWatch;
use crate::job::{RequestBody, RequestJob};
use crate::reply::{plain, Reply, ReplyBody};
use crate::socket::Socket;

/// Queues the request for a Ruby thread and waits for the reply. `None`: close the
/// connection without a response (the app said so, or the client is gone).
pub async fn dispatch<S: Socket>(conn: &mut Conn<S>, head: Box<Parts>, body: RequestBody) -> Option<Box<Response<ReplyBody>>> {
    let (reply, answer) = oneshot::channel();
    let id = conn.shared.next_id();
    let job = RequestJob { id, head, body, connection: conn.info.clone(), reply };
    if conn.shared.queue.push_request(job).is_err() {
        return Some(plain(StatusCode::SERVICE_UNAVAILABLE, false));
    }
    // From here until Ruby finishes the response, this request's connection ending is news
    // for Ruby (async.close): returning early drops the watch armed.
    let watch = DisconnectWatch::new(id, conn.shared.clone());
    let answer = tokio::select! {
        answer = answer => answer,
        _ = conn.peer_closed() => return None,
    };
    match answer {
        Ok(Reply::Response(mut res)) => {
            match res.body_mut() {
                ReplyBody::Chunks(stream) => stream.watch(watch),
                _ => watch.disarm(),
            }
            Some(res)
        }
        Ok(Reply::Published(res)) => {
            drop(watch); // armed: Ruby learns the exchange ended and finishes it
            Some(res)
        }
        Ok(Reply::Close) => {
            watch.disarm();
            None
        }
        // The Ruby side let go of the request unanswered (a killed thread, a stop).
        Err(_) => {
            watch.disarm();
            Some(plain(StatusCode::SERVICE_UNAVAILABLE, true))
        }
    }
}
