//! Every resource limit of the core, in one place.
//!
//! Limits that an operator may want to change are defaults of a config
//! struct; the rest are fixed here.

/// Default largest gRPC message we accept, in bytes (4 MiB, as grpc-go,
/// C-core and tonic default to: grpc-go server.go
/// `defaultServerMaxReceiveMessageSize`, tonic `DEFAULT_MAX_RECV_MESSAGE_SIZE`).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Default most bytes of partial request messages one connection's calls
/// hold at once: two messages of the largest size being received.
pub const DEFAULT_MAX_DECODING_PER_CONN: usize = 2 * DEFAULT_MAX_MESSAGE_SIZE;

/// Default most bytes of partial request messages held for all
/// connections together: 32 uploads of the largest size at once.
pub const DEFAULT_MAX_DECODING: usize = 32 * DEFAULT_MAX_MESSAGE_SIZE;

/// Length of the gRPC message prefix: a 1-byte compressed flag and a 4-byte
/// big-endian length (PROTOCOL-HTTP2.md "Length-Prefixed-Message").
pub const MESSAGE_HEADER_LEN: usize = 5;

/// Bytes a compressed message is first inflated into; the buffer then
/// doubles up to the message limit. Small, so a small compressed message
/// costs little; most chat messages inflate into one chunk.
pub const INFLATE_CHUNK: usize = 16 * 1024;

/// Longest `grpc-message` we put in trailers, in bytes before percent-encoding.
/// Long trailers break peers with small header limits (PROTOCOL-HTTP2.md
/// suggests 8 KiB for a header list).
pub const MAX_STATUS_MESSAGE_LEN: usize = 512;

/// Most calls one connection may have open in the core at once. The h2
/// transport advertises the same number as SETTINGS_MAX_CONCURRENT_STREAMS;
/// the core enforces it too, for drivers that do not.
pub const MAX_CALLS_PER_CONNECTION: usize = 128;

/// Most calls the core keeps open in total; past it new calls are refused
/// with RESOURCE_EXHAUSTED.
pub const MAX_CALLS: usize = 1 << 20;

/// Most services the health service's `List` answers; with more it
/// answers RESOURCE_EXHAUSTED (grpc-proto grpc/health/v1/health.proto, `List`).
pub const MAX_HEALTH_LIST: usize = 100;

/// Longest chat text accepted in one `ChatMessage`, in bytes.
pub const MAX_CHAT_TEXT_LEN: usize = 16 * 1024;

/// Most bytes of messages in one History page or one `ChatRoom.history`.
/// A page is one gRPC message, and grpcio, grpc-go and grpc-js refuse
/// messages over 4 MiB by default; 1 MiB leaves room for the envelope and
/// keeps what one call holds small. A page that stops short of its count
/// says `more = true`, and the client pages on.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// Durable mode: most History reads asked of the store at once; the rest
/// wait in line (a call each, no page). A page is up to
/// [`MAX_PAGE_BYTES`], and every answer goes through the core's queue, so
/// a few hundred History calls from clients that never read would
/// otherwise put a few hundred megabytes in flight.
pub const MAX_READS_IN_FLIGHT: usize = 4;

/// Longest room id, in bytes (after NFC normalization). A room id is a
/// name people read and type; 128 bytes is 32 to 128 characters, and keeps
/// every copy of it (each stored and delivered message carries one) small.
pub const MAX_ROOM_ID_LEN: usize = 128;

/// Longest user id or user name, in bytes.
pub const MAX_USER_FIELD_LEN: usize = 256;

/// Default number of messages the in-memory engine keeps per room.
pub const DEFAULT_HISTORY_CAPACITY: usize = 100;

/// Default number of recent messages sent to a user who joins a room.
pub const DEFAULT_HISTORY_ON_JOIN: usize = 50;

/// Most rooms held in memory at once. A room's log is the engine's; in
/// memory it is a few hundred bytes plus its streams and members, and an
/// idle one (nobody there, nothing in flight) is let go, least recently
/// used first, when space is needed; it opens again on its next use. New
/// rooms are refused (RESOURCE_EXHAUSTED) only while this many are busy.
pub const MAX_ROOMS: usize = 10_000;

/// Entries of one room held back behind a gap at most; past it the ones
/// furthest from the gap are dropped (the fill brings them back).
pub const MAX_HELD_PER_ROOM: usize = 10_000;

/// Longest `ChatMessage.client_msg_id`, in bytes (a UUID is 36).
pub const MAX_CLIENT_MSG_ID_LEN: usize = 128;

/// Entries in one page of a resuming stream's catching up; the next page is
/// asked for once the transport has sent this one on.
pub const RESUME_PAGE: u32 = 256;

/// How far ahead of this node's view of a room a resuming client may be
/// (it saw messages on a node this one has not heard of yet); further is a
/// wrong number, answered with OUT_OF_RANGE.
pub const MAX_RESUME_AHEAD: u64 = 10_000;

/// Durable mode: when one connection has this many messages waiting for
/// the store, the chat asks the driver to stop reading from it
/// (`Output::Pause`) until it is down to [`RESUME_POSTS_AT`]. The store
/// commits in batches of everything waiting, so a poster with 10,000 in
/// the queue would make everyone else's message wait behind them; 256 is a
/// few milliseconds of commits.
pub const PAUSE_POSTS_AT: usize = 256;

/// See [`PAUSE_POSTS_AT`].
pub const RESUME_POSTS_AT: usize = 64;

/// Durable mode: most messages of one connection waiting for the store;
/// past it (a driver that does not pause, or what was in flight when it
/// did), its posts are refused with RESOURCE_EXHAUSTED.
pub const MAX_PENDING_PER_CONN: usize = 4096;

/// Durable mode: most messages accepted but not yet durable. Past it, posts
/// are refused with RESOURCE_EXHAUSTED until the store catches up, so a
/// stalled disk cannot grow memory without bound.
pub const MAX_PENDING_MESSAGES: usize = 100_000;

/// Most bytes of application metadata a handler may put in one response
/// headers or trailers block, counted as SETTINGS_MAX_HEADER_LIST_SIZE
/// counts them (name + value + 32 per field, `-bin` values after base64;
/// RFC 9113 section 6.5.2). PROTOCOL-HTTP2.md suggests 8 KiB header lists;
/// this leaves room in them for the protocol's own fields. h2 does not
/// check the peer's limit when sending, so the core does.
pub const MAX_RESPONSE_METADATA: usize = 7 * 1024;
