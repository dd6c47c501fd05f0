//! What the server asks its driver to do: [`Output`], and the header fields
//! every response carries.

use crate::metadata::Metadata;
use crate::status::Status;

use super::ids::{CallId, ConnId, GroupId};

/// What the driver must do next. Outputs for one call must be carried out in
/// the order they are returned.
///
/// A [`Multicast`](Output::Multicast) is a [`Message`](Output::Message) for
/// every call subscribed to its group at that point of the sequence: a
/// call's messages, direct and multicast, reach it in the order of the
/// outputs. A driver that keeps no groups of its own passes the outputs
/// through [`Expand`](crate::server::Expand), which turns each multicast into those messages.
///
/// More variants may come; a driver's `match` needs a wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output<E> {
    /// Send the response headers: `:status 200`, `content-type:
    /// application/grpc` (see [`RESPONSE_HEADERS`]), and `grpc-encoding`
    /// if `encoding` is set, then `metadata`; not end of stream.
    Headers {
        /// The call.
        call: CallId,
        /// The handler's initial metadata ([`Outbox::send_headers`]),
        /// checked; after the protocol's fields. Write `-bin` values with
        /// [`wire_value`] (base64).
        ///
        /// [`Outbox::send_headers`]: super::Outbox::send_headers
        /// [`wire_value`]: crate::metadata::wire_value
        metadata: Metadata,
        /// The `grpc-encoding` of the call's compressed messages, if it
        /// may have some (PROTOCOL-HTTP2.md "Response-Headers"). Each
        /// message says by its flag whether it is compressed.
        encoding: Option<crate::compression::Encoding>,
    },
    /// Send one framed message as DATA.
    Message {
        /// The call.
        call: CallId,
        /// A length-prefixed message, ready to write.
        frame: bytes::Bytes,
    },
    /// Subscribe the call to a group (it leaves the one it was in, if any).
    Subscribe {
        /// The call.
        call: CallId,
        /// The group.
        group: GroupId,
    },
    /// The call leaves its group. Every subscribed call that ends gets one,
    /// before its `Trailers` or `TrailersOnly` (or alone, when the client
    /// reset it or its connection closed).
    Unsubscribe {
        /// The call.
        call: CallId,
    },
    /// Send one framed message to every call subscribed to `group` now.
    /// Never compressed, so one frame serves every member.
    Multicast {
        /// The group.
        group: GroupId,
        /// A length-prefixed message, ready to write, the same for all.
        frame: bytes::Bytes,
    },
    /// End the call with a trailers block (`grpc-status`, `grpc-message`,
    /// then `metadata`) with END_STREAM, after everything queued before it. The call is over
    /// for the core; if the client is still sending, reset its side with
    /// NO_ERROR (PROTOCOL-HTTP2.md "Early Server Closure").
    Trailers {
        /// The call.
        call: CallId,
        /// The final status.
        status: Status,
        /// The handler's trailing metadata ([`Outbox::finish_with`]),
        /// checked; write `-bin` values with
        /// [`wire_value`](crate::metadata::wire_value).
        ///
        /// [`Outbox::finish_with`]: super::Outbox::finish_with
        metadata: Metadata,
    },
    /// End the call with a single HEADERS block with END_STREAM holding
    /// `:status`, `content-type`, the status and then `metadata`
    /// (Trailers-Only). Used when
    /// nothing else was sent.
    TrailersOnly {
        /// The call.
        call: CallId,
        /// The HTTP status: 200, or 4xx when the request was not gRPC.
        http_status: u16,
        /// The final status.
        status: Status,
        /// Trailing metadata, as in [`Trailers`](Output::Trailers).
        metadata: Metadata,
    },
    /// Tell the core ([`Server::handle_drained`](super::Server::handle_drained))
    /// once everything queued for this call so far has been handed to the
    /// connection (its send queue is empty): how a handler that sends a
    /// lot (a resuming stream's catching up) paces itself to the client's
    /// reading instead of queueing it all. At once if nothing is queued.
    WhenDrained {
        /// The call.
        call: CallId,
    },
    /// Stop reading requests from this connection for now: the handler is
    /// holding as much of its work as it takes from one connection (a chat
    /// poster's messages waiting for the store, say). What is already in
    /// flight is still fed as usual; reading resumes at
    /// [`Resume`](Output::Resume). Backpressure, so one peer cannot take
    /// everyone's share: a driver that ignores it stays correct, and the
    /// handler refuses what goes past a hard bound.
    Pause {
        /// The connection.
        conn: ConnId,
    },
    /// Read requests from this connection again (after a `Pause`).
    Resume {
        /// The connection.
        conn: ConnId,
    },
    /// An application event from the handler.
    Event(E),
}

/// Header fields of every response-headers block and Trailers-Only response,
/// after `:status`. `grpc-accept-encoding` lists every encoding requests may
/// use ([`ACCEPT_ENCODING`](crate::compression::ACCEPT_ENCODING);
/// PROTOCOL-HTTP2.md "Response-Headers", doc/compression.md).
pub const RESPONSE_HEADERS: &[(&str, &str)] = &[
    ("content-type", "application/grpc"),
    ("grpc-accept-encoding", crate::compression::ACCEPT_ENCODING),
];
