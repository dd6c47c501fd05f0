//! Seed 002: `Chat.chat(stream ChatMessage) returns (stream string)`.

use std::collections::HashSet;
use std::convert::Infallible;

use bytes::Bytes;
use chat_proto::BidiChatMessage;
use prost::Message as _;

use crate::server::{CallId, CloseReason, Handler, Outbox, Request};
use crate::status::{malformed, unimplemented, Status};
use crate::time::Time;

/// Answers every message with the string `"name: message"` (a
/// `google.protobuf.StringValue`); when the client completes its stream,
/// completes its own after the last answer.
#[derive(Debug, Default)]
pub struct BidiChat {
    calls: HashSet<CallId>,
}

impl Handler for BidiChat {
    type Event = Infallible;
    type Input = Infallible;

    fn services(&self) -> Vec<String> {
        vec!["Chat".to_owned()]
    }

    fn open(
        &mut self,
        _now: Time,
        req: &Request<'_>,
        _out: &mut Outbox<'_, Infallible>,
    ) -> Result<(), Status> {
        if req.path != chat_proto::paths::BIDI_CHAT {
            return Err(unimplemented(req.path));
        }
        self.calls.insert(req.call);
        Ok(())
    }

    fn message(&mut self, _now: Time, call: CallId, msg: Bytes, out: &mut Outbox<'_, Infallible>) {
        match BidiChatMessage::decode(msg) {
            Ok(m) => {
                out.send_message(call, &format!("{}: {}", m.name, m.message));
            }
            Err(e) => {
                self.calls.remove(&call);
                out.finish(call, malformed("ChatMessage", &e));
            }
        }
    }

    fn half_close(&mut self, _now: Time, call: CallId, out: &mut Outbox<'_, Infallible>) {
        self.calls.remove(&call);
        out.finish(call, Status::ok());
    }

    fn closed(
        &mut self,
        _now: Time,
        call: CallId,
        _reason: CloseReason,
        _out: &mut Outbox<'_, Infallible>,
    ) {
        self.calls.remove(&call);
    }
}
