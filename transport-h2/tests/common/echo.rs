//! [`Echo`]: a test-only handler that echoes every request message as-is,
//! to test framing and flow control without chat rules.

use std::collections::HashSet;

use bytes::Bytes;
use chat_sansio::codec;
use chat_sansio::server::{CallId, CloseReason, Handler, Outbox, Request};
use chat_sansio::{Status, Time};

/// A streaming echo: every message back, OK on half-close.
pub const ECHO: &str = "/test.Echo/Echo";
/// A unary-style echo: the first message back, then OK at once.
pub const ECHO_UNARY: &str = "/test.Echo/Unary";

/// Echoes every request message back as-is; ends with OK on half-close.
/// On [`ECHO_UNARY`] it ends the call with OK right after the first echo,
/// in the same callback, as a unary method does.
#[derive(Default)]
pub struct Echo {
    unary: HashSet<CallId>,
}

impl Handler for Echo {
    type Event = ();
    type Input = ();

    fn open(
        &mut self,
        _now: Time,
        req: &Request<'_>,
        _out: &mut Outbox<'_, ()>,
    ) -> Result<(), Status> {
        if req.path == ECHO_UNARY {
            self.unary.insert(req.call);
        }
        Ok(())
    }

    fn message(&mut self, _now: Time, call: CallId, msg: Bytes, out: &mut Outbox<'_, ()>) {
        out.send(call, codec::encode_raw(&msg).unwrap());
        if self.unary.remove(&call) {
            out.finish(call, Status::ok());
        }
    }

    fn half_close(&mut self, _now: Time, call: CallId, out: &mut Outbox<'_, ()>) {
        self.unary.remove(&call);
        out.finish(call, Status::ok());
    }

    fn closed(
        &mut self,
        _now: Time,
        call: CallId,
        _reason: CloseReason,
        _out: &mut Outbox<'_, ()>,
    ) {
        self.unary.remove(&call);
    }
}
