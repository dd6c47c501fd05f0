//! The server target's model: calls, connections and sessions as the
//! driver sees them; what an `Open` should get; and the checks on every
//! output (`drain`) and after every operation (`check_state`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chat_proto::ChatMessage;
use chat_sansio::chat::{Chat, ChatEvent, DEFAULT_ROOM, ROOM_METADATA};
use chat_sansio::metadata::Metadata;
use chat_sansio::server::{CallId, ConnId, Expand, Output, RequestHead, Server};
use chat_sansio::timeout::parse_timeout;
use chat_sansio::{Code, Time};

use crate::chat;
use crate::{
    ContentTypeChoice, GrpcVariant, NotGrpc, OddQuirk, OddTimeout, OtherPath, PathChoice, Quirk,
    RoomName, TimeoutChoice, CALL_SLOTS, CONN_SLOTS, MAX_CALLS_PER_CONNECTION,
};

// ---------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    JoinChat,
    JoinChatRoom,
    /// Rejected at open; never live after the open's outputs.
    Rejected,
}

#[derive(Debug)]
pub struct CallModel {
    pub conn: ConnId,
    pub kind: Kind,
    /// A JoinChat stream's `chat-room`.
    pub pinned: Option<String>,
    pub deadline: Option<Time>,
    pub headers: bool,
    /// The final output (`Trailers` / `TrailersOnly`) has been seen.
    pub ended: bool,
    /// Reset by the client, or its connection closed, while open.
    pub gone: bool,
    /// Raw DATA was fed, so the decoder may hold a partial message.
    pub raw_data: bool,
    /// Last message number this stream got, per room.
    pub last_seq: HashMap<String, u64>,
}

impl CallModel {
    pub fn live(&self) -> bool {
        !self.ended && !self.gone
    }
}

#[derive(Debug, Clone)]
pub struct ConnModel {
    pub id: ConnId,
    pub peer: Option<String>,
}

#[derive(Debug, Default)]
pub struct RoomModel {
    pub last_seq: u64,
    pub history: Vec<ChatMessage>,
}

#[derive(Default)]
pub struct Model {
    pub now: u64,
    pub next_call: u64,
    pub next_conn: u64,
    pub conns: [Option<ConnModel>; CONN_SLOTS],
    pub slots: [Option<CallId>; CALL_SLOTS],
    pub calls: BTreeMap<CallId, CallModel>,
    /// Peers of every connection ever made.
    pub peers: HashMap<ConnId, Option<String>>,
    /// Each connection's chat session: (user id, room).
    pub sessions: HashMap<ConnId, (String, String)>,
    pub rooms: BTreeMap<String, RoomModel>,
    /// Multicasts turned into per-call messages, as a driver would.
    pub expand: Expand,
    /// When the grace period of a shutdown ends, once one was asked for.
    pub closing: Option<Time>,
}

impl Model {
    pub fn now(&self) -> Time {
        Time::from_micros(self.now)
    }

    pub fn call(&self, id: CallId) -> &CallModel {
        self.calls
            .get(&id)
            .unwrap_or_else(|| panic!("output for {id:?}, which was never opened"))
    }

    pub fn call_mut(&mut self, id: CallId) -> &mut CallModel {
        self.calls
            .get_mut(&id)
            .unwrap_or_else(|| panic!("output for {id:?}, which was never opened"))
    }

    /// The call an event goes to: `index` picks among the slots that have
    /// been opened (live or not), so that events mostly meet calls; 250 and
    /// up (or no slot yet) give an id that was never opened.
    pub fn target(&self, index: u8) -> CallId {
        let filled: Vec<CallId> = self.slots.iter().flatten().copied().collect();
        if index >= 250 || filled.is_empty() {
            return CallId(u64::MAX - u64::from(index));
        }
        filled[usize::from(index) % filled.len()]
    }

    pub fn is_live(&self, id: CallId) -> bool {
        self.calls.get(&id).is_some_and(CallModel::live)
    }

    pub fn live_on(&self, conn: ConnId) -> usize {
        self.calls
            .values()
            .filter(|c| c.live() && c.conn == conn)
            .count()
    }

    /// The room a JoinChat stream is in.
    pub fn room_of(&self, call: &CallModel) -> String {
        call.pinned.clone().unwrap_or_else(|| {
            self.sessions
                .get(&call.conn)
                .map_or_else(|| DEFAULT_ROOM.to_owned(), |(_, room)| room.clone())
        })
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

    /// Rooms the model knows of.
    pub fn known_rooms(&self) -> BTreeSet<String> {
        let mut rooms: BTreeSet<String> = self.rooms.keys().cloned().collect();
        rooms.extend(self.sessions.values().map(|(_, r)| r.clone()));
        rooms.extend(self.calls.values().filter_map(|c| c.pinned.clone()));
        rooms.insert(DEFAULT_ROOM.to_owned());
        rooms
    }
}

// ---------------------------------------------------------------------------
// Requests and their expected answers
// ---------------------------------------------------------------------------

/// What the server should answer an `Open` with.
#[derive(Debug, PartialEq, Eq)]
pub enum Expect {
    Accept(Kind, Option<Time>),
    /// HTTP status and the acceptable codes.
    Reject(u16, &'static [Code]),
}

pub fn content_type(choice: ContentTypeChoice) -> (Option<&'static str>, bool) {
    match choice {
        ContentTypeChoice::Grpc => (Some("application/grpc"), true),
        ContentTypeChoice::GrpcVariant(GrpcVariant::Proto) => {
            (Some("application/grpc+proto"), true)
        }
        ContentTypeChoice::GrpcVariant(GrpcVariant::Params) => {
            (Some("application/grpc;charset=utf-8"), true)
        }
        ContentTypeChoice::GrpcVariant(GrpcVariant::UpperCase) => (Some("Application/GRPC"), true),
        ContentTypeChoice::NotGrpc(NotGrpc::GrpcWeb) => (Some("application/grpc-web"), false),
        ContentTypeChoice::NotGrpc(NotGrpc::Json) => (Some("application/json"), false),
        ContentTypeChoice::NotGrpc(NotGrpc::Missing) => (None, false),
    }
}

/// The `grpc-timeout` value, and what it means (`Err` if malformed).
pub fn timeout_header(choice: &TimeoutChoice) -> Option<(Vec<u8>, Result<Duration, ()>)> {
    let text = |s: String, d: Duration| (s.into_bytes(), Ok(d));
    Some(match choice {
        TimeoutChoice::None => return None,
        TimeoutChoice::Millis(n) => text(format!("{n}m"), Duration::from_millis(u64::from(*n))),
        TimeoutChoice::Micros(n) => text(format!("{n}u"), Duration::from_micros(u64::from(*n))),
        TimeoutChoice::Seconds(n) => text(format!("{n}S"), Duration::from_secs(u64::from(*n))),
        TimeoutChoice::Hours(n) => text(format!("{n}H"), Duration::from_secs(3600 * u64::from(*n))),
        TimeoutChoice::Odd(OddTimeout::Nanos(n)) => {
            let n = n % 1000;
            text(format!("{n}n"), Duration::from_nanos(u64::from(n)))
        }
        TimeoutChoice::Odd(OddTimeout::Zero) => text("0S".to_owned(), Duration::ZERO),
        TimeoutChoice::Odd(OddTimeout::Malformed) => (b"1.5S".to_vec(), Err(())),
        // The timeout grammar is fuzzed on its own in `vocabulary`.
        TimeoutChoice::Odd(OddTimeout::Raw(v)) => (v.clone(), parse_timeout(v).map_err(|_| ())),
    })
}

pub struct OpenRequest {
    pub head: RequestHead,
    pub expect: Expect,
    pub pinned: Option<String>,
}

pub fn open_request(
    model: &Model,
    conn: ConnId,
    path_choice: &PathChoice,
    ct: ContentTypeChoice,
    timeout_choice: &TimeoutChoice,
    quirk: Quirk,
    room: Option<RoomName>,
) -> OpenRequest {
    let path = match path_choice {
        PathChoice::JoinChat => chat_proto::paths::JOIN_CHAT.to_owned(),
        PathChoice::JoinChatRoom => chat_proto::paths::JOIN_CHAT_ROOM.to_owned(),
        PathChoice::Other(OtherPath::Unknown) => "/ChatService/Nope".to_owned(),
        PathChoice::Other(OtherPath::Raw(s)) => s.clone(),
    };
    let mixed = matches!(quirk, Quirk::MixedCaseNames);
    let name = |n: &'static str, m: &'static str| if mixed { m } else { n };
    let mut headers = Metadata::new();
    headers.push(name("te", "TE"), "trailers");
    let (ct_value, grpc) = content_type(ct);
    if let Some(v) = ct_value {
        headers.push(name("content-type", "Content-Type"), v);
    }
    let timeout = timeout_header(timeout_choice);
    if let Some((v, _)) = &timeout {
        headers.push(name("grpc-timeout", "Grpc-Timeout"), v.clone());
    }
    match quirk {
        Quirk::Odd(OddQuirk::EncodingGzip) => headers.push("grpc-encoding", "gzip"),
        Quirk::EncodingIdentity => headers.push("grpc-encoding", "identity"),
        Quirk::Odd(OddQuirk::BadAuthorization) => {
            headers.push("authorization", "Bearer not-a-token")
        }
        _ => {}
    }
    let room = room.map(RoomName::into_string);
    if let Some(r) = &room {
        headers.push(name(ROOM_METADATA, "Chat-Room"), r.clone());
    }
    // Metadata::get_str trims; an empty value pins nothing.
    let pinned = room.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    headers.push("user-agent", "chat-fuzz");
    let method = if matches!(quirk, Quirk::Odd(OddQuirk::MethodGet)) {
        "GET"
    } else {
        "POST"
    };

    let now = model.now();
    let known = path == chat_proto::paths::JOIN_CHAT || path == chat_proto::paths::JOIN_CHAT_ROOM;
    let expect = if method != "POST" {
        Expect::Reject(405, &[Code::Internal])
    } else if !grpc {
        Expect::Reject(415, &[Code::InvalidArgument])
    } else if matches!(timeout, Some((_, Err(())))) {
        Expect::Reject(400, &[Code::Internal])
    } else if matches!(quirk, Quirk::Odd(OddQuirk::EncodingGzip)) {
        Expect::Reject(200, &[Code::Unimplemented])
    } else if model.closing.is_some() {
        Expect::Reject(200, &[Code::Unavailable])
    } else if model.live_on(conn) >= MAX_CALLS_PER_CONNECTION {
        Expect::Reject(200, &[Code::ResourceExhausted])
    } else {
        let deadline = timeout.and_then(|(_, t)| t.ok()).map(|t| now + t);
        if deadline.is_some_and(|d| d <= now) {
            Expect::Reject(200, &[Code::DeadlineExceeded])
        } else if matches!(quirk, Quirk::Odd(OddQuirk::BadAuthorization)) {
            if known {
                Expect::Reject(200, &[Code::Unauthenticated])
            } else {
                Expect::Reject(200, &[Code::Unauthenticated, Code::Unimplemented])
            }
        } else if path == chat_proto::paths::JOIN_CHAT {
            Expect::Accept(Kind::JoinChat, deadline)
        } else if path == chat_proto::paths::JOIN_CHAT_ROOM {
            Expect::Accept(Kind::JoinChatRoom, deadline)
        } else {
            Expect::Reject(200, &[Code::Unimplemented])
        }
    };
    let pinned = if matches!(expect, Expect::Accept(Kind::JoinChat, _)) {
        pinned
    } else {
        None
    };
    OpenRequest {
        head: RequestHead {
            method: method.to_owned(),
            path,
            headers,
        },
        expect,
        pinned,
    }
}

/// Splits `frame` at `split` and feeds both halves.
pub fn feed_split(server: &mut Server<Chat>, now: Time, call: CallId, frame: &[u8], split: u16) {
    let at = usize::from(split) % (frame.len() + 1);
    server.handle_data(now, call, &frame[..at]);
    server.handle_data(now, call, &frame[at..]);
}

// ---------------------------------------------------------------------------
// Draining and the per-output checks
// ---------------------------------------------------------------------------

/// What one operation's outputs did, for the per-operation checks.
#[derive(Default, Debug)]
pub struct Drained {
    pub outputs: usize,
    /// Calls that got their final output, with its code.
    pub ended: BTreeMap<CallId, Code>,
    /// TrailersOnly answers: call -> (http status, code).
    pub trailers_only: BTreeMap<CallId, (u16, Code)>,
    pub headers: BTreeSet<CallId>,
    /// `ChatEvent::Message`s seen.
    pub posts: usize,
    /// Successful logins seen.
    pub logins: usize,
}

/// Drains `poll_output()`, checking every output against the model in
/// order. `target` is the call the operation fed a message to, if any.
pub fn drain(server: &mut Server<Chat>, model: &mut Model, target: Option<CallId>) -> Drained {
    let mut out: Vec<Output<ChatEvent>> = Vec::new();
    let mut d = Drained::default();
    let mut expanded = std::collections::VecDeque::new();
    while let Some(o) = server.poll_output() {
        match &o {
            Output::Subscribe { call, .. } => {
                let c = model.call(*call);
                assert!(c.live(), "Subscribe for {call:?} after it ended: {c:?}");
                assert!(c.headers, "Subscribe for {call:?} before its Headers");
            }
            Output::Unsubscribe { call } => {
                assert!(
                    model.expand.group_of(*call).is_some(),
                    "Unsubscribe for {call:?}, which is in no group"
                );
            }
            _ => {}
        }
        model.expand.apply(o, &mut expanded);
        while let Some(o) = expanded.pop_front() {
            check_output(model, o, &mut out, target, &mut d);
        }
    }
    d
}

/// Checks one output (after expansion) against the model.
fn check_output(
    model: &mut Model,
    o: Output<ChatEvent>,
    out: &mut Vec<Output<ChatEvent>>,
    target: Option<CallId>,
    d: &mut Drained,
) {
    {
        match &o {
            Output::Subscribe { .. } | Output::Unsubscribe { .. } | Output::Multicast { .. } => {
                unreachable!("expanded")
            }
            Output::Headers { call } => {
                let c = model.call_mut(*call);
                assert!(c.live(), "Headers for {call:?} after it ended: {c:?}");
                assert!(!c.headers, "second Headers for {call:?}");
                c.headers = true;
                d.headers.insert(*call);
            }
            Output::Message { call, frame } => {
                let c = model.call(*call);
                assert!(c.live(), "Message for {call:?} after it ended: {c:?}");
                assert!(c.headers, "Message for {call:?} before its Headers");
                assert!(frame.len() >= 5 && frame[0] == 0, "a frame, uncompressed");
                let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
                assert_eq!(len, frame.len() - 5, "one whole frame per Message");
                chat::on_message(model, *call, &frame[5..]);
            }
            Output::Trailers { call, status } => {
                assert_eq!(model.expand.group_of(*call), None, "{call:?} ends in a group");
                let c = model.call_mut(*call);
                assert!(c.live(), "Trailers for {call:?} after it ended: {c:?}");
                assert!(c.headers, "Trailers for {call:?} without Headers");
                c.ended = true;
                d.ended.insert(*call, status.code);
            }
            Output::TrailersOnly {
                call,
                http_status,
                status,
            } => {
                let c = model.call_mut(*call);
                assert!(c.live(), "TrailersOnly for {call:?} after it ended: {c:?}");
                assert!(!c.headers, "TrailersOnly for {call:?} after Headers");
                assert!(
                    matches!(http_status, 200 | 400 | 405 | 415),
                    "{http_status}"
                );
                assert!(*http_status == 200 || !status.is_ok());
                c.ended = true;
                d.ended.insert(*call, status.code);
                d.trailers_only.insert(*call, (*http_status, status.code));
            }
            Output::Event(event) => chat::on_event(model, event, out, target, d),
        }
        d.outputs += 1;
        out.push(o);
    }
}

/// Checks taken after every operation.
pub fn check_state(server: &mut Server<Chat>, model: &Model) {
    let live = model.calls.values().filter(|c| c.live()).count();
    assert_eq!(server.open_calls(), live, "open_calls");
    let next = model
        .calls
        .values()
        .filter(|c| c.live())
        .filter_map(|c| c.deadline)
        .chain(model.closing.filter(|_| live > 0))
        .min();
    assert_eq!(server.poll_timeout(), next, "poll_timeout");
    for c in model.calls.values() {
        assert!(
            c.ended || c.gone || c.kind != Kind::Rejected,
            "a rejected call ends at once"
        );
    }
    chat::check(server, model);
}

/// Marks a call gone (reset, or its connection closed) if it was live.
pub fn mark_gone(model: &mut Model, id: CallId) {
    if let Some(c) = model.calls.get_mut(&id) {
        if c.live() {
            c.gone = true;
        }
    }
}

/// After a message op on a call that was not live: nothing at all.
pub fn ignored(d: &Drained, what: &str) {
    assert_eq!(
        d.outputs, 0,
        "{what} for a call that is not live must be ignored"
    );
}
