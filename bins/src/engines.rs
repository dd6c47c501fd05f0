//! Where the chat's engine requests go, for both servers.

use chat_engine::memory::MemoryLog;
use chat_engine::redis::Redis;
use chat_engine::{Engine, Served, Writer};
use chat_sansio::chat::{ChatEvent, ChatInput};

use crate::console::Console;

/// The engine behind a server's chat.
pub enum Log {
    /// Answered at once, in the core's turn.
    Memory(Box<Engine<MemoryLog>>),
    /// Queued for the store's writer thread, which answers through the
    /// server's inputs.
    Durable(Writer),
    /// Shared with other nodes through Redis: queued for its threads, which
    /// answer through the server's inputs.
    Redis(Box<Redis>),
}

impl Log {
    /// Serves a chat event: an engine request is answered (now, or later
    /// by the writer); anything else is printed.
    pub fn on_event(&mut self, console: &mut Console, event: ChatEvent) -> Option<ChatInput> {
        let event = match self {
            Log::Memory(engine) => match engine.serve(event) {
                Served::Answer(input) => return Some(input),
                Served::Event(e) => e,
            },
            Log::Durable(writer) => writer.take(event)?,
            Log::Redis(redis) => redis.take(event)?,
        };
        console.print(&event);
        None
    }
}
