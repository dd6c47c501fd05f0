//! gRPC's interop test service, `grpc.testing.TestService`, as
//! doc/interop-test-descriptions.md (grpc/grpc) describes its server: the
//! peer that every gRPC implementation's interop client is run against.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;

use bytes::Bytes;
use chat_proto::testing::{
    paths, Empty, SimpleRequest, SimpleResponse, StreamingInputCallRequest,
    StreamingInputCallResponse, StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use prost::Message as _;

use crate::codec;
use crate::metadata::Metadata;
use crate::server::{CallId, CloseReason, Handler, Outbox, Request};
use crate::status::{malformed, unimplemented, Code, Status};
use crate::time::Time;

use super::interop_reply::{
    check_compressed, echo_status, echoes, payload, Owed, MAX_PENDING_RESPONSES,
};

/// The methods served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Empty,
    Unary,
    StreamingOutput,
    StreamingInput,
    FullDuplex,
    HalfDuplex,
}

/// One open call.
#[derive(Debug)]
struct Call {
    method: Method,
    /// The decoded `x-grpc-test-echo-trailing-bin`, for the trailers.
    trailing: Metadata,
    /// StreamingInputCall: the payload bytes received so far.
    aggregated: usize,
    /// Responses owed, in order.
    owed: VecDeque<Owed>,
    /// When the previous response went (or the call's first request came):
    /// the next one is due at this plus its interval.
    since: Time,
    /// HalfDuplexCall: responses held until the client half-closes.
    held: Vec<Owed>,
    /// The client has half-closed.
    half_closed: bool,
}

/// `grpc.testing.TestService`: EmptyCall, UnaryCall, StreamingOutputCall,
/// StreamingInputCall, FullDuplexCall and HalfDuplexCall, with the
/// descriptions' server features (payload sizes, echoed status and
/// metadata, compressed requests and responses, intervals between
/// streamed responses). UnimplementedCall and every other path get
/// UNIMPLEMENTED. Intervals are kept with the time the server passes in:
/// the handler asks for a wake-up ([`Handler::poll_timeout`]) at the next
/// response due.
#[derive(Debug)]
pub struct Interop {
    calls: HashMap<CallId, Call>,
    /// What `SimpleResponse.server_id` says when a request sets
    /// `fill_server_id` (the descriptions' pick_first_unary case checks
    /// that it is non-empty and the same on every call of a channel).
    server_id: String,
}

impl Default for Interop {
    fn default() -> Self {
        Self::with_server_id(DEFAULT_SERVER_ID)
    }
}

/// The `server_id` of [`Interop::default`].
pub const DEFAULT_SERVER_ID: &str = "chat-sansio-interop";

impl Interop {
    /// A test service whose responses carry `server_id` when a request
    /// sets `fill_server_id`: a name that tells this server from the
    /// others behind one address (a host and port, a process id).
    pub fn with_server_id(server_id: impl Into<String>) -> Self {
        Self {
            calls: HashMap::new(),
            server_id: server_id.into(),
        }
    }

    /// Ends `id` with `status` and its echoed trailing metadata.
    fn finish(&mut self, id: CallId, status: Status, out: &mut Outbox<'_, Infallible>) {
        let trailing = self
            .calls
            .remove(&id)
            .map(|c| c.trailing)
            .unwrap_or_default();
        // The trailing metadata was checked when it arrived; if the
        // response refuses it after all, the status still goes out.
        if out.finish_with(id, status.clone(), trailing).is_err() {
            out.finish(id, status);
        }
    }

    /// One request message; `Err` ends the call with that status.
    fn request(
        &mut self,
        now: Time,
        id: CallId,
        msg: Bytes,
        out: &mut Outbox<'_, Infallible>,
    ) -> Result<(), Status> {
        let Some(call) = self.calls.get_mut(&id) else {
            return Ok(());
        };
        let compressed = out.message_was_compressed(id);
        match call.method {
            Method::Empty => {
                Empty::decode(msg).map_err(|e| malformed("Empty", &e))?;
                out.send_message(id, &Empty {});
                Err(Status::ok())
            }
            Method::Unary => {
                let req = SimpleRequest::decode(msg).map_err(|e| malformed("SimpleRequest", &e))?;
                check_compressed(req.expect_compressed.as_ref(), compressed)?;
                if let Some(status) = echo_status(req.response_status.as_ref()) {
                    return Err(status);
                }
                let res = SimpleResponse {
                    payload: payload(req.response_size)?,
                    server_id: if req.fill_server_id {
                        self.server_id.clone()
                    } else {
                        String::new()
                    },
                    ..SimpleResponse::default()
                };
                let frame =
                    codec::encode(&res).map_err(|e| Status::new(Code::Internal, e.to_string()))?;
                if req.response_compressed.is_some_and(|c| c.value) {
                    out.send_compressed(id, frame);
                } else {
                    out.send(id, frame);
                }
                Err(Status::ok())
            }
            Method::StreamingInput => {
                let req = StreamingInputCallRequest::decode(msg)
                    .map_err(|e| malformed("StreamingInputCallRequest", &e))?;
                check_compressed(req.expect_compressed.as_ref(), compressed)?;
                let len = req.payload.map_or(0, |p| p.body.len());
                call.aggregated = call.aggregated.saturating_add(len);
                Ok(())
            }
            Method::StreamingOutput | Method::FullDuplex | Method::HalfDuplex => {
                let req = StreamingOutputCallRequest::decode(msg)
                    .map_err(|e| malformed("StreamingOutputCallRequest", &e))?;
                // "the server closes the stream with the status ... and
                // will not process any further messages" (Echo Status).
                if let Some(status) = echo_status(req.response_status.as_ref()) {
                    return Err(status);
                }
                let owed = req.response_parameters.iter().map(Owed::from_params);
                if call.owed.len() + call.held.len() + owed.len() > MAX_PENDING_RESPONSES {
                    return Err(Status::new(
                        Code::ResourceExhausted,
                        format!("more than {MAX_PENDING_RESPONSES} responses waiting"),
                    ));
                }
                if call.method == Method::HalfDuplex {
                    call.held.extend(owed);
                    return Ok(());
                }
                if call.owed.is_empty() {
                    call.since = now;
                }
                call.owed.extend(owed);
                self.pump(now, id, out);
                Ok(())
            }
        }
    }

    /// Sends what `id` owes and is due by `now`; ends the call once it owes
    /// nothing and the client has half-closed.
    fn pump(&mut self, now: Time, id: CallId, out: &mut Outbox<'_, Infallible>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        while let Some(next) = call.owed.front().copied() {
            if call.since + next.interval > now {
                return;
            }
            call.owed.pop_front();
            call.since = now;
            let res = payload(next.size).and_then(|payload| {
                codec::encode(&StreamingOutputCallResponse { payload })
                    .map_err(|e| Status::new(Code::Internal, e.to_string()))
            });
            let sent = match res {
                Ok(frame) if next.compressed => out.send_compressed(id, frame),
                Ok(frame) => out.send(id, frame),
                Err(status) => return self.finish(id, status, out),
            };
            if !sent {
                self.calls.remove(&id);
                return;
            }
        }
        if call.half_closed {
            self.finish(id, Status::ok(), out);
        }
    }
}

impl Handler for Interop {
    type Event = Infallible;
    type Input = Infallible;

    fn services(&self) -> Vec<String> {
        vec![paths::SERVICE.to_owned()]
    }

    fn open(
        &mut self,
        now: Time,
        req: &Request<'_>,
        out: &mut Outbox<'_, Infallible>,
    ) -> Result<(), Status> {
        let method = match req.path {
            paths::EMPTY_CALL => Method::Empty,
            paths::UNARY_CALL => Method::Unary,
            paths::STREAMING_OUTPUT_CALL => Method::StreamingOutput,
            paths::STREAMING_INPUT_CALL => Method::StreamingInput,
            paths::FULL_DUPLEX_CALL => Method::FullDuplex,
            paths::HALF_DUPLEX_CALL => Method::HalfDuplex,
            other => return Err(unimplemented(other)),
        };
        let (initial, trailing) = echoes(req.metadata)?;
        // Before the headers go: they announce the encoding that responses
        // asking for compression use ("CompressedResponse").
        out.offer_compression(req.call);
        if !initial.is_empty() {
            out.send_headers(req.call, initial)
                .map_err(|e| Status::new(Code::InvalidArgument, e.to_string()))?;
        }
        self.calls.insert(
            req.call,
            Call {
                method,
                trailing,
                aggregated: 0,
                owed: VecDeque::new(),
                since: now,
                held: Vec::new(),
                half_closed: false,
            },
        );
        Ok(())
    }

    fn message(&mut self, now: Time, id: CallId, msg: Bytes, out: &mut Outbox<'_, Infallible>) {
        if let Err(status) = self.request(now, id, msg, out) {
            self.finish(id, status, out);
        }
    }

    fn half_close(&mut self, now: Time, id: CallId, out: &mut Outbox<'_, Infallible>) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.half_closed = true;
        match call.method {
            Method::Empty | Method::Unary => {
                let status = Status::new(Code::Unimplemented, "a unary call needs one request");
                self.finish(id, status, out);
            }
            Method::StreamingInput => {
                let res = StreamingInputCallResponse {
                    aggregated_payload_size: i32::try_from(call.aggregated).unwrap_or(i32::MAX),
                };
                out.send_message(id, &res);
                self.finish(id, Status::ok(), out);
            }
            Method::HalfDuplex => {
                call.owed.extend(call.held.drain(..));
                call.since = now;
                self.pump(now, id, out);
            }
            Method::StreamingOutput | Method::FullDuplex => self.pump(now, id, out),
        }
    }

    fn closed(
        &mut self,
        _now: Time,
        id: CallId,
        _reason: CloseReason,
        _out: &mut Outbox<'_, Infallible>,
    ) {
        self.calls.remove(&id);
    }

    fn timeout(&mut self, now: Time, out: &mut Outbox<'_, Infallible>) {
        let due: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.owed.front().is_some_and(|o| c.since + o.interval <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.pump(now, id, out);
        }
    }

    /// The earliest response due; a scan of the open calls, which the
    /// interop tests keep to a handful.
    fn poll_timeout(&self) -> Option<Time> {
        self.calls
            .values()
            .filter_map(|c| c.owed.front().map(|o| c.since + o.interval))
            .min()
    }
}
