//! Server settings as plain Rust data, read once from Ruby when the server starts.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::error::{Error, Result};

/// Everything the I/O side needs to know; no Ruby values inside. Ruby's option table
/// (lib/lunar/process/options.rb) holds every default: `ruby::server_config` reads each
/// value from it, and `ServerConfig::default()` exists for Rust's own tests.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `tcp://host:port`, `ssl://host:port?cert=PATH&key=PATH` or `unix:///path`, as the
    /// user wrote them.
    pub binds: Vec<String>,
    /// Listening sockets this process inherited, by the bind they serve (a cluster master
    /// bound them before forking, or systemd passed them).
    pub inherited: HashMap<String, RawFd>,
    /// tokio worker threads (accept, parse, read bodies, write responses); 0: none, the Ruby
    /// threads drive the runtime themselves (`net::driver`, inline mode).
    pub io_threads: usize,
    /// Bound of the dispatch queue; a request past it is answered 503 at once.
    pub queue_capacity: usize,
    /// Largest request body accepted (413 past it).
    pub max_body: u64,
    /// Largest request head accepted (431 past it). hyper's floor is 8 KiB.
    pub max_header_size: usize,
    /// Thin's `--timeout`: a connection with a request under way and no traffic in either
    /// direction for this long is closed (also while an async response is held); a request
    /// body that sends nothing for this long is given up on. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A connection with no request under way (an idle keep-alive connection) is closed
    /// after this long without a byte (`persistent_timeout`). `None`: never.
    pub persistent_timeout: Option<Duration>,
    /// A new connection's first bytes must arrive within this (`first_data_timeout`).
    pub first_data_timeout: Duration,
    /// A request head, once its first bytes arrived, must be complete within this
    /// (slowloris); on HTTP/2 any byte with no request under way starts the clock.
    pub header_timeout: Duration,
    /// Request bodies larger than this are spooled to an unlinked temp file.
    pub spool_threshold: usize,
    /// Bytes a streamed response may have queued for a slow client before the writer waits.
    pub stream_buffer: usize,
    /// Bytes all of one connection's responses may have queued for it at once (HTTP/2
    /// multiplexes many): past it writers wait, and complete bodies are streamed.
    pub connection_buffer: usize,
    /// How long a writer may wait for a slow client from the reactor thread, and how long
    /// a WebSocket client may leave a control frame unread, before it is cut off.
    pub write_timeout: Duration,
    /// Largest message (and frame) a native WebSocket client may send; past it the socket
    /// closes.
    pub max_ws_message: usize,
    /// Connections held at once; past it a new connection gets a 503 and is closed.
    pub max_connections: usize,
    /// Thin's `--max-persistent-conns`: at most this many HTTP/1 connections kept alive at
    /// once (past it a response says `Connection: close`); `None`: no limit.
    pub max_persistent: Option<usize>,
    /// `PATH_INFO` for `OPTIONS *`: `""` before Rack 3.1, `"*"` from 3.1 on.
    pub asterisk_path_info: bool,
    /// A cluster worker in threaded mode whose Ruby threads are all busy waits this long
    /// before taking its next connection from the shared socket, so that an idle sibling
    /// takes it (Puma's `wait_for_less_busy_worker`). `None`: take it at once.
    pub less_busy_wait: Option<Duration>,
}

#[cfg(test)]
impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            binds: vec!["tcp://127.0.0.1:0".into()],
            inherited: HashMap::new(),
            io_threads: 1,
            queue_capacity: 1024,
            max_body: 64 * 1024 * 1024,
            max_header_size: 64 * 1024,
            idle_timeout: Some(Duration::from_secs(30)),
            persistent_timeout: Some(Duration::from_secs(65)),
            first_data_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            spool_threshold: 128 * 1024,
            stream_buffer: 1024 * 1024,
            connection_buffer: 4 * 1024 * 1024,
            write_timeout: Duration::from_secs(1),
            max_ws_message: 1024 * 1024,
            max_connections: 1024,
            max_persistent: None,
            asterisk_path_info: false,
            less_busy_wait: None,
        }
    }
}

/// A duration given in seconds by Ruby: `None` for 0 ("never", as Thin's `--timeout 0`).
/// The Ruby side checks every value at boot; this refuses what would still panic in
/// `Duration` (negative, NaN, infinite, past `Duration::MAX`) instead of trusting it.
pub fn seconds(name: &str, value: f64) -> Result<Option<Duration>> {
    if value == 0.0 {
        return Ok(None);
    }
    if value < 0.0 {
        return Err(Error::Config(format!("{name}: {value} is negative (seconds, 0 for never)")));
    }
    Duration::try_from_secs_f64(value).map(Some).map_err(|_| Error::Config(format!("{name}: {value} is not a number of seconds")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_refuse_what_duration_cannot_hold() {
        assert_eq!(seconds("timeout", 0.0).unwrap(), None);
        assert_eq!(seconds("timeout", 1.5).unwrap(), Some(Duration::from_millis(1500)));
        for bad in [-3.0, f64::INFINITY, f64::NAN, f64::MAX] {
            let error = seconds("timeout", bad).expect_err("refused").to_string();
            assert!(error.starts_with("timeout: "), "{error}");
        }
    }
}
