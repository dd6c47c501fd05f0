//! Protobuf message types of the chat service (`proto/chat.proto`), generated
//! at build time by prost.
//!
//! The proto has no `package`, so the types live at the crate root and the
//! service's paths are `/ChatService/JoinChat` and `/ChatService/JoinChatRoom`.
//! With the `tonic` feature the crate also holds tonic client and server stubs
//! (`chat_service_client`, `chat_service_server`), used only as test peers.

#![allow(missing_docs)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/_.rs"));

/// gRPC method paths of `ChatService`.
pub mod paths {
    /// `JoinChat(stream ChatMessage) returns (stream ChatMessage)`.
    pub const JOIN_CHAT: &str = "/ChatService/JoinChat";
    /// `JoinChatRoom(stream User) returns (stream ChatRoom)`.
    pub const JOIN_CHAT_ROOM: &str = "/ChatService/JoinChatRoom";
}
