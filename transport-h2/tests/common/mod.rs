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

/// The chat, with rate limits off: these tests post faster than a person
/// types (the limits have their own tests in chat-sansio and chat-bins).
pub fn chat() -> chat_sansio::chat::Chat {
    chat_sansio::chat::Chat::new(chat_sansio::chat::ChatConfig {
        limits: chat_sansio::chat::RateLimits::off(),
        ..Default::default()
    })
}
