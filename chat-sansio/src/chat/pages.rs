//! Reads asked of the engine: History pages, the history of JoinChatRoom
//! answers, resuming streams' pages and gap fills; at most a few for calls
//! at once, so that many calls cannot put many pages in flight.

use bytes::Bytes;
use chat_proto::{ChatMessage, ChatRoom, HistoryPage, HistoryRequest};
use prost::Message as _;

use crate::limits::{MAX_PAGE_BYTES, MAX_READS_IN_FLIGHT};
use crate::server::{CallId, Outbox};
use crate::status::{malformed, Code, Status};
use crate::time::Time;

use super::events::ReadToken;
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

/// Messages in a page when the request says 0.
pub const DEFAULT_PAGE: u32 = 50;
/// Most messages in one page.
pub const MAX_PAGE: u32 = 1000;

/// What a read asked of the engine is for.
#[derive(Debug)]
pub(super) enum Read {
    /// A History call's page.
    History { call: CallId },
    /// A JoinChatRoom answer's history.
    Join { call: CallId, room: String },
    /// A resuming stream's next page.
    Resume { call: CallId },
    /// Whether the engine holds the point a stream resumes from, when it
    /// is past what this node's room has delivered.
    Ahead { call: CallId },
    /// A gap in a room's log (never held back: delivery waits for it).
    Fill { room: String, up_to: u64 },
}

impl Read {
    /// Reads for calls count against [`MAX_READS_IN_FLIGHT`]; gap fills
    /// do not (there is at most one per room, and delivery waits on it).
    fn bounded(&self) -> bool {
        !matches!(self, Read::Fill { .. })
    }

    fn call(&self) -> Option<CallId> {
        match self {
            Read::History { call }
            | Read::Join { call, .. }
            | Read::Resume { call }
            | Read::Ahead { call } => Some(*call),
            Read::Fill { .. } => None,
        }
    }
}

/// One answer of a JoinChatRoom call, in the order of its requests.
#[derive(Debug)]
pub(super) struct Reply {
    room: String,
    token: Option<u64>,
    ready: Option<ChatRoom>,
}

impl Chat {
    /// Asks the engine for a read: at once, or, for reads of calls beyond
    /// [`MAX_READS_IN_FLIGHT`], once an earlier one is answered.
    pub(super) fn issue_read(
        &mut self,
        read: Read,
        event: impl FnOnce(ReadToken) -> ChatEvent,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        if read.bounded() {
            if self.reads_in_flight >= MAX_READS_IN_FLIGHT {
                self.waiting_reads
                    .push_back((token, read, event(ReadToken(token))));
                return;
            }
            self.reads_in_flight += 1;
        }
        self.reads.insert(token, read);
        out.event(event(ReadToken(token)));
    }

    /// A read was answered: its slot goes to the next waiting one whose
    /// call is still there. Returns what the read was for.
    fn answered(&mut self, token: ReadToken, out: &mut Outbox<'_, ChatEvent>) -> Option<Read> {
        let read = self.reads.remove(&token.0)?;
        if read.bounded() {
            self.reads_in_flight = self.reads_in_flight.saturating_sub(1);
            while let Some((token, read, event)) = self.waiting_reads.pop_front() {
                if read.call().is_some_and(|c| self.calls.contains_key(&c)) {
                    self.reads_in_flight += 1;
                    self.reads.insert(token, read);
                    out.event(event);
                    break;
                }
            }
        }
        Some(read)
    }

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
        let before_seq = req.before_seq;
        self.issue_read(
            Read::History { call },
            |token| ChatEvent::ReadHistory {
                token,
                room,
                before_seq,
                limit,
            },
            out,
        );
        Ok(())
    }

    /// Asks for the history a JoinChatRoom answer carries (the room is
    /// open).
    pub(super) fn ask_join_history(
        &mut self,
        call: CallId,
        room: &str,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let token = self.next_token;
        let limit = u32::try_from(self.history_on_join).unwrap_or(u32::MAX);
        let room_id = room.to_owned();
        self.issue_read(
            Read::Join {
                call,
                room: room.to_owned(),
            },
            |t| ChatEvent::ReadHistory {
                token: t,
                room: room_id,
                before_seq: 0,
                limit,
            },
            out,
        );
        if let Some(ChatCall::Join { replies, .. }) = self.calls.get_mut(&call) {
            if let Some(r) = replies
                .iter_mut()
                .find(|r| r.room == room && r.token.is_none())
            {
                r.token = Some(token);
            }
        }
    }

    /// Queues a JoinChatRoom answer for `room`; its history is read now if
    /// the room is open, else when it opens.
    pub(super) fn queue_reply(
        &mut self,
        call: CallId,
        room: &str,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        if let Some(ChatCall::Join { replies, .. }) = self.calls.get_mut(&call) {
            replies.push_back(Reply {
                room: room.to_owned(),
                token: None,
                ready: None,
            });
        }
        let open = self.rooms.get(room).is_some_and(|r| r.log.is_some());
        if open {
            self.ask_join_history(call, room, out);
        } else if let Some(r) = self.rooms.get_mut(room) {
            r.waiting.push(super::room::Waiting::Reply(call));
        }
    }

    /// The engine's answer to a page read.
    pub(super) fn page_read(
        &mut self,
        token: ReadToken,
        page: Result<HistoryPage, String>,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        match self.answered(token, out) {
            Some(Read::History { call }) if out.is_open(call) => {
                self.answer_page(call, page, out);
            }
            Some(Read::Join { call, room }) => self.join_history(call, token.0, &room, page, out),
            _ => {}
        }
    }

    /// The engine's answer to a range read.
    pub(super) fn range_read(
        &mut self,
        now: Time,
        token: ReadToken,
        entries: Result<Vec<ChatMessage>, String>,
        first_seq: u64,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        match self.answered(token, out) {
            Some(Read::Fill { room, up_to }) => {
                self.filled(now, &room, up_to, entries, first_seq, out)
            }
            Some(Read::Resume { call }) => self.resume_page(call, entries, first_seq, out),
            Some(Read::Ahead { call }) => self.resume_ahead(now, call, entries, out),
            _ => {}
        }
    }

    /// A JoinChatRoom answer's history has come: the answers that are
    /// ready go out in order.
    fn join_history(
        &mut self,
        call: CallId,
        token: u64,
        room_id: &str,
        page: Result<HistoryPage, String>,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let page = match page {
            Ok(page) => page,
            Err(e) => return self.read_failed(call, &e, out),
        };
        let log = self.rooms.get(room_id).and_then(|r| r.log);
        let last_seq = page
            .messages
            .last()
            .map_or_else(|| log.map_or(0, |l| l.delivered), |m| m.seq);
        // Who is there is filled in as it goes out (an earlier answer may
        // hold it back).
        let answer = ChatRoom {
            room_id: room_id.to_owned(),
            users: Vec::new(),
            history: page.messages,
            epoch: log.map_or(0, |l| l.epoch),
            last_seq,
        };
        let Some(ChatCall::Join {
            replies, closing, ..
        }) = self.calls.get_mut(&call)
        else {
            return;
        };
        if let Some(r) = replies.iter_mut().find(|r| r.token == Some(token)) {
            r.ready = Some(answer);
        }
        while replies.front().is_some_and(|r| r.ready.is_some()) {
            if let Some(Reply {
                ready: Some(mut answer),
                ..
            }) = replies.pop_front()
            {
                if let Some(r) = self.rooms.get(&answer.room_id) {
                    answer.users = r.users();
                }
                out.send_message(call, &answer);
            }
        }
        if *closing && replies.is_empty() {
            self.forget(call);
            out.finish(call, Status::ok());
        }
    }

    /// A read for `call` failed: the call ends with UNAVAILABLE (the
    /// engine may well read next time).
    pub(super) fn read_failed(&mut self, call: CallId, why: &str, out: &mut Outbox<'_, ChatEvent>) {
        let status = Status::new(Code::Unavailable, format!("cannot read history: {why}"));
        if out.finish(call, status) {
            self.forget(call);
        }
    }

    /// The answer to a History call.
    fn answer_page(
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
