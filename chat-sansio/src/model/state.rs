//! The model's state: calls, connections, sessions, rooms and the store as
//! the driver sees them, and the policy under test.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chat_proto::{ChatMessage, HistoryPage};

use crate::chat::names::{self, Kind as NameKind};
use crate::chat::policy::{hash_token, GuestAccess, Policy, RoomRule, Users};
use crate::chat::{ChatConfig, DEFAULT_PAGE, DEFAULT_ROOM, MAX_PAGE};
use crate::limits::{DEFAULT_HISTORY_CAPACITY, DEFAULT_HISTORY_ON_JOIN};
use crate::server::{CallId, ConnId, Expand};
use crate::status::Code;
use crate::time::Time;

use super::ops::{RuleChoice, Setup};

/// Connection slots.
pub const CONN_SLOTS: usize = 4;
/// Call slots: events pick among the calls opened into them.
pub const CALL_SLOTS: usize = 16;
/// The rooms with rules of their own.
pub const ROOMS: [&str; 3] = [DEFAULT_ROOM, "r1", "r2"];
/// Users with accounts: `u0`..`u2`.
pub const USERS: u8 = 3;
/// Where the clock starts (2023-11-14, in microseconds).
pub const EPOCH: u64 = 1_700_000_000_000_000;
/// History kept, and sent on join, with `Setup::small_history`.
const SMALL_HISTORY: (usize, usize) = (7, 5);

/// Who a call acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// Guest `g<n>`: no credentials.
    Guest(u8),
    /// User `u<n>`, authenticated by its token.
    User(u8),
}

impl Who {
    /// The user id it acts as when it claims its own.
    pub fn id(self) -> String {
        match self {
            Who::Guest(g) => format!("g{g}"),
            Who::User(u) => format!("u{u}"),
        }
    }
}

/// The token of user `u`.
pub fn token(u: u8) -> String {
    format!("tok-u{u}")
}

/// The configured name of user `u`, which the chat delivers.
pub fn account_name(u: u8) -> String {
    format!("User {u}")
}

/// The room a client means by `raw`, as the chat decides: `room1` for
/// nothing, else the id under the names rule (`crate::chat::names`, tested
/// on its own and used here as the oracle for what is valid and its NFC
/// form), and not a look-alike of a listed room (INVALID_ARGUMENT).
pub fn room_name(raw: &str) -> Result<String, Code> {
    if raw.is_empty() {
        return Ok(crate::chat::DEFAULT_ROOM.to_owned());
    }
    let room = names::check(NameKind::Room, raw).map_err(|_| Code::InvalidArgument)?;
    let lookalike = ROOMS
        .iter()
        .any(|r| *r != room && names::skeleton(r) == names::skeleton(&room));
    if lookalike {
        return Err(Code::InvalidArgument);
    }
    Ok(room)
}

/// Whether a guest's claimed id or name is, or looks like, a configured
/// user's id or name.
pub fn is_lookalike(claim: &str) -> bool {
    !claim.is_empty()
        && (0..USERS).any(|u| {
            [Who::User(u).id(), account_name(u)]
                .iter()
                .any(|own| names::skeleton(own) == names::skeleton(claim))
        })
}

/// Whether `id` belongs to a configured account.
pub fn is_registered(id: &str) -> bool {
    (0..USERS).any(|u| Who::User(u).id() == id)
}

/// The page size the chat uses for a requested `limit`: 0 means the
/// default, and no more than the maximum.
pub fn page_size(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

/// A room's permissions: bit sets over users `u0`..`u2`, and guests' level
/// (0 none, 1 read, 2 post).
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    readers: u8,
    posters: u8,
    guests: u8,
}

impl Rule {
    fn new(choice: RuleChoice) -> Rule {
        match choice {
            RuleChoice::Open => Rule {
                readers: 7,
                posters: 7,
                guests: 2,
            },
            RuleChoice::Some {
                readers,
                posters,
                guests,
            } => Rule {
                readers: readers & 7,
                posters: posters & 7,
                guests: guests % 3,
            },
        }
    }

    /// Whether `who` may read the room.
    pub fn can_read(self, who: Who) -> bool {
        match who {
            Who::Guest(_) => self.guests >= 1,
            Who::User(u) => self.readers & (1 << u) != 0,
        }
    }

    /// Whether `who` may post in the room.
    pub fn can_post(self, who: Who) -> bool {
        self.can_read(who)
            && match who {
                Who::Guest(_) => self.guests >= 2,
                Who::User(u) => self.posters & (1 << u) != 0,
            }
    }

    fn to_rule(self) -> RoomRule {
        let users = |bits: u8| {
            if bits == 7 {
                return Users::All;
            }
            let ids: Vec<String> = (0..USERS)
                .filter(|u| bits & (1 << u) != 0)
                .map(|u| Who::User(u).id())
                .collect();
            Users::from_list(&ids)
        };
        RoomRule {
            readers: users(self.readers),
            posters: users(self.posters),
            guests: [GuestAccess::None, GuestAccess::Read, GuestAccess::Post]
                [usize::from(self.guests)],
        }
    }
}

/// The rooms' rules.
#[derive(Debug)]
pub struct Rules {
    listed: [Rule; 3],
    other: Option<Rule>,
}

impl Rules {
    /// The rule of `room`, if it exists.
    pub fn rule(&self, room: &str) -> Option<Rule> {
        match ROOMS.iter().position(|r| *r == room) {
            Some(i) => Some(self.listed[i]),
            None => self.other,
        }
    }

    /// What `Policy::check_read` answers: NOT_FOUND, PERMISSION_DENIED or ok.
    pub fn check_read(&self, who: Who, room: &str) -> Result<(), Code> {
        match self.rule(room) {
            None => Err(Code::NotFound),
            Some(r) if !r.can_read(who) => Err(Code::PermissionDenied),
            Some(_) => Ok(()),
        }
    }

    /// What `Policy::check_post` answers.
    pub fn check_post(&self, who: Who, room: &str) -> Result<(), Code> {
        self.check_read(who, room)?;
        match self.rule(room) {
            Some(r) if r.can_post(who) => Ok(()),
            _ => Err(Code::PermissionDenied),
        }
    }

    /// The policy the chat under test gets.
    fn policy(&self) -> Policy {
        let mut policy = Policy::empty();
        for u in 0..USERS {
            let id = Who::User(u).id();
            policy
                .add_user(&id, &account_name(u), &hash_token(&token(u)))
                .expect("a valid user");
        }
        for (room, rule) in ROOMS.iter().zip(self.listed) {
            policy.add_room(room, rule.to_rule()).expect("a valid room");
        }
        if let Some(rule) = self.other {
            policy.add_room("*", rule.to_rule()).expect("one default");
        }
        policy
    }
}

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
    /// The client has half-closed it.
    pub half_closed: bool,
    /// A half-closed JoinChat stream waiting for pending message `id`.
    pub closing: Option<u64>,
    /// A History call has asked the store (durable mode).
    pub asked: bool,
    /// The code the model predicts it ends with, in the current operation.
    pub must_end: Option<Code>,
    /// The page a History call must get.
    pub page: Option<HistoryPage>,
    /// Last message number the stream got, per room.
    pub last_seq: HashMap<String, u64>,
    /// Presence notices the stream is owed, in order.
    pub notices: VecDeque<Notice>,
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
            half_closed: false,
            closing: None,
            asked: false,
            must_end: None,
            page: None,
            last_seq: HashMap::new(),
            notices: VecDeque::new(),
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

/// A room's delivered messages.
#[derive(Debug, Default)]
pub struct RoomModel {
    /// Number of the last delivered message.
    pub last_seq: u64,
    /// The history the chat keeps, oldest first.
    pub history: VecDeque<ChatMessage>,
}

/// A message accepted in durable mode and not yet durable.
#[derive(Debug)]
pub struct Pending {
    /// Its request id.
    pub id: u64,
    /// The stream that posted it.
    pub poster: CallId,
    /// The message as it will be delivered.
    pub message: ChatMessage,
}

/// A `ReadHistory` the store has not answered.
#[derive(Debug, Clone)]
pub struct Read {
    /// The History call.
    pub call: CallId,
    /// The room.
    pub room: String,
    /// Messages below this number (0: the latest).
    pub before_seq: u64,
    /// At most this many.
    pub limit: u32,
}

/// Everything the model knows.
#[derive(Debug)]
pub struct Model {
    /// Durable mode.
    pub durable: bool,
    /// Connections the chat has asked the driver to stop reading.
    pub paused: BTreeSet<ConnId>,
    /// Messages a room keeps.
    pub history_capacity: usize,
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
    /// Rooms that had messages.
    pub rooms: BTreeMap<String, RoomModel>,
    /// Durable mode: accepted messages not yet durable, in order.
    pub pending: VecDeque<Pending>,
    /// The id the next `Persist` must carry.
    pub next_pending: u64,
    /// The store epoch.
    pub epoch: u64,
    /// `ReadHistory` requests not yet answered.
    pub reads: Vec<Read>,
    /// Reads the chat holds back until the store answers one of those
    /// (at most `MAX_READS_IN_FLIGHT` are asked at once), in order.
    pub waiting_reads: std::collections::VecDeque<Read>,
    /// Reads asked and not answered, as the chat counts them (answers for
    /// calls that have gone count too).
    pub reads_in_flight: usize,
    /// Multicasts turned into per-call messages, as a driver would.
    pub expand: Expand,
    /// When the grace period of a shutdown ends, once one was asked for.
    pub closing: Option<Time>,
}

impl Model {
    /// The model of a fresh server set up by `setup`.
    pub fn new(setup: &Setup) -> Model {
        let (history_capacity, history_on_join) = if setup.small_history {
            SMALL_HISTORY
        } else {
            (DEFAULT_HISTORY_CAPACITY, DEFAULT_HISTORY_ON_JOIN)
        };
        Model {
            paused: BTreeSet::new(),
            durable: setup.durable,
            history_capacity,
            history_on_join,
            rules: Rules {
                listed: setup.rules.map(Rule::new),
                other: setup.other_rooms.map(Rule::new),
            },
            now: EPOCH,
            next_call: 1,
            next_conn: 1,
            conns: Default::default(),
            slots: [None; CALL_SLOTS],
            calls: BTreeMap::new(),
            peers: HashMap::new(),
            sessions: HashMap::new(),
            rooms: BTreeMap::new(),
            pending: VecDeque::new(),
            next_pending: 1,
            epoch: 0,
            reads: Vec::new(),
            waiting_reads: Default::default(),
            reads_in_flight: 0,
            expand: Expand::default(),
            closing: None,
        }
    }

    /// The chat's configuration.
    pub fn chat_config(&self) -> ChatConfig {
        ChatConfig {
            history_capacity: self.history_capacity,
            history_on_join: self.history_on_join,
            policy: self.rules.policy(),
            durable: self.durable,
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

    /// User ids present in `room`.
    pub fn present(&self, room: &str) -> BTreeSet<String> {
        self.sessions
            .values()
            .filter(|(_, r)| r == room)
            .map(|(u, _)| u.clone())
            .collect()
    }

    /// Owes every live stream in `room` but those in `except` a notice.
    pub fn tell(&mut self, room: &str, user: &str, joined: bool, except: &BTreeSet<CallId>) {
        let notice = Notice {
            room: room.to_owned(),
            user: user.to_owned(),
            joined,
        };
        for id in self.streams_in(room).difference(except) {
            self.call_mut(*id).notices.push_back(notice.clone());
        }
    }

    /// The number the next message accepted in `room` gets: after the
    /// delivered ones and the pending ones.
    pub fn next_seq(&self, room: &str) -> u64 {
        let delivered = self.rooms.get(room).map_or(0, |r| r.last_seq);
        let pending = self
            .pending
            .iter()
            .filter(|p| p.message.room_id == room)
            .count();
        delivered + pending as u64 + 1
    }

    /// A page of `room`'s history as the chat keeps it: up to `limit` (0:
    /// the default) messages numbered below `before_seq` (0: no bound).
    pub fn page(&self, room: &str, before_seq: u64, limit: u32) -> HistoryPage {
        let limit = page_size(limit) as usize;
        let older: Vec<&ChatMessage> = self
            .rooms
            .get(room)
            .into_iter()
            .flat_map(|r| &r.history)
            .filter(|m| before_seq == 0 || m.seq < before_seq)
            .collect();
        let skip = older.len().saturating_sub(limit);
        HistoryPage {
            room_id: room.to_owned(),
            messages: older[skip..].iter().map(|m| (*m).clone()).collect(),
            more: skip > 0,
        }
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
