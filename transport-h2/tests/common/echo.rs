//! [`Echo`]: a test-only handler that echoes every request message as-is,
//! to test framing and flow control without chat rules, and echoes
//! metadata as the gRPC interop `custom_metadata` case asks.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chat_sansio::codec;
use chat_sansio::metadata::Metadata;
use chat_sansio::server::{CallId, CloseReason, Handler, Outbox, Request};
use chat_sansio::{Status, Time};

/// A streaming echo: every message back, OK on half-close.
pub const ECHO: &str = "/test.Echo/Echo";
/// A unary-style echo: the first message back, then OK at once.
pub const ECHO_UNARY: &str = "/test.Echo/Unary";

/// Request header whose value comes back in the response headers
/// (grpc/grpc `doc/interop-test-descriptions.md`, "custom_metadata").
pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
/// Request header whose binary value comes back in the trailers (same).
pub const ECHO_TRAILING_BIN: &str = "x-grpc-test-echo-trailing-bin";
/// Request header `name=value`: the handler tries to send that field as
/// initial metadata. If the core refuses it, the error comes back in the
/// trailers under [`REFUSED`] instead.
pub const ECHO_FIELD: &str = "x-echo-field";
/// Trailer holding the core's refusal of an [`ECHO_FIELD`].
pub const REFUSED: &str = "x-refused";

/// Echoes every request message back as-is; ends with OK on half-close.
/// On [`ECHO_UNARY`] it ends the call with OK right after the first echo,
/// in the same callback, as a unary method does. Echoes [`ECHO_INITIAL`]
/// and [`ECHO_TRAILING_BIN`] as response metadata.
#[derive(Default)]
pub struct Echo {
    unary: HashSet<CallId>,
    trailing: HashMap<CallId, Metadata>,
}

impl Echo {
    fn finish(&mut self, call: CallId, out: &mut Outbox<'_, ()>) {
        let trailing = self.trailing.remove(&call).unwrap_or_default();
        out.finish_with(call, Status::ok(), trailing)
            .expect("checked when the call opened");
    }
}

impl Handler for Echo {
    type Event = ();
    type Input = ();

    fn open(
        &mut self,
        _now: Time,
        req: &Request<'_>,
        out: &mut Outbox<'_, ()>,
    ) -> Result<(), Status> {
        if req.path == ECHO_UNARY {
            self.unary.insert(req.call);
        }
        let mut initial = Metadata::new();
        if let Some(v) = req.metadata.get(ECHO_INITIAL) {
            initial.push(ECHO_INITIAL, Bytes::copy_from_slice(v));
        }
        let mut trailing = Metadata::new();
        if let Some((name, value)) = req
            .metadata
            .get_str(ECHO_FIELD)
            .and_then(|f| f.split_once('='))
        {
            let mut field = Metadata::new();
            field.push(name, value.to_owned());
            if let Err(e) = out.send_headers(req.call, field) {
                trailing.push(REFUSED, e.to_string());
            }
        }
        for v in req.metadata.get_bin(ECHO_TRAILING_BIN).unwrap_or_default() {
            trailing.push(ECHO_TRAILING_BIN, v);
        }
        if !initial.is_empty() {
            out.send_headers(req.call, initial)
                .map_err(|e| Status::new(chat_sansio::Code::Internal, e.to_string()))?;
        }
        if !trailing.is_empty() {
            self.trailing.insert(req.call, trailing);
        }
        Ok(())
    }

    fn message(&mut self, _now: Time, call: CallId, msg: Bytes, out: &mut Outbox<'_, ()>) {
        out.send(call, codec::encode_raw(&msg).unwrap());
        if self.unary.remove(&call) {
            self.finish(call, out);
        }
    }

    fn half_close(&mut self, _now: Time, call: CallId, out: &mut Outbox<'_, ()>) {
        self.unary.remove(&call);
        self.finish(call, out);
    }

    fn closed(
        &mut self,
        _now: Time,
        call: CallId,
        _reason: CloseReason,
        _out: &mut Outbox<'_, ()>,
    ) {
        self.unary.remove(&call);
        self.trailing.remove(&call);
    }
}
