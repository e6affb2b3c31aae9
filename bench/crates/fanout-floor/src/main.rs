//! The fan-out floor: the least a server can do to deliver one message to N held long-polls
//! on this machine, with no HTTP library and no Ruby. It holds every connection whose
//! request is not `POST /publish` or `GET /stats`, and on a publish writes one small, fixed
//! HTTP response to all of them, each from its own task (so the runtime's threads share the
//! writes, as Lunar's connection tasks do). What it costs is the kernel's per-socket write.
//! Speaks just enough of the Comet demo's URLs for bench/scale.rb; the request heads are
//! only scanned for their end. A benchmark tool, not shipped in the gem.
//!
//! Usage: lunar-fanout-floor PORT [THREADS]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MESSAGE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n[{\"id\":1,\"text\":\"fan-out floor...\"}]";

type Held = Arc<Mutex<Vec<TcpStream>>>;

/// Reads one request head; returns its first line and, for a publish, drains its body.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut byte).await.ok().filter(|&n| n > 0)?;
        head.extend_from_slice(&byte[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let length: usize = text.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))).unwrap_or(0);
    let mut have = head.len() - end;
    while have < length {
        have += stream.read(&mut byte).await.ok().filter(|&n| n > 0)?;
    }
    Some(text.lines().next().unwrap_or("").to_owned())
}

async fn respond(stream: &mut TcpStream, body: &str) {
    let reply = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = stream.write_all(reply.as_bytes()).await;
}

async fn connection(mut stream: TcpStream, held: Held) {
    let Some(line) = read_request(&mut stream).await else { return };
    if line.starts_with("POST /publish") {
        let subscribers = std::mem::take(&mut *held.lock().unwrap());
        let reached = subscribers.len();
        for mut subscriber in subscribers {
            tokio::spawn(async move {
                let _ = subscriber.write_all(MESSAGE).await;
            });
        }
        respond(&mut stream, &format!("{{\"reached\":{reached}}}")).await;
    } else if line.starts_with("GET /stats") {
        let polls = held.lock().unwrap().len();
        respond(&mut stream, &format!("{{\"polls\":{polls},\"streams\":0}}")).await;
    } else {
        held.lock().unwrap().push(stream);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(9494);
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let held: Held = Arc::default();
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(stream, held.clone()));
        }
    });
}
