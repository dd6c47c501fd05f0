//! Transport settings and limits, with the reasons for their defaults.

use std::time::Duration;

use chat_sansio::limits::MAX_CALLS_PER_CONNECTION;

/// Settings of the h2 server transport.
///
/// The h2 crate's own defaults are unsafe or unsuited for gRPC
/// (h2 `src/server.rs`, `src/codec/framed_read.rs`): no stream limit, a 16 MiB header list, 64 KiB
/// windows. Every one of them is set here.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients.
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: 8 KiB, as PROTOCOL-HTTP2.md suggests.
    /// h2 answers larger request headers with HTTP 431.
    pub max_header_list_size: u32,
    /// Initial flow-control window of each stream we receive on.
    pub initial_stream_window: u32,
    /// Flow-control window of each connection we receive on; larger than a
    /// stream's so one busy stream cannot starve the others.
    pub initial_connection_window: u32,
    /// Most bytes h2 buffers for sending on one stream.
    pub max_send_buffer: usize,
    /// Most bytes of framed messages waiting for one call's flow-control
    /// window. A client that leaves more than this unread has its call ended
    /// with RESOURCE_EXHAUSTED (the slow-consumer policy).
    pub max_queued_bytes_per_call: usize,
    /// Most messages waiting for one call's window (same policy).
    pub max_queued_messages_per_call: usize,
    /// Most bytes of output waiting for one connection, all its calls
    /// together (and what h2 holds for its socket). Over it, the calls with
    /// the most waiting are cut as slow consumers (RESOURCE_EXHAUSTED),
    /// largest first: the per-call bound times the calls a client may open
    /// would otherwise let one connection hold 32 MiB.
    pub max_queued_bytes_per_conn: usize,
    /// Most bytes of request DATA one connection may have queued for the
    /// core at once; past it the connection stops reading until the core
    /// has caught up, so one peer posting flat out cannot fill the queue
    /// every connection shares (see `core_queue`).
    pub max_input_in_flight: usize,
    /// Most bytes peers can make the whole server hold: output waiting for
    /// clients, request DATA queued for the core, and partial requests in
    /// the core's decoders. While it is spent, new calls are refused with
    /// RESOURCE_EXHAUSTED and calls that are behind are cut first.
    pub memory_budget: usize,
    /// Most connections open at once from one peer address; more are
    /// closed at once (and logged once per peer per interval). 0: no
    /// limit. Clients behind one NAT share an address, so it is generous.
    pub max_connections_per_peer: usize,
    /// What one connection may read per turn, and the rates of control
    /// frames it may send (see [`crate::inbound`]).
    pub input: crate::inbound::Limits,
    /// When a slow client is cut off in the middle of a message, how long it
    /// has to take the rest (then it gets its RESOURCE_EXHAUSTED trailers)
    /// before the stream is reset with CANCEL instead.
    pub stall_grace: Duration,
    /// Capacity of the queue of events from all connections to the core; a
    /// connection whose events cannot be queued stops reading, and HTTP/2
    /// flow control then slows its client.
    pub core_queue: usize,
    /// The longest a busy connection waits between two writes. The wait
    /// (the gap) is zero while the shard has time, and grows only while
    /// the shard is busier than [`pace_target`](Self::pace_target), so
    /// that each write carries more messages (see the `pace` module); this
    /// caps it, and so caps how long any output waits. 40 ms is where the
    /// fan-out benchmark's largest load stays far under the machine's
    /// capacity; README, "Benchmarks".
    pub flush_interval: Duration,
    /// The share of its time a shard aims to be busy (0 to 1) before
    /// writes wait: above it, the gap between two writes of a connection
    /// grows. Lower trades latency under load for CPU per delivery.
    pub pace_target: f64,
    /// Threads (shards) that run the connections, the first of them also
    /// the core; 0 means one per available core.
    pub threads: usize,
    /// A connection that has brought nothing for this long gets a PING
    /// (server keepalive, gRFC A9 `KEEPALIVE_TIME`); `None` sends none.
    /// grpc's own default, 2 hours, is far too long for chat: a member
    /// whose network vanished would stay "in the room" that long. One
    /// minute is under the idle timeouts of common NATs and load balancers
    /// (AWS 60 s is the shortest, per gRFC A8), and costs an idle
    /// connection 17 bytes each way a minute.
    pub keepalive_time: Option<Duration>,
    /// How long a pinged peer has to answer (A9 `KEEPALIVE_TIMEOUT`, 20 s
    /// by default) before its connection is closed and its calls end.
    pub keepalive_timeout: Duration,
}

impl ServerConfig {
    /// The number of shards `threads` asks for.
    pub(crate) fn shard_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .clamp(1, MAX_THREADS)
    }
}

/// Most shards a server runs.
const MAX_THREADS: usize = 256;

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_concurrent_streams: MAX_CALLS_PER_CONNECTION as u32,
            max_header_list_size: 8 * 1024,
            initial_stream_window: 1024 * 1024,
            initial_connection_window: 2 * 1024 * 1024,
            max_send_buffer: 256 * 1024,
            max_queued_bytes_per_call: 256 * 1024,
            max_queued_messages_per_call: 4096,
            max_queued_bytes_per_conn: 1024 * 1024,
            max_input_in_flight: 64 * 1024,
            memory_budget: 256 * 1024 * 1024,
            input: crate::inbound::Limits::default(),
            max_connections_per_peer: 1024,
            stall_grace: Duration::from_secs(5),
            core_queue: 4096,
            flush_interval: Duration::from_millis(40),
            pace_target: 0.4,
            threads: 0,
            keepalive_time: Some(Duration::from_secs(60)),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}
