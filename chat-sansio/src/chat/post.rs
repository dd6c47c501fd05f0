//! Posting: checks, numbering, and delivery, either at once (memory mode)
//! or once the message is durable (durable mode).
//!
//! In durable mode an accepted message is numbered, handed to the driver
//! as [`ChatEvent::Persist`], and kept pending; nobody receives it, not even
//! its sender, until the driver answers [`ChatInput::Durable`] for it. So
//! every message anyone received is in the store, and after a crash the
//! numbering continues from the store without gaps or duplicates at any
//! receiver.
//!
//! [`ChatInput::Durable`]: super::ChatInput::Durable

use bytes::Bytes;
use chat_proto::{ChatMessage, Presence};
use prost::Message as _;

use crate::codec;
use crate::limits::{
    MAX_CHAT_TEXT_LEN, MAX_PENDING_MESSAGES, MAX_PENDING_PER_CONN, MAX_ROOM_ID_LEN, PAUSE_POSTS_AT,
    RESUME_POSTS_AT,
};
use crate::server::{CallId, ConnId, Outbox};
use crate::status::{malformed, Code, Status};
use crate::time::Time;

use super::{identity, names};
use super::{Chat, ChatCall, ChatEvent};

/// A message accepted and waiting to be durable.
#[derive(Debug)]
pub(super) struct Pending {
    pub id: u64,
    pub poster: CallId,
    /// The poster's connection, whose share of the store's window this is.
    pub conn: ConnId,
    pub message: ChatMessage,
}

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
        self.policy.check_post(&stream.who, &stream.room)?;
        let conn = stream.conn;
        let mine = self.pending_by_conn.get(&conn).copied().unwrap_or(0);
        if self.pending.len() >= MAX_PENDING_MESSAGES || mine >= MAX_PENDING_PER_CONN {
            return Err(Status::new(
                Code::ResourceExhausted,
                "too many messages waiting to be stored; try again",
            ));
        }
        let room_id = stream.room.clone();
        let room = self.room_mut(&room_id)?;
        let message = ChatMessage {
            user: Some(sender),
            message: msg.message,
            room_id,
            seq: room.next_seq(),
            timestamp_us: now.as_micros_i64(),
            presence: Presence::None as i32,
        };
        if !self.durable {
            self.deliver(now, message, out);
            return Ok(());
        }
        let id = self.next_pending;
        self.next_pending += 1;
        out.event(ChatEvent::Persist {
            epoch: self.epoch,
            id,
            message: message.clone(),
        });
        self.pending.push_back(Pending {
            id,
            poster: call,
            conn,
            message,
        });
        let mine = self.pending_by_conn.entry(conn).or_default();
        *mine += 1;
        if *mine >= PAUSE_POSTS_AT {
            out.pause_reading(conn);
        }
        Ok(())
    }

    /// Broadcasts a message to its room's streams (encoded once, the bytes
    /// shared by every recipient) and records it in the room's history.
    pub(super) fn deliver(
        &mut self,
        now: Time,
        message: ChatMessage,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Ok(room) = self.room_mut(&message.room_id) else {
            return;
        };
        match codec::encode(&message) {
            Ok(frame) => out.multicast(room.group(), frame),
            // Cannot happen for a checked message; the store has it anyway.
            Err(_) => return,
        }
        room.delivered(message.seq);
        let user = message.user.clone().unwrap_or_default();
        out.event(ChatEvent::Message {
            room: message.room_id.clone(),
            seq: message.seq,
            user_id: user.user_id,
            username: user.username,
            text: message.message.clone(),
            at: now,
        });
        room.history.push(message);
    }

    /// The store has made every message up to `up_to` durable.
    pub(super) fn durable(
        &mut self,
        now: Time,
        epoch: u64,
        up_to: u64,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        if epoch != self.epoch {
            return;
        }
        while self.pending.front().is_some_and(|p| p.id <= up_to) {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.settled(p.conn, out);
            self.deliver(now, p.message, out);
            self.finish_closing(p.id, out);
        }
    }

    /// The store could not write: nothing pending will ever be delivered.
    /// Posters are told (UNAVAILABLE), numbering goes back to the last
    /// delivered message of each room, and a new epoch starts so that no
    /// late answer about the failed writes is taken for a new one.
    pub(super) fn store_failed(
        &mut self,
        epoch: u64,
        reason: &str,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        if epoch != self.epoch {
            return;
        }
        self.epoch += 1;
        let status = Status::new(
            Code::Unavailable,
            format!("message not stored, not delivered: {reason}"),
        );
        for p in std::mem::take(&mut self.pending) {
            self.settled(p.conn, out);
            if out.finish(p.poster, status.clone()) {
                self.forget(p.poster);
            }
        }
        for room in self.rooms.values_mut() {
            room.rewind();
        }
        self.finish_closing(u64::MAX, out);
    }

    /// One of `conn`'s messages is no longer waiting for the store; below
    /// [`RESUME_POSTS_AT`], its connection may be read again.
    fn settled(&mut self, conn: ConnId, out: &mut Outbox<'_, ChatEvent>) {
        let Some(mine) = self.pending_by_conn.get_mut(&conn) else {
            return;
        };
        *mine -= 1;
        if *mine <= RESUME_POSTS_AT {
            out.resume_reading(conn);
        }
        if *mine == 0 {
            self.pending_by_conn.remove(&conn);
        }
    }

    /// A JoinChat client half-closed: end the call once everything accepted
    /// before now has been delivered.
    pub(super) fn close_stream(&mut self, call: CallId, out: &mut Outbox<'_, ChatEvent>) {
        match self.pending.back() {
            Some(last) => self.closing.push_back((last.id, call)),
            None => {
                self.forget(call);
                out.finish(call, Status::ok());
            }
        }
    }

    fn finish_closing(&mut self, delivered: u64, out: &mut Outbox<'_, ChatEvent>) {
        while self
            .closing
            .front()
            .is_some_and(|(after, _)| *after <= delivered)
        {
            let Some((_, call)) = self.closing.pop_front() else {
                break;
            };
            self.forget(call);
            out.finish(call, Status::ok());
        }
    }
}
