//! A native WebSocket (`Lunar::Topic#websocket`) on hyper's upgraded connection, framed by
//! tungstenite (no hand-written framing). What Ruby and `Topic` queue into the socket's
//! stream (`bridge::stream`, with its byte cap and cut-off) goes out one message per chunk;
//! messages the client sends go to Ruby as dispatch-queue events, at most `IN_FLIGHT` of
//! them waiting at once; pings are answered by tungstenite without Ruby. The protocol is
//! spoken to the end: a client's Close is answered with a Close echoing its code, a
//! protocol error fails the connection with the Close frame whose code says why (1002,
//! 1007, 1009), and a stop closes with 1001. When the socket ends, dropping its stream
//! (its disconnect watch armed) tells Ruby: `async.close`.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::notices::{Notice, Notices};
use crate::bridge::stream::ChunkStream;

/// A client's messages waiting for Ruby at once; past it the socket is not read (the
/// client's own TCP window then slows it down).
const IN_FLIGHT: usize = 64;

/// tungstenite's buffers: a 4 KiB read buffer (its default, 128 KiB, would be allocated for
/// every subscriber), no write batching (each message leaves at once), and a limit on what
/// a client may send in one message or frame. What waits to be written is bounded by the
/// loop below instead: one message (its size capped by the stream) and one pong, since a
/// ping is not followed by another read until its pong is out.
fn config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0).max_message_size(Some(max_message)).max_frame_size(Some(max_message))
}

/// Where a socket's messages go: the request they belong to, and whether the app listens.
pub struct MessageRoute {
    pub id: u64,
    pub messages: bool,
    pub notices: Arc<Notices>,
}

/// The limits one socket lives by.
pub struct Limits {
    /// The largest message (and frame) the client may send.
    pub max_message: usize,
    /// How long a control frame (a pong, a close) may wait for the client to read it.
    pub write_timeout: Duration,
}

pub async fn serve(upgrade: OnUpgrade, mut outgoing: Box<ChunkStream>, route: MessageRoute, connection: Arc<ConnectionInfo>, limits: Limits) {
    let Ok(upgraded) = upgrade.await else { return };
    let mut socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config(limits.max_message))).await;
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    let ending = loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(text))) => forward(&route, &in_flight, Bytes::from(text)).await,
                Some(Ok(Message::Binary(data))) => forward(&route, &in_flight, data).await,
                // tungstenite queued the pong: it goes out before anything more is read, so a
                // client that pings and never reads stops being read, and is cut past the timeout.
                Some(Ok(Message::Ping(_))) => {
                    if !matches!(timeout(limits.write_timeout, socket.flush()).await, Ok(Ok(()))) {
                        break Ending::Silently;
                    }
                }
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                // The client's close (tungstenite queued the echo of its code): answer it.
                Some(Ok(Message::Close(_))) => break Ending::Echo,
                Some(Err(e)) => break failure(&e).map_or(Ending::Silently, Ending::With),
                None => break Ending::Silently,
            },
            chunk = poll_fn(|cx| outgoing.poll_chunk(cx)) => match chunk {
                Some(Ok(data)) => {
                    // A client that stopped reading blocks the send: the cut must still end it.
                    let sent = tokio::select! {
                        sent = socket.send(message(data)) => sent.is_ok(),
                        _ = poll_fn(|cx| connection.poll_cut(cx)) => false,
                    };
                    if !sent {
                        break Ending::Silently;
                    }
                }
                // Ruby ended the stream (a stop), or it failed: close the socket, going away.
                None | Some(Err(_)) => break Ending::With(close_frame(CloseCode::Away, "server going away")),
            },
            _ = poll_fn(|cx| connection.poll_cut(cx)) => break Ending::Silently, // cut off as too slow
        }
    };
    // The closing handshake, bounded: a client that reads nothing does not hold the socket.
    let _ = match ending {
        // tungstenite refuses to send after the peer's Close; flushing sends the echo it queued.
        Ending::Echo => timeout(limits.write_timeout, socket.flush()).await,
        Ending::With(frame) => timeout(limits.write_timeout, socket.close(Some(frame))).await,
        Ending::Silently => return,
    };
}

/// How a socket's loop ended, and so what the client is told.
enum Ending {
    /// The client closed: its Close is echoed.
    Echo,
    /// A Close frame saying why (a protocol error, the server going away).
    With(CloseFrame),
    /// No one to tell, or no time to: the connection just closes.
    Silently,
}

/// The Close frame that fails a connection for `error` (RFC 6455 §7.4.1), or `None` when
/// there is no one to tell (the client vanished, the socket broke).
fn failure(error: &WsError) -> Option<CloseFrame> {
    let (code, reason) = match error {
        WsError::Capacity(_) => (CloseCode::Size, "message too big"),
        WsError::Utf8(_) => (CloseCode::Invalid, "invalid UTF-8"),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        WsError::Protocol(_) => (CloseCode::Protocol, "protocol error"),
        _ => return None,
    };
    Some(close_frame(code, reason))
}

fn close_frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame { code, reason: Utf8Bytes::from_static(reason) }
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
