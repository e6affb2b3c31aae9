//! `ServerConfig` from the options Hash `Lunar::Configuration#native_options` builds.
//!
//! Every value was checked in Ruby at boot (one line naming the option, exit 2); this
//! still refuses what Rust cannot hold, as a `Lunar::ConfigError`, rather than panicking.

use std::collections::HashMap;

use magnus::{Error, RHash, Ruby, TryConvert};

use crate::config::{seconds, ServerConfig};
use crate::net::limits;
use crate::ruby::error::OrRaise;

fn opt<T: TryConvert>(ruby: &Ruby, opts: RHash, key: &str) -> Result<Option<T>, Error> {
    opts.lookup::<_, Option<T>>(ruby.to_symbol(key))
}

/// A duration in seconds, 0 meaning never: `Ok(None)` for absent, `Ok(Some(None))` for 0.
fn duration(ruby: &Ruby, opts: RHash, key: &str) -> Result<Option<Option<std::time::Duration>>, Error> {
    opt::<f64>(ruby, opts, key)?.map(|v| seconds(key, v).or_raise(ruby)).transpose()
}

/// The settings, and the open-file limit as it was and as it is now: reading the settings
/// raises the soft limit to the hard one (each held connection is a descriptor), and the
/// default `--max-conns` follows from it.
pub fn from_options(ruby: &Ruby, opts: RHash) -> Result<(ServerConfig, (u64, u64)), Error> {
    let mut c = ServerConfig::default();
    if let Some(b) = opt::<Vec<String>>(ruby, opts, "binds")? {
        c.binds = b;
    }
    if let Some(fds) = opt::<HashMap<String, i32>>(ruby, opts, "listen_fds")? {
        c.inherited = fds;
    }
    if let Some(n) = opt::<usize>(ruby, opts, "io_threads")? {
        c.io_threads = n.max(1);
    }
    if let Some(n) = opt::<usize>(ruby, opts, "queue_capacity")? {
        c.queue_capacity = n.max(1);
    }
    if let Some(n) = opt::<u64>(ruby, opts, "max_body")? {
        c.max_body = n;
    }
    if let Some(n) = opt::<usize>(ruby, opts, "max_header_size")? {
        c.max_header_size = n.max(8192);
    }
    if let Some(t) = duration(ruby, opts, "timeout")? {
        c.idle_timeout = t;
    }
    if let Some(t) = duration(ruby, opts, "header_timeout")? {
        c.header_timeout = t.unwrap_or(c.header_timeout);
    }
    if let Some(n) = opt::<usize>(ruby, opts, "spool_threshold")? {
        c.spool_threshold = n;
    }
    if let Some(n) = opt::<usize>(ruby, opts, "stream_buffer")? {
        c.stream_buffer = n.max(1);
    }
    if let Some(n) = opt::<usize>(ruby, opts, "connection_buffer")? {
        c.connection_buffer = n.max(1);
    }
    if let Some(t) = duration(ruby, opts, "write_timeout")? {
        c.write_timeout = t.unwrap_or(std::time::Duration::ZERO);
    }
    if let Some(n) = opt::<usize>(ruby, opts, "max_ws_message")? {
        c.max_ws_message = n.max(125);
    }
    let open_files = limits::raise_open_files();
    c.max_connections = match opt::<usize>(ruby, opts, "max_conns")? {
        Some(n) => n.max(1),
        None => limits::default_max_connections(open_files.1),
    };
    c.max_persistent = opt::<usize>(ruby, opts, "max_persistent_conns")?;
    if let Some(b) = opt::<bool>(ruby, opts, "asterisk_path_info")? {
        c.asterisk_path_info = b;
    }
    Ok((c, open_files))
}
