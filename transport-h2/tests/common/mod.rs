//! What the transport's integration tests share: time limits, our server on
//! a free port, the [`echo::Echo`] handler and chat messages.
//!
//! Every test binary compiles this module on its own and uses only part of
//! it, hence the `dead_code` allowance here rather than copies per binary.
#![allow(dead_code)]

pub mod echo;
pub mod messages;
pub mod server;
pub mod time;
