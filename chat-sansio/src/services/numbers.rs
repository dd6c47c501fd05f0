//! Seed 003: `tutorial.NumberService.AccumulateNumbers`.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use chat_proto::tutorial::{NumberRequest, NumberResponse, ACCUMULATE_NUMBERS};
use prost::Message as _;

use crate::server::{CallId, CloseReason, Handler, Outbox, Request};
use crate::status::{malformed, unimplemented, Code, Status};
use crate::time::Time;

/// Answers each number with the running sum of the call's numbers. A sum
/// that leaves the `int32` range ends the call with OUT_OF_RANGE instead of
/// wrapping around as the seed's Go server silently would.
#[derive(Debug, Default)]
pub struct Numbers {
    sums: HashMap<CallId, i32>,
}

impl Handler for Numbers {
    type Event = Infallible;
    type Input = Infallible;

    fn services(&self) -> Vec<String> {
        vec!["tutorial.NumberService".to_owned()]
    }

    fn open(
        &mut self,
        _now: Time,
        req: &Request<'_>,
        _out: &mut Outbox<'_, Infallible>,
    ) -> Result<(), Status> {
        if req.path != ACCUMULATE_NUMBERS {
            return Err(unimplemented(req.path));
        }
        self.sums.insert(req.call, 0);
        Ok(())
    }

    fn message(&mut self, _now: Time, call: CallId, msg: Bytes, out: &mut Outbox<'_, Infallible>) {
        let Some(sum) = self.sums.get_mut(&call) else {
            return;
        };
        let status = match NumberRequest::decode(msg) {
            Ok(req) => match sum.checked_add(req.num) {
                Some(next) => {
                    *sum = next;
                    out.send_message(call, &NumberResponse { sum: next });
                    return;
                }
                None => Status::new(Code::OutOfRange, "the running sum leaves the int32 range"),
            },
            Err(e) => malformed("NumberRequest", &e),
        };
        self.sums.remove(&call);
        out.finish(call, status);
    }

    fn half_close(&mut self, _now: Time, call: CallId, out: &mut Outbox<'_, Infallible>) {
        self.sums.remove(&call);
        out.finish(call, Status::ok());
    }

    fn closed(
        &mut self,
        _now: Time,
        call: CallId,
        _reason: CloseReason,
        _out: &mut Outbox<'_, Infallible>,
    ) {
        self.sums.remove(&call);
    }
}
