//! Model-based fuzzing of `Server<Chat>`: arbitrary sequences of driver
//! [`Operation`]s on a simulated clock that only moves forward, checked
//! against a small model after every operation.
//!
//! The driver side follows the contract on `chat_sansio::server::Server`:
//! every `Open` gets a fresh `CallId`, stored in one of 16 call slots (the
//! `call` of `Open`); the `call` of the other operations picks among the
//! filled slots (see `Model::target`), so events mostly meet calls the
//! fuzzer opened, live or ended. Each of 4 connection slots gets a fresh
//! `ConnId` on each `Connect`; the `conn` of `Open` picks among the
//! connections that are up (requests only arrive on those); and `poll_output()` is drained after every operation.
//! Events for calls the server has ended (or never opened) are still fed: the
//! server must ignore them.
//!
//! **Protocol invariants**, per call (`drain`):
//! - every output addressed to a call comes after its `Open`, and never
//!   after its final output (`Trailers` / `TrailersOnly`), nor after it was
//!   reset or its connection closed;
//! - at most one final output; at most one `Headers`, before any `Message`;
//!   `TrailersOnly` never follows `Headers`; `Trailers` only follows it;
//! - an `Open` is answered at once: `Headers` if accepted, otherwise a
//!   `TrailersOnly` with the HTTP status and code the checks predict;
//! - `End` on a live call ends it (OK if only whole messages were sent);
//!   `Stalled` ends it with RESOURCE_EXHAUSTED; `Timeout` ends exactly the
//!   calls whose deadline has come, with DEADLINE_EXCEEDED, and after a
//!   `Shutdown`'s grace period every other live call, with UNAVAILABLE;
//!   after a `Shutdown` every request that passes the HTTP-level checks is
//!   refused with UNAVAILABLE; events for calls that are not live produce
//!   nothing;
//! - `open_calls()` and `poll_timeout()` agree with the model.
//!
//! **Chat model** (`chat` section below; the contract in `chat/mod.rs` docs,
//! with the default policy: everyone is a guest, every room is open):
//! - each accepted message goes, as one identical frame, to exactly the live
//!   JoinChat streams of its room (the sender's included), numbered 1, 2, 3,
//!   ... per room, and matches its `ChatEvent::Message`;
//! - a stream's room is its `chat-room` metadata, else its connection's last
//!   successful JoinChatRoom room, else `room1`;
//! - presence is per connection: its last successful JoinChatRoom makes its
//!   user present in that room until it switches or closes; `users_in`,
//!   `streams_in` and every `ChatRoom` reply (users, recent history) agree.

#![no_main]

#[path = "server/chat.rs"]
mod chat;
#[path = "server/model.rs"]
mod model;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use arbitrary::Arbitrary;
use chat_proto::{ChatMessage, User};
use chat_sansio::chat::{Chat, DEFAULT_ROOM};
use chat_sansio::codec::encode_raw;
use chat_sansio::server::{CallId, ConnId, Server, ServerConfig};
use chat_sansio::Code;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

use model::{
    check_state, drain, feed_split, ignored, mark_gone, open_request, CallModel, ConnModel, Expect,
    Kind, Model,
};

const CONN_SLOTS: usize = 4;
const CALL_SLOTS: usize = 16;
/// `limits::MAX_CALLS_PER_CONNECTION`.
const MAX_CALLS_PER_CONNECTION: usize = 128;
/// `limits::MAX_CHAT_TEXT_LEN` and `MAX_USER_FIELD_LEN`.
const MAX_TEXT: usize = 16 * 1024;
const MAX_USER_FIELD: usize = 256;
/// `ChatConfig::default()`: history kept per room, and sent on join.
const HISTORY_CAPACITY: usize = 100;
const HISTORY_ON_JOIN: usize = 50;
/// Start the clock somewhere realistic (2023-11-14, in microseconds).
const EPOCH: u64 = 1_700_000_000_000_000;

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

// Each choice puts the well-formed cases first and folds the odd ones into
// one variant, so most requests are accepted and runs get deep.

#[derive(Arbitrary, Debug, Clone)]
enum PathChoice {
    JoinChat,
    JoinChatRoom,
    Other(OtherPath),
}

#[derive(Arbitrary, Debug, Clone)]
enum OtherPath {
    Unknown,
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ContentTypeChoice {
    Grpc,
    GrpcVariant(GrpcVariant),
    NotGrpc(NotGrpc),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum GrpcVariant {
    Proto,
    Params,
    UpperCase,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum NotGrpc {
    GrpcWeb,
    Json,
    Missing,
}

#[derive(Arbitrary, Debug, Clone)]
enum TimeoutChoice {
    None,
    Millis(u16),
    /// Not a whole number of milliseconds, unlike `Advance`.
    Micros(u16),
    Seconds(u8),
    Hours(u8),
    Odd(OddTimeout),
}

#[derive(Arbitrary, Debug, Clone)]
enum OddTimeout {
    /// Under a microsecond: the deadline has passed on arrival.
    Nanos(u16),
    Zero,
    Malformed,
    Raw(Vec<u8>),
}

/// Other things about a request's headers.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Quirk {
    None,
    EncodingIdentity,
    MixedCaseNames,
    Odd(OddQuirk),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum OddQuirk {
    MethodGet,
    EncodingGzip,
    /// An `authorization` that the default policy (no accounts) refuses.
    BadAuthorization,
}

/// A user id or name: mostly from a handful, so that users collide.
#[derive(Arbitrary, Debug, Clone)]
enum Name {
    Few(u8),
    Empty,
    Raw(String),
}

impl Name {
    fn into_string(self) -> String {
        match self {
            Name::Few(n) => format!("user{}", n % 4),
            Name::Empty => String::new(),
            Name::Raw(s) => s,
        }
    }
}

/// A room id: mostly from a handful (`room1` included).
#[derive(Arbitrary, Debug, Clone)]
enum RoomName {
    Few(u8),
    Raw(String),
}

impl RoomName {
    fn into_string(self) -> String {
        match self {
            RoomName::Few(n) => format!("room{}", n % 3 + 1),
            RoomName::Raw(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Operation {
    Connect {
        conn: u8,
        with_peer: bool,
    },
    Disconnect {
        conn: u8,
    },
    Open {
        conn: u8,
        call: u8,
        path_choice: PathChoice,
        content_type_choice: ContentTypeChoice,
        timeout_choice: TimeoutChoice,
        quirk: Quirk,
        /// `chat-room` metadata.
        room: Option<RoomName>,
    },
    /// Raw DATA bytes.
    Data {
        call: u8,
        bytes: Vec<u8>,
    },
    /// A well-framed `ChatMessage`, delivered in two chunks cut at `split`.
    FramedChatMessage {
        call: u8,
        user_id: Name,
        username: Name,
        text: String,
        no_user: bool,
        room: Option<RoomName>,
        /// Make the text longer than the chat accepts.
        too_long: bool,
        split: u16,
    },
    /// A well-framed `User` (a join), delivered in two chunks cut at `split`.
    FramedUser {
        call: u8,
        user_id: Name,
        username: Name,
        room: Option<RoomName>,
        /// Make the user id longer than the chat accepts.
        too_long: bool,
        split: u16,
    },
    End {
        call: u8,
    },
    Reset {
        call: u8,
    },
    Stalled {
        call: u8,
    },
    Advance {
        millis: u16,
    },
    /// `handle_timeout`; with `jump`, first move the clock to `poll_timeout()`.
    Timeout {
        jump: bool,
    },
    /// `handle_shutdown` with this grace period.
    Shutdown {
        grace_millis: u16,
    },
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

fn run(ops: &[Operation]) {
    let mut model = Model {
        now: EPOCH,
        next_call: 1,
        next_conn: 1,
        ..Model::default()
    };
    // The health and reflection services have their own tests; here their
    // paths would be accepted where the model expects UNIMPLEMENTED for
    // unknown paths.
    let config = ServerConfig {
        health: false,
        reflection: None,
        ..ServerConfig::default()
    };
    let mut server = Server::with_config(config, Chat::default());

    for op in ops {
        let now = model.now();
        match op.clone() {
            Operation::Connect { conn, with_peer } => {
                let slot = usize::from(conn) % CONN_SLOTS;
                let id = match &model.conns[slot] {
                    Some(c) => c.id,
                    None => {
                        let id = ConnId(model.next_conn);
                        model.next_conn += 1;
                        id
                    }
                };
                let peer = with_peer.then(|| format!("192.0.2.{}:{}", slot, 40000 + id.0));
                server.handle_connect(now, id, peer.clone());
                // A second connect for the same connection only updates the peer.
                let known = model.conns[slot].as_ref().and_then(|c| c.peer.clone());
                let peer = peer.or(known);
                model.conns[slot] = Some(ConnModel {
                    id,
                    peer: peer.clone(),
                });
                model.peers.insert(id, peer);
                let d = drain(&mut server, &mut model, None);
                assert_eq!(d.outputs, 0, "Connect sends nothing");
            }
            Operation::Disconnect { conn } => {
                let slot = usize::from(conn) % CONN_SLOTS;
                let Some(c) = model.conns[slot].take() else {
                    continue; // Nothing to disconnect.
                };
                server.handle_disconnect(now, c.id);
                let ids: Vec<CallId> = model
                    .calls
                    .iter()
                    .filter(|(_, m)| m.conn == c.id)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    mark_gone(&mut model, id);
                }
                model.sessions.remove(&c.id);
                // Others may be told that its user left; nothing may go to its calls.
                let d = drain(&mut server, &mut model, None);
                assert!(d.ended.is_empty(), "Disconnect ends no call with a status");
                assert_eq!(d.posts + d.logins, 0);
            }
            Operation::Open {
                conn,
                call,
                path_choice,
                content_type_choice,
                timeout_choice,
                quirk,
                room,
            } => {
                // Among the connections that are up: no request arrives on
                // a connection that is not there.
                let up: Vec<ConnModel> = model.conns.iter().flatten().cloned().collect();
                let Some(c) = up.get(usize::from(conn) % up.len().max(1)).cloned() else {
                    continue;
                };
                let req = open_request(
                    &model,
                    c.id,
                    &path_choice,
                    content_type_choice,
                    &timeout_choice,
                    quirk,
                    room,
                );
                let id = CallId(model.next_call);
                model.next_call += 1;
                model.slots[usize::from(call) % CALL_SLOTS] = Some(id);
                let (kind, deadline) = match req.expect {
                    Expect::Accept(kind, deadline) => (kind, deadline),
                    Expect::Reject(..) => (Kind::Rejected, None),
                };
                model.calls.insert(
                    id,
                    CallModel {
                        conn: c.id,
                        kind,
                        pinned: req.pinned,
                        deadline,
                        headers: false,
                        ended: false,
                        gone: false,
                        raw_data: false,
                        last_seq: HashMap::new(),
                    },
                );
                server.handle_open(now, c.id, id, req.head);
                let d = drain(&mut server, &mut model, None);
                match req.expect {
                    Expect::Accept(..) => {
                        assert!(
                            d.headers.contains(&id),
                            "an accepted call gets Headers at once"
                        );
                        assert!(d.ended.is_empty(), "an accepted call ended at once");
                    }
                    Expect::Reject(http, codes) => {
                        let got = d.trailers_only.get(&id);
                        assert!(
                            got.is_some_and(|(h, c)| *h == http && codes.contains(c)),
                            "the rejection of {op:?}: got {got:?}, want {http} {codes:?}"
                        );
                        assert_eq!(d.ended.len(), 1);
                    }
                }
                assert_eq!(d.posts + d.logins, 0);
            }
            Operation::Data { call, bytes } => {
                let id = model.target(call);
                if let Some(c) = model.calls.get_mut(&id) {
                    c.raw_data |= !bytes.is_empty();
                }
                let was_live = model.is_live(id);
                server.handle_data(now, id, &bytes);
                let d = drain(&mut server, &mut model, Some(id));
                if !was_live {
                    ignored(&d, "Data");
                }
            }
            Operation::FramedChatMessage {
                call,
                user_id,
                username,
                text,
                no_user,
                room,
                too_long,
                split,
            } => {
                let id = model.target(call);
                let mut message = text;
                if too_long {
                    message.push_str(&"x".repeat(MAX_TEXT + 1));
                }
                let msg = ChatMessage {
                    user: (!no_user).then(|| User {
                        user_id: user_id.into_string(),
                        username: username.into_string(),
                        room_id: String::new(),
                    }),
                    message,
                    room_id: room.map(RoomName::into_string).unwrap_or_default(),
                    ..ChatMessage::default()
                };
                let frame = encode_raw(&msg.encode_to_vec()).unwrap();
                let was_live = model.is_live(id);
                let expect = model.calls.get(&id).and_then(|c| {
                    (c.live() && !c.raw_data && c.kind == Kind::JoinChat).then(|| {
                        let user = msg.user.clone().unwrap_or_default();
                        !user.user_id.is_empty()
                            && user.user_id.len() <= MAX_USER_FIELD
                            && user.username.len() <= MAX_USER_FIELD
                            && (msg.room_id.is_empty() || msg.room_id == model.room_of(c))
                            && msg.message.len() <= MAX_TEXT
                    })
                });
                feed_split(&mut server, now, id, &frame, split);
                let d = drain(&mut server, &mut model, Some(id));
                match expect {
                    _ if !was_live => ignored(&d, "a ChatMessage"),
                    Some(true) => {
                        assert_eq!(d.posts, 1, "a valid message is posted");
                        assert!(model.is_live(id), "a valid message ended the stream");
                    }
                    Some(false) => {
                        assert_eq!(d.posts, 0);
                        assert_eq!(d.ended.get(&id), Some(&Code::InvalidArgument), "{msg:?}");
                    }
                    None => {}
                }
            }
            Operation::FramedUser {
                call,
                user_id,
                username,
                room,
                too_long,
                split,
            } => {
                let id = model.target(call);
                let mut user_id = user_id.into_string();
                if too_long {
                    user_id.push_str(&"u".repeat(MAX_USER_FIELD + 1));
                }
                let user = User {
                    user_id,
                    username: username.into_string(),
                    room_id: room.map(RoomName::into_string).unwrap_or_default(),
                };
                let frame = encode_raw(&user.encode_to_vec()).unwrap();
                let was_live = model.is_live(id);
                let expect = model.calls.get(&id).and_then(|c| {
                    (c.live() && !c.raw_data && c.kind == Kind::JoinChatRoom).then_some(
                        !user.user_id.is_empty()
                            && user.user_id.len() <= MAX_USER_FIELD
                            && user.username.len() <= MAX_USER_FIELD,
                    )
                });
                feed_split(&mut server, now, id, &frame, split);
                let d = drain(&mut server, &mut model, Some(id));
                match expect {
                    _ if !was_live => ignored(&d, "a User"),
                    Some(true) => {
                        assert_eq!(d.logins, 1, "a valid join logs in");
                        assert!(model.is_live(id), "a valid join ended the call");
                        let conn = model.calls[&id].conn;
                        let room = if user.room_id.is_empty() {
                            DEFAULT_ROOM
                        } else {
                            &user.room_id
                        };
                        assert_eq!(
                            model.sessions.get(&conn),
                            Some(&(user.user_id.clone(), room.to_owned()))
                        );
                    }
                    Some(false) => {
                        assert_eq!(d.logins, 0);
                        assert_eq!(d.ended.get(&id), Some(&Code::InvalidArgument), "{user:?}");
                    }
                    None => {}
                }
            }
            Operation::End { call } => {
                let id = model.target(call);
                let was_live = model.is_live(id);
                let clean = model.calls.get(&id).is_some_and(|c| !c.raw_data);
                server.handle_end(now, id);
                let d = drain(&mut server, &mut model, None);
                if was_live {
                    let code = d.ended.get(&id).expect("End on a live call ends it");
                    if clean {
                        assert_eq!(*code, Code::Ok, "whole messages, then END_STREAM: OK");
                    }
                    assert_eq!(d.ended.len(), 1);
                } else {
                    ignored(&d, "End");
                }
            }
            Operation::Reset { call } => {
                let id = model.target(call);
                let was_live = model.is_live(id);
                server.handle_reset(now, id);
                mark_gone(&mut model, id);
                let d = drain(&mut server, &mut model, None);
                assert!(d.ended.is_empty(), "Reset sends no status");
                if !was_live {
                    ignored(&d, "Reset");
                }
            }
            Operation::Stalled { call } => {
                let id = model.target(call);
                let was_live = model.is_live(id);
                server.handle_stalled(now, id);
                let d = drain(&mut server, &mut model, None);
                if was_live {
                    assert_eq!(d.ended.get(&id), Some(&Code::ResourceExhausted));
                    assert_eq!(d.ended.len(), 1);
                } else {
                    ignored(&d, "Stalled");
                }
            }
            Operation::Advance { millis } => {
                model.now += u64::from(millis) * 1000;
            }
            Operation::Timeout { jump } => {
                if jump {
                    if let Some(t) = server.poll_timeout() {
                        model.now = model.now.max(t.as_micros());
                    }
                }
                let now = model.now();
                let expired: BTreeSet<CallId> = model
                    .calls
                    .iter()
                    .filter(|(_, c)| c.live() && c.deadline.is_some_and(|d| d <= now))
                    .map(|(id, _)| *id)
                    .collect();
                let closed = model.closing.is_some_and(|at| at <= now);
                let cut: BTreeSet<CallId> = model
                    .calls
                    .iter()
                    .filter(|(id, c)| closed && c.live() && !expired.contains(id))
                    .map(|(id, _)| *id)
                    .collect();
                server.handle_timeout(now);
                let d = drain(&mut server, &mut model, None);
                let code = |id: &CallId| d.ended.get(id).copied();
                assert_eq!(
                    d.ended.len(),
                    expired.len() + cut.len(),
                    "Timeout ends exactly the calls past their deadline, and after a \
                     shutdown's grace period every call"
                );
                assert!(expired.iter().all(|id| code(id) == Some(Code::DeadlineExceeded)));
                assert!(cut.iter().all(|id| code(id) == Some(Code::Unavailable)));
            }
            Operation::Shutdown { grace_millis } => {
                server.handle_shutdown(now, Duration::from_millis(u64::from(grace_millis)));
                let d = drain(&mut server, &mut model, None);
                assert_eq!(d.outputs, 0, "Shutdown sends nothing at once (health is off)");
                assert!(server.is_shutting_down());
                if model.closing.is_none() {
                    model.closing = Some(now + Duration::from_millis(u64::from(grace_millis)));
                }
            }
        }
        check_state(&mut server, &model);
    }
}

fuzz_target!(|ops: Vec<Operation>| {
    run(&ops);
});
