//! Protobuf message types generated at build time by prost from `proto/`:
//!
//! - `chat.proto` and `bidi_chat.proto` have no `package`, so their types
//!   live at the crate root (`ChatMessage`, `User`, `ChatRoom`,
//!   `BidiChatMessage`); paths are `/ChatService/JoinChat`,
//!   `/ChatService/JoinChatRoom` and `/Chat/chat`.
//! - [`tutorial`]: seed 003's `NumberService`.
//! - [`routeguide`]: the standard route_guide proto (seed 004).
//! - [`health`]: the standard `grpc.health.v1` health checking service.
//!
//! With the `tonic` feature the crate also holds tonic client and server
//! stubs, used only as test peers and benchmark baselines.

#![allow(missing_docs, non_camel_case_types)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/_.rs"));

/// Seed 003's `tutorial.NumberService`.
pub mod tutorial {
    include!(concat!(env!("OUT_DIR"), "/tutorial.rs"));

    /// `AccumulateNumbers(stream NumberRequest) returns (stream NumberResponse)`.
    pub const ACCUMULATE_NUMBERS: &str = "/tutorial.NumberService/AccumulateNumbers";
}

/// The standard `routeguide.RouteGuide` service.
pub mod routeguide {
    include!(concat!(env!("OUT_DIR"), "/routeguide.rs"));

    /// Paths of `RouteGuide`.
    pub mod paths {
        /// Unary.
        pub const GET_FEATURE: &str = "/routeguide.RouteGuide/GetFeature";
        /// Server streaming.
        pub const LIST_FEATURES: &str = "/routeguide.RouteGuide/ListFeatures";
        /// Client streaming.
        pub const RECORD_ROUTE: &str = "/routeguide.RouteGuide/RecordRoute";
        /// Bidirectional streaming.
        pub const ROUTE_CHAT: &str = "/routeguide.RouteGuide/RouteChat";
    }
}

/// The standard health checking service, `grpc.health.v1.Health`.
pub mod health {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));

    /// Paths of `grpc.health.v1.Health`.
    pub mod paths {
        /// The service's full name.
        pub const SERVICE: &str = "grpc.health.v1.Health";
        /// Unary: one service's status.
        pub const CHECK: &str = "/grpc.health.v1.Health/Check";
        /// Unary: every service's status.
        pub const LIST: &str = "/grpc.health.v1.Health/List";
        /// Server streaming: a service's status, then each change.
        pub const WATCH: &str = "/grpc.health.v1.Health/Watch";
    }
}

/// gRPC method paths of `ChatService`.
pub mod paths {
    /// `JoinChat(stream ChatMessage) returns (stream ChatMessage)`.
    pub const JOIN_CHAT: &str = "/ChatService/JoinChat";
    /// `JoinChatRoom(stream User) returns (stream ChatRoom)`.
    pub const JOIN_CHAT_ROOM: &str = "/ChatService/JoinChatRoom";
    /// `History(HistoryRequest) returns (HistoryPage)`: a page of a room's
    /// stored history.
    pub const HISTORY: &str = "/ChatService/History";
    /// Seed 002: `chat(stream BidiChatMessage) returns (stream StringValue)`.
    pub const BIDI_CHAT: &str = "/Chat/chat";
}
