//! The pure core of the chat system: no sockets, threads, clocks or async.
//!
//! - [`codec`]: the gRPC length-prefixed message codec.
//! - [`compression`]: gzip and deflate message bodies, inflated within the
//!   message limit.
//! - [`status`], [`metadata`], [`timeout`]: the call-level vocabulary.
//! - [`server`]: a server-side gRPC call state machine, [`server::Server`],
//!   generic over a [`server::Handler`] (the application).
//! - [`chat`]: the chat service as a handler, [`chat::Chat`].
//! - [`services`]: the seeds' other streaming services as handlers.
//! - [`client`]: the client side of a call's response, for drivers that make
//!   calls.
//!
//! Drivers feed events in and carry outputs out; the contract is on
//! [`server::Server`]. Time comes in as a [`Time`] argument and is never read
//! from a clock here, so every behaviour can be replayed on a simulated
//! clock. `transport-h2` is the driver for HTTP/2 on smol.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chat;
pub mod client;
pub mod codec;
pub mod compression;
pub mod idmap;
pub mod limits;
pub mod metadata;
#[cfg(feature = "model")]
pub mod model;
pub mod server;
pub mod services;
pub mod status;
pub mod time;
pub mod timeout;

pub use status::{Code, Status};
pub use time::Time;
