//! Posting and delivery: an accepted post is an append asked of the engine;
//! the engine's entries, this node's and others', are delivered to each
//! room's streams strictly in seq order, once, a gap filled from the engine
//! before anything after it goes out.
//!
//! Nobody, the sender included, receives a message before the engine has
//! stored it (as durably as that engine stores anything). A post whose
//! append fails, or whose outcome is unknown, ends its poster's call with
//! UNAVAILABLE; the client may retry with the same `client_msg_id`, and the
//! engine's dedupe makes sure the retry is not a second message.

use bytes::Bytes;
use chat_proto::{ChatMessage, Presence, Refusal};
use prost::Message as _;

use crate::codec;
use crate::limits::{
    MAX_CHAT_TEXT_LEN, MAX_CLIENT_MSG_ID_LEN, MAX_HELD_PER_ROOM, MAX_PENDING_MESSAGES,
    MAX_PENDING_PER_CONN, MAX_ROOM_ID_LEN, PAUSE_POSTS_AT, RESUME_POSTS_AT,
};
use crate::server::{CallId, ConnId, Outbox};
use crate::status::{malformed, Code, Status};
use crate::time::Time;

use super::events::AppendRequest;
use super::names::{self, Kind};
use super::pages::Read;
use super::room::Waiting;
use super::{identity, Chat, ChatCall, ChatEvent};

/// An append asked of the engine and not answered.
#[derive(Debug)]
pub(super) struct Pending {
    pub poster: CallId,
    /// The poster's connection, whose share of the engine's window this is.
    pub conn: ConnId,
    pub room: String,
}

/// Most entries asked for at once to fill a gap.
const FILL_PAGE: u32 = 1000;

impl Chat {
    /// A message on a JoinChat stream.
    pub(super) fn post(
        &mut self,
        now: Time,
        call: CallId,
        bytes: Bytes,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        let msg = ChatMessage::decode(bytes).map_err(|e| malformed("ChatMessage", &e))?;
        let Some(ChatCall::Stream(stream)) = self.calls.get(&call) else {
            return Ok(());
        };
        let claimed = msg.user.clone().unwrap_or_default();
        let sender = identity::sender(&self.policy, &stream.who, &claimed)?;
        if self.banned.contains(&sender.user_id) {
            return Err(Status::new(
                Code::PermissionDenied,
                format!("user {:?} is banned", sender.user_id),
            ));
        }
        if !msg.room_id.is_empty() && self.policy.room_name(&msg.room_id)? != stream.room {
            return Err(Status::new(
                Code::InvalidArgument,
                format!(
                    "message for room {:?} on a stream in room {:?}",
                    names::clip(&msg.room_id, MAX_ROOM_ID_LEN),
                    stream.room
                ),
            ));
        }
        if msg.message.len() > MAX_CHAT_TEXT_LEN {
            return Err(Status::new(
                Code::InvalidArgument,
                format!("message text is limited to {MAX_CHAT_TEXT_LEN} bytes"),
            ));
        }
        if msg.client_msg_id.len() > MAX_CLIENT_MSG_ID_LEN {
            return Err(Status::new(
                Code::InvalidArgument,
                format!("client_msg_id is limited to {MAX_CLIENT_MSG_ID_LEN} bytes"),
            ));
        }
        let client_msg_id = names::check(Kind::User, &msg.client_msg_id)
            .map_err(|_| Status::new(Code::InvalidArgument, "client_msg_id must be plain text"))?;
        self.policy.check_post(&stream.who, &stream.room)?;
        let conn = stream.conn;
        if let Err(wait) = self.limiter.post(now, &stream.who, conn) {
            // Refused in band: the stream stays open.
            out.event(ChatEvent::RateLimited {
                user_id: sender.user_id.clone(),
                join: false,
            });
            let refusal = ChatMessage {
                user: Some(sender),
                room_id: stream.room.clone(),
                client_msg_id,
                refused: Some(Refusal {
                    code: Code::ResourceExhausted as i32,
                    message: format!(
                        "over the rate limit; not delivered; send it again in {} ms",
                        wait.as_millis()
                    ),
                    retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                }),
                timestamp_us: now.as_micros_i64(),
                ..ChatMessage::default()
            };
            out.send_message(call, &refusal);
            return Ok(());
        }
        let mine = self.appends_by_conn.get(&conn).copied().unwrap_or(0);
        if self.appends.len() >= MAX_PENDING_MESSAGES || mine >= MAX_PENDING_PER_CONN {
            return Err(Status::new(
                Code::ResourceExhausted,
                "too many messages waiting to be stored; try again",
            ));
        }
        let room_id = stream.room.clone();
        let request = AppendRequest {
            id: self.next_request,
            room: room_id.clone(),
            user: sender,
            text: msg.message,
            client_msg_id,
            at: now,
        };
        self.next_request += 1;
        let room = self.room_mut(&room_id, out)?;
        let open = room.log.is_some();
        if !open {
            room.waiting
                .push(Waiting::Post(call, conn, Box::new(request.clone())));
        }
        if let Some(ChatCall::Stream(stream)) = self.calls.get_mut(&call) {
            stream.undelivered += 1;
        }
        let mine = self.appends_by_conn.entry(conn).or_default();
        *mine += 1;
        if *mine >= PAUSE_POSTS_AT {
            out.pause_reading(conn);
        }
        if open {
            self.issue_append(call, conn, request, out);
        }
        Ok(())
    }

    /// Asks the engine to append an accepted post (its room is open).
    pub(super) fn issue_append(
        &mut self,
        call: CallId,
        conn: ConnId,
        request: AppendRequest,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        if let Some(room) = self.rooms.get_mut(&request.room) {
            room.appending += 1;
        }
        self.appends.insert(
            request.id,
            Pending {
                poster: call,
                conn,
                room: request.room.clone(),
            },
        );
        out.event(ChatEvent::Append(Box::new(request)));
    }

    /// One of `conn`'s posts is no longer waiting for the engine; below
    /// [`RESUME_POSTS_AT`], its connection may be read again.
    pub(super) fn settle_share(&mut self, conn: ConnId, out: &mut Outbox<'_, ChatEvent>) {
        let Some(mine) = self.appends_by_conn.get_mut(&conn) else {
            return;
        };
        *mine -= 1;
        if *mine <= RESUME_POSTS_AT {
            out.resume_reading(conn);
        }
        if *mine == 0 {
            self.appends_by_conn.remove(&conn);
        }
    }

    /// The engine stored an append: the entry goes to the room in its turn,
    /// or, if the room has had it already (a retry of a delivered post),
    /// straight to its poster as the echo.
    pub(super) fn committed(
        &mut self,
        now: Time,
        id: u64,
        entry: ChatMessage,
        duplicate: bool,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(p) = self.appends.remove(&id) else {
            // Late or twice: what it says is an entry like any other.
            let room = entry.room_id.clone();
            return self.accept(now, &room, entry, out);
        };
        self.settle_share(p.conn, out);
        let Some(room) = self.rooms.get_mut(&p.room) else {
            return;
        };
        room.appending = room.appending.saturating_sub(1);
        let delivered = room.log.map_or(0, |l| l.delivered);
        if entry.seq <= delivered {
            // The room has delivered it: to the poster's stream with the
            // others (it came through a fill, or another node's report
            // came first), unless it is a retry of a stored post that the
            // stream never had (it came in after): that is echoed to it.
            let has_it = matches!(
                self.calls.get(&p.poster),
                Some(ChatCall::Stream(s))
                    if s.room == p.room && s.since.is_some_and(|since| since < entry.seq)
            );
            if !duplicate || has_it || out.send_message(p.poster, &entry) {
                self.one_delivered(p.poster, out);
            }
            return;
        }
        room.owners.entry(entry.seq).or_default().push(p.poster);
        let room = p.room;
        self.accept(now, &room, entry, out);
    }

    /// The engine did not store an append (or cannot say): its poster's
    /// call ends with UNAVAILABLE.
    pub(super) fn append_failed(&mut self, id: u64, reason: &str, out: &mut Outbox<'_, ChatEvent>) {
        let Some(p) = self.appends.remove(&id) else {
            return;
        };
        self.settle_share(p.conn, out);
        if let Some(room) = self.rooms.get_mut(&p.room) {
            room.appending = room.appending.saturating_sub(1);
        }
        let status = Status::new(
            Code::Unavailable,
            format!(
                "message not delivered, maybe not stored ({reason}); retry with the same client_msg_id"
            ),
        );
        if out.finish(p.poster, status) {
            self.forget(p.poster);
        }
    }

    /// An entry of `room`'s log, from this node's appends, another node's,
    /// or a read: held until every entry before it is delivered, dropped if
    /// the room has had it.
    pub(super) fn accept(
        &mut self,
        now: Time,
        room_id: &str,
        entry: ChatMessage,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return; // Nobody here reads it.
        };
        if let Some(log) = room.log {
            if entry.epoch != log.epoch || entry.seq <= log.delivered {
                return;
            }
        }
        if room.held.len() >= MAX_HELD_PER_ROOM && !room.held.contains_key(&entry.seq) {
            // A flood of entries past a gap that does not fill: keep the
            // ones nearest the gap; the rest come back through the fill.
            if room
                .held
                .last_key_value()
                .is_some_and(|(&last, _)| last > entry.seq)
            {
                room.held.pop_last();
            } else {
                return;
            }
        }
        room.held.insert(entry.seq, entry);
        self.drain(now, room_id, out);
    }

    /// Delivers the room's held entries that follow what it has delivered;
    /// asks the engine for the missing range if a gap stops it.
    pub(super) fn drain(&mut self, now: Time, room_id: &str, out: &mut Outbox<'_, ChatEvent>) {
        loop {
            let Some(room) = self.rooms.get_mut(room_id) else {
                return;
            };
            let Some(log) = room.log else {
                return;
            };
            let Some(entry) = room.held.remove(&(log.delivered + 1)) else {
                break;
            };
            self.deliver(now, room_id, entry, out);
        }
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let (Some(log), Some((&next_held, _))) = (room.log, room.held.first_key_value()) else {
            return;
        };
        if room.filling {
            return;
        }
        room.filling = true;
        let read = Read::Fill {
            room: room_id.to_owned(),
            up_to: next_held - 1,
        };
        let limit = u32::try_from(next_held - 1 - log.delivered)
            .unwrap_or(u32::MAX)
            .min(FILL_PAGE);
        self.issue_read(
            read,
            |token| ChatEvent::ReadRange {
                token,
                room: room_id.to_owned(),
                after: log.delivered,
                up_to: next_held - 1,
                limit,
            },
            out,
        );
    }

    /// The engine's answer to a fill (of the gap up to `up_to`): its
    /// entries go in. If it has none of them, those before `first_seq`
    /// were removed by retention and the room goes on after them; an
    /// answer that comes after the gap was filled otherwise is only a cue
    /// to look again.
    pub(super) fn filled(
        &mut self,
        now: Time,
        room_id: &str,
        up_to: u64,
        entries: Result<Vec<ChatMessage>, String>,
        first_seq: u64,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        room.filling = false;
        let entries = match entries {
            Ok(entries) => entries,
            Err(_) => {
                // Asked again with the next entry that arrives.
                return;
            }
        };
        let progressed = !entries.is_empty();
        for entry in entries {
            self.accept(now, room_id, entry, out);
        }
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if !progressed {
            if let (Some(log), Some((&next, _))) = (room.log.as_mut(), room.held.first_key_value())
            {
                let gone = first_seq.saturating_sub(1).min(next - 1);
                if gone > log.delivered {
                    // Removed from the engine: go on after them.
                    log.delivered = gone;
                } else if up_to > log.delivered {
                    // The engine holds them, it says, but gave none: it
                    // breaks its contract; go on rather than ask forever.
                    log.delivered = next - 1;
                }
            }
        }
        self.drain(now, room_id, out);
    }

    /// Sends an entry to everyone in its room (encoded once, the bytes
    /// shared by every recipient).
    fn deliver(
        &mut self,
        now: Time,
        room_id: &str,
        entry: ChatMessage,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(log) = room.log.as_mut() else {
            return;
        };
        log.delivered = entry.seq;
        if let Ok(frame) = codec::encode(&entry) {
            out.multicast(room.group(), frame);
        }
        let owners = room.owners.remove(&entry.seq).unwrap_or_default();
        let user = entry.user.clone().unwrap_or_default();
        out.event(ChatEvent::Message {
            room: entry.room_id,
            seq: entry.seq,
            user_id: user.user_id,
            username: user.username,
            text: entry.message,
            at: now,
        });
        for poster in owners {
            self.one_delivered(poster, out);
        }
        self.room_moved(room_id, out);
    }

    /// One of a stream's posts has reached it (or gone to it directly): a
    /// half-closed stream with none left ends with OK.
    pub(super) fn one_delivered(&mut self, call: CallId, out: &mut Outbox<'_, ChatEvent>) {
        let Some(ChatCall::Stream(s)) = self.calls.get_mut(&call) else {
            return;
        };
        s.undelivered = s.undelivered.saturating_sub(1);
        if s.closing && s.undelivered == 0 {
            self.forget(call);
            out.finish(call, crate::status::Status::ok());
        }
    }
}

/// A presence notice (not part of the log: seq 0).
pub(super) fn notice(
    room: &str,
    user: &chat_proto::User,
    presence: Presence,
    now: Time,
) -> ChatMessage {
    let verb = if presence == Presence::Joined {
        "joined"
    } else {
        "left"
    };
    ChatMessage {
        user: Some(user.clone()),
        message: format!("{} {verb} {room}", super::display(user)),
        room_id: room.to_owned(),
        timestamp_us: now.as_micros_i64(),
        presence: presence as i32,
        ..ChatMessage::default()
    }
}
