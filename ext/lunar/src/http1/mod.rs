//! Lunar's own HTTP/1.x wire format: request heads, chunked request bodies, response heads.
//! Pure functions over bytes; `connection` does the I/O.
//!
//! Why not hyper's server connection: hyper keeps about 13 KiB per connection with a
//! request pending (its read and write buffers and state; measured with a bare hyper server
//! holding 10,000 of them), and a Comet server is mostly pending requests. Here a held
//! request keeps no buffer at all.

pub mod chunked;
pub mod encode;
pub mod head;
