//! Reading a request body on the I/O side, as hyper decodes it (Content-Length or chunked,
//! `100 Continue` sent when the client asked), within `max_body`, spooling large ones to an
//! unlinked temp file so Ruby gets a rewindable `rack.input` either way.

use std::future::poll_fn;
use std::io::{Seek, SeekFrom, Write};
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap};
use http_body::Body;
use hyper::body::Incoming;

use crate::bridge::connection::ConnectionInfo;
use crate::bridge::job::RequestBody;
use crate::config::ServerConfig;

/// Before answering 413 to a client that is still sending, this much of the rest is read
/// and dropped (for at most `LINGER`), so closing the connection does not reset it before
/// the client has read the answer.
const LINGER_BYTES: u64 = 256 * 1024;
const LINGER: Duration = Duration::from_secs(1);

pub enum BodyError {
    /// Over `max_body`: 413.
    TooLarge,
    /// Not valid HTTP framing (a chunk size that is no hex number, a chunk without its
    /// CRLF): 400, as Puma answers. hyper stops reading the connection then, but still
    /// writes the answer before closing it.
    Malformed,
    /// The client left, the socket failed, or the body stopped coming: no one to answer.
    Io,
}

impl BodyError {
    /// What hyper's error while reading the body means for the answer: its decoder reports
    /// bad framing as `InvalidInput`/`InvalidData`, an early end as `UnexpectedEof`.
    fn of(error: &hyper::Error) -> BodyError {
        let kind = std::error::Error::source(error).and_then(|cause| cause.downcast_ref::<std::io::Error>()).map(std::io::Error::kind);
        match kind {
            Some(std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData) => BodyError::Malformed,
            _ => BodyError::Io,
        }
    }
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
    std::fs::OpenOptions::new().read(true).write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(std::env::temp_dir())
}

/// Reads the whole body. Spool writes are small and go to the page cache, so they are done
/// inline rather than on a blocking thread. A client that sends no body bytes for
/// `--timeout` is given up on (on HTTP/2 its PINGs would otherwise hold the stream forever).
/// A bodiless request never comes here: the service answers it `Empty` without this future.
pub async fn read_body(mut body: Incoming, headers: &HeaderMap, config: &ServerConfig, connection: &ConnectionInfo) -> Result<RequestBody, BodyError> {
    if body.size_hint().exact().is_some_and(|n| n > config.max_body) {
        // A client waiting for `100 Continue` has sent nothing more: answer at once.
        if !headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")) {
            linger(&mut body, connection).await;
        }
        return Err(BodyError::TooLarge);
    }
    let mut sink = Sink::Nothing;
    let mut total: u64 = 0;
    while let Some(data) = next_data_within(&mut body, config.idle_timeout, connection).await? {
        total += data.len() as u64;
        if total > config.max_body {
            linger(&mut body, connection).await;
            return Err(BodyError::TooLarge);
        }
        sink.push(data, config.spool_threshold).map_err(|_| BodyError::Io)?;
    }
    sink.finish().map_err(|_| BodyError::Io)
}

/// The next slice of body data; `None` at its end (trailers are dropped). Waiting for more
/// while the client's end-of-stream is held, it lets it through: the body was cut short,
/// and hyper says so only once it reads the end-of-stream.
async fn next_data(body: &mut Incoming, connection: &ConnectionInfo) -> Result<Option<Bytes>, BodyError> {
    loop {
        let next_frame = poll_fn(|cx| {
            let frame = Pin::new(&mut *body).poll_frame(cx);
            if frame.is_pending() {
                connection.body_stalled();
            }
            frame
        });
        match next_frame.await {
            None => return Ok(None),
            Some(Err(error)) => return Err(BodyError::of(&error)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// The next slice of body data, if it comes within `limit`.
async fn next_data_within(body: &mut Incoming, limit: Option<Duration>, connection: &ConnectionInfo) -> Result<Option<Bytes>, BodyError> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, next_data(body, connection)).await.map_err(|_| BodyError::Io)?,
        None => next_data(body, connection).await,
    }
}

/// Reads and drops what the client still sends, a bounded amount for a bounded time.
async fn linger(body: &mut Incoming, connection: &ConnectionInfo) {
    let drain = async {
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match next_data(body, connection).await {
                Ok(Some(data)) => dropped += data.len() as u64,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn finish(sink: Sink) -> Vec<u8> {
        match sink.finish().unwrap() {
            RequestBody::Empty => Vec::new(),
            RequestBody::Memory(bytes) => bytes.to_vec(),
            RequestBody::Spooled(mut file) => {
                let mut all = Vec::new();
                file.read_to_end(&mut all).unwrap();
                all
            }
        }
    }

    #[test]
    fn one_chunk_is_kept_as_it_came() {
        let chunk = Bytes::from_static(b"only chunk");
        let mut sink = Sink::Nothing;
        sink.push(chunk.clone(), 1024).unwrap();
        match sink.finish().unwrap() {
            RequestBody::Memory(kept) => assert_eq!(kept.as_ptr(), chunk.as_ptr(), "no copy"),
            _ => panic!("expected the chunk in memory"),
        }
        assert!(matches!(Sink::Nothing.finish().unwrap(), RequestBody::Empty));
    }

    #[test]
    fn chunks_are_joined_in_memory_up_to_the_threshold() {
        let mut sink = Sink::Nothing;
        for part in [&b"ab"[..], b"cd", b"ef"] {
            sink.push(Bytes::copy_from_slice(part), 6).unwrap();
        }
        assert!(matches!(sink, Sink::Buffer(_)));
        assert_eq!(finish(sink), b"abcdef");
    }

    #[test]
    fn past_the_threshold_the_body_goes_to_a_rewound_file() {
        let mut sink = Sink::Nothing;
        sink.push(Bytes::from_static(b"12345"), 8).unwrap();
        sink.push(Bytes::from_static(b"6789"), 8).unwrap(); // 9 > 8: spooled, first chunk included
        assert!(matches!(sink, Sink::File(_)));
        sink.push(Bytes::from_static(b"0"), 8).unwrap();
        assert_eq!(finish(sink), b"1234567890");
    }
}
