//! A thin gRPC-over-HTTP/2 transport on the `h2` crate, driven by smol.
//!
//! It holds no application logic: the server maps h2 streams to calls of a
//! sans-IO [`chat_sansio::server::Server`] and writes what the core asks
//! for; the client opens calls for the CLI, tests and benchmarks.
//!
//! Data flow on the server:
//!
//! ```text
//! socket ─► h2 Connection ─► ConnDriver (one task per connection, on its shard)
//!              ─► bounded queue ─► core task: Server<H>::handle_*  ─┐
//!                                                                 poll_output
//!                        one batch per shard per core turn ◄──────┘
//! socket ◄─ h2 SendStream ◄─ ConnDriver ◄─ slot ◄─ shard scheduler (flush wheel)
//! ```
//!
//! Connections are generic over any futures-io byte stream, so Unix
//! sockets or in-memory pipes plug in through
//! [`Server::serve_connection`] without touching the core; TLS (feature
//! `tls`, on by default) is [`Server::serve_tls`] and
//! [`Channel::connect_tls`], with rustls.

// One call needs `unsafe`: registering a socket with a shard's poller
// (`server::reactor`), whose contract is to delete it before it closes.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
mod clock;
mod headers;
pub mod inbound;
mod io;
mod keepalive;
mod server;
#[cfg(feature = "tls")]
pub mod tls;

pub use client::{Call, CallOptions, CallReceiver, CallSender, Channel, ChannelOptions};
pub use clock::Clock;
pub use server::{InputSender, Server, ServerConfig, StatsHandle};
