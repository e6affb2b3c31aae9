//! A native WebSocket (`Lunar::Topic#websocket`) on hyper's upgraded connection, framed by
//! tungstenite (no hand-written framing). What Ruby and `Topic` queue into the socket's
//! stream (`bridge::stream`, with its byte cap and cut-off) goes out one message per chunk;
//! messages the client sends go to Ruby as dispatch-queue events, at most `IN_FLIGHT` of
//! them waiting at once; pings are answered by tungstenite without Ruby. When the socket
//! ends, dropping its stream (its disconnect watch armed) tells Ruby: `async.close`.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::notices::{Notice, Notices};
use crate::bridge::stream::ChunkStream;

/// A client's messages waiting for Ruby at once; past it the socket is not read (the
/// client's own TCP window then slows it down).
const IN_FLIGHT: usize = 64;

/// tungstenite's buffers: a 4 KiB read buffer (its default, 128 KiB, would be allocated for
/// every subscriber), no write batching (each message leaves at once), and a limit on what
/// a client may send in one message or frame (past it, the socket closes).
fn config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0).max_message_size(Some(max_message)).max_frame_size(Some(max_message))
}

/// Where a socket's messages go: the request they belong to, and whether the app listens.
pub struct MessageRoute {
    pub id: u64,
    pub messages: bool,
    pub notices: Arc<Notices>,
}

pub async fn serve(upgrade: OnUpgrade, mut outgoing: Box<ChunkStream>, route: MessageRoute, connection: Arc<ConnectionInfo>, max_message: usize) {
    let Ok(upgraded) = upgrade.await else { return };
    let mut socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config(max_message))).await;
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => forward(&route, &in_flight, Bytes::from(text)).await,
                Some(Ok(Message::Binary(data))) => forward(&route, &in_flight, data).await,
                // Pings are answered by tungstenite; pongs need nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                // A close, the end, or a protocol error (a malformed or oversized frame).
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            chunk = poll_fn(|cx| outgoing.poll_chunk(cx)) => match chunk {
                Some(Ok(data)) => {
                    // A client that stopped reading blocks the send: the cut must still end it.
                    let sent = tokio::select! {
                        sent = socket.send(message(data)) => sent.is_ok(),
                        _ = poll_fn(|cx| connection.poll_cut(cx)) => false,
                    };
                    if !sent {
                        break;
                    }
                }
                // Ruby ended the stream (a stop), or it failed: close the socket.
                None | Some(Err(_)) => {
                    let _ = socket.close(None).await;
                    break;
                }
            },
            _ = poll_fn(|cx| connection.poll_cut(cx)) => break, // cut off as too slow
        }
    }
}

async fn forward(route: &MessageRoute, in_flight: &Arc<Semaphore>, data: Bytes) {
    if !route.messages {
        return; // the app gave no block
    }
    if let Ok(permit) = in_flight.clone().acquire_owned().await {
        route.notices.push(Notice::Message { id: route.id, data, permit });
    }
}

/// Text when it is UTF-8 (what a browser's `onmessage` expects), binary otherwise.
fn message(data: Bytes) -> Message {
    match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(data),
    }
}
