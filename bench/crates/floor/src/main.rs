//! The benchmark floor: a bare hyper server with Lunar's hyper settings and allocator,
//! answering the routes of bench/apps/bench.ru and of the Comet demo with no Ruby at all.
//! Lunar's CPU per request, memory per held connection and fan-out are compared against
//! this, in the same run. Not shipped in the gem.
//!
//! - `/`, `/64k`, `/stream`: hello world, a 64 KiB body, 1 MiB streamed as 16 chunks;
//! - `/poll…`: held until the next `POST /publish`, then answered with its body;
//! - `/stats`: `{"polls":N}`, the held count (the Comet demo's format).
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
use tokio::sync::oneshot;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CHUNK: usize = 64 * 1024;

type Held = Arc<Mutex<Vec<oneshot::Sender<Bytes>>>>;

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
            held.lock().unwrap().push(tx);
            match rx.await {
                Ok(message) => full(message),
                Err(_) => full(Bytes::new()),
            }
        }
        "/publish" => {
            let message = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let waiting = std::mem::take(&mut *held.lock().unwrap());
            let reached = waiting.into_iter().filter_map(|tx| tx.send(message.clone()).ok()).count();
            full(Bytes::from(format!("{{\"reached\":{reached}}}")))
        }
        "/stats" => {
            let mut held = held.lock().unwrap();
            held.retain(|tx| !tx.is_closed());
            full(Bytes::from(format!("{{\"polls\":{},\"streams\":0}}", held.len())))
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
