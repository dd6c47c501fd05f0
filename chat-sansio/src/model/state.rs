//! The model's state: calls, connections, sessions, the chat's rooms and
//! the engine, as the driver sees them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chat_proto::ChatMessage;

use crate::chat::{AppendRequest, ChatConfig, ChatInput, DEFAULT_ROOM};
use crate::limits::DEFAULT_HISTORY_ON_JOIN;
use crate::server::{CallId, ConnId, Expand, GroupId};
use crate::status::Code;
use crate::time::Time;

use super::engine::EngineModel;
use super::ops::Setup;
use super::rules::{Rules, Who, ROOMS};

/// Connection slots.
pub const CONN_SLOTS: usize = 4;
/// Call slots: events pick among the calls opened into them.
pub const CALL_SLOTS: usize = 16;
/// Where the clock starts (2023-11-14, in microseconds).
pub const EPOCH: u64 = 1_700_000_000_000_000;
/// The epoch of the engine's first room.
pub const FIRST_LOG_EPOCH: u64 = 1000;
/// History sent on join with `Setup::small_history`.
const SMALL_HISTORY_ON_JOIN: usize = 5;
/// Answers kept for replaying (an engine that answers twice).
const KEPT_ANSWERS: usize = 16;

/// What a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JoinChat stream.
    JoinChat,
    /// A JoinChatRoom call.
    JoinChatRoom,
    /// A History call.
    History,
    /// Refused at open; never live after the open's outputs.
    Rejected,
}

/// A presence notice a stream is owed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The room it is about.
    pub room: String,
    /// The user who joined or left.
    pub user: String,
    /// Joined, or left.
    pub joined: bool,
}

/// A JoinChat stream catching up from a resume point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resuming {
    /// The epoch it resumes in.
    pub epoch: u64,
    /// The seq it asked to resume after.
    pub from: u64,
    /// The last seq it has had since.
    pub has: u64,
}

/// A call as the driver sees it.
#[derive(Debug)]
pub struct CallModel {
    /// Its connection.
    pub conn: ConnId,
    /// What it is.
    pub kind: Kind,
    /// Who it acts as, once accepted.
    pub who: Option<Who>,
    /// A JoinChat stream's `chat-room`.
    pub pinned: Option<String>,
    /// Its deadline.
    pub deadline: Option<Time>,
    /// Response headers have gone out.
    pub headers: bool,
    /// Its final output (`Trailers` / `TrailersOnly`) has gone out.
    pub ended: bool,
    /// Reset by the client, or its connection closed, while open.
    pub gone: bool,
    /// Raw DATA, or a message of another method's type, was fed: what its
    /// decoder holds, and so what it does next, is not predicted.
    pub raw_data: bool,
    /// The bytes of a message begun and not yet complete (what the call's
    /// decoder holds), while `raw_data` is false.
    pub buffered: Vec<u8>,
    /// The client has half-closed it.
    pub half_closed: bool,
    /// A History call has asked the engine.
    pub asked: bool,
    /// The code the model predicts it ends with, in the current operation.
    pub must_end: Option<Code>,
    /// A JoinChat stream's posts accepted and not yet delivered to it (or
    /// failed).
    pub undelivered: usize,
    /// A JoinChat stream catching up.
    pub resuming: Option<Resuming>,
    /// Entries sent to a JoinChat stream directly: the echo of a post the
    /// room had delivered already (a retry).
    pub echoes: VecDeque<ChatMessage>,
    /// A JoinChatRoom call's answers still owed, by room, in order.
    pub replies: VecDeque<String>,
    /// Presence notices the stream is owed, in order.
    pub notices: VecDeque<Notice>,
    /// The entries of its room it has received since it came into the
    /// room (broadcast or caught up).
    pub got: BTreeSet<u64>,
}

impl CallModel {
    /// A call just opened.
    pub fn new(conn: ConnId, kind: Kind, who: Option<Who>, deadline: Option<Time>) -> CallModel {
        CallModel {
            conn,
            kind,
            who,
            pinned: None,
            deadline,
            headers: false,
            ended: false,
            gone: false,
            raw_data: false,
            buffered: Vec::new(),
            half_closed: false,
            asked: false,
            must_end: None,
            undelivered: 0,
            resuming: None,
            echoes: VecDeque::new(),
            replies: VecDeque::new(),
            notices: VecDeque::new(),
            got: BTreeSet::new(),
        }
    }

    /// Neither ended nor gone.
    pub fn live(&self) -> bool {
        !self.ended && !self.gone
    }

    /// Live, and still reading what the client sends.
    pub fn listening(&self) -> bool {
        self.live() && !self.half_closed
    }
}

/// A connection that is up.
#[derive(Debug, Clone)]
pub struct ConnModel {
    /// Its id.
    pub id: ConnId,
    /// Its peer address.
    pub peer: Option<String>,
}

/// Where a room's log stands in the chat, once it is open.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    /// The log's epoch.
    pub epoch: u64,
    /// The last seq delivered to the room's streams.
    pub delivered: u64,
    /// The oldest seq the engine held when it opened the room.
    pub first: u64,
}

/// A room the chat holds in memory.
#[derive(Debug, Default)]
pub struct NodeRoom {
    /// `None` while the engine has not answered its opening.
    pub open: Option<Opened>,
    /// An `OpenRoom` is out.
    pub opening: bool,
    /// Posts waiting for the room to open, by request id.
    pub waiting_posts: Vec<u64>,
    /// JoinChatRoom calls whose answer waits for the room to open.
    pub waiting_replies: Vec<CallId>,
    /// Posters waiting for the delivery of their entry, by seq.
    pub owners: BTreeMap<u64, Vec<CallId>>,
    /// The multicast group of its streams, once one has subscribed.
    pub group: Option<GroupId>,
}

/// A post the chat accepted: what its append must say, and who posted it.
#[derive(Debug, Clone)]
pub struct Post {
    /// The stream that posted it.
    pub poster: CallId,
    /// The poster's connection.
    pub conn: ConnId,
    /// The append as the chat must ask for it.
    pub request: AppendRequest,
}

/// An engine read asked for and not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAsk {
    /// `ReadRange`.
    Range {
        /// Its token.
        token: u64,
        /// The room.
        room: String,
        /// After this seq.
        after: u64,
        /// Up to this seq.
        up_to: u64,
        /// At most this many.
        limit: u32,
    },
    /// `ReadHistory`.
    History {
        /// Its token.
        token: u64,
        /// The room.
        room: String,
        /// Below this seq (0: the newest).
        before: u64,
        /// At most this many.
        limit: u32,
    },
}

/// What the engine has been asked and has not answered, and what it knows
/// that it has not told.
#[derive(Debug, Default)]
pub struct Asked {
    /// Rooms to open.
    pub opens: Vec<String>,
    /// Appends, by request id.
    pub appends: BTreeMap<u64, AppendRequest>,
    /// Reads.
    pub reads: Vec<ReadAsk>,
    /// Calls whose queue the transport must report drained.
    pub drains: Vec<CallId>,
    /// Entries of other nodes not yet reported (`ChatInput::Entries`).
    pub unreported: Vec<ChatMessage>,
    /// The last answers given, to give again.
    pub answers: VecDeque<ChatInput>,
}

impl Asked {
    /// Keeps `answer` for replaying.
    pub fn keep(&mut self, answer: &ChatInput) {
        if self.answers.len() >= KEPT_ANSWERS {
            self.answers.pop_front();
        }
        self.answers.push_back(answer.clone());
    }

    /// Whether nothing is asked and nothing untold.
    pub fn is_empty(&self) -> bool {
        self.opens.is_empty()
            && self.appends.is_empty()
            && self.reads.is_empty()
            && self.drains.is_empty()
            && self.unreported.is_empty()
    }
}

/// Everything the model knows.
#[derive(Debug)]
pub struct Model {
    /// The engine answers every request at once.
    pub prompt: bool,
    /// Connections the chat has asked the driver to stop reading.
    pub paused: BTreeSet<ConnId>,
    /// Messages sent on join.
    pub history_on_join: usize,
    /// The policy's rooms.
    pub rules: Rules,
    /// The clock, in microseconds.
    pub now: u64,
    /// Next fresh call id.
    pub next_call: u64,
    /// Next fresh connection id.
    pub next_conn: u64,
    /// Connection slots: the connections that are up.
    pub conns: [Option<ConnModel>; CONN_SLOTS],
    /// Call slots: calls opened, live or not.
    pub slots: [Option<CallId>; CALL_SLOTS],
    /// Every call opened.
    pub calls: BTreeMap<CallId, CallModel>,
    /// Peers of every connection ever made.
    pub peers: HashMap<ConnId, Option<String>>,
    /// Each connection's chat session: (user id, room).
    pub sessions: HashMap<ConnId, (String, String)>,
    /// The rooms the chat holds.
    pub rooms: BTreeMap<String, NodeRoom>,
    /// The engine's logs.
    pub engine: EngineModel,
    /// What the engine has been asked.
    pub asked: Asked,
    /// Every post accepted, by request id.
    pub posts: BTreeMap<u64, Post>,
    /// The id the next accepted post gets.
    pub next_request: u64,
    /// Calls that may end with UNAVAILABLE in the current operation: the
    /// owners of reads the engine just failed, whichever they are.
    pub read_failed: BTreeSet<CallId>,
    /// History pages the engine gave in the current operation.
    pub answered: Vec<chat_proto::HistoryPage>,
    /// Multicasts turned into per-call messages, as a driver would.
    pub expand: Expand,
    /// When the grace period of a shutdown ends, once one was asked for.
    pub closing: Option<Time>,
}

impl Model {
    /// The model of a fresh server set up by `setup`.
    pub fn new(setup: &Setup) -> Model {
        let history_on_join = if setup.small_history {
            SMALL_HISTORY_ON_JOIN
        } else {
            DEFAULT_HISTORY_ON_JOIN
        };
        Model {
            prompt: setup.prompt,
            paused: BTreeSet::new(),
            history_on_join,
            rules: Rules::new(setup.rules, setup.other_rooms),
            now: EPOCH,
            next_call: 1,
            next_conn: 1,
            conns: Default::default(),
            slots: [None; CALL_SLOTS],
            calls: BTreeMap::new(),
            peers: HashMap::new(),
            sessions: HashMap::new(),
            rooms: BTreeMap::new(),
            engine: EngineModel::new(FIRST_LOG_EPOCH),
            asked: Asked::default(),
            posts: BTreeMap::new(),
            next_request: 1,
            read_failed: BTreeSet::new(),
            answered: Vec::new(),
            expand: Expand::default(),
            closing: None,
        }
    }

    /// The chat's configuration.
    pub fn chat_config(&self) -> ChatConfig {
        ChatConfig {
            history_on_join: self.history_on_join,
            policy: self.rules.policy(),
            shared_presence: false,
            banned: Vec::new(),
            // Rate limits have their own tests; the model's clock
            // may bring many posts at one instant.
            limits: crate::chat::RateLimits::off(),
        }
    }

    /// The clock.
    pub fn now(&self) -> Time {
        Time::from_micros(self.now)
    }

    /// A call that was opened.
    pub fn call(&self, id: CallId) -> &CallModel {
        self.calls
            .get(&id)
            .unwrap_or_else(|| panic!("output for {id:?}, which was never opened"))
    }

    /// A call that was opened.
    pub fn call_mut(&mut self, id: CallId) -> &mut CallModel {
        self.calls
            .get_mut(&id)
            .unwrap_or_else(|| panic!("output for {id:?}, which was never opened"))
    }

    /// The call an event goes to, so that events mostly meet calls: an
    /// `index` below 224 picks among the live calls in the slots (of `kind`,
    /// for a message of that method), up to 250 among every call in the
    /// slots (live or not, of any kind), and 250 and up (or no slot yet)
    /// gives an id that was never opened.
    pub fn target(&self, index: u8, kind: Option<Kind>) -> CallId {
        let filled: Vec<CallId> = self.slots.iter().flatten().copied().collect();
        if index >= 250 || filled.is_empty() {
            return CallId(u64::MAX - u64::from(index));
        }
        let fits = |c: &CallId| {
            let call = &self.calls[c];
            call.live() && kind.is_none_or(|k| call.kind == k)
        };
        let live: Vec<CallId> = filled.iter().copied().filter(fits).collect();
        match index {
            0..224 if !live.is_empty() => live[usize::from(index) % live.len()],
            _ => filled[usize::from(index) % filled.len()],
        }
    }

    /// Whether `id` is live.
    pub fn is_live(&self, id: CallId) -> bool {
        self.calls.get(&id).is_some_and(CallModel::live)
    }

    /// Live calls on `conn`.
    pub fn live_on(&self, conn: ConnId) -> usize {
        self.calls
            .values()
            .filter(|c| c.live() && c.conn == conn)
            .count()
    }

    /// The room of a connection's session, `room1` without one.
    pub fn session_room(&self, conn: ConnId) -> String {
        self.sessions
            .get(&conn)
            .map_or_else(|| DEFAULT_ROOM.to_owned(), |(_, room)| room.clone())
    }

    /// The room a JoinChat stream is in.
    pub fn room_of(&self, call: &CallModel) -> String {
        call.pinned
            .clone()
            .unwrap_or_else(|| self.session_room(call.conn))
    }

    /// Live JoinChat streams in `room`.
    pub fn streams_in(&self, room: &str) -> BTreeSet<CallId> {
        self.calls
            .iter()
            .filter(|(_, c)| c.live() && c.kind == Kind::JoinChat && self.room_of(c) == room)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Live JoinChat streams in `room` that receive its deliveries (all but
    /// those catching up).
    pub fn subscribers(&self, room: &str) -> BTreeSet<CallId> {
        self.streams_in(room)
            .into_iter()
            .filter(|id| self.calls[id].resuming.is_none())
            .collect()
    }

    /// User ids present in `room`.
    pub fn present(&self, room: &str) -> BTreeSet<String> {
        self.sessions
            .values()
            .filter(|(_, r)| r == room)
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// Owes every live stream in `room` but those in `except` a notice.
    /// Presence is not in the log: a stream still catching up on a resume
    /// hears only of what happens after it has caught up.
    pub fn tell(&mut self, room: &str, user: &str, joined: bool, except: &BTreeSet<CallId>) {
        let notice = Notice {
            room: room.to_owned(),
            user: user.to_owned(),
            joined,
        };
        for id in self.subscribers(room).difference(except) {
            self.call_mut(*id).notices.push_back(notice.clone());
        }
    }

    /// The room in the chat, which must hold it.
    pub fn node(&self, room: &str) -> &NodeRoom {
        self.rooms
            .get(room)
            .unwrap_or_else(|| panic!("the chat holds no room {room:?}"))
    }

    /// The room in the chat, which must hold it.
    pub fn node_mut(&mut self, room: &str) -> &mut NodeRoom {
        self.rooms
            .get_mut(room)
            .unwrap_or_else(|| panic!("the chat holds no room {room:?}"))
    }

    /// One of `poster`'s posts has reached it, or failed: a half-closed
    /// stream with none left ends OK (unless it ends otherwise already).
    pub fn one_settled(&mut self, poster: CallId) {
        let Some(c) = self.calls.get_mut(&poster) else {
            return;
        };
        c.undelivered = c.undelivered.saturating_sub(1);
        if c.live() && c.half_closed && c.undelivered == 0 && c.must_end.is_none() {
            c.must_end = Some(Code::Ok);
        }
    }

    /// Posts accepted on `conn` whose appends are asked or waiting.
    pub fn appends_of(&self, conn: ConnId) -> usize {
        let waiting = self
            .rooms
            .values()
            .flat_map(|r| &r.waiting_posts)
            .filter(|id| self.posts[id].conn == conn)
            .count();
        let asked = self
            .asked
            .appends
            .keys()
            .filter(|id| self.posts[id].conn == conn)
            .count();
        waiting + asked
    }

    /// Rooms the model knows of.
    pub fn known_rooms(&self) -> BTreeSet<String> {
        let mut rooms: BTreeSet<String> = self.rooms.keys().cloned().collect();
        rooms.extend(self.sessions.values().map(|(_, r)| r.clone()));
        rooms.extend(self.calls.values().filter_map(|c| c.pinned.clone()));
        rooms.extend(ROOMS.iter().map(|r| (*r).to_owned()));
        rooms
    }
}
