//! The History RPC: a page of a room's history, from the store in durable
//! mode (through [`ChatEvent::ReadHistory`]), from memory otherwise.

use bytes::Bytes;
use chat_proto::{ChatMessage, HistoryPage, HistoryRequest};
use prost::Message as _;

use crate::limits::{MAX_PAGE_BYTES, MAX_READS_IN_FLIGHT};
use crate::server::{CallId, Outbox};
use crate::status::{malformed, Code, Status};

use super::policy::Identity;
use super::{Chat, ChatCall, ChatEvent};

/// Collects a page of history from the newest message down, within a
/// count and [`MAX_PAGE_BYTES`]: what every source of pages (memory, a
/// store) uses, so pages end the same way wherever they come from.
#[derive(Debug)]
pub struct PageBuilder {
    limit: usize,
    bytes: usize,
    newest_first: Vec<ChatMessage>,
    more: bool,
}

impl PageBuilder {
    /// A page of at most `limit` messages.
    pub fn new(limit: usize) -> PageBuilder {
        PageBuilder {
            limit,
            bytes: 0,
            newest_first: Vec::new(),
            more: false,
        }
    }

    /// Offers the next older message; false once the page is full (the
    /// caller stops reading; `more` is then set).
    pub fn push(&mut self, m: ChatMessage) -> bool {
        // A repeated field costs its length, its tag and its length prefix.
        let size = m.encoded_len() + 8;
        let full_count = self.newest_first.len() >= self.limit;
        let full_bytes = !self.newest_first.is_empty() && self.bytes + size > MAX_PAGE_BYTES;
        if full_count || full_bytes {
            self.more = true;
            return false;
        }
        self.bytes += size;
        self.newest_first.push(m);
        true
    }

    /// The page, oldest first, and whether older messages exist.
    pub fn finish(mut self) -> (Vec<ChatMessage>, bool) {
        self.newest_first.reverse();
        (self.newest_first, self.more)
    }
}

/// A History read waiting for its turn with the store.
#[derive(Debug)]
pub(super) struct Read {
    call: CallId,
    room: String,
    before_seq: u64,
    limit: u32,
}

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
        let room = self.policy.room_name(&req.room_id)?;
        self.policy.check_read(who, &room)?;
        let limit = match req.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        if let Some(ChatCall::History { asked, .. }) = self.calls.get_mut(&call) {
            *asked = true;
        }
        if self.durable {
            let read = Read {
                call,
                room,
                before_seq: req.before_seq,
                limit,
            };
            if self.reads_in_flight < MAX_READS_IN_FLIGHT {
                self.issue_read(read, out);
            } else {
                self.waiting_reads.push_back(read);
            }
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

    fn issue_read(&mut self, read: Read, out: &mut Outbox<'_, ChatEvent>) {
        self.reads_in_flight += 1;
        out.event(ChatEvent::ReadHistory {
            call: read.call,
            room: read.room,
            before_seq: read.before_seq,
            limit: read.limit,
        });
    }

    /// The store answered a read (for a call that may have gone since):
    /// the next waiting one, if its call is still there, goes out.
    pub(super) fn read_answered(&mut self, out: &mut Outbox<'_, ChatEvent>) {
        self.reads_in_flight = self.reads_in_flight.saturating_sub(1);
        while let Some(read) = self.waiting_reads.pop_front() {
            if matches!(self.calls.get(&read.call), Some(ChatCall::History { .. })) {
                self.issue_read(read, out);
                break;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, len: usize) -> ChatMessage {
        ChatMessage {
            seq,
            message: "x".repeat(len),
            ..Default::default()
        }
    }

    #[test]
    fn pages_stop_at_their_count_or_their_bytes() {
        // By count: three of five, newest, oldest first; older ones exist.
        let mut p = PageBuilder::new(3);
        for seq in (1..=5).rev() {
            if !p.push(msg(seq, 10)) {
                break;
            }
        }
        let (page, more) = p.finish();
        assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(more);
        // Exactly the count: nothing more.
        let mut p = PageBuilder::new(2);
        assert!(p.push(msg(2, 10)) && p.push(msg(1, 10)));
        assert!(!p.finish().1);
        // By bytes: 1,000 messages of 16 KiB make a page of under 1 MiB.
        let mut p = PageBuilder::new(MAX_PAGE as usize);
        let mut offered = 0;
        for seq in (1..=1000).rev() {
            offered += 1;
            if !p.push(msg(seq, 16 * 1024)) {
                break;
            }
        }
        let (page, more) = p.finish();
        let bytes: usize = page.iter().map(|m| m.encoded_len() + 8).sum();
        assert!(
            more && bytes <= MAX_PAGE_BYTES && page.len() >= 60,
            "{}",
            page.len()
        );
        assert_eq!(
            offered,
            page.len() + 1,
            "reading stops at the first that does not fit"
        );
        // One message always fits, however large.
        let mut p = PageBuilder::new(10);
        assert!(p.push(msg(1, 2 * MAX_PAGE_BYTES)));
    }
}
