//! Settings of a [`Server`](super::Server).

use crate::limits::{
    DEFAULT_MAX_DECODING, DEFAULT_MAX_DECODING_PER_CONN, DEFAULT_MAX_MESSAGE_SIZE,
};

#[cfg(doc)]
use super::{Handler, Outbox, Server};

/// Settings of a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request message accepted; larger ones end the call with
    /// RESOURCE_EXHAUSTED.
    pub max_message_size: usize,
    /// Answer `grpc.health.v1.Health` (see [`Server::set_health`]). Turn it
    /// off to let the handler serve those paths itself.
    pub health: bool,
    /// Answer server reflection (`grpc.reflection.v1` and `v1alpha`) from
    /// this encoded `FileDescriptorSet`, listing the handler's
    /// [`services`](Handler::services); `None` turns reflection off. The
    /// default describes every proto of this project
    /// ([`chat_proto::FILE_DESCRIPTOR_SET`]).
    ///
    /// # Panics
    ///
    /// [`Server::with_config`] panics if the set does not decode or a file
    /// imports one that is not in it: a bug of the program, not of a peer.
    pub reflection: Option<&'static [u8]>,
    /// Most bytes of partial request messages the calls of one connection
    /// may hold at once; past it, the call whose message grew is ended with
    /// RESOURCE_EXHAUSTED. Each call's own bound is `max_message_size`,
    /// and a connection has up to 128 calls: without this, one connection
    /// could hold half a gigabyte of unfinished requests.
    pub max_decoding_per_conn: usize,
    /// The same for every connection together ([`Server::decoding`] says
    /// how much is held now).
    pub max_decoding: usize,
    /// Compress a response message of at least this many bytes, when the
    /// client lists gzip or deflate in `grpc-accept-encoding` (only those,
    /// doc/compression.md: SHALL); the call's response headers then carry
    /// `grpc-encoding`. `None` (the default): never. Off by default because
    /// chat messages are small, compressing them costs CPU for nothing, and
    /// compressing secrets next to attacker-chosen text leaks them (the
    /// CRIME/BREACH note in doc/compression.md).
    ///
    /// Only messages sent to one call ([`Outbox::send`]) are compressed.
    /// A [`multicast`](Outbox::multicast) never is: its one frame is shared
    /// by every member, whatever each negotiated.
    pub compress_min_bytes: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_decoding_per_conn: DEFAULT_MAX_DECODING_PER_CONN,
            max_decoding: DEFAULT_MAX_DECODING,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            health: true,
            reflection: Some(chat_proto::FILE_DESCRIPTOR_SET),
            compress_min_bytes: None,
        }
    }
}
