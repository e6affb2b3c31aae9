//! `Gathered`: the data of one body frame as hyper gets it — one chunk, or every chunk a
//! streamed body had queued when hyper asked, so that a single `writev` carries them all.
//!
//! hyper writes a body frame by frame, flushing once its write buffer holds more than its
//! `max_buf_size` (which is also the request-head limit, so it stays small): a stream of
//! 64 KiB chunks costs one system call per chunk. Thin writes a reactor tick's chunks in
//! one `writev`; gathering does the same without copying: hyper's vectored write queue asks
//! `chunks_vectored` for every chunk's slice at once.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};

/// At most this many bytes in one frame: the writes stay short enough for the socket's
/// buffer to take most of each at once.
pub const MAX_BYTES: usize = 1 << 20;
/// At most this many chunks in one frame (hyper writes up to 64 slices a `writev`).
pub const MAX_CHUNKS: usize = 32;

pub enum Gathered {
    One(Bytes),
    Many { chunks: VecDeque<Bytes>, remaining: usize },
}

impl Gathered {
    /// `first`, followed by what `more` yields while within the bounds.
    pub fn gather(first: Bytes, mut more: impl FnMut() -> Option<Bytes>) -> Gathered {
        let mut remaining = first.len();
        if remaining >= MAX_BYTES {
            return Gathered::One(first);
        }
        let Some(second) = more() else { return Gathered::One(first) };
        remaining += second.len();
        let mut chunks = VecDeque::from([first, second]);
        while remaining < MAX_BYTES && chunks.len() < MAX_CHUNKS {
            let Some(next) = more() else { break };
            remaining += next.len();
            chunks.push_back(next);
        }
        Gathered::Many { chunks, remaining }
    }
}

impl Buf for Gathered {
    fn remaining(&self) -> usize {
        match self {
            Gathered::One(bytes) => bytes.len(),
            Gathered::Many { remaining, .. } => *remaining,
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            Gathered::One(bytes) => bytes,
            Gathered::Many { chunks, .. } => chunks.iter().find(|c| !c.is_empty()).map_or(&[], |c| c),
        }
    }

    fn advance(&mut self, mut cnt: usize) {
        match self {
            Gathered::One(bytes) => bytes.advance(cnt),
            Gathered::Many { chunks, remaining } => {
                assert!(cnt <= *remaining, "advanced past the end of a gathered frame");
                *remaining -= cnt;
                while cnt > 0 {
                    let front = chunks.front_mut().expect("remaining counts the chunks' bytes");
                    if front.len() > cnt {
                        front.advance(cnt);
                        return;
                    }
                    cnt -= front.len();
                    chunks.pop_front();
                }
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match self {
            Gathered::One(bytes) => bytes.chunks_vectored(dst),
            Gathered::Many { chunks, .. } => {
                let mut n = 0;
                for chunk in chunks.iter().filter(|c| !c.is_empty()) {
                    if n == dst.len() {
                        break;
                    }
                    dst[n] = IoSlice::new(chunk);
                    n += 1;
                }
                n
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(sizes: &[usize]) -> impl FnMut() -> Option<Bytes> + '_ {
        let mut i = 0;
        move || {
            let size = *sizes.get(i)?;
            i += 1;
            Some(Bytes::from(vec![b'a' + (i as u8); size]))
        }
    }

    fn drain(mut buf: Gathered, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while buf.has_remaining() {
            let n = buf.chunk().len().min(step);
            out.extend_from_slice(&buf.chunk()[..n]);
            buf.advance(n);
        }
        out
    }

    #[test]
    fn a_lone_chunk_stays_one() {
        assert!(matches!(Gathered::gather(Bytes::from_static(b"abc"), chunks(&[])), Gathered::One(_)));
        assert!(matches!(Gathered::gather(Bytes::from(vec![0; MAX_BYTES]), chunks(&[1])), Gathered::One(_)));
    }

    #[test]
    fn queued_chunks_are_gathered_within_the_bounds() {
        let mut more = chunks(&[3, 0, 5, 7]);
        let first = more().unwrap();
        let buf = Gathered::gather(first, more);
        assert_eq!(buf.remaining(), 15);
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(buf.chunks_vectored(&mut slices), 3, "the empty chunk gives no slice");
        assert_eq!(drain(buf, 2), [vec![b'b'; 3], vec![b'd'; 5], vec![b'e'; 7]].concat());

        let sizes = [1; 100];
        let buf = Gathered::gather(Bytes::from_static(b"x"), chunks(&sizes));
        assert_eq!(buf.remaining(), MAX_CHUNKS, "no more than MAX_CHUNKS chunks");
        let big = [MAX_BYTES / 2; 4];
        let buf = Gathered::gather(Bytes::from_static(b"x"), chunks(&big));
        assert_eq!(buf.remaining(), 1 + MAX_BYTES, "stops once MAX_BYTES is reached");
    }

    #[test]
    fn vectored_slices_follow_a_partial_write() {
        let mut more = chunks(&[4, 4, 4]);
        let mut buf = Gathered::gather(more().unwrap(), more);
        buf.advance(6); // a short write: the first chunk and half the second
        let mut slices = [IoSlice::new(&[]); 1];
        assert_eq!(buf.chunks_vectored(&mut slices), 1, "no more slices than room");
        assert_eq!(&*slices[0], b"cc");
        assert_eq!(buf.remaining(), 6);
        assert_eq!(drain(buf, 100), b"ccdddd");
    }
}
