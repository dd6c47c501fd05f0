//! The chat service (`ChatService` of `proto/chat.proto`) as a sans-IO
//! [`Handler`]: rooms, switching, history, presence, authentication,
//! per-room permissions and durable delivery. The protocol as clients see
//! it is described in the README ("The chat protocol").
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
//! - `History(HistoryRequest) returns (HistoryPage)`: pages back through a
//!   room's history.
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
//!
//! **Durable mode** ([`ChatConfig::durable`]): accepted messages go out as
//! [`ChatEvent::Persist`] and are delivered only when the driver answers
//! [`ChatInput::Durable`]; see the `post` module.

mod events;
mod history;
mod identity;
pub mod names;
mod pages;
pub mod policy;
mod post;
mod room;
mod streams;

use crate::idmap::IdMap;
use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use chat_proto::{ChatMessage, User};

/// The status helpers' old home; they are in [`crate::status`].
#[doc(no_inline)]
pub use crate::status::{malformed, unimplemented};
pub use events::{ChatEvent, ChatInput};
pub use history::History;
pub use pages::{PageBuilder, DEFAULT_PAGE, MAX_PAGE};
use policy::{Identity, Policy};
use post::Pending;
use room::Room;

use crate::limits::{DEFAULT_HISTORY_CAPACITY, DEFAULT_HISTORY_ON_JOIN};
use crate::server::{CallId, CloseReason, ConnId, GroupId, Handler, Outbox, Request};
use crate::status::{Code, Status};
use crate::time::Time;

/// The room every user is in unless they choose another (the seed's name).
pub const DEFAULT_ROOM: &str = "room1";

/// Request metadata that pins a JoinChat stream to a room.
pub const ROOM_METADATA: &str = "chat-room";

/// Settings of the chat service.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Messages each room keeps in memory.
    pub history_capacity: usize,
    /// Recent messages sent in `ChatRoom.history` to a user who joins.
    pub history_on_join: usize,
    /// Users, tokens and room permissions.
    pub policy: Policy,
    /// Deliver a message only once the driver says it is durable.
    pub durable: bool,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            history_capacity: DEFAULT_HISTORY_CAPACITY,
            history_on_join: DEFAULT_HISTORY_ON_JOIN,
            policy: Policy::default(),
            durable: false,
        }
    }
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
    History { who: Identity, asked: bool },
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
    durable: bool,
    rooms: HashMap<String, Room>,
    calls: IdMap<CallId, ChatCall>,
    sessions: IdMap<ConnId, Session>,
    /// Each connection's JoinChat streams that follow its session.
    following: IdMap<ConnId, Vec<CallId>>,
    /// Durable mode: accepted messages waiting to be durable, in order.
    pending: VecDeque<Pending>,
    next_pending: u64,
    /// Durable mode: History reads asked of the store and not answered,
    /// and those waiting for their turn.
    reads_in_flight: usize,
    waiting_reads: VecDeque<pages::Read>,
    /// Messages waiting to be durable, per connection of their poster.
    pending_by_conn: IdMap<ConnId, usize>,
    epoch: u64,
    /// Half-closed streams waiting for pending messages up to an id.
    closing: VecDeque<(u64, CallId)>,
    /// The group of the next room created (rooms' groups are never reused).
    next_group: u64,
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
            durable: config.durable,
            rooms: HashMap::new(),
            calls: IdMap::default(),
            sessions: IdMap::default(),
            following: IdMap::default(),
            pending: VecDeque::new(),
            next_pending: 1,
            pending_by_conn: IdMap::default(),
            reads_in_flight: 0,
            waiting_reads: VecDeque::new(),
            epoch: 0,
            closing: VecDeque::new(),
            next_group: 1,
        }
    }

    fn new_room(&mut self, id: &str) -> Room {
        let group = GroupId(self.next_group);
        self.next_group += 1;
        Room::new(id.to_owned(), group, self.history_capacity)
    }

    /// Restores a room as a store kept it, before serving: numbering goes on
    /// after `last_seq`, and `recent` (oldest first) is its history.
    pub fn restore(&mut self, room: &str, last_seq: u64, recent: Vec<ChatMessage>) {
        if !self.rooms.contains_key(room) {
            let r = self.new_room(room);
            self.rooms.insert(room.to_owned(), r);
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.restore(last_seq, recent);
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

    /// Messages accepted and not yet durable (durable mode).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

impl Handler for Chat {
    type Event = ChatEvent;
    type Input = ChatInput;

    fn services(&self) -> Vec<String> {
        vec!["ChatService".to_owned()]
    }

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
                let pinned = match req.metadata.get_str(ROOM_METADATA) {
                    Some(r) if !r.is_empty() => Some(self.policy.room_name(r)?),
                    _ => None,
                };
                let room = match &pinned {
                    Some(r) => r.clone(),
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
                self.place(req.call, stream, out)
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
            chat_proto::paths::HISTORY => {
                self.calls
                    .insert(req.call, ChatCall::History { who, asked: false });
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
            Some(ChatCall::History { who, .. }) => {
                let who = who.clone();
                self.history_request(call, &who, msg, out)
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
        match self.calls.get(&call) {
            Some(ChatCall::Stream(_)) => self.close_stream(call, out),
            Some(ChatCall::History { asked: true, .. }) => {} // the store answers
            Some(ChatCall::History { asked: false, .. }) => {
                self.forget(call);
                out.finish(call, Status::new(Code::Internal, "missing request message"));
            }
            _ => {
                self.forget(call);
                out.finish(call, Status::ok());
            }
        }
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

    fn input(&mut self, now: Time, input: ChatInput, out: &mut Outbox<'_, ChatEvent>) {
        match input {
            ChatInput::Durable { epoch, up_to } => self.durable(now, epoch, up_to, out),
            ChatInput::StoreFailed { epoch, reason } => self.store_failed(epoch, &reason, out),
            ChatInput::HistoryPage { call, page } => {
                if out.is_open(call) {
                    self.answer_page(call, page, out);
                }
                self.read_answered(out);
            }
        }
    }
}

fn display(user: &User) -> &str {
    if user.username.is_empty() {
        &user.user_id
    } else {
        &user.username
    }
}
