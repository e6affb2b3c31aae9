//! The benchmark floor: a bare hyper server with Lunar's hyper settings and allocator,
//! answering the routes of bench/apps/bench.ru and of the Comet demo with no Ruby at all.
//! Lunar's CPU per request, memory per held connection and fan-out are compared against
//! this, in the same run. Not shipped in the gem.
//!
//! - `/`, `/64k`, `/stream`: hello world, a 64 KiB body, 1 MiB streamed as 16 chunks;
//! - `/poll…`: held until the next `POST /publish`, then answered with its body;
//! - `/events…`: an EventSource stream, sent each `POST /publish` body as a frame;
//! - `/stats`: `{"polls":N,"streams":M}`, the held counts (the Comet demo's format).
//!
//! Usage: lunar-floor PORT [IO_THREADS]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CHUNK: usize = 64 * 1024;

/// The held long-polls, and the EventSource streams' senders.
#[derive(Default)]
struct Subscribers {
    polls: Vec<oneshot::Sender<Bytes>>,
    streams: Vec<mpsc::UnboundedSender<Bytes>>,
    /// The last message's id (the Comet demo numbers its messages from 1).
    last_id: u64,
}

type Held = Arc<Mutex<Subscribers>>;

fn full(data: Bytes) -> BoxBody<Bytes, Infallible> {
    Full::new(data).boxed()
}

async fn answer(req: Request<hyper::body::Incoming>, held: Held) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = match path.as_str() {
        "/64k" => full(Bytes::from(vec![b'x'; CHUNK])),
        "/stream" => {
            // 1 MiB as 16 chunks of 64 KiB, no Content-Length: chunked, like a Rack `each` body.
            let chunks = (0..16).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; CHUNK]))));
            StreamBody::new(IterStream(chunks)).boxed()
        }
        "/poll" => {
            let (tx, rx) = oneshot::channel();
            held.lock().unwrap().polls.push(tx);
            match rx.await {
                Ok(message) => full(message),
                Err(_) => full(Bytes::new()),
            }
        }
        "/publish" => {
            let message = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let mut held = held.lock().unwrap();
            let waiting = std::mem::take(&mut held.polls);
            let mut reached = waiting.into_iter().filter_map(|tx| tx.send(message.clone()).ok()).count();
            // The Comet demo's frame: `id`, then the message as JSON (the bench's texts need no escaping).
            held.last_id += 1;
            let id = held.last_id;
            let text = String::from_utf8_lossy(message.strip_prefix(b"msg=").unwrap_or(&message));
            let frame = Bytes::from(format!("id: {id}\ndata: {{\"id\":{id},\"text\":\"{text}\"}}\n\n"));
            held.streams.retain(|tx| tx.send(frame.clone()).is_ok());
            reached += held.streams.len();
            full(Bytes::from(format!("{{\"reached\":{reached}}}")))
        }
        "/events" => {
            let (tx, rx) = mpsc::unbounded_channel();
            let _ = tx.send(Bytes::from_static(b"retry: 1000\n\n"));
            held.lock().unwrap().streams.push(tx);
            let mut res = Response::new(StreamBody::new(Frames(rx)).boxed());
            res.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
            res.headers_mut().insert("cache-control", "no-cache".parse().unwrap());
            return Ok(res);
        }
        "/stats" => {
            let mut held = held.lock().unwrap();
            held.polls.retain(|tx| !tx.is_closed());
            held.streams.retain(|tx| !tx.is_closed());
            full(Bytes::from(format!("{{\"polls\":{},\"streams\":{}}}", held.polls.len(), held.streams.len())))
        }
        _ => full(Bytes::from_static(b"Hello world\n")),
    };
    let mut res = Response::new(body);
    res.headers_mut().insert("content-type", "text/plain".parse().unwrap());
    Ok(res)
}

/// An iterator as a `Stream`, without pulling in the futures crate.
struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

/// An EventSource stream's frames, as they are published.
struct Frames(mpsc::UnboundedReceiver<Bytes>);

impl futures_core::Stream for Frames {
    type Item = Result<Frame<Bytes>, Infallible>;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|frame| frame.map(|data| Ok(Frame::data(data))))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(9393);
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    // Lunar's settings (ext/lunar/src/net/server.rs) and its way of choosing HTTP/1 or h2c
    // (net/connection.rs, `Protocol`), so the difference is Lunar's own work.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).max_buf_size(64 * 1024).title_case_headers(true);
    let builders = Arc::new((builder.clone().http1_only(), builder.http2_only()));
    let held: Held = Arc::default();
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        eprintln!("lunar-floor listening on tcp://127.0.0.1:{port}");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            let (builders, held) = (builders.clone(), held.clone());
            tokio::spawn(async move {
                let mut start = [0u8; 24];
                let h2 = matches!(stream.peek(&mut start).await, Ok(24)) && &start == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
                let builder = if h2 { &builders.1 } else { &builders.0 };
                let service = service_fn(move |req| answer(req, held.clone()));
                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
}
