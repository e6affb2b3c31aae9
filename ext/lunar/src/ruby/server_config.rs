//! `ServerConfig` from the options Hash `Lunar::Configuration#native_options` builds.
//!
//! Ruby's option table holds every default and checked every value at boot (one line
//! naming the option, exit 2); each key is read here as given, and a missing one is an
//! error, not a second default. What Rust cannot hold is still refused, as a
//! `Lunar::ConfigError`, rather than panicking.

use std::collections::HashMap;
use std::time::Duration;

use magnus::{Error, RHash, Ruby, TryConvert};

use crate::config::{seconds, ServerConfig};
use crate::net::limits;
use crate::ruby::error::OrRaise;

/// A value Ruby always gives (nil allowed only where `Option`).
fn get<T: TryConvert>(ruby: &Ruby, opts: RHash, key: &str) -> Result<T, Error> {
    let value: Option<magnus::Value> = opts.get(ruby.to_symbol(key));
    let value = value.ok_or_else(|| crate::error::Error::Config(format!("internal: the native option {key} is missing"))).or_raise(ruby)?;
    T::try_convert(value)
}

/// A duration in seconds, 0 meaning never.
fn duration(ruby: &Ruby, opts: RHash, key: &str) -> Result<Option<Duration>, Error> {
    seconds(key, get::<f64>(ruby, opts, key)?).or_raise(ruby)
}

/// A duration that must be given and not "never".
fn limit(ruby: &Ruby, opts: RHash, key: &str) -> Result<Duration, Error> {
    duration(ruby, opts, key)?.ok_or_else(|| crate::error::Error::Config(format!("{key}: must be above 0"))).or_raise(ruby)
}

/// The settings, and the open-file limit as it was and as it is now: reading the settings
/// raises the soft limit to the hard one (each held connection is a descriptor), and the
/// default `--max-conns` follows from it.
pub fn from_options(ruby: &Ruby, opts: RHash) -> Result<(ServerConfig, (u64, u64)), Error> {
    let open_files = limits::raise_open_files();
    let io_threads: Option<usize> = get(ruby, opts, "io_threads")?;
    let max_conns: Option<usize> = get(ruby, opts, "max_conns")?;
    let config = ServerConfig {
        binds: get(ruby, opts, "binds")?,
        inherited: get::<Option<HashMap<String, i32>>>(ruby, opts, "listen_fds")?.unwrap_or_default(),
        io_threads: io_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())), // 0: inline
        queue_capacity: get::<usize>(ruby, opts, "queue")?.max(1),
        max_body: get(ruby, opts, "max_body")?,
        max_header_size: get::<usize>(ruby, opts, "max_header_size")?.max(8192),
        idle_timeout: duration(ruby, opts, "timeout")?,
        persistent_timeout: duration(ruby, opts, "persistent_timeout")?,
        first_data_timeout: limit(ruby, opts, "first_data_timeout")?,
        header_timeout: limit(ruby, opts, "header_timeout")?,
        spool_threshold: get(ruby, opts, "spool_threshold")?,
        stream_buffer: get::<usize>(ruby, opts, "stream_buffer")?.max(1),
        connection_buffer: get::<usize>(ruby, opts, "connection_buffer")?.max(1),
        write_timeout: duration(ruby, opts, "write_timeout")?.unwrap_or(Duration::ZERO),
        max_ws_message: get::<usize>(ruby, opts, "max_ws_message")?.max(125),
        max_connections: max_conns.map_or_else(|| limits::default_max_connections(open_files.1), |n| n.max(1)),
        max_persistent: get(ruby, opts, "max_persistent_conns")?,
        asterisk_path_info: get(ruby, opts, "asterisk_path_info")?,
        less_busy_wait: duration(ruby, opts, "wait_for_less_busy_worker")?,
    };
    Ok((config, open_files))
}
