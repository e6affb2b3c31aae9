//! Decoding a chunked request body (RFC 9112 §7.1) as its bytes arrive. Pure, unit-tested.
//!
//! Chunk data is split off the read buffer without copying; extensions and trailers are
//! read and dropped (Rack has no place for them), within fixed limits.

use bytes::{Buf, Bytes, BytesMut};

/// Extensions on one size line, and all trailer lines together, may not exceed this.
const MAX_META: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of the next chunk's size.
    Size { size: u64, digits: u8 },
    /// After the size: extensions up to CR.
    Extension { size: u64 },
    SizeLf { size: u64 },
    Data { left: u64 },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLineLf,
    EndLf,
    Done,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data(Bytes),
    /// Everything buffered was consumed; read more.
    NeedMore,
    /// The last chunk and the trailers are read.
    Done,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

pub struct ChunkedDecoder {
    state: State,
    meta: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: State::Size { size: 0, digits: 0 }, meta: 0 }
    }
}

impl ChunkedDecoder {
    /// Consumes bytes from the front of `buf` until it has chunk data to give, needs more
    /// bytes, or the body is complete (bytes after it stay in `buf`: a pipelined request).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        loop {
            if self.state == State::Done {
                return Ok(Step::Done);
            }
            if let State::Data { left } = self.state {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let take = left.min(buf.len() as u64) as usize;
                self.state = if take as u64 == left { State::DataCr } else { State::Data { left: left - take as u64 } };
                return Ok(Step::Data(buf.split_to(take).freeze()));
            }
            let Some(&byte) = buf.first() else { return Ok(Step::NeedMore) };
            buf.advance(1);
            self.state = self.next(byte)?;
        }
    }

    fn next(&mut self, byte: u8) -> Result<State, ChunkError> {
        use State::*;
        Ok(match (self.state, byte) {
            (Size { size, digits }, b) if b.is_ascii_hexdigit() => {
                if digits >= 15 {
                    return Err(ChunkError("chunk size too large"));
                }
                let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                Size { size: size * 16 + digit, digits: digits + 1 }
            }
            (Size { digits: 0, .. }, _) => return Err(ChunkError("missing chunk size")),
            (Size { size, .. }, b';' | b' ' | b'\t') => Extension { size },
            (Size { size, .. } | Extension { size }, b'\r') => SizeLf { size },
            (Extension { size }, _) => {
                self.count_meta()?;
                Extension { size }
            }
            (SizeLf { size: 0 }, b'\n') => TrailerStart,
            (SizeLf { size }, b'\n') => {
                self.meta = 0;
                Data { left: size }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size { size: 0, digits: 0 },
            (TrailerStart, b'\r') => EndLf,
            (EndLf, b'\n') => Done,
            (TrailerStart | TrailerLine, b) if b != b'\r' && b != b'\n' => {
                self.count_meta()?;
                TrailerLine
            }
            (TrailerLine, b'\r') => TrailerLineLf,
            (TrailerLineLf, b'\n') => TrailerStart,
            _ => return Err(ChunkError("malformed chunked body")),
        })
    }

    fn count_meta(&mut self) -> Result<(), ChunkError> {
        self.meta += 1;
        if self.meta > MAX_META {
            return Err(ChunkError("chunk extensions or trailers too long"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the body and what was left over.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), ChunkError> {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut pieces = input.chunks(step);
        loop {
            match decoder.decode(&mut buf)? {
                Step::Data(d) => body.extend_from_slice(&d),
                Step::Done => return Ok((body, buf.to_vec())),
                Step::NeedMore => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => return Err(ChunkError("truncated")),
                },
            }
        }
    }

    #[test]
    fn decodes_in_any_split() {
        let wire = b"3\r\nabc\r\nA;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nGET /next";
        for step in [1, 2, 5, wire.len()] {
            let (body, rest) = decode_all(wire, step).unwrap();
            assert_eq!(body, b"abc0123456789");
            assert!(b"GET /next".starts_with(&rest), "step {step}: {rest:?}");
        }
    }

    #[test]
    fn refuses_malformed_bodies() {
        for bad in [&b"x\r\n"[..], b"3\r\nabcX\r\n", b"3\nabc\r\n", b"fffffffffffffffff\r\n", b"\r\n"] {
            assert!(decode_all(bad, 1).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn limits_trailers() {
        let mut wire = b"0\r\nX: ".to_vec();
        wire.extend(std::iter::repeat_n(b'a', MAX_META + 10));
        wire.extend_from_slice(b"\r\n\r\n");
        assert_eq!(decode_all(&wire, 4096).err(), Some(ChunkError("chunk extensions or trailers too long")));
    }
}
