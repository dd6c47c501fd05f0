//! The seeds' other streaming services as sans-IO [`Handler`]s, in the same
//! style as the chat: they run on the same [`Server`](crate::server::Server)
//! and the same transport, which shows the transport is a general gRPC one.
//!
//! - [`BidiChat`]: seed 002's `Chat.chat`.
//! - [`Numbers`]: seed 003's `tutorial.NumberService.AccumulateNumbers`.
//! - [`RouteGuide`]: the standard `routeguide.RouteGuide` (seed 004's
//!   `RouteChat`, plus the unary, server-streaming and client-streaming
//!   methods of the same proto).
//! - [`Interop`]: gRPC's interop test service, `grpc.testing.TestService`.
//!
//! [`Handler`]: crate::server::Handler

mod bidi_chat;
mod interop;
pub mod interop_reply;
mod numbers;
mod route_guide;

pub use bidi_chat::BidiChat;
pub use interop::{Interop, DEFAULT_SERVER_ID};
pub use numbers::Numbers;
pub use route_guide::{RouteGuide, RouteGuideConfig};
