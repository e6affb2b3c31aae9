//! wsload: many WebSocket clients for bench/websocket.rb, from source address 127.0.0.SRC
//! (one process stays under the 20,000 open-file limit; the orchestrator runs several).
//!
//! - `hold PORT CONNS SRC PATH WAIT`: opens CONNS WebSockets to PATH, prints
//!   `open OK FAILED MILLISECONDS`, waits up to WAIT seconds for one message on each, then
//!   prints `recv OK MISSING 0` and `times T1 T2 …` (microseconds since the Unix epoch,
//!   when each message arrived): the output of bench/crates/holdconns.
//! - `echo PORT CONNS SRC PATH WAIT`: opens CONNS WebSockets, then each sends a message and
//!   waits for its echo, again and again, for WAIT seconds; prints `echo ROUND_TRIPS`.
//!
//! Loopback only; bounded in count and time; exits by itself.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

const CONNECTING_AT_ONCE: usize = 200;

type Socket = WebSocketStream<TcpStream>;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: lunar-wsload hold|echo PORT CONNS SRC PATH WAIT_SECONDS (bad {name})");
        std::process::exit(2)
    })
}

async fn open(port: u16, src: u8, path: Arc<String>) -> Option<Socket> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, src), 0))).ok()?;
    let stream = socket.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await.ok()?;
    let url = format!("ws://127.0.0.1:{port}{path}");
    // A lean client: tungstenite's default read buffer (128 KiB) per socket would make the
    // load tool, not the server, the slow side of a 10,000-socket fan-out.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    client_async_with_config(url, stream, Some(config)).await.ok().map(|(ws, _)| ws)
}

fn now_us() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode: String = arg(&args, 0, "MODE");
    let port: u16 = arg(&args, 1, "PORT");
    let conns: usize = arg(&args, 2, "CONNS");
    let src: u8 = arg(&args, 3, "SRC");
    let path = Arc::new(arg::<String>(&args, 4, "PATH"));
    let wait: u64 = arg(&args, 5, "WAIT_SECONDS");

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let opening: Vec<_> = (0..conns)
        .map(|_| {
            let (gate, path) = (gate.clone(), path.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.ok()?;
                tokio::time::timeout(Duration::from_secs(30), open(port, src, path)).await.ok()?
            })
        })
        .collect();
    let mut sockets = Vec::with_capacity(conns);
    for task in opening {
        if let Ok(Some(ws)) = task.await {
            sockets.push(ws);
        }
    }
    println!("open {} {} {}", sockets.len(), conns - sockets.len(), started.elapsed().as_millis());
    match mode.as_str() {
        "echo" => echo(sockets, wait).await,
        _ => hold(sockets, wait).await,
    }
}

/// Waits for one message on each socket; prints when each arrived.
async fn hold(sockets: Vec<Socket>, wait: u64) {
    let held = sockets.len();
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
                loop {
                    match tokio::time::timeout_at(deadline, ws.next()).await {
                        Ok(Some(Ok(Message::Text(_) | Message::Binary(_)))) => return (Some(now_us()), ws),
                        Ok(Some(Ok(_))) => continue, // pings
                        _ => return (None, ws),
                    }
                }
            })
        })
        .collect();
    let mut times = Vec::with_capacity(held);
    let mut keep = Vec::with_capacity(held); // held open until everyone is done
    for r in readers {
        if let Ok((at, ws)) = r.await {
            times.extend(at);
            keep.push(ws);
        }
    }
    println!("recv {} {} 0", times.len(), held - times.len());
    println!("times {}", times.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" "));
}

/// Round trips: send, wait for the echo, again, until WAIT seconds have passed.
async fn echo(sockets: Vec<Socket>, wait: u64) {
    let trips = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let trips = trips.clone();
            tokio::spawn(async move {
                while tokio::time::Instant::now() < deadline {
                    if ws.send(Message::text("ping")).await.is_err() {
                        return;
                    }
                    loop {
                        match tokio::time::timeout_at(deadline, ws.next()).await {
                            Ok(Some(Ok(Message::Text(_)))) => break,
                            Ok(Some(Ok(_))) => continue,
                            _ => return,
                        }
                    }
                    trips.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    println!("echo {}", trips.load(Ordering::Relaxed));
}
