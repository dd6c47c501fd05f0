//! What crosses between the server's tasks and threads: events from the
//! connections to the core ([`ToCore`]), the core's outputs for the shards
//! ([`ToShard`]) and for one connection ([`ToConn`]), and new connections
//! handed to a shard ([`NewConn`]). Every task imports its messages from
//! here, so no task's file depends on another's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_sansio::metadata::Metadata;
use chat_sansio::server::{CallId, RequestHead};
use chat_sansio::Status;
use futures_lite::{AsyncRead, AsyncWrite};

use super::admission::PeerSlot;
use super::share::Claim;

/// An event for the core, from a connection or from the application.
pub(crate) enum ToCore<I> {
    Connect {
        conn: u32,
        peer: Option<String>,
    },
    Disconnect {
        conn: u32,
    },
    Open {
        conn: u32,
        stream: u32,
        head: RequestHead,
    },
    Data {
        call: CallId,
        chunk: Bytes,
        /// The chunk's part of its connection's share of the queue and of
        /// the budget, released when the core has applied it.
        claim: Claim,
    },
    End {
        call: CallId,
    },
    Reset {
        call: CallId,
    },
    Stalled {
        call: CallId,
    },
    /// What was queued for the call has been handed to h2 (after a
    /// `WhenDrained` asked for it).
    Drained {
        call: CallId,
    },
    Input(I),
    /// Stop: see [`chat_sansio::server::Server::handle_shutdown`].
    Shutdown {
        grace: Duration,
    },
}

/// What the core asks one connection to write, by h2 stream id.
#[derive(Debug)]
pub(crate) enum ToConn {
    /// Response headers, with `grpc-encoding` if the call compresses.
    /// and the handler's initial metadata.
    Headers(u32, Option<chat_sansio::compression::Encoding>, Metadata),
    Message(u32, Bytes),
    /// The status and the handler's trailing metadata.
    Trailers(u32, Status, Metadata),
    TrailersOnly(u32, u16, Status, Metadata),
    /// Handled by the shard ([`super::groups`]), not the connection.
    Subscribe(u32, u64),
    Unsubscribe(u32),
    /// Stop reading requests (the core holds all it takes from this
    /// connection for now), or read them again.
    Pause(bool),
    /// Tell the core once the stream's send queue is empty.
    WhenDrained(u32),
}

impl ToConn {
    /// The h2 stream it is for, if it is for one.
    pub(crate) fn stream(&self) -> Option<u32> {
        match *self {
            ToConn::Headers(sid, ..)
            | ToConn::Message(sid, _)
            | ToConn::Trailers(sid, ..)
            | ToConn::TrailersOnly(sid, ..)
            | ToConn::Subscribe(sid, _)
            | ToConn::Unsubscribe(sid)
            | ToConn::WhenDrained(sid) => Some(sid),
            ToConn::Pause(_) => None,
        }
    }
}

/// What the core hands a shard: something for one of its connections, or
/// a multicast, which every shard with members of the group gets once.
#[derive(Debug)]
pub(crate) enum ToShard {
    Conn(u32, ToConn),
    Multicast(u64, Bytes),
    /// The server is shutting down: every connection sends GOAWAY.
    Shutdown,
}

/// The id the core knows a call by: the connection in the high half, the
/// h2 stream id in the low half, so routing an output needs no table.
pub(crate) fn call_id(conn: u32, stream: u32) -> CallId {
    CallId(u64::from(conn) << 32 | u64::from(stream))
}

/// The connection and the h2 stream of a call id made by [`call_id`].
pub(crate) fn split_call(call: CallId) -> (u32, u32) {
    ((call.0 >> 32) as u32, call.0 as u32)
}

/// The shard of a connection: connection ids are made so that `id % shards`
/// is the shard that owns it ([`super::local::Local::next_id`]).
pub(crate) fn shard_of(conn: u32, shards: usize) -> usize {
    conn as usize % shards
}

/// Any byte stream a connection can be handed to a shard as.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// A connection's byte stream on its shard (it never leaves it).
pub(crate) trait LocalStream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> LocalStream for T {}

/// How a connection's bytes reach its shard.
pub(crate) enum Socket {
    /// A TCP connection, served by the shard's own reactor
    /// ([`super::reactor`]), with TLS if an acceptor is given (its
    /// handshake runs on the shard, never on the accepting task).
    Tcp {
        stream: std::net::TcpStream,
        #[cfg(feature = "tls")]
        tls: Option<crate::tls::TlsAcceptor>,
    },
    /// Any other byte stream, driven by its own reactor.
    Stream(Box<dyn ByteStream>),
}

/// A connection handed to a shard.
pub(crate) struct NewConn {
    pub socket: Socket,
    pub peer: Option<String>,
    /// Counts the connection as live until it is dropped.
    pub live: Live,
    /// How long it has for its handshakes.
    pub handshake_limit: Duration,
}

/// One connection in the server's count of live connections, from when it
/// is handed to a shard until its task is done with it.
/// It also holds the connection's place in its peer's count, if it has one.
pub(crate) struct Live(Arc<AtomicUsize>, #[allow(dead_code)] Option<PeerSlot>);

impl Live {
    pub(crate) fn new(count: &Arc<AtomicUsize>, slot: Option<PeerSlot>) -> Live {
        count.fetch_add(1, Ordering::AcqRel);
        Live(count.clone(), slot)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
