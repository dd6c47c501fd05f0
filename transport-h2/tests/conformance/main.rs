//! Transport conformance tests: raw HTTP/2 (the `h2` client crate) against
//! an in-process `transport_h2::Server`, checked against the gRPC
//! specification (`PROTOCOL-HTTP2.md` and the other documents of
//! grpc/grpc), RFC 9113, and what grpc-go, tonic and h2 do, cited where
//! each test is defined.
//!
//! Two services are served: the chat (`/ChatService/JoinChat`,
//! `/ChatService/JoinChatRoom`) and the test-only `Echo` handler of
//! `common::echo`, to test framing and flow control without chat rules.
//! [`rig`] is the raw HTTP/2 client; each other module is one theme. Every
//! test runs under a time limit so a hang fails.

#[path = "../common/mod.rs"]
mod common;
mod rig;

mod bad_input;
mod cancellation;
mod coalescing;
mod compression;
mod deadlines;
mod framing;
mod headers;
mod metadata;
mod our_client;
mod slow_consumers;
mod stream_limits;
