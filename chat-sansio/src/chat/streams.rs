//! Where streams and users are: placing JoinChat streams in rooms, joins,
//! switches, leaves and the presence notices that announce them.

use bytes::Bytes;
use chat_proto::{ChatMessage, ChatRoom, Presence, User};
use prost::Message as _;

use crate::codec;
use crate::limits::{MAX_ROOMS, MAX_ROOM_ID_LEN, MAX_USER_FIELD_LEN};
use crate::server::{CallId, ConnId, Outbox};
use crate::status::{malformed, Code, Status};
use crate::time::Time;

use super::policy::Identity;
use super::room::Room;
use super::{display, Chat, ChatCall, ChatEvent, Session, StreamCall};
use super::{identity, names};

impl Chat {
    /// The room, created if there is space (the caller has checked that the
    /// policy lets it exist).
    pub(super) fn room_mut(&mut self, id: &str) -> Result<&mut Room, Status> {
        if !self.rooms.contains_key(id) {
            if self.rooms.len() >= MAX_ROOMS {
                self.rooms.retain(|_, r| !r.is_idle());
                if self.rooms.len() >= MAX_ROOMS {
                    return Err(Status::new(Code::ResourceExhausted, "too many rooms"));
                }
            }
            let room = self.new_room(id);
            self.rooms.insert(id.to_owned(), room);
        }
        Ok(self.rooms.get_mut(id).expect("inserted above"))
    }

    /// Puts a stream into `room` if its caller may read it, subscribing it
    /// to the room's group.
    pub(super) fn place(
        &mut self,
        call: CallId,
        mut stream: StreamCall,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        self.policy.check_read(&stream.who, &stream.room)?;
        let room = self.room_mut(&stream.room)?;
        stream.index = room.add_stream(call);
        out.subscribe(call, room.group());
        if !stream.pinned {
            self.following.entry(stream.conn).or_default().push(call);
        }
        self.calls.insert(call, ChatCall::Stream(stream));
        Ok(())
    }

    /// Takes a stream out of its room; the call's entry is returned. Its
    /// subscription is left to what follows: a `place` elsewhere moves it,
    /// and ending the call ends it.
    pub(super) fn unplace(&mut self, call: CallId) -> Option<StreamCall> {
        let Some(ChatCall::Stream(stream)) = self.calls.remove(&call) else {
            return None;
        };
        if let Some(room) = self.rooms.get_mut(&stream.room) {
            if let Some(moved) = room.remove_stream(stream.index) {
                if let Some(ChatCall::Stream(s)) = self.calls.get_mut(&moved) {
                    s.index = stream.index;
                }
            }
        }
        if !stream.pinned {
            if let Some(list) = self.following.get_mut(&stream.conn) {
                list.retain(|c| *c != call);
            }
        }
        Some(stream)
    }

    pub(super) fn forget(&mut self, call: CallId) {
        if self.unplace(call).is_none() {
            self.calls.remove(&call);
        }
    }

    /// Sends a presence notice to everyone in `room`.
    pub(super) fn announce(
        &mut self,
        now: Time,
        room: &str,
        user: &User,
        presence: Presence,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let verb = if presence == Presence::Joined {
            "joined"
        } else {
            "left"
        };
        let notice = ChatMessage {
            user: Some(user.clone()),
            message: format!("{} {verb} {room}", display(user)),
            room_id: room.to_owned(),
            seq: 0,
            timestamp_us: now.as_micros_i64(),
            presence: presence as i32,
        };
        if let Ok(frame) = codec::encode(&notice) {
            out.multicast(r.group(), frame);
        }
    }

    /// A `User` on a JoinChatRoom stream: join or switch, then answer.
    pub(super) fn join(
        &mut self,
        now: Time,
        conn: ConnId,
        who: &Identity,
        bytes: Bytes,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<ChatRoom, Status> {
        let claimed = User::decode(bytes).map_err(|e| malformed("User", &e))?;
        let named = self.policy.room_name(&claimed.room_id);
        // What the record names: the room as asked for, clipped if it is
        // not a valid id (a record never holds more than an id's worth).
        let room_id = match &named {
            Ok(room) => room.clone(),
            Err(_) => names::clip(&claimed.room_id, MAX_ROOM_ID_LEN).to_owned(),
        };
        let peer = out.peer_of(conn).map(str::to_owned);
        let record =
            |user_id: &str, outcome: Result<(), Status>, out: &mut Outbox<'_, ChatEvent>| {
                out.event(ChatEvent::Login {
                    user_id: user_id.to_owned(),
                    room: room_id.clone(),
                    peer: peer.clone(),
                    outcome,
                    at: now,
                });
            };
        let user = match named
            .and_then(|_| identity::sender(&self.policy, who, &claimed))
            .and_then(|u| self.policy.check_read(who, &room_id).map(|()| u))
            .and_then(|u| self.room_mut(&room_id).map(|_| u))
        {
            Ok(u) => u,
            Err(status) => {
                let id = match who {
                    Identity::User(id) => id.as_str(),
                    Identity::Guest => names::clip(&claimed.user_id, MAX_USER_FIELD_LEN),
                };
                record(id, Err(status.clone()), out);
                return Err(status);
            }
        };
        record(&user.user_id, Ok(()), out);

        // Leave the previous room, if this is a switch or another user.
        let previous = self.sessions.insert(
            conn,
            Session {
                user: user.clone(),
                room: room_id.clone(),
            },
        );
        if let Some(prev) = previous {
            if prev.room != room_id || prev.user.user_id != user.user_id {
                self.leave(now, conn, &prev, out);
            }
        }
        // Streams that follow this connection move with it.
        for call in self.following.get(&conn).cloned().unwrap_or_default() {
            let Some(mut stream) = self.unplace(call) else {
                continue;
            };
            if stream.room == room_id {
                let _ = self.place(call, stream, out);
                continue;
            }
            stream.room.clone_from(&room_id);
            if let Err(status) = self.place(call, stream, out) {
                out.finish(call, status);
            }
        }
        let room = self.room_mut(&room_id)?;
        if room.join(&user, conn) {
            self.announce(now, &room_id, &user, Presence::Joined, out);
        }
        let room = &self.rooms[&room_id];
        let history_on_join = self.history_on_join;
        Ok(ChatRoom {
            room_id: room.id().to_owned(),
            users: room.users(),
            history: room.history.page(0, history_on_join).0,
        })
    }

    /// Drops a session's presence, announcing a departure.
    pub(super) fn leave(
        &mut self,
        now: Time,
        conn: ConnId,
        session: &Session,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(room) = self.rooms.get_mut(&session.room) else {
            return;
        };
        if room.leave(&session.user.user_id, conn) {
            self.announce(now, &session.room, &session.user, Presence::Left, out);
        }
    }
}
