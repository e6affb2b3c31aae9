//! Reading a request body on the I/O side, within `max_body`, spooling large ones to disk.

use std::io::{Seek, SeekFrom, Write};
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use hyper::body::Incoming;
use hyper::http::{header, HeaderMap};

use crate::config::ServerConfig;
use crate::job::RequestBody;

pub enum BodyError {
    TooLarge,
    Io,
}

/// Where the bytes go while they arrive: the first chunk as is (no copy for the common
/// single-chunk body), then a buffer, then past the threshold an unlinked temp file.
enum Sink {
    Nothing,
    One(Bytes),
    Buffer(BytesMut),
    File(std::fs::File),
}

impl Sink {
    fn push(&mut self, data: Bytes, threshold: usize) -> std::io::Result<()> {
        *self = match std::mem::replace(self, Sink::Nothing) {
            Sink::Nothing => Sink::One(data),
            Sink::One(first) => {
                let mut buf = BytesMut::with_capacity(first.len() + data.len());
                buf.extend_from_slice(&first);
                buf.extend_from_slice(&data);
                Sink::Buffer(buf)
            }
            Sink::Buffer(mut buf) => {
                buf.extend_from_slice(&data);
                Sink::Buffer(buf)
            }
            Sink::File(mut f) => {
                f.write_all(&data)?;
                Sink::File(f)
            }
        };
        if self.in_memory() > threshold {
            let mut file = temp_file()?;
            match std::mem::replace(self, Sink::Nothing) {
                Sink::One(b) => file.write_all(&b)?,
                Sink::Buffer(b) => file.write_all(&b)?,
                _ => {}
            }
            *self = Sink::File(file);
        }
        Ok(())
    }

    fn in_memory(&self) -> usize {
        match self {
            Sink::One(b) => b.len(),
            Sink::Buffer(b) => b.len(),
            Sink::Nothing | Sink::File(_) => 0,
        }
    }

    fn finish(self) -> std::io::Result<RequestBody> {
        Ok(match self {
            Sink::Nothing => RequestBody::Empty,
            Sink::One(b) => RequestBody::Memory(b),
            Sink::Buffer(b) => RequestBody::Memory(b.freeze()),
            Sink::File(mut f) => {
                f.seek(SeekFrom::Start(0))?;
                RequestBody::Spooled(f)
            }
        })
    }
}

/// A file with no name: gone from disk as soon as the last descriptor closes.
fn temp_file() -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(std::env::temp_dir())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Reads the whole body (hyper has already de-chunked it). Spool writes are small and go to
/// the page cache, so they are done inline rather than on a blocking thread.
pub async fn read_body(mut body: Incoming, headers: &HeaderMap, cfg: &ServerConfig) -> Result<RequestBody, BodyError> {
    if declared_length(headers).is_some_and(|n| n > cfg.max_body) {
        return Err(BodyError::TooLarge);
    }
    if body.is_end_stream() {
        return Ok(RequestBody::Empty);
    }
    let mut sink = Sink::Nothing;
    let mut total: u64 = 0;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|_| BodyError::Io)?;
        let Ok(data) = frame.into_data() else { continue }; // trailers are ignored
        total += data.len() as u64;
        if total > cfg.max_body {
            return Err(BodyError::TooLarge);
        }
        sink.push(data, cfg.spool_threshold).map_err(|_| BodyError::Io)?;
    }
    sink.finish().map_err(|_| BodyError::Io)
}
