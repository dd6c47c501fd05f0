//! The History RPC: a page of a room's history, from the store in durable
//! mode (through [`ChatEvent::ReadHistory`]), from memory otherwise.

use bytes::Bytes;
use chat_proto::{HistoryPage, HistoryRequest};
use prost::Message as _;

use crate::server::{CallId, Outbox};
use crate::status::{malformed, Code, Status};

use super::policy::Identity;
use super::{Chat, ChatCall, ChatEvent, DEFAULT_ROOM};

/// Messages in a page when the request says 0.
pub const DEFAULT_PAGE: u32 = 50;
/// Most messages in one page.
pub const MAX_PAGE: u32 = 1000;

impl Chat {
    /// The request of a History call (exactly one is allowed).
    pub(super) fn history_request(
        &mut self,
        call: CallId,
        who: &Identity,
        bytes: Bytes,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        if matches!(
            self.calls.get(&call),
            Some(ChatCall::History { asked: true, .. })
        ) {
            return Err(Status::new(Code::Internal, "more than one request message"));
        }
        let req = HistoryRequest::decode(bytes).map_err(|e| malformed("HistoryRequest", &e))?;
        let room = if req.room_id.is_empty() {
            DEFAULT_ROOM.to_owned()
        } else {
            req.room_id
        };
        self.policy.check_read(who, &room)?;
        let limit = match req.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        if let Some(ChatCall::History { asked, .. }) = self.calls.get_mut(&call) {
            *asked = true;
        }
        if self.durable {
            out.event(ChatEvent::ReadHistory {
                call,
                room,
                before_seq: req.before_seq,
                limit,
            });
            return Ok(());
        }
        let (messages, more) = match self.rooms.get(&room) {
            Some(r) => r.history.page(req.before_seq, limit as usize),
            None => (Vec::new(), false),
        };
        let page = HistoryPage {
            room_id: room,
            messages,
            more,
        };
        self.answer_page(call, Ok(page), out);
        Ok(())
    }

    /// The answer to a History call, from memory or from the store.
    pub(super) fn answer_page(
        &mut self,
        call: CallId,
        page: Result<HistoryPage, String>,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        self.forget(call);
        match page {
            Ok(page) => {
                out.send_message(call, &page);
                out.finish(call, Status::ok());
            }
            Err(e) => {
                out.finish(
                    call,
                    Status::new(Code::Unavailable, format!("cannot read history: {e}")),
                );
            }
        }
    }
}
