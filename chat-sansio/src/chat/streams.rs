//! Where streams and users are: placing JoinChat streams in rooms, joins,
//! switches, leaves and the presence notices that announce them.

use bytes::Bytes;
use chat_proto::{Presence, User};
use prost::Message as _;

use crate::codec;
use crate::limits::{MAX_ROOM_ID_LEN, MAX_USER_FIELD_LEN};
use crate::server::{CallId, ConnId, Outbox};
use crate::status::{malformed, Code, Status};
use crate::time::Time;

use super::policy::Identity;
use super::post::notice;
use super::RETRY_AFTER_METADATA;
use super::{identity, names};
use super::{Chat, ChatCall, ChatEvent, Session, StreamCall};

impl Chat {
    /// Puts a stream into its room if its caller may read it, subscribing
    /// it to the room's group.
    pub(super) fn place(
        &mut self,
        call: CallId,
        stream: StreamCall,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        self.add_stream(call, stream, out)?;
        let group = self.rooms_group_of(call);
        if let Some(group) = group {
            out.subscribe(call, group);
        }
        Ok(())
    }

    /// Puts a stream into its room's list without subscribing it (a
    /// resuming stream subscribes once it has caught up).
    pub(super) fn add_stream(
        &mut self,
        call: CallId,
        mut stream: StreamCall,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        self.policy.check_read(&stream.who, &stream.room)?;
        let room = self.room_mut(&stream.room, out)?;
        stream.index = room.add_stream(call);
        stream.since = match &stream.catch_up {
            Some(c) => Some(c.next),
            None => room.log.map(|l| l.delivered),
        };
        if stream.catch_up.is_some() {
            room.catching_up += 1;
        }
        if !stream.pinned {
            self.following.entry(stream.conn).or_default().push(call);
        }
        self.calls.insert(call, ChatCall::Stream(stream));
        Ok(())
    }

    /// The group of the room a stream is in.
    fn rooms_group_of(&self, call: CallId) -> Option<crate::server::GroupId> {
        let Some(ChatCall::Stream(s)) = self.calls.get(&call) else {
            return None;
        };
        self.rooms.get(&s.room).map(|r| r.group())
    }

    /// Takes a stream out of its room; the call's entry is returned. Its
    /// subscription is left to what follows: a `place` elsewhere moves it,
    /// and ending the call ends it.
    pub(super) fn unplace(&mut self, call: CallId) -> Option<StreamCall> {
        let Some(ChatCall::Stream(stream)) = self.calls.remove(&call) else {
            return None;
        };
        if let Some(room) = self.rooms.get_mut(&stream.room) {
            if stream.catch_up.is_some() {
                room.catching_up = room.catching_up.saturating_sub(1);
            }
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
        if let Ok(frame) = codec::encode(&notice(room, user, presence, now)) {
            out.multicast(r.group(), frame);
        }
    }

    /// A `User` on a JoinChatRoom stream: join or switch; the answer (with
    /// the room's recent history, from the engine) follows.
    pub(super) fn join(
        &mut self,
        now: Time,
        call: CallId,
        conn: ConnId,
        who: &Identity,
        bytes: Bytes,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        if let Err(wait) = self.limiter.join(now, conn) {
            let ms = wait.as_millis();
            let mut hint = crate::metadata::Metadata::new();
            hint.push(RETRY_AFTER_METADATA, ms.to_string());
            let status = Status::new(
                Code::ResourceExhausted,
                format!("too many joins on this connection; try again in {ms} ms"),
            );
            let _ = out.finish_with(call, status, hint);
            out.event(ChatEvent::RateLimited {
                user_id: self
                    .sessions
                    .get(&conn)
                    .map(|s| s.user.user_id.clone())
                    .unwrap_or_default(),
                join: true,
            });
            return Ok(());
        }
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
        let checked = named
            .and_then(|_| identity::sender(&self.policy, who, &claimed))
            .and_then(|u| {
                if self.banned.contains(&u.user_id) {
                    Err(Status::new(
                        Code::PermissionDenied,
                        format!("user {:?} is banned", u.user_id),
                    ))
                } else {
                    Ok(u)
                }
            })
            .and_then(|u| self.policy.check_read(who, &room_id).map(|()| u));
        let user = match checked.and_then(|u| self.room_mut(&room_id, out).map(|_| u)) {
            Ok(u) => u,
            Err(status) => {
                let id = match who.user_id() {
                    Some(id) => id,
                    None => names::clip(&claimed.user_id, MAX_USER_FIELD_LEN),
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
                who: who.clone(),
            },
        );
        if let Some(prev) = previous {
            if prev.room != room_id || prev.user.user_id != user.user_id {
                self.leave(now, conn, &prev, out);
            }
        }
        // Streams that follow this connection move with it (those already
        // in the room stay, catching up if they were).
        for moving in self.following.get(&conn).cloned().unwrap_or_default() {
            let here = matches!(
                self.calls.get(&moving),
                Some(ChatCall::Stream(s)) if s.room == room_id
            );
            if here {
                continue;
            }
            let Some(mut stream) = self.unplace(moving) else {
                continue;
            };
            stream.room.clone_from(&room_id);
            // A resuming stream that moves starts afresh in its new room.
            stream.catch_up = None;
            if let Err(status) = self.place(moving, stream, out) {
                out.finish(moving, status);
            }
        }
        let room = self.room_mut(&room_id, out)?;
        if room.join(&user, conn) {
            self.arrived_or_left(now, &room_id, &user, true, out);
        }
        self.queue_reply(call, &room_id, out);
        Ok(())
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
            self.arrived_or_left(now, &session.room, &session.user, false, out);
        }
    }

    /// `user` arrived in `room` here, or left it here altogether: announced
    /// at once, or, with shared presence, told to the engine, whose
    /// [`ChatInput::Presence`](super::ChatInput::Presence) announces it.
    fn arrived_or_left(
        &mut self,
        now: Time,
        room: &str,
        user: &User,
        present: bool,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        if self.shared_presence {
            out.event(ChatEvent::Presence {
                room: room.to_owned(),
                user: user.clone(),
                present,
            });
        } else {
            let presence = if present {
                Presence::Joined
            } else {
                Presence::Left
            };
            self.announce(now, room, user, presence, out);
        }
    }

    /// The engine says `user` arrived in `room` or left it, anywhere
    /// (shared presence): announced to the room's streams here. The
    /// engine's word is the news (it tells each change once); the view of
    /// who is there may have it already (a snapshot came first) or lack it
    /// (a change came before this node followed the room), and decides
    /// nothing.
    pub(super) fn presence_changed(
        &mut self,
        now: Time,
        room: &str,
        user: &User,
        present: bool,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let Some(r) = self.rooms.get_mut(room) else {
            return; // Not in memory here: nobody to tell.
        };
        r.set_presence(user, present);
        let presence = if present {
            Presence::Joined
        } else {
            Presence::Left
        };
        self.announce(now, room, user, presence, out);
    }
}
