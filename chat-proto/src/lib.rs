//! Protobuf message types generated at build time by prost from `proto/`:
//!
//! - `chat.proto` and `bidi_chat.proto` have no `package`, so their types
//!   live at the crate root (`ChatMessage`, `User`, `ChatRoom`,
//!   `BidiChatMessage`); paths are `/ChatService/JoinChat`,
//!   `/ChatService/JoinChatRoom` and `/Chat/chat`.
//! - [`tutorial`]: seed 003's `NumberService`.
//! - [`routeguide`]: the standard route_guide proto (seed 004).
//! - [`health`]: the standard `grpc.health.v1` health checking service.
//! - [`reflection`]: gRPC server reflection, and [`FILE_DESCRIPTOR_SET`].
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

/// Server reflection, `grpc.reflection.v1` (`v1alpha` has the same
/// messages, so these types serve both).
pub mod reflection {
    include!(concat!(env!("OUT_DIR"), "/grpc.reflection.v1.rs"));

    /// Paths of the reflection service.
    pub mod paths {
        /// The v1 service's full name.
        pub const SERVICE: &str = "grpc.reflection.v1.ServerReflection";
        /// The v1alpha service's full name.
        pub const SERVICE_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";
        /// Bidirectional streaming, v1.
        pub const INFO: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        /// Bidirectional streaming, v1alpha.
        pub const INFO_V1ALPHA: &str =
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
    }
}

/// gRPC's interop test service, `grpc.testing.TestService`
/// (doc/interop-test-descriptions.md in grpc/grpc).
pub mod testing {
    include!(concat!(env!("OUT_DIR"), "/grpc.testing.rs"));

    /// Paths of `grpc.testing.TestService` and `UnimplementedService`.
    pub mod paths {
        /// The service's full name.
        pub const SERVICE: &str = "grpc.testing.TestService";
        /// Unary, empty in and out.
        pub const EMPTY_CALL: &str = "/grpc.testing.TestService/EmptyCall";
        /// Unary.
        pub const UNARY_CALL: &str = "/grpc.testing.TestService/UnaryCall";
        /// Server streaming.
        pub const STREAMING_OUTPUT_CALL: &str = "/grpc.testing.TestService/StreamingOutputCall";
        /// Client streaming.
        pub const STREAMING_INPUT_CALL: &str = "/grpc.testing.TestService/StreamingInputCall";
        /// Bidirectional streaming, answered as requests come.
        pub const FULL_DUPLEX_CALL: &str = "/grpc.testing.TestService/FullDuplexCall";
        /// Bidirectional streaming, answered after the client half-closes.
        pub const HALF_DUPLEX_CALL: &str = "/grpc.testing.TestService/HalfDuplexCall";
        /// Declared, never implemented.
        pub const UNIMPLEMENTED_CALL: &str = "/grpc.testing.TestService/UnimplementedCall";
        /// A service no server implements.
        pub const UNIMPLEMENTED_SERVICE_CALL: &str =
            "/grpc.testing.UnimplementedService/UnimplementedCall";
    }
}

/// Every proto file of `proto/` and what they import, as an encoded
/// `google.protobuf.FileDescriptorSet` (without source info): what the
/// reflection service describes.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));

/// The moderation service, `chat.admin.ChatAdmin` (`proto/admin.proto`).
pub mod admin {
    include!(concat!(env!("OUT_DIR"), "/chat.admin.rs"));

    /// Paths of `chat.admin.ChatAdmin`.
    pub mod paths {
        /// The service's full name.
        pub const SERVICE: &str = "chat.admin.ChatAdmin";
        /// Unary: end a user's calls.
        pub const KICK: &str = "/chat.admin.ChatAdmin/Kick";
        /// Unary: kick and refuse until unbanned.
        pub const BAN: &str = "/chat.admin.ChatAdmin/Ban";
        /// Unary: let a banned user in again.
        pub const UNBAN: &str = "/chat.admin.ChatAdmin/Unban";
        /// Unary: the rooms held, who is there, where their logs stand.
        pub const LIST_ROOMS: &str = "/chat.admin.ChatAdmin/ListRooms";
        /// Unary: replace a message with a tombstone.
        pub const DELETE_MESSAGE: &str = "/chat.admin.ChatAdmin/DeleteMessage";
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
