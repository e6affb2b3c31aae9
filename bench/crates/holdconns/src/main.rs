//! holdconns: opens N HTTP/1.1 connections to 127.0.0.1:PORT from source address
//! 127.0.0.SRC, sends one `GET PATH` on each and holds them open, for bench/scale.rb.
//! One process stays under the 20,000 open-file limit; the orchestrator runs several.
//!
//! Prints `open OK FAILED MILLISECONDS` once every request is sent. Then, by MODE:
//! - `poll` (default): waits up to WAIT seconds for the first response byte on each
//!   connection and prints `recv OK MISSING REFUSED` (REFUSED: answered, but not 200) and
//!   `times T1 T2 …` (microseconds since the Unix epoch, when each 200 answer began);
//! - `sse`: reads every connection for WAIT seconds as an EventSource stream and prints
//!   `sse FRAMES GAPS CLOSED SILENT FIRSTS LASTS`: `id:` frames received, ids skipped (a
//!   frame lost), connections the server closed before the end, streams that got no
//!   frame, and the sums of each other stream's first and last id (see `Tally`).
//!
//! Loopback only; bounded in count and time; exits by itself.
//!
//! Usage: lunar-holdconns PORT CONNS SRC PATH WAIT_SECONDS [poll|sse]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Mutex, Semaphore};

const CONNECTING_AT_ONCE: usize = 200; // EventMachine listens with a backlog of 100

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: lunar-holdconns PORT CONNS SRC PATH WAIT_SECONDS (bad {name})");
        std::process::exit(2)
    })
}

async fn open(port: u16, src: u8, request: Arc<Vec<u8>>) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, src), 0)))?;
    let mut stream = socket.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    stream.write_all(&request).await?;
    Ok(stream)
}

fn now_us() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = arg(&args, 0, "PORT");
    let conns: usize = arg(&args, 1, "CONNS");
    let src: u8 = arg(&args, 2, "SRC");
    let path: String = arg(&args, 3, "PATH");
    let wait: u64 = arg(&args, 4, "WAIT_SECONDS");
    let request = Arc::new(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes());

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let failed = Arc::new(AtomicUsize::new(0));
    let times = Arc::new(Mutex::new(Vec::with_capacity(conns)));
    let mut opening = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (gate, request) = (gate.clone(), request.clone());
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            tokio::time::timeout(Duration::from_secs(30), open(port, src, request)).await.ok()?.ok()
        }));
    }
    let mut streams = Vec::with_capacity(conns);
    for task in opening {
        match task.await.ok().flatten() {
            Some(s) => streams.push(s),
            None => {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    println!("open {} {} {}", streams.len(), failed.load(Ordering::Relaxed), started.elapsed().as_millis());

    if args.get(5).map(String::as_str) == Some("sse") {
        return sse(streams, wait).await;
    }

    let held = streams.len();
    let refused = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::with_capacity(held);
    for mut stream in streams {
        let times = times.clone();
        let refused = refused.clone();
        readers.push(tokio::spawn(async move {
            let mut status = [0u8; 12];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(wait), stream.read(&mut status)).await {
                let at = now_us();
                // The rest of "HTTP/1.1 200" normally came in the same read; finish it if not.
                let mut got = n;
                while got > 0 && got < status.len() {
                    match stream.read(&mut status[got..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(m) => got += m,
                    }
                }
                if &status[..got] == b"HTTP/1.1 200" {
                    times.lock().await.push(at);
                } else if got > 0 {
                    refused.fetch_add(1, Ordering::Relaxed); // a 503: not a delivered message
                }
            }
            stream // held open until everyone is done
        }));
    }
    let mut keep = Vec::with_capacity(held);
    for r in readers {
        if let Ok(s) = r.await {
            keep.push(s);
        }
    }
    let times = times.lock().await;
    let refused = refused.load(Ordering::Relaxed);
    println!("recv {} {} {}", times.len(), held - times.len() - refused, refused);
    let list: Vec<String> = times.iter().map(|t| t.to_string()).collect();
    println!("times {}", list.join(" "));
}

/// What EventSource streams received, summed over streams. A frame missing without a gap
/// after it was missed at the start (the first id is not 1) or at the end (the last id is
/// not the last published), which the orchestrator, knowing how many were published, tells
/// apart from `firsts` and `lasts`.
#[derive(Default)]
struct Tally {
    frames: u64,
    gaps: u64,
    closed: u64,
    /// Streams that got no frame at all.
    silent: u64,
    /// The sums of each stream's first and last id (streams with frames).
    firsts: u64,
    lasts: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.frames += other.frames;
        self.gaps += other.gaps;
        self.closed += other.closed;
        self.silent += other.silent;
        self.firsts += other.firsts;
        self.lasts += other.lasts;
    }
}

/// Reads each stream as EventSource for `wait` seconds, counting `id: N` lines.
async fn sse(streams: Vec<TcpStream>, wait: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let readers: Vec<_> = streams.into_iter().map(|stream| tokio::spawn(read_sse(stream, deadline))).collect();
    let mut total = Tally::default();
    for r in readers {
        if let Ok(tally) = r.await {
            total.add(tally);
        }
    }
    let Tally { frames, gaps, closed, silent, firsts, lasts } = total;
    println!("sse {frames} {gaps} {closed} {silent} {firsts} {lasts}");
}

/// One stream's tally, read until `deadline` or until the server closes it.
async fn read_sse(mut stream: TcpStream, deadline: tokio::time::Instant) -> Tally {
    let mut tally = Tally::default();
    let (mut first, mut last) = (None::<u64>, None::<u64>);
    let mut buf = vec![0u8; 16 * 1024];
    let mut partial = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => break, // the soak is over
            Ok(Ok(0)) | Ok(Err(_)) => {
                tally.closed = 1;
                break;
            }
            Ok(Ok(n)) => {
                partial.extend_from_slice(&buf[..n]);
                while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).collect();
                    if let Some(id) = line.strip_prefix(b"id: ").and_then(|r| std::str::from_utf8(r).ok()).and_then(|r| r.trim().parse::<u64>().ok()) {
                        tally.frames += 1;
                        if let Some(prev) = last {
                            tally.gaps += id.saturating_sub(prev + 1);
                        }
                        first.get_or_insert(id);
                        last = Some(id);
                    }
                }
            }
        }
    }
    match first.zip(last) {
        Some((first, last)) => (tally.firsts, tally.lasts) = (first, last),
        None => tally.silent = 1,
    }
    tally
}
