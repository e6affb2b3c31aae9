//! Reading a request body on the I/O side (Content-Length or chunked), within `max_body`,
//! spooling large ones to disk.

use std::io::{Seek, SeekFrom, Write};

use bytes::{Bytes, BytesMut};

use crate::connection::{Conn, BODY_READ};
use crate::http1::chunked::{ChunkedDecoder, Step};
use crate::http1::head::{BodyFraming, RequestHead};
use crate::job::RequestBody;
use crate::socket::Socket;

pub enum BodyError {
    /// Over `max_body`: 413.
    TooLarge,
    /// A malformed chunked body: 400.
    Invalid,
    /// The client left or the socket failed.
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

/// Reads the whole body as its framing says, answering `100 Continue` first if the client
/// waits for it. Spool writes are small and go to the page cache, so they are done inline
/// rather than on a blocking thread.
pub async fn read_body<S: Socket>(conn: &mut Conn<S>, head: &RequestHead) -> Result<RequestBody, BodyError> {
    let (max_body, threshold) = (conn.shared.config.max_body, conn.shared.config.spool_threshold);
    if let BodyFraming::Length(n) = head.framing {
        if n > max_body {
            return Err(BodyError::TooLarge);
        }
    }
    if head.framing == BodyFraming::None {
        return Ok(RequestBody::Empty);
    }
    if head.expect_continue && conn.buf.is_empty() {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.map_err(|_| BodyError::Io)?;
    }
    let mut sink = Sink::Nothing;
    let mut total: u64 = 0;
    let mut chunked = ChunkedDecoder::default();
    loop {
        let data = match head.framing {
            BodyFraming::None => break, // answered Empty above
            BodyFraming::Length(n) if total == n => break,
            BodyFraming::Length(_) if conn.buf.is_empty() => None,
            BodyFraming::Length(n) => {
                let take = (n - total).min(conn.buf.len() as u64) as usize;
                Some(conn.buf.split_to(take).freeze())
            }
            BodyFraming::Chunked => match chunked.decode(&mut conn.buf).map_err(|_| BodyError::Invalid)? {
                Step::Data(data) => Some(data),
                Step::Done => break,
                Step::NeedMore => None,
            },
        };
        let Some(data) = data else {
            // Room for what is left of a declared body, not a whole read slice: a small
            // POST whose body trails its head costs a small buffer.
            let room = match head.framing {
                BodyFraming::Length(n) => (n - total).min(BODY_READ as u64) as usize,
                _ => BODY_READ,
            };
            match conn.read_more(room).await {
                Ok(0) | Err(_) => return Err(BodyError::Io),
                Ok(_) => continue,
            }
        };
        total += data.len() as u64;
        if total > max_body {
            return Err(BodyError::TooLarge);
        }
        sink.push(data, threshold).map_err(|_| BodyError::Io)?;
    }
    conn.release_buffer();
    sink.finish().map_err(|_| BodyError::Io)
}
