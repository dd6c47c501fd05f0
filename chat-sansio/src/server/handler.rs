//! The application side of the server: the [`Handler`] trait and the
//! [`Outbox`] through which a handler answers.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::codec;
use crate::compression;
use crate::limits::MESSAGE_HEADER_LEN;
use crate::metadata::{check_response, Metadata, MetadataError};
use crate::status::{Code, Status};
use crate::time::Time;

use super::calls::{Call, Calls};
use super::ids::{CallId, ConnId, GroupId};
use super::output::Output;

/// The smallest message [`Outbox::send`] compresses on a call that has a
/// response encoding only from [`Outbox::offer_compression`]: none is that
/// large, so only [`Outbox::send_compressed`] compresses there.
const ONLY_WHEN_ASKED: usize = usize::MAX;

/// A call the server has accepted at the protocol level, offered to the
/// handler.
#[derive(Debug)]
pub struct Request<'a> {
    /// The call's id.
    pub call: CallId,
    /// The connection it arrived on.
    pub conn: ConnId,
    /// The peer address of that connection, if the driver told it.
    pub peer: Option<&'a str>,
    /// The `:path`, `/package.Service/Method`.
    pub path: &'a str,
    /// Request headers, reserved ones included (see [`Metadata::custom`]).
    pub metadata: &'a Metadata,
    /// When the call's `grpc-timeout` runs out, if it has one.
    pub deadline: Option<Time>,
}

/// Why a call ended without the handler finishing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client reset the stream, or its connection went away.
    Cancelled,
    /// The deadline from `grpc-timeout` passed; the server sent
    /// DEADLINE_EXCEEDED.
    DeadlineExceeded,
    /// The client broke the protocol (say, a truncated or oversized message)
    /// or could not keep up with its stream; the server ended the call with
    /// this status.
    Failed(Status),
    /// The server shut down before the call ended; it sent UNAVAILABLE.
    ShuttingDown,
}

/// A sans-IO gRPC service: what runs on top of [`Server`](super::Server).
///
/// Every callback gets the current time and an [`Outbox`] to answer with.
/// The server guarantees: `open` comes first for a call; `message` and
/// `half_close` come only for calls that are open; after the handler calls
/// [`Outbox::finish`] or after `closed`, nothing more arrives for that call.
pub trait Handler {
    /// Side outputs for the driver: log lines, storage requests.
    type Event;
    /// Application inputs from the driver, such as storage completions.
    type Input;

    /// A new call. Return an error to refuse it; the status then goes out as
    /// a Trailers-Only response. Unknown paths should get UNIMPLEMENTED.
    fn open(
        &mut self,
        now: Time,
        req: &Request<'_>,
        out: &mut Outbox<'_, Self::Event>,
    ) -> Result<(), Status>;

    /// One request message (undecoded protobuf bytes) on an open call.
    fn message(&mut self, now: Time, call: CallId, msg: Bytes, out: &mut Outbox<'_, Self::Event>);

    /// The client has sent its last message.
    fn half_close(&mut self, now: Time, call: CallId, out: &mut Outbox<'_, Self::Event>);

    /// The call ended without the handler finishing it; forget it.
    fn closed(
        &mut self,
        now: Time,
        call: CallId,
        reason: CloseReason,
        out: &mut Outbox<'_, Self::Event>,
    );

    /// A connection is gone; its calls have already been `closed`.
    fn disconnected(&mut self, _now: Time, _conn: ConnId, _out: &mut Outbox<'_, Self::Event>) {}

    /// What was queued for `call` has been sent on (after
    /// [`Outbox::notify_drained`]).
    fn drained(&mut self, _now: Time, _call: CallId, _out: &mut Outbox<'_, Self::Event>) {}

    /// An application input from the driver.
    fn input(&mut self, _now: Time, _input: Self::Input, _out: &mut Outbox<'_, Self::Event>) {}

    /// The time returned by `poll_timeout` has come.
    fn timeout(&mut self, _now: Time, _out: &mut Outbox<'_, Self::Event>) {}

    /// The names of the services this handler serves (`package.Service`),
    /// reported SERVING by the health service until the server shuts down.
    fn services(&self) -> Vec<String> {
        Vec::new()
    }

    /// When the handler next wants `timeout` called.
    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}

/// Where a handler puts its answers. Anything addressed to a call that has
/// ended is dropped here, so nothing is ever sent to an ended call.
pub struct Outbox<'a, E> {
    pub(crate) calls: &'a mut Calls,
    pub(crate) queue: &'a mut VecDeque<Output<E>>,
}

impl<E> Outbox<'_, E> {
    /// Whether `call` is open.
    pub fn is_open(&self, call: CallId) -> bool {
        self.calls.contains(call)
    }

    /// The connection a call is on.
    pub fn conn_of(&mut self, call: CallId) -> Option<ConnId> {
        self.calls.get_mut(call).map(|c| c.conn)
    }

    /// The peer address of a connection, if known.
    pub fn peer_of(&self, conn: ConnId) -> Option<&str> {
        self.calls.conn(conn).and_then(|c| c.peer.as_deref())
    }

    /// Queues an already framed message (see [`codec::encode`]) on `call`.
    /// The same `Bytes` can go to many calls without copying, unless the
    /// call compresses its responses
    /// ([`ServerConfig::compress_min_bytes`](super::ServerConfig::compress_min_bytes)):
    /// then a frame that large is compressed for it. Returns false,
    /// sending nothing, if the call has ended.
    pub fn send(&mut self, call: CallId, frame: Bytes) -> bool {
        if !self.answer(call) {
            return false;
        }
        let compress = self.calls.get_mut(call).and_then(|c| c.compress);
        let frame = match compress {
            Some((enc, min)) if frame.len() >= MESSAGE_HEADER_LEN.saturating_add(min) => {
                compression::compress_frame(enc, &frame).unwrap_or(frame)
            }
            _ => frame,
        };
        self.queue.push_back(Output::Message { call, frame });
        true
    }

    /// Queues an already framed, uncompressed message on `call` compressed
    /// with the call's response encoding, whatever its size: for a handler
    /// that decides per message (PROTOCOL-HTTP2.md "Compressed-Flag" is
    /// per message). It goes plain if the call has no response encoding
    /// (see [`offer_compression`](Self::offer_compression)) or if
    /// compressing would not make it smaller. Returns false, sending
    /// nothing, if the call has ended.
    pub fn send_compressed(&mut self, call: CallId, frame: Bytes) -> bool {
        if !self.answer(call) {
            return false;
        }
        let enc = self.calls.get_mut(call).and_then(|c| c.compress);
        let frame = match enc {
            Some((enc, _)) => compression::compress_frame(enc, &frame).unwrap_or(frame),
            None => frame,
        };
        self.queue.push_back(Output::Message { call, frame });
        true
    }

    /// Gives `call` a response encoding, announced in its response headers
    /// (`grpc-encoding`), if the client accepts one of ours and the call
    /// has none yet: then [`send_compressed`](Self::send_compressed) can
    /// compress, while [`send`](Self::send) still compresses only as the
    /// server's config says. Only from [`Handler::open`], before anything
    /// is sent: the headers carry the encoding. Returns the call's
    /// response encoding.
    pub fn offer_compression(&mut self, call: CallId) -> Option<compression::Encoding> {
        let c = self.calls.get_mut(call)?;
        if c.compress.is_none() && !c.headers_sent {
            c.compress = c.accepts.map(|enc| (enc, ONLY_WHEN_ASKED));
        }
        c.compress.map(|(enc, _)| enc)
    }

    /// Whether the request message last given to [`Handler::message`] for
    /// `call` arrived compressed (its Compressed-Flag): what a handler
    /// needs to check a client's compression. False for an ended call.
    pub fn message_was_compressed(&mut self, call: CallId) -> bool {
        self.calls.get_mut(call).is_some_and(|c| c.last_compressed)
    }

    /// Makes sure response headers went out before anything else on an open
    /// call; false if it has ended.
    fn answer(&mut self, call: CallId) -> bool {
        let Some(c) = self.calls.get_mut(call) else {
            return false;
        };
        if !c.headers_sent {
            c.headers_sent = true;
            let encoding = c.compress.map(|(enc, _)| enc);
            self.queue.push_back(Output::Headers {
                call,
                encoding,
                metadata: Metadata::new(),
            });
        }
        true
    }

    /// Subscribes `call` to `group`: every later [`multicast`] to the group
    /// reaches it, in order with what is sent to it directly. A call is in
    /// at most one group; subscribing it again moves it. Returns false if
    /// the call has ended.
    ///
    /// [`multicast`]: Self::multicast
    pub fn subscribe(&mut self, call: CallId, group: GroupId) -> bool {
        if !self.answer(call) {
            return false;
        }
        let Some(c) = self.calls.get_mut(call) else {
            return false;
        };
        if c.group.replace(group) != Some(group) {
            self.queue.push_back(Output::Subscribe { call, group });
        }
        true
    }

    /// Takes `call` out of its group, if it is in one.
    pub fn unsubscribe(&mut self, call: CallId) {
        if let Some(c) = self.calls.get_mut(call) {
            if c.group.take().is_some() {
                self.queue.push_back(Output::Unsubscribe { call });
            }
        }
    }

    /// Queues one framed message for every call subscribed to `group` at
    /// this point: one output, whatever the number of members, so a driver
    /// can share the work of a broadcast instead of doing it per call. It
    /// goes as it is, never compressed: members negotiated encodings one by
    /// one, and the frame is shared.
    pub fn multicast(&mut self, group: GroupId, frame: Bytes) {
        self.queue.push_back(Output::Multicast { group, frame });
    }

    /// Encodes and queues one message. A message too large to frame ends the
    /// call with INTERNAL instead.
    pub fn send_message<M: prost::Message>(&mut self, call: CallId, msg: &M) -> bool {
        match codec::encode(msg) {
            Ok(frame) => self.send(call, frame),
            Err(e) => {
                self.finish(call, Status::new(Code::Internal, e.to_string()));
                false
            }
        }
    }

    /// Sends the response headers of `call` now, with `metadata` after the
    /// protocol's fields: the call's initial metadata. Only from
    /// [`Handler::open`], before it returns: once it has accepted a call the
    /// server sends its headers at once (PROTOCOL-HTTP2.md "Responses":
    /// Response-Headers come first), and so does anything the handler
    /// sends. Nothing is sent on an error; see [`check_response`] for what
    /// metadata is refused.
    pub fn send_headers(&mut self, call: CallId, metadata: Metadata) -> Result<(), SendError> {
        let c = self.calls.get_mut(call).ok_or(SendError::Ended)?;
        if c.headers_sent {
            return Err(SendError::HeadersSent);
        }
        check_response(&metadata).map_err(SendError::Metadata)?;
        c.headers_sent = true;
        let encoding = c.compress.map(|(enc, _)| enc);
        self.queue.push_back(Output::Headers {
            call,
            encoding,
            metadata,
        });
        Ok(())
    }

    /// Ends `call` with `status`, after everything already queued on it.
    /// Returns false if it had already ended.
    pub fn finish(&mut self, call: CallId, status: Status) -> bool {
        self.finish_with(call, status, Metadata::new()).is_ok()
    }

    /// Ends `call` with `status` and trailing `metadata` (PROTOCOL-HTTP2.md
    /// "Trailers": `grpc-status [grpc-message] *Custom-Metadata`), after
    /// everything already queued on it. On an error nothing is sent and a
    /// call still open stays open; see [`check_response`] for what
    /// metadata is refused.
    pub fn finish_with(
        &mut self,
        call: CallId,
        status: Status,
        metadata: Metadata,
    ) -> Result<(), SendError> {
        if !self.calls.contains(call) {
            return Err(SendError::Ended);
        }
        check_response(&metadata).map_err(SendError::Metadata)?;
        let Some(c) = self.calls.remove(call) else {
            return Err(SendError::Ended);
        };
        end_with(self.queue, call, &c, 200, status, metadata);
        Ok(())
    }

    /// Asks the driver to call [`Handler::drained`] once what is queued for
    /// `call` has been sent on (see [`Output::WhenDrained`]).
    pub fn notify_drained(&mut self, call: CallId) {
        if self.calls.contains(call) {
            self.queue.push_back(Output::WhenDrained { call });
        }
    }

    /// Asks the driver to stop reading requests from `conn` for now (see
    /// [`Output::Pause`]); asking twice is the same as once.
    pub fn pause_reading(&mut self, conn: ConnId) {
        if let Some(c) = self.calls.conn_mut(conn) {
            if !std::mem::replace(&mut c.paused, true) {
                self.queue.push_back(Output::Pause { conn });
            }
        }
    }

    /// Lets the driver read requests from `conn` again, if it was paused.
    pub fn resume_reading(&mut self, conn: ConnId) {
        if let Some(c) = self.calls.conn_mut(conn) {
            if std::mem::replace(&mut c.paused, false) {
                self.queue.push_back(Output::Resume { conn });
            }
        }
    }

    /// Queues an application event for the driver.
    pub fn event(&mut self, event: E) {
        self.queue.push_back(Output::Event(event));
    }
}

/// Why [`Outbox::send_headers`] or [`Outbox::finish_with`] sent nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The call has ended.
    Ended,
    /// The call's response headers have gone out already.
    HeadersSent,
    /// The metadata cannot be sent (see [`check_response`]).
    Metadata(MetadataError),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Ended => f.write_str("the call has ended"),
            SendError::HeadersSent => f.write_str("response headers already sent"),
            SendError::Metadata(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {}

/// Queues what ends a call the table has just let go of: it leaves its
/// group, then trailers after response headers, or a Trailers-Only response
/// if no headers went out.
pub(crate) fn end<E>(
    queue: &mut VecDeque<Output<E>>,
    call: CallId,
    c: &Call,
    http_status: u16,
    status: Status,
) {
    end_with(queue, call, c, http_status, status, Metadata::new());
}

/// [`end`] with trailing metadata, already checked.
fn end_with<E>(
    queue: &mut VecDeque<Output<E>>,
    call: CallId,
    c: &Call,
    http_status: u16,
    status: Status,
    metadata: Metadata,
) {
    leave(queue, call, c);
    queue.push_back(if c.headers_sent {
        Output::Trailers {
            call,
            status,
            metadata,
        }
    } else {
        Output::TrailersOnly {
            call,
            http_status,
            status,
            metadata,
        }
    });
}

/// Queues the `Unsubscribe` of a call that has gone, if it was in a group.
pub(crate) fn leave<E>(queue: &mut VecDeque<Output<E>>, call: CallId, c: &Call) {
    if c.group.is_some() {
        queue.push_back(Output::Unsubscribe { call });
    }
}
