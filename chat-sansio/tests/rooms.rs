//! A model of rooms, sessions, switching, permissions and presence, checked
//! against the core under random sequences of joins, switches, stream opens,
//! posts (some spoofed), half-closes, cancels and disconnects, under random
//! room permissions; in memory mode, and in durable mode with the test
//! playing the store (acknowledging or failing pending writes at random
//! moments).
//!
//! Checked after every step: presence in every room equals the users whose
//! connection's session is there. At every JoinChatRoom: the users and the
//! history (exactly the last N accepted messages of the room). At the end,
//! for every stream: exactly the expected messages and presence notices in
//! order (so no gaps or duplicates in any room's numbering, and nothing from
//! a room it may not read), and exactly the expected final status.

mod util;

use std::collections::{BTreeSet, HashMap};

use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
use chat_proto::{ChatMessage, ChatRoom, Presence, User};
use chat_sansio::chat::policy::{hash_token, GuestAccess, Policy, RoomRule, Users};
use chat_sansio::chat::{Chat, ChatConfig, ChatEvent, ChatInput};
use chat_sansio::server::{CallId, Server};
use chat_sansio::Code;
use proptest::prelude::*;
use util::{grpc_head, Harness};

const ROOMS: [&str; 3] = ["room1", "r1", "r2"];
/// Small, so that the cap and the ring buffer are exercised.
const HISTORY_ON_JOIN: usize = 5;
const HISTORY_CAPACITY: usize = 7;

/// Who a call acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Guest(u8),
    User(u8),
}

impl Who {
    fn id(self) -> String {
        match self {
            Who::Guest(g) => format!("g{g}"),
            Who::User(u) => format!("u{u}"),
        }
    }

    fn metadata(self) -> Option<(&'static str, String)> {
        match self {
            Who::Guest(_) => None,
            Who::User(u) => Some(("authorization", format!("Bearer tok-u{u}"))),
        }
    }
}

/// One room's permissions, as bit sets over users u0..u2.
#[derive(Clone, Copy, Debug)]
struct Rule {
    readers: u8,
    posters: u8,
    guests: u8,
}

impl Rule {
    fn can_read(self, who: Who) -> bool {
        match who {
            Who::Guest(_) => self.guests >= 1,
            Who::User(u) => self.readers & (1 << u) != 0,
        }
    }

    fn can_post(self, who: Who) -> bool {
        self.can_read(who)
            && match who {
                Who::Guest(_) => self.guests >= 2,
                Who::User(u) => self.posters & (1 << u) != 0,
            }
    }

    fn to_rule(self) -> RoomRule {
        let users = |bits: u8| {
            let ids: Vec<String> = (0..3)
                .filter(|u| bits & (1 << u) != 0)
                .map(|u| format!("u{u}"))
                .collect();
            if ids.is_empty() {
                Users::none()
            } else {
                Users::from_list(&ids)
            }
        };
        RoomRule {
            readers: users(self.readers),
            posters: users(self.posters),
            guests: [GuestAccess::None, GuestAccess::Read, GuestAccess::Post]
                [usize::from(self.guests)],
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Join {
        conn: u8,
        who: Who,
        room: usize,
    },
    Open {
        conn: u8,
        who: Who,
        pin: Option<usize>,
    },
    Post {
        stream: usize,
        spoof: bool,
    },
    HalfClose(usize),
    Cancel(usize),
    Disconnect(u8),
    /// Durable mode: the store makes everything pending durable.
    Ack,
    /// Durable mode: the store fails.
    Fail,
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![(0u8..2).prop_map(Who::Guest), (0u8..3).prop_map(Who::User)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, who(), 0usize..3).prop_map(|(conn, who, room)| Op::Join { conn, who, room }),
        3 => (0u8..3, who(), prop::option::weighted(0.3, 0usize..3))
            .prop_map(|(conn, who, pin)| Op::Open { conn, who, pin }),
        6 => (any::<usize>(), prop::bool::weighted(0.1)).prop_map(|(stream, spoof)| Op::Post { stream, spoof }),
        1 => any::<usize>().prop_map(Op::HalfClose),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => (0u8..3).prop_map(Op::Disconnect),
        3 => Just(Op::Ack),
        1 => prop::bool::weighted(0.2).prop_map(|fail| if fail { Op::Fail } else { Op::Ack }),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    // Mostly readable rooms, so that streams live long enough to matter.
    (prop::bool::weighted(0.7), 0u8..8, 0u8..8, 0u8..3).prop_map(
        |(all, readers, posters, guests)| Rule {
            readers: if all { 7 } else { readers },
            posters,
            guests,
        },
    )
}

/// What a stream should receive, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Msg {
        room: String,
        seq: u64,
        text: String,
    },
    Notice {
        room: String,
        user: String,
        joined: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// Half-closed, waiting for the pending message with this id.
    Closing(u64),
    Ended(Option<Code>),
}

impl State {
    fn live(self) -> bool {
        matches!(self, State::Open | State::Closing(_))
    }
}

#[derive(Debug)]
struct ModelStream {
    call: CallId,
    conn: u8,
    who: Who,
    room: String,
    pinned: bool,
    state: State,
    expect: Vec<Item>,
}

struct Model {
    durable: bool,
    /// Accepted, not yet durable: (id, room, text, poster stream index).
    pending: Vec<(u64, String, String, usize)>,
    next_id: u64,
    epoch: u64,
    rules: HashMap<String, Rule>,
    streams: Vec<ModelStream>,
    /// conn -> (user, room) of its session.
    sessions: HashMap<u8, (Who, String)>,
    accepted: HashMap<String, Vec<String>>,
}

impl Model {
    fn rule(&self, room: &str) -> Rule {
        self.rules[room]
    }

    fn present(&self, room: &str) -> BTreeSet<String> {
        self.sessions
            .values()
            .filter(|(_, r)| r == room)
            .map(|(w, _)| w.id())
            .collect()
    }

    fn tell_room(&mut self, room: &str, item: Item) {
        for s in &mut self.streams {
            if s.state.live() && s.room == room {
                s.expect.push(item.clone());
            }
        }
    }

    /// A message becomes visible: numbered after the room's delivered ones.
    fn deliver(&mut self, room: &str, text: String) {
        let list = self.accepted.get_mut(room).unwrap();
        list.push(text.clone());
        let seq = list.len() as u64;
        self.tell_room(
            room,
            Item::Msg {
                room: room.to_owned(),
                seq,
                text,
            },
        );
    }

    /// Ends the half-closed streams that waited for pending id `id`.
    fn close_waiting(&mut self, id: u64) {
        for s in &mut self.streams {
            if let State::Closing(after) = s.state {
                if after <= id {
                    s.state = State::Ended(Some(Code::Ok));
                }
            }
        }
    }
}

fn read(body: &bytes::Bytes) -> Item {
    let m = <ChatMessage as prost::Message>::decode(body.clone()).unwrap();
    if m.presence == Presence::None as i32 {
        Item::Msg {
            room: m.room_id,
            seq: m.seq,
            text: m.message,
        }
    } else {
        Item::Notice {
            room: m.room_id,
            user: m.user.unwrap_or_default().user_id,
            joined: m.presence == Presence::Joined as i32,
        }
    }
}

fn server(rules: &[Rule; 3], durable: bool) -> Harness<Chat> {
    let mut policy = Policy::empty();
    for u in 0..3 {
        policy
            .add_user(
                &format!("u{u}"),
                &format!("User {u}"),
                &hash_token(&format!("tok-u{u}")),
            )
            .unwrap();
    }
    for (room, rule) in ROOMS.iter().zip(rules) {
        policy.add_room(room, rule.to_rule()).unwrap();
    }
    let chat = Chat::new(ChatConfig {
        policy,
        history_on_join: HISTORY_ON_JOIN,
        history_capacity: HISTORY_CAPACITY,
        durable,
    });
    Harness::new(Server::new(chat))
}

fn user_msg(who: Who, room: &str) -> User {
    User {
        user_id: who.id(),
        username: format!("name-{}", who.id()),
        room_id: room.to_owned(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn rooms_model(rules in [rule(), rule(), rule()], durable in any::<bool>(), ops in prop::collection::vec(op(), 1..70)) {
        let mut h = server(&rules, durable);
        let mut m = Model {
            durable,
            pending: Vec::new(),
            next_id: 1,
            epoch: 0,
            rules: ROOMS.iter().map(|r| r.to_string()).zip(rules).collect(),
            streams: Vec::new(),
            sessions: HashMap::new(),
            accepted: ROOMS.iter().map(|r| (r.to_string(), Vec::new())).collect(),
        };
        for conn in 0..3 {
            h.connect(conn);
        }
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Join { conn, who, room } => {
                    let room = ROOMS[room].to_owned();
                    let extra: Vec<(&str, String)> = who.metadata().into_iter().collect();
                    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let call = h.open_with(conn.into(), grpc_head(JOIN_CHAT_ROOM, &extra));
                    h.send(call, &user_msg(who, &room));
                    if !m.rule(&room).can_read(who) {
                        prop_assert_eq!(h.status(call).code, Code::PermissionDenied);
                        prop_assert!(h.log(call).messages.is_empty());
                        continue;
                    }
                    let user = who.id();
                    let arrived = !m.sessions.values().any(|(w, r)| w.id() == user && *r == room);
                    let prev = m.sessions.insert(conn, (who, room.clone()));
                    if let Some((pwho, proom)) = prev {
                        if proom != room || pwho.id() != user {
                            // The previous user leaves the previous room if no
                            // other connection keeps them there.
                            let still = m.sessions.iter().any(|(c, (w, r))| *c != conn && w.id() == pwho.id() && *r == proom);
                            if !still {
                                m.tell_room(&proom, Item::Notice { room: proom.clone(), user: pwho.id(), joined: false });
                            }
                        }
                    }
                    let rule = m.rule(&room);
                    for s in &mut m.streams {
                        if s.conn == conn && !s.pinned && s.state.live() && s.room != room {
                            if rule.can_read(s.who) {
                                s.room.clone_from(&room);
                            } else {
                                s.state = State::Ended(Some(Code::PermissionDenied));
                            }
                        }
                    }
                    if arrived {
                        m.tell_room(&room, Item::Notice { room: room.clone(), user: user.clone(), joined: true });
                    }
                    let reply: Vec<ChatRoom> = h.decoded(call);
                    prop_assert_eq!(reply.len(), 1);
                    let reply = &reply[0];
                    prop_assert_eq!(&reply.room_id, &room);
                    let users: BTreeSet<String> = reply.users.iter().map(|u| u.user_id.clone()).collect();
                    prop_assert_eq!(users, m.present(&room));
                    let history: Vec<String> = reply.history.iter().map(|x| x.message.clone()).collect();
                    let all = &m.accepted[&room];
                    prop_assert_eq!(&history[..], &all[all.len().saturating_sub(HISTORY_ON_JOIN)..]);
                    h.end_stream(call);
                    prop_assert_eq!(h.status(call).code, Code::Ok);
                }
                Op::Open { conn, who, pin } => {
                    let room = match pin {
                        Some(r) => ROOMS[r].to_owned(),
                        None => m.sessions.get(&conn).map_or("room1".to_owned(), |(_, r)| r.clone()),
                    };
                    let mut extra: Vec<(&str, String)> = who.metadata().into_iter().collect();
                    if pin.is_some() {
                        extra.push(("chat-room", room.clone()));
                    }
                    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let call = h.open_with(conn.into(), grpc_head(JOIN_CHAT, &extra));
                    let state = if m.rule(&room).can_read(who) {
                        State::Open
                    } else {
                        State::Ended(Some(Code::PermissionDenied))
                    };
                    m.streams.push(ModelStream { call, conn, who, room, pinned: pin.is_some(), state, expect: Vec::new() });
                }
                Op::Post { stream, spoof } if !m.streams.is_empty() => {
                    let i = stream % m.streams.len();
                    let (call, who, room, state) = {
                        let s = &m.streams[i];
                        (s.call, s.who, s.room.clone(), s.state)
                    };
                    if matches!(state, State::Closing(_)) {
                        continue; // a half-closed client sends nothing more
                    }
                    let claimed = match (who, spoof) {
                        (Who::User(u), true) => format!("u{}", (u + 1) % 3),
                        (Who::Guest(_), true) => "u0".to_owned(),
                        (w, false) => w.id(),
                    };
                    let text = format!("m{n}");
                    let msg = ChatMessage {
                        user: Some(User { user_id: claimed, username: "claimed".into(), room_id: String::new() }),
                        message: text.clone(),
                        ..Default::default()
                    };
                    h.send(call, &msg);
                    if state != State::Open {
                        continue;
                    }
                    if spoof || !m.rule(&room).can_post(who) {
                        m.streams[i].state = State::Ended(Some(Code::PermissionDenied));
                        continue;
                    }
                    if m.durable {
                        m.pending.push((m.next_id, room, text, i));
                        m.next_id += 1;
                    } else {
                        m.deliver(&room, text);
                    }
                }
                Op::HalfClose(i) if !m.streams.is_empty() => {
                    let i = i % m.streams.len();
                    if matches!(m.streams[i].state, State::Closing(_)) {
                        continue;
                    }
                    h.end_stream(m.streams[i].call);
                    if m.streams[i].state == State::Open {
                        m.streams[i].state = match m.pending.last() {
                            Some((id, ..)) => State::Closing(*id),
                            None => State::Ended(Some(Code::Ok)),
                        };
                    }
                }
                Op::Cancel(i) if !m.streams.is_empty() => {
                    let i = i % m.streams.len();
                    h.reset(m.streams[i].call);
                    if m.streams[i].state.live() {
                        m.streams[i].state = State::Ended(None);
                    }
                }
                Op::Disconnect(conn) => {
                    h.disconnect(conn.into());
                    for s in &mut m.streams {
                        if s.conn == conn && s.state.live() {
                            s.state = State::Ended(None);
                        }
                    }
                    if let Some((who, room)) = m.sessions.remove(&conn) {
                        let still = m.sessions.values().any(|(w, r)| w.id() == who.id() && *r == room);
                        if !still {
                            m.tell_room(&room, Item::Notice { room: room.clone(), user: who.id(), joined: false });
                        }
                    }
                    h.connect(conn.into());
                }
                Op::Ack if m.durable => {
                    let up_to = m.next_id - 1;
                    h.server.handle_input(h.now, ChatInput::Durable { epoch: m.epoch, up_to });
                    h.drain();
                    for (id, room, text, _) in std::mem::take(&mut m.pending) {
                        m.deliver(&room, text);
                        m.close_waiting(id);
                    }
                }
                Op::Fail if m.durable => {
                    h.server.handle_input(h.now, ChatInput::StoreFailed { epoch: m.epoch, reason: "disk on fire".into() });
                    h.drain();
                    m.epoch += 1;
                    for (_, _, _, poster) in std::mem::take(&mut m.pending) {
                        if m.streams[poster].state.live() {
                            m.streams[poster].state = State::Ended(Some(Code::Unavailable));
                        }
                    }
                    m.close_waiting(u64::MAX);
                }
                _ => {}
            }
            // The test plays the store: every Persist request of this epoch
            // must be in order, for a message the model has pending.
            let persisted: Vec<(u64, u64)> = h.events.iter().filter_map(|e| match e {
                ChatEvent::Persist { epoch, id, .. } => Some((*epoch, *id)),
                _ => None,
            }).collect();
            if let Some((id, ..)) = m.pending.last() {
                prop_assert_eq!(persisted.last(), Some(&(m.epoch, *id)));
            }
            prop_assert!(persisted.windows(2).all(|w| w[0].1 < w[1].1));
            for room in ROOMS {
                let got: BTreeSet<String> = h.server.handler().users_in(room).into_iter().map(|u| u.user_id).collect();
                prop_assert_eq!(got, m.present(room), "presence in {} after step {}", room, n);
            }
        }
        for s in &m.streams {
            let log = h.log(s.call);
            prop_assert_eq!(log.after_end, 0);
            let got: Vec<Item> = log.messages.iter().map(read).collect();
            for item in &got {
                let room = match item {
                    Item::Msg { room, .. } | Item::Notice { room, .. } => room,
                };
                prop_assert!(m.rule(room).can_read(s.who), "{:?} got {:?} from a room it may not read", s.who, item);
            }
            prop_assert_eq!(&got, &s.expect, "stream {:?} of {:?}", s.call, s.who);
            match s.state {
                State::Open | State::Closing(_) | State::Ended(None) => prop_assert!(log.end.is_empty()),
                State::Ended(Some(code)) => prop_assert_eq!(h.status(s.call).code, code),
            }
        }
        let mut per_room: HashMap<String, Vec<String>> = HashMap::new();
        for e in &h.events {
            if let ChatEvent::Message { room, seq, text, .. } = e {
                let list = per_room.entry(room.clone()).or_default();
                list.push(text.clone());
                prop_assert_eq!(*seq, list.len() as u64);
            }
        }
        for room in ROOMS {
            prop_assert_eq!(per_room.remove(room).unwrap_or_default(), m.accepted[room].clone());
        }
        for conn in 0..3 {
            h.disconnect(conn);
        }
        prop_assert_eq!(h.server.open_calls(), 0);
    }
}
