//! Chat messages for tests.

use chat_proto::{ChatMessage, User};

/// A user with no room.
pub fn user(id: &str, name: &str) -> User {
    User {
        user_id: id.to_owned(),
        username: name.to_owned(),
        room_id: String::new(),
    }
}

/// A chat message saying `text` from user `id` (named `id` too).
pub fn chat(id: &str, text: &str) -> ChatMessage {
    ChatMessage {
        user: Some(user(id, id)),
        message: text.to_owned(),
        ..ChatMessage::default()
    }
}
