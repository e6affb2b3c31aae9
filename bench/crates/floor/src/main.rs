//! The benchmark floor: a bare hyper server answering the same three routes as
//! bench/apps/bench.ru, with no Ruby at all. Lunar's CPU per request is compared against
//! this, in the same run. Not shipped in the gem.
//!
//! Usage: lunar-floor PORT [IO_THREADS]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const CHUNK: usize = 64 * 1024;

fn full(data: Bytes) -> BoxBody<Bytes, Infallible> {
    Full::new(data).boxed()
}

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let body = match req.uri().path() {
        "/64k" => full(Bytes::from(vec![b'x'; CHUNK])),
        "/stream" => {
            // 1 MiB as 16 chunks of 64 KiB, no Content-Length: chunked, like a Rack `each` body.
            let chunks = (0..16).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; CHUNK]))));
            StreamBody::new(futures_stream(chunks)).boxed()
        }
        _ => full(Bytes::from_static(b"Hello world\n")),
    };
    let mut res = Response::new(body);
    res.headers_mut().insert("content-type", "text/plain".parse().unwrap());
    Ok(res)
}

/// An iterator as a `Stream`, without pulling in the futures crate.
fn futures_stream<I: Iterator + Unpin>(iter: I) -> IterStream<I> {
    IterStream(iter)
}

struct IterStream<I>(I);

impl<I: Iterator + Unpin> tokio_stream_shim::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

mod tokio_stream_shim {
    pub use futures_core::Stream;
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(9393);
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        eprintln!("lunar-floor listening on tcp://127.0.0.1:{port}");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(answer)).await;
            });
        }
    });
}
