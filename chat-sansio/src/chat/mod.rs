//! The chat service (`ChatService` of `proto/chat.proto`) as a sans-IO
//! [`Handler`]: rooms, switching, history, presence, authentication,
//! per-room permissions, resumption and idempotent posts. The protocol as
//! clients see it is described in the README ("The chat protocol").
//!
//! - `JoinChatRoom(stream User) returns (stream ChatRoom)`: each `User` joins
//!   (or switches the caller's connection to) room `User.room_id` (empty:
//!   `room1`) and is answered with a `ChatRoom`: room id, users present,
//!   recent history oldest first, and where the room's log stands (epoch,
//!   last seq).
//! - `JoinChat(stream ChatMessage) returns (stream ChatMessage)`: a stream in
//!   one room. It receives every message of that room (the sender's own
//!   included), in the room's order, numbered 1, 2, 3, ..., and presence
//!   notices. Each message it sends is posted to that room. When the client
//!   half-closes, its posts are delivered and the call ends with OK. With
//!   [`RESUME_METADATA`] it first receives what it missed.
//! - `History(HistoryRequest) returns (HistoryPage)`: pages back through a
//!   room's history.
//!
//! **The log is the engine's** (see [`events`](ChatEvent) for its contract):
//! the chat numbers nothing itself. An accepted post becomes an
//! [`ChatEvent::Append`]; the engine answers with the entry as stored, and
//! the chat delivers each room's entries to its streams strictly in seq
//! order, whoever appended them, filling any gap from the engine first.
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
//! **Rooms in memory** are a cache of the engine's: an idle room (nobody
//! there, nothing in flight) leaves memory when space is needed, and opens
//! again from the engine on its next use.

mod admin;
mod events;
mod identity;
pub mod names;
mod pages;
pub mod policy;
mod post;
mod rate;
mod reload;
mod resume;
mod room;
mod rooms;
mod streams;
mod tokens;

use crate::idmap::IdMap;
use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use chat_proto::User;

/// The status helpers' old home; they are in [`crate::status`].
#[doc(no_inline)]
pub use crate::status::{malformed, unimplemented};
pub use events::{AdminAction, AppendRequest, ChatEvent, ChatInput, ReadToken};
pub use pages::{PageBuilder, DEFAULT_PAGE, MAX_PAGE};
use pages::{Read, Reply};
use policy::{Identity, Policy};
use post::Pending;
pub use rate::RateLimits;
use resume::CatchUp;
use room::Room;

use crate::limits::DEFAULT_HISTORY_ON_JOIN;
use crate::server::{CallId, CloseReason, ConnId, Handler, Outbox, Request};
use crate::status::{Code, Status};
use crate::time::Time;

/// The room every user is in unless they choose another (the seed's name).
pub const DEFAULT_ROOM: &str = "room1";

/// Trailing metadata of a call refused for being over a rate limit: how
/// many milliseconds to wait before trying again.
pub const RETRY_AFTER_METADATA: &str = "retry-after-ms";

/// Request metadata that pins a JoinChat stream to a room.
pub const ROOM_METADATA: &str = "chat-room";

/// Request metadata with which a JoinChat stream resumes: `EPOCH:SEQ`, the
/// epoch and seq of the last message the client has (from a delivered
/// message, or `ChatRoom.epoch` and `last_seq`). The stream first receives
/// every message of its room after that one, then the live ones, with no
/// gap and no duplicate; if the server cannot prove that (another epoch, or
/// messages after it already removed), the call ends with OUT_OF_RANGE and
/// a message `resume from EPOCH:SEQ`, the point it can resume from.
pub const RESUME_METADATA: &str = "chat-resume";

/// Settings of the chat service.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// Recent messages sent in `ChatRoom.history` to a user who joins.
    pub history_on_join: usize,
    /// Users, tokens and room permissions.
    pub policy: Policy,
    /// Presence is shared with other nodes through the engine: arrivals and
    /// departures here go to the engine ([`ChatEvent::Presence`]), and the
    /// notices come from it ([`ChatInput::Presence`]), once per change
    /// anywhere. Off (the default): this node's presence is the room's,
    /// announced at once.
    pub shared_presence: bool,
    /// Users banned by an administrator (`chat.admin.ChatAdmin/Ban`), as
    /// the engine kept them: their calls are refused.
    pub banned: Vec<String>,
    /// Messages and joins per second (see [`RateLimits`]).
    pub limits: RateLimits,
}

impl Default for ChatConfig {
    fn default() -> ChatConfig {
        ChatConfig {
            history_on_join: DEFAULT_HISTORY_ON_JOIN,
            policy: Policy::default(),
            shared_presence: false,
            banned: Vec::new(),
            limits: RateLimits::default(),
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
    /// Its posts not yet delivered (or failed).
    undelivered: usize,
    /// The client has half-closed: the call ends once `undelivered` is 0.
    closing: bool,
    /// Resuming: what it has had, until it has caught up.
    catch_up: Option<CatchUp>,
    /// It has (or will have, catching up) every entry of its room after
    /// this seq: where it resumed from, or what the room had delivered
    /// when it came in (`None` until the room is open).
    since: Option<u64>,
}

/// What a chat call is.
#[derive(Debug)]
enum ChatCall {
    Stream(StreamCall),
    Join {
        conn: ConnId,
        who: Identity,
        /// Answers not sent yet, in the order of the requests.
        replies: VecDeque<Reply>,
        /// The client has half-closed: the call ends once replies are out.
        closing: bool,
    },
    /// A call of the moderation service (one request, one answer).
    Admin {
        who: Identity,
        /// The admin's user id.
        admin: String,
        method: admin::Method,
        /// Its request came (the answer may wait for the engine).
        asked: bool,
    },
    History {
        who: Identity,
        asked: bool,
    },
}

/// A connection's chat session: who joined, and where.
#[derive(Debug)]
struct Session {
    user: User,
    room: String,
    /// Who its JoinChatRoom call authenticated as (a reload checks it).
    who: Identity,
}

/// The chat service state machine. Run it inside a
/// [`Server`](crate::server::Server).
#[derive(Debug)]
pub struct Chat {
    history_on_join: usize,
    policy: Policy,
    shared_presence: bool,
    /// Users refused by an administrator.
    banned: std::collections::HashSet<String>,
    /// Deletions asked of the engine, by request id, with the admin call
    /// that waits for each.
    deletions: IdMap<u64, CallId>,
    limiter: rate::Limiter,
    rooms: HashMap<String, Room>,
    calls: IdMap<CallId, ChatCall>,
    sessions: IdMap<ConnId, Session>,
    /// Each connection's JoinChat streams that follow its session.
    following: IdMap<ConnId, Vec<CallId>>,
    /// Appends asked of the engine and not answered, by request id.
    appends: IdMap<u64, Pending>,
    next_request: u64,
    /// Appends in flight per connection of their poster (its share of the
    /// engine's window).
    appends_by_conn: IdMap<ConnId, usize>,
    /// Reads asked of the engine and not answered, by token; reads waiting
    /// for their turn; how many of the bounded kind are out.
    reads: IdMap<u64, Read>,
    waiting_reads: VecDeque<(u64, Read, ChatEvent)>,
    reads_in_flight: usize,
    next_token: u64,
    /// The rooms' use clock, for eviction.
    tick: u64,
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
            history_on_join: config.history_on_join,
            policy: config.policy,
            shared_presence: config.shared_presence,
            banned: config.banned.into_iter().collect(),
            deletions: IdMap::default(),
            limiter: rate::Limiter::new(config.limits),
            rooms: HashMap::new(),
            calls: IdMap::default(),
            sessions: IdMap::default(),
            following: IdMap::default(),
            appends: IdMap::default(),
            next_request: 1,
            appends_by_conn: IdMap::default(),
            reads: IdMap::default(),
            waiting_reads: VecDeque::new(),
            reads_in_flight: 0,
            next_token: 1,
            tick: 0,
            next_group: 1,
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

    /// Appends asked of the engine and not answered.
    pub fn pending(&self) -> usize {
        self.appends.len()
    }

    /// Rooms held in memory now.
    pub fn rooms_in_memory(&self) -> usize {
        self.rooms.len()
    }

    /// Posts and joins refused so far for being over a rate limit.
    pub fn rate_limited(&self) -> u64 {
        self.limiter.refused
    }

    /// Sets the rate limits in force from now on.
    pub fn set_limits(&mut self, limits: RateLimits) {
        self.limiter.set(limits);
    }
}

impl Handler for Chat {
    type Event = ChatEvent;
    type Input = ChatInput;

    fn services(&self) -> Vec<String> {
        vec![
            "ChatService".to_owned(),
            chat_proto::admin::paths::SERVICE.to_owned(),
        ]
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
        if let Some(id) = who.user_id() {
            if self.banned.contains(id) {
                return Err(Status::new(
                    Code::PermissionDenied,
                    format!("user {id:?} is banned"),
                ));
            }
        }
        if let Some(method) = admin::Method::of(req.path) {
            let admin = admin::check_admin(&self.policy, &who)?;
            self.calls.insert(
                req.call,
                ChatCall::Admin {
                    who,
                    admin,
                    method,
                    asked: false,
                },
            );
            return Ok(());
        }
        match req.path {
            chat_proto::paths::JOIN_CHAT => {
                let pinned = match req.metadata.get_str(ROOM_METADATA) {
                    Some(r) if !r.is_empty() => Some(self.policy.room_name(r)?),
                    _ => None,
                };
                let resume = match req.metadata.get_str(RESUME_METADATA) {
                    Some(r) if !r.is_empty() => Some(resume::parse(r)?),
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
                    undelivered: 0,
                    closing: false,
                    catch_up: None,
                    since: None,
                };
                match resume {
                    None => self.place(req.call, stream, out),
                    Some((epoch, seq)) => self.place_resuming(req.call, stream, epoch, seq, out),
                }
            }
            chat_proto::paths::JOIN_CHAT_ROOM => {
                self.calls.insert(
                    req.call,
                    ChatCall::Join {
                        conn: req.conn,
                        who,
                        replies: VecDeque::new(),
                        closing: false,
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
            Some(ChatCall::Join { conn, who, .. }) => {
                let (conn, who) = (*conn, who.clone());
                self.join(now, call, conn, &who, msg, out)
            }
            Some(ChatCall::History { who, .. }) => {
                let who = who.clone();
                self.history_request(call, &who, msg, out)
            }
            Some(ChatCall::Admin { asked: true, .. }) => Err(Status::new(
                Code::InvalidArgument,
                "more than one request message",
            )),
            Some(ChatCall::Admin { admin, method, .. }) => {
                let (admin, method) = (admin.clone(), *method);
                self.admin_request(now, call, &admin, method, msg, out)
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
        match self.calls.get_mut(&call) {
            Some(ChatCall::Stream(s)) => {
                s.closing = true;
                if s.undelivered == 0 {
                    self.forget(call);
                    out.finish(call, Status::ok());
                }
            }
            Some(ChatCall::Join {
                replies, closing, ..
            }) => {
                *closing = true;
                if replies.is_empty() {
                    self.forget(call);
                    out.finish(call, Status::ok());
                }
            }
            Some(ChatCall::History { asked: true, .. }) => {} // the engine answers
            Some(ChatCall::Admin { asked: true, .. }) => {}
            Some(ChatCall::Admin { asked: false, .. }) => {
                self.forget(call);
                out.finish(call, Status::new(Code::Internal, "missing request message"));
            }
            Some(ChatCall::History { asked: false, .. }) => {
                self.forget(call);
                out.finish(call, Status::new(Code::Internal, "missing request message"));
            }
            None => {}
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
        self.limiter.disconnected(conn);
        if let Some(session) = self.sessions.remove(&conn) {
            self.leave(now, conn, &session, out);
        }
    }

    fn drained(&mut self, _now: Time, call: CallId, out: &mut Outbox<'_, ChatEvent>) {
        self.catch_up_drained(call, out);
    }

    fn input(&mut self, now: Time, input: ChatInput, out: &mut Outbox<'_, ChatEvent>) {
        match input {
            ChatInput::RoomOpened {
                room,
                epoch,
                last_seq,
                first_seq,
            } => self.room_opened(now, &room, epoch, last_seq, first_seq, out),
            ChatInput::OpenFailed { room, reason } => self.open_failed(&room, &reason, out),
            ChatInput::Committed {
                id,
                entry,
                duplicate,
            } => self.committed(now, id, entry, duplicate, out),
            ChatInput::AppendFailed { id, reason } => self.append_failed(id, &reason, out),
            ChatInput::Entries { room, entries } => {
                for entry in entries {
                    self.accept(now, &room, entry, out);
                }
            }
            ChatInput::Range {
                token,
                entries,
                first_seq,
            } => self.range_read(now, token, entries, first_seq, out),
            ChatInput::HistoryPage { token, page } => self.page_read(token, page, out),
            ChatInput::Presence {
                room,
                user,
                present,
            } => self.presence_changed(now, &room, &user, present, out),
            ChatInput::Deleted { id, result } => self.deleted(id, result, out),
            ChatInput::Tombstone { entry } => self.tombstone(&entry, out),
            ChatInput::Kicked { user_id, reason } => {
                self.kick(now, &user_id, false, &reason, out);
            }
            ChatInput::Banned { user_id, banned } => {
                if banned {
                    self.banned.insert(user_id.clone());
                    self.kick(now, &user_id, true, "", out);
                } else {
                    self.banned.remove(&user_id);
                }
            }
            ChatInput::Present { room, users } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.set_present(&users);
                }
            }
            ChatInput::Policy(policy) => self.replace_policy(now, *policy, out),
            ChatInput::Limits(limits) => self.set_limits(limits),
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
