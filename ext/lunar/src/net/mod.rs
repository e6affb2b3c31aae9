//! The tokio side: sockets, TLS and HTTP (by hyper). Never touches a Ruby type.
//!
//! `listener` accepts → `connection` runs hyper on the `socket` (+ `tls`) → `service` per
//! request: `intake` reads the body, the job crosses to Ruby (`bridge`), and the reply goes
//! back to hyper as a `body::ResponseBody` (a streamed body's queued chunks `gather`ed per write). A hijacked request's connection goes to Ruby
//! (`relay`), counted until the app closes it (`handed`); a native WebSocket (`websocket`) stays here.
//! `driver` says who runs the runtime: I/O threads, or (`--io-threads 0`) the Ruby threads themselves.

pub mod body;
pub mod connection;
pub mod driver;
pub mod gather;
pub mod handed;
pub mod intake;
pub mod limits;
pub mod listener;
pub mod relay;
pub mod server;
pub mod service;
pub mod socket;
pub mod state;
pub mod tls;
pub mod unchunk;
pub mod websocket;
