//! The chat service (`ChatService` of `proto/chat.proto`) as a sans-IO
//! [`Handler`].
//!
//! - `JoinChat(stream ChatMessage) returns (stream ChatMessage)`: every
//!   message received on any open JoinChat stream is broadcast to every open
//!   JoinChat stream of the room, the sender's included (seed 001), in one
//!   order that all receivers see. A stream that has sent nothing still
//!   receives. When the client half-closes, everything broadcast before the
//!   half-close is delivered and the call ends with OK.
//! - `JoinChatRoom(stream User) returns (stream ChatRoom)`: each `User`
//!   received joins that user to the room and is answered with a `ChatRoom`
//!   (room id, users present, recent history, oldest first). The call ends
//!   with OK when the client half-closes.
//!
//! A user is present in a room from their JoinChatRoom until the connection
//! they joined from closes. (The seed's client half-closes JoinChatRoom at
//! once and then sends each message on a new JoinChat call, so a stream's
//! lifetime cannot be what presence means; the connection's can.)

mod history;
mod room;

use std::collections::HashMap;

use bytes::Bytes;
use chat_proto::{ChatMessage, ChatRoom, User};
use prost::Message as _;

pub use history::History;
use room::Room;

use crate::codec;
use crate::limits::{
    DEFAULT_HISTORY_CAPACITY, DEFAULT_HISTORY_ON_JOIN, MAX_CHAT_TEXT_LEN, MAX_USER_FIELD_LEN,
};
use crate::server::{CallId, CloseReason, ConnId, Handler, Outbox, Request};
use crate::status::{Code, Status};
use crate::time::Time;

/// The room every user is in unless they choose another (the seed's name).
pub const DEFAULT_ROOM: &str = "room1";

/// Settings of the chat service.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Messages each room keeps.
    pub history_capacity: usize,
    /// Recent messages sent in `ChatRoom.history` to a user who joins.
    pub history_on_join: usize,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            history_on_join: DEFAULT_HISTORY_ON_JOIN,
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
        /// The sender's user id.
        user_id: String,
        /// The sender's name.
        username: String,
        /// The text.
        text: String,
        /// When the server accepted it.
        at: Time,
    },
    /// A user joined a room.
    Joined {
        /// The room.
        room: String,
        /// The user's id.
        user_id: String,
        /// The user's name.
        username: String,
        /// The peer address of their connection, if known.
        peer: Option<String>,
        /// When.
        at: Time,
    },
}

/// What a chat call is.
#[derive(Debug)]
enum ChatCall {
    /// A JoinChat stream in `room`, at `index` in the room's stream list.
    Stream { room: String, index: usize },
    /// A JoinChatRoom stream on `conn`.
    Join { conn: ConnId },
}

/// The chat service state machine. Run it inside a
/// [`Server`](crate::server::Server).
#[derive(Debug)]
pub struct Chat {
    config: ChatConfig,
    rooms: HashMap<String, Room>,
    calls: HashMap<CallId, ChatCall>,
    /// For each connection, the (room, user id) presences it holds.
    presence: HashMap<ConnId, Vec<(String, String)>>,
}

impl Default for Chat {
    fn default() -> Chat {
        Chat::new(ChatConfig::default())
    }
}

impl Chat {
    /// A chat with `config`; the default room exists from the start.
    pub fn new(config: ChatConfig) -> Chat {
        let mut chat = Chat {
            config,
            rooms: HashMap::new(),
            calls: HashMap::new(),
            presence: HashMap::new(),
        };
        chat.room_mut(DEFAULT_ROOM);
        chat
    }

    /// Users present in `room`, ordered by user id.
    pub fn users_in(&self, room: &str) -> Vec<User> {
        self.rooms.get(room).map(Room::users).unwrap_or_default()
    }

    /// Number of open JoinChat streams in `room`.
    pub fn streams_in(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |r| r.streams().len())
    }

    fn room_mut(&mut self, id: &str) -> &mut Room {
        let capacity = self.config.history_capacity;
        self.rooms
            .entry(id.to_owned())
            .or_insert_with(|| Room::new(id.to_owned(), capacity))
    }

    fn forget(&mut self, call: CallId) {
        if let Some(ChatCall::Stream { room, index }) = self.calls.remove(&call) {
            let Some(r) = self.rooms.get_mut(&room) else {
                return;
            };
            if let Some(moved) = r.remove_stream(index) {
                if let Some(ChatCall::Stream { index: i, .. }) = self.calls.get_mut(&moved) {
                    *i = index;
                }
            }
        }
    }

    fn post(
        &mut self,
        now: Time,
        call: CallId,
        room: &str,
        msg: Bytes,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let msg = match ChatMessage::decode(msg) {
            Ok(m) => m,
            Err(e) => {
                out.finish(call, malformed("ChatMessage", &e));
                return;
            }
        };
        let user = msg.user.clone().unwrap_or_default();
        if let Err(status) = check_user(&user).and(check_text(&msg.message)) {
            out.finish(call, status);
            return;
        }
        let frame = match codec::encode(&msg) {
            Ok(f) => f,
            Err(e) => {
                out.finish(call, Status::new(Code::Internal, e.to_string()));
                return;
            }
        };
        let r = self.room_mut(room);
        for &stream in r.streams() {
            out.send(stream, frame.clone());
        }
        out.event(ChatEvent::Message {
            room: r.id().to_owned(),
            user_id: user.user_id,
            username: user.username,
            text: msg.message.clone(),
            at: now,
        });
        r.record(msg);
    }

    fn join(
        &mut self,
        now: Time,
        call: CallId,
        conn: ConnId,
        msg: Bytes,
        out: &mut Outbox<'_, ChatEvent>,
    ) {
        let user = match User::decode(msg) {
            Ok(u) => u,
            Err(e) => {
                out.finish(call, malformed("User", &e));
                return;
            }
        };
        if let Err(status) = check_user(&user) {
            out.finish(call, status);
            return;
        }
        if user.user_id.is_empty() {
            out.finish(
                call,
                Status::new(Code::InvalidArgument, "user_id must not be empty"),
            );
            return;
        }
        let history_on_join = self.config.history_on_join;
        let room = self.room_mut(DEFAULT_ROOM);
        if room.join(&user, conn) {
            self.presence
                .entry(conn)
                .or_default()
                .push((DEFAULT_ROOM.to_owned(), user.user_id.clone()));
        }
        let room = &self.rooms[DEFAULT_ROOM];
        let reply = ChatRoom {
            room_id: room.id().to_owned(),
            users: room.users(),
            history: room.history.last(history_on_join).cloned().collect(),
        };
        out.send_message(call, &reply);
        let peer = out.peer_of(conn).map(str::to_owned);
        out.event(ChatEvent::Joined {
            room: DEFAULT_ROOM.to_owned(),
            user_id: user.user_id,
            username: user.username,
            peer,
            at: now,
        });
    }
}

impl Handler for Chat {
    type Event = ChatEvent;
    type Input = std::convert::Infallible;

    fn open(
        &mut self,
        _now: Time,
        req: &Request<'_>,
        _out: &mut Outbox<'_, ChatEvent>,
    ) -> Result<(), Status> {
        let kind = match req.path {
            chat_proto::paths::JOIN_CHAT => {
                let index = self.room_mut(DEFAULT_ROOM).add_stream(req.call);
                ChatCall::Stream {
                    room: DEFAULT_ROOM.to_owned(),
                    index,
                }
            }
            chat_proto::paths::JOIN_CHAT_ROOM => ChatCall::Join { conn: req.conn },
            other => return Err(unimplemented(other)),
        };
        self.calls.insert(req.call, kind);
        Ok(())
    }

    fn message(&mut self, now: Time, call: CallId, msg: Bytes, out: &mut Outbox<'_, ChatEvent>) {
        match self.calls.get(&call) {
            Some(ChatCall::Stream { room, .. }) => {
                let room = room.clone();
                self.post(now, call, &room, msg, out);
            }
            Some(&ChatCall::Join { conn }) => self.join(now, call, conn, msg, out),
            None => {}
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

    fn disconnected(&mut self, _now: Time, conn: ConnId, _out: &mut Outbox<'_, ChatEvent>) {
        for (room, user_id) in self.presence.remove(&conn).unwrap_or_default() {
            if let Some(r) = self.rooms.get_mut(&room) {
                r.leave(&user_id, conn);
            }
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

fn check_user(user: &User) -> Result<(), Status> {
    if user.user_id.len() > MAX_USER_FIELD_LEN || user.username.len() > MAX_USER_FIELD_LEN {
        return Err(Status::new(
            Code::InvalidArgument,
            format!("user_id and username are limited to {MAX_USER_FIELD_LEN} bytes"),
        ));
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), Status> {
    if text.len() > MAX_CHAT_TEXT_LEN {
        return Err(Status::new(
            Code::InvalidArgument,
            format!("message text is limited to {MAX_CHAT_TEXT_LEN} bytes"),
        ));
    }
    Ok(())
}
