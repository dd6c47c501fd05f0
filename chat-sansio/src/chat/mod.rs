//! The chat service (`ChatService` of `proto/chat.proto`) as a sans-IO
//! [`Handler`]: rooms, switching, history, presence, authentication and
//! per-room permissions. The protocol as clients see it is described in the
//! README ("The chat protocol").
//!
//! - `JoinChatRoom(stream User) returns (stream ChatRoom)`: each `User` joins
//!   (or switches the caller's connection to) room `User.room_id` (empty:
//!   `room1`) and is answered with a `ChatRoom`: room id, users present,
//!   recent history oldest first.
//! - `JoinChat(stream ChatMessage) returns (stream ChatMessage)`: a stream in
//!   one room. It receives every message accepted in that room (the
//!   sender's own included), in the room's order, numbered 1, 2, 3, ..., and
//!   presence notices. Each message it sends is posted to that room. When
//!   the client half-closes, everything accepted before is delivered and the
//!   call ends with OK.
//!
//! **A JoinChat stream's room**: the `chat-room` request metadata if given
//! (the stream then stays there); otherwise the room its connection last
//! joined through JoinChatRoom, following the connection when it switches;
//! `room1` if it has joined none.
//!
//! **Presence** is per connection: a connection's last successful
//! JoinChatRoom makes its user present in that room until the connection
//! switches elsewhere or closes (the seed's client half-closes JoinChatRoom
//! at once and sends each message on a new call, so a stream's lifetime
//! cannot mean presence). One chat session per connection: a second user
//! joining on the same connection replaces the first.

mod history;
mod identity;
pub mod policy;
mod room;

use std::collections::HashMap;

use bytes::Bytes;
use chat_proto::{ChatMessage, ChatRoom, Presence, User};
use prost::Message as _;

pub use history::History;
use policy::{Identity, Policy};
use room::Room;

use crate::codec;
use crate::limits::{
    DEFAULT_HISTORY_CAPACITY, DEFAULT_HISTORY_ON_JOIN, MAX_CHAT_TEXT_LEN, MAX_ROOMS,
};
use crate::server::{CallId, CloseReason, ConnId, Handler, Outbox, Request};
use crate::status::{Code, Status};
use crate::time::Time;

/// The room every user is in unless they choose another (the seed's name).
pub const DEFAULT_ROOM: &str = "room1";

/// Request metadata that pins a JoinChat stream to a room.
pub const ROOM_METADATA: &str = "chat-room";

/// Settings of the chat service.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Messages each room keeps.
    pub history_capacity: usize,
    /// Recent messages sent in `ChatRoom.history` to a user who joins.
    pub history_on_join: usize,
    /// Users, tokens and room permissions.
    pub policy: Policy,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            history_on_join: DEFAULT_HISTORY_ON_JOIN,
            policy: Policy::default(),
        }
    }
}

/// What the chat tells its driver, for logs and records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatEvent {
    /// A message was accepted and broadcast to its room.
    Message {
        /// The room.
        room: String,
        /// Its number in the room.
        seq: u64,
        /// The sender of record.
        user_id: String,
        /// The sender's name.
        username: String,
        /// The text.
        text: String,
        /// When the server accepted it.
        at: Time,
    },
    /// Someone tried to log in: a JoinChatRoom request, or any call with
    /// credentials that were refused.
    Login {
        /// The user id, as authenticated or claimed ("" if unknown).
        user_id: String,
        /// The room asked for ("" if none).
        room: String,
        /// The peer address of the connection, if known.
        peer: Option<String>,
        /// `Ok` if the user got in, else why not.
        outcome: Result<(), Status>,
        /// When.
        at: Time,
    },
}

/// A JoinChat stream.
#[derive(Debug)]
struct StreamCall {
    conn: ConnId,
    who: Identity,
    room: String,
    /// Index in the room's stream list.
    index: usize,
    /// Placed by `chat-room` metadata: does not follow the connection.
    pinned: bool,
}

/// What a chat call is.
#[derive(Debug)]
enum ChatCall {
    Stream(StreamCall),
    Join { conn: ConnId, who: Identity },
}

/// A connection's chat session: who joined, and where.
#[derive(Debug)]
struct Session {
    user: User,
    room: String,
}

/// The chat service state machine. Run it inside a
/// [`Server`](crate::server::Server).
#[derive(Debug)]
pub struct Chat {
    history_capacity: usize,
    history_on_join: usize,
    policy: Policy,
    rooms: HashMap<String, Room>,
    calls: HashMap<CallId, ChatCall>,
    sessions: HashMap<ConnId, Session>,
    /// Each connection's JoinChat streams that follow its session.
    following: HashMap<ConnId, Vec<CallId>>,
}

impl Default for Chat {
    fn default() -> Chat {
        Chat::new(ChatConfig::default())
    }
}

impl Chat {
    /// A chat with `config`.
    pub fn new(config: ChatConfig) -> Chat {
        Chat {
            history_capacity: config.history_capacity,
            history_on_join: config.history_on_join,
            policy: config.policy,
            rooms: HashMap::new(),
            calls: HashMap::new(),
            sessions: HashMap::new(),
            following: HashMap::new(),
        }
    }

    /// Users present in `room`, ordered by user id.
    pub fn users_in(&self, room: &str) -> Vec<User> {
        self.rooms.get(room).map(Room::users).unwrap_or_default()
    }

    /// Number of open JoinChat streams in `room`.
    pub fn streams_in(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |r| r.streams().len())
    }

    /// The room, created if the policy lets it exist and there is space.
    fn room_mut(&mut self, id: &str) -> Result<&mut Room, Status> {
        if !self.rooms.contains_key(id) {
            if self.rooms.len() >= MAX_ROOMS {
                self.rooms.retain(|_, r| !r.is_idle());
                if self.rooms.len() >= MAX_ROOMS {
                    return Err(Status::new(Code::ResourceExhausted, "too many rooms"));
                }
            }
            let room = Room::new(id.to_owned(), self.history_capacity);
            self.rooms.insert(id.to_owned(), room);
        }
        Ok(self.rooms.get_mut(id).expect("inserted above"))
    }

    /// Puts a stream into `room` if its caller may read it.
    fn place(&mut self, call: CallId, mut stream: StreamCall) -> Result<(), Status> {
        self.policy.check_read(&stream.who, &stream.room)?;
        stream.index = self.room_mut(&stream.room)?.add_stream(call);
        if !stream.pinned {
            self.following.entry(stream.conn).or_default().push(call);
        }
        self.calls.insert(call, ChatCall::Stream(stream));
        Ok(())
    }

    /// Takes a stream out of its room; the call's entry is returned.
    fn unplace(&mut self, call: CallId) -> Option<StreamCall> {
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

    fn forget(&mut self, call: CallId) {
        if self.unplace(call).is_none() {
            self.calls.remove(&call);
        }
    }

    /// Sends a presence notice to everyone in `room`.
    fn announce(
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
            timestamp_us: micros(now),
            presence: presence as i32,
        };
        if let Ok(frame) = codec::encode(&notice) {
            for &stream in r.streams() {
                out.send(stream, frame.clone());
            }
        }
    }

    /// A message on a JoinChat stream.
    fn post(
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
        if !msg.room_id.is_empty() && msg.room_id != stream.room {
            return Err(Status::new(
                Code::InvalidArgument,
                format!(
                    "message for room {:?} on a stream in room {:?}",
                    msg.room_id, stream.room
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
        let room_id = stream.room.clone();
        let room = self.room_mut(&room_id)?;
        let delivered = ChatMessage {
            user: Some(sender),
            message: msg.message,
            room_id,
            seq: room.next_seq(),
            timestamp_us: micros(now),
            presence: Presence::None as i32,
        };
        let frame =
            codec::encode(&delivered).map_err(|e| Status::new(Code::Internal, e.to_string()))?;
        for &s in room.streams() {
            out.send(s, frame.clone());
        }
        let user = delivered.user.clone().unwrap_or_default();
        out.event(ChatEvent::Message {
            room: delivered.room_id.clone(),
            seq: delivered.seq,
            user_id: user.user_id,
            username: user.username,
            text: delivered.message.clone(),
            at: now,
        });
        room.history.push(delivered);
        Ok(())
    }

    /// A `User` on a JoinChatRoom stream: join or switch, then answer.
    fn join(
        &mut self,
        now: Time,
        conn: ConnId,
        who: &Identity,
        bytes: Bytes,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<ChatRoom, Status> {
        let claimed = User::decode(bytes).map_err(|e| malformed("User", &e))?;
        let room_id = if claimed.room_id.is_empty() {
            DEFAULT_ROOM.to_owned()
        } else {
            claimed.room_id.clone()
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
        let user = match identity::sender(&self.policy, who, &claimed)
            .and_then(|u| self.policy.check_read(who, &room_id).map(|()| u))
            .and_then(|u| self.room_mut(&room_id).map(|_| u))
        {
            Ok(u) => u,
            Err(status) => {
                let id = match who {
                    Identity::User(id) => id.as_str(),
                    Identity::Guest => claimed.user_id.as_str(),
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
                let _ = self.place(call, stream);
                continue;
            }
            stream.room.clone_from(&room_id);
            if let Err(status) = self.place(call, stream) {
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
            history: room.history.last(history_on_join).cloned().collect(),
        })
    }

    /// Drops a session's presence, announcing a departure.
    fn leave(
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

impl Handler for Chat {
    type Event = ChatEvent;
    type Input = std::convert::Infallible;

    fn open(
        &mut self,
        now: Time,
        req: &Request<'_>,
        out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        let who = match self.policy.authenticate(req.metadata.get("authorization")) {
            Ok(who) => who,
            Err(e) => {
                let status = e.to_status();
                out.event(ChatEvent::Login {
                    user_id: String::new(),
                    room: String::new(),
                    peer: req.peer.map(str::to_owned),
                    outcome: Err(status.clone()),
                    at: now,
                });
                return Err(status);
            }
        };
        match req.path {
            chat_proto::paths::JOIN_CHAT => {
                let pinned = req
                    .metadata
                    .get_str(ROOM_METADATA)
                    .filter(|r| !r.is_empty());
                let room = match pinned {
                    Some(r) => r.to_owned(),
                    None => self
                        .sessions
                        .get(&req.conn)
                        .map_or_else(|| DEFAULT_ROOM.to_owned(), |s| s.room.clone()),
                };
                let stream = StreamCall {
                    conn: req.conn,
                    who,
                    room,
                    index: 0,
                    pinned: pinned.is_some(),
                };
                self.place(req.call, stream)
            }
            chat_proto::paths::JOIN_CHAT_ROOM => {
                self.calls.insert(
                    req.call,
                    ChatCall::Join {
                        conn: req.conn,
                        who,
                    },
                );
                Ok(())
            }
            other => Err(unimplemented(other)),
        }
    }

    fn message(&mut self, now: Time, call: CallId, msg: Bytes, out: &mut Outbox<'_, ChatEvent>) {
        let result = match self.calls.get(&call) {
            Some(ChatCall::Stream(_)) => self.post(now, call, msg, out),
            Some(ChatCall::Join { conn, who }) => {
                let (conn, who) = (*conn, who.clone());
                self.join(now, conn, &who, msg, out).map(|reply| {
                    out.send_message(call, &reply);
                })
            }
            None => Ok(()),
        };
        if let Err(status) = result {
            out.finish(call, status);
        }
        if !out.is_open(call) {
            self.forget(call);
        }
    }

    fn half_close(&mut self, _now: Time, call: CallId, out: &mut Outbox<'_, ChatEvent>) {
        self.forget(call);
        out.finish(call, Status::ok());
    }

    fn closed(
        &mut self,
        _now: Time,
        call: CallId,
        _reason: CloseReason,
        _out: &mut Outbox<'_, ChatEvent>,
    ) {
        self.forget(call);
    }

    fn disconnected(&mut self, now: Time, conn: ConnId, out: &mut Outbox<'_, ChatEvent>) {
        self.following.remove(&conn);
        if let Some(session) = self.sessions.remove(&conn) {
            self.leave(now, conn, &session, out);
        }
    }
}

/// UNIMPLEMENTED for a path no service here serves.
pub fn unimplemented(path: &str) -> Status {
    Status::new(Code::Unimplemented, format!("unknown method {path}"))
}

/// INTERNAL for a request message that is not valid protobuf of its type
/// (statuscodes.md: "Error parsing request proto").
pub fn malformed(what: &str, err: &prost::DecodeError) -> Status {
    Status::new(Code::Internal, format!("malformed {what}: {err}"))
}

fn display(user: &User) -> &str {
    if user.username.is_empty() {
        &user.user_id
    } else {
        &user.username
    }
}

fn micros(t: Time) -> i64 {
    i64::try_from(t.as_micros()).unwrap_or(i64::MAX)
}
