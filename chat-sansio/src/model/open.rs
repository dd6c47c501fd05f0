//! Requests, and what the server must answer an `Open` with.

use std::time::Duration;

use crate::chat::{RESUME_METADATA, ROOM_METADATA};
use crate::limits::{MAX_CALLS_PER_CONNECTION, MAX_RESUME_AHEAD};
use crate::metadata::Metadata;
use crate::server::{ConnId, RequestHead};
use crate::status::Code;
use crate::time::Time;
use crate::timeout::parse_timeout;

use super::ops::{
    ContentTypeChoice, Credential, GrpcVariant, Headers, NotGrpc, OddQuirk, OddTimeout, OtherPath,
    PathChoice, Quirk, ResumeChoice, RoomName, TimeoutChoice,
};
use super::rules::{room_name, token, Who, ROOMS};
use super::state::{Kind, Model};

/// Room ids that test the names rule: a look-alike of a listed room
/// (refused), and one room typed composed and decomposed (one room).
const ODD_ROOMS: [&str; 3] = ["R1", "caf\u{e9}", "cafe\u{301}"];

impl RoomName {
    /// The room id.
    pub fn into_string(self) -> String {
        match self {
            RoomName::Few(n) => {
                let all: Vec<&str> = ROOMS.iter().chain(&ODD_ROOMS).copied().collect();
                all[usize::from(n) % all.len()].to_owned()
            }
            RoomName::Raw(s) => s.0,
        }
    }
}

/// What the server should answer an `Open` with.
#[derive(Debug, PartialEq, Eq)]
pub enum Expect {
    /// Accepted: response headers at once.
    Accept {
        /// What the call is.
        kind: Kind,
        /// Who it acts as.
        who: Who,
        /// Its deadline.
        deadline: Option<Time>,
    },
    /// Refused with a Trailers-Only response: HTTP status and code.
    Reject(u16, Code),
}

/// A request, and what it should get.
#[derive(Debug)]
pub struct OpenRequest {
    /// The request.
    pub head: RequestHead,
    /// The answer.
    pub expect: Expect,
    /// The room a JoinChat stream is pinned to.
    pub pinned: Option<String>,
    /// Refused for its credentials: the chat records a failed login.
    pub unauthenticated: bool,
    /// Where a JoinChat stream resumes from: epoch and seq.
    pub resume: Option<(u64, u64)>,
}

/// The `chat-resume` value for `choice`, for a stream in `room`.
fn resume_value(model: &Model, room: &str, choice: ResumeChoice) -> String {
    let epoch = model.engine.epoch_of(room);
    let last = model.engine.log(room).map_or(0, |l| l.last_seq());
    match choice {
        ResumeChoice::Current(n) => format!("{epoch}:{}", u64::from(n) % (last + 3)),
        ResumeChoice::Stale(n) => format!("{}:{}", epoch - 1, u64::from(n) % (last + 3)),
        ResumeChoice::Far => format!("{epoch}:{}", last + MAX_RESUME_AHEAD + 1),
        ResumeChoice::Raw(s) => s.0,
    }
}

/// `EPOCH:SEQ`, as the chat parses it (after the metadata's own trim).
fn parse_resume(value: &str) -> Option<Result<(u64, u64), Code>> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let parsed = value
        .split_once(':')
        .and_then(|(e, s)| Some((e.parse().ok()?, s.parse().ok()?)));
    Some(parsed.ok_or(Code::InvalidArgument))
}

/// The header and what it means, per choice.
fn content_type(choice: ContentTypeChoice) -> (Option<&'static str>, bool) {
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
fn timeout_header(choice: &TimeoutChoice) -> Option<(Vec<u8>, Result<Duration, ()>)> {
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
        TimeoutChoice::Odd(OddTimeout::Raw(v)) => {
            (v.0.clone(), parse_timeout(&v.0).map_err(|_| ()))
        }
    })
}

/// Builds the request with `choices` on `conn`, and predicts the answer: the
/// HTTP-level checks, shutdown, the per-connection limit and the deadline
/// (the `Server`), then the credentials, the path and the stream's room
/// (the `Chat`), in that order.
pub fn open_request(model: &Model, conn: ConnId, choices: Headers) -> OpenRequest {
    let path = match choices.path {
        PathChoice::JoinChat => chat_proto::paths::JOIN_CHAT.to_owned(),
        PathChoice::JoinChatRoom => chat_proto::paths::JOIN_CHAT_ROOM.to_owned(),
        PathChoice::History => chat_proto::paths::HISTORY.to_owned(),
        PathChoice::Other(OtherPath::Unknown) => "/ChatService/Nope".to_owned(),
        PathChoice::Other(OtherPath::Raw(s)) => s.0,
    };
    let quirk = choices.quirk;
    let mixed = matches!(quirk, Quirk::MixedCaseNames);
    let name = |n: &'static str, m: &'static str| if mixed { m } else { n };
    let mut headers = Metadata::new();
    headers.push(name("te", "TE"), "trailers");
    let (ct_value, grpc) = content_type(choices.content_type);
    if let Some(v) = ct_value {
        headers.push(name("content-type", "Content-Type"), v);
    }
    let timeout = timeout_header(&choices.timeout);
    if let Some((v, _)) = &timeout {
        headers.push(name("grpc-timeout", "Grpc-Timeout"), v.clone());
    }
    match quirk {
        Quirk::Odd(OddQuirk::EncodingUnknown) => headers.push("grpc-encoding", "snappy"),
        Quirk::EncodingIdentity => headers.push("grpc-encoding", "identity"),
        _ => {}
    }
    let who = match choices.credential {
        Credential::Guest(g) => Ok(Who::Guest(g % 2)),
        Credential::User(u) => {
            let bearer = format!("Bearer {}", token(u % 3));
            headers.push(name("authorization", "Authorization"), bearer);
            Ok(Who::User(u % 3))
        }
        Credential::UnknownToken => {
            headers.push("authorization", "Bearer not-a-token");
            Err(())
        }
        Credential::NotBearer => {
            headers.push("authorization", "Basic dTA6cHc=");
            Err(())
        }
    };
    let room = choices.room.map(RoomName::into_string);
    if let Some(r) = &room {
        headers.push(name(ROOM_METADATA, "Chat-Room"), r.clone());
    }
    // Metadata::get_str trims; an empty value pins nothing; the rest must
    // be a valid room id (INVALID_ARGUMENT), taken in NFC.
    let pinned = room
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .map(|r| room_name(&r));
    let stream_room = match &pinned {
        Some(Ok(r)) => r.clone(),
        _ => model.session_room(conn),
    };
    let resume = choices.resume.and_then(|choice| {
        let value = resume_value(model, &stream_room, choice);
        headers.push(name(RESUME_METADATA, "Chat-Resume"), value.clone());
        parse_resume(&value)
    });
    headers.push("user-agent", "chat-model");
    let method = if matches!(quirk, Quirk::Odd(OddQuirk::MethodGet)) {
        "GET"
    } else {
        "POST"
    };

    let now = model.now();
    let deadline = timeout.as_ref().and_then(|(_, t)| t.ok()).map(|t| now + t);
    let expect = if method != "POST" {
        Expect::Reject(405, Code::Internal)
    } else if !grpc {
        Expect::Reject(415, Code::InvalidArgument)
    } else if matches!(timeout, Some((_, Err(())))) {
        Expect::Reject(400, Code::Internal)
    } else if matches!(quirk, Quirk::Odd(OddQuirk::EncodingUnknown)) {
        Expect::Reject(200, Code::Unimplemented)
    } else if model.closing.is_some() {
        Expect::Reject(200, Code::Unavailable)
    } else if model.live_on(conn) >= MAX_CALLS_PER_CONNECTION {
        Expect::Reject(200, Code::ResourceExhausted)
    } else if deadline.is_some_and(|d| d <= now) {
        Expect::Reject(200, Code::DeadlineExceeded)
    } else {
        match who {
            Err(()) => Expect::Reject(200, Code::Unauthenticated),
            Ok(who) => chat_open(model, conn, &path, who, pinned.as_ref(), &resume, deadline),
        }
    };
    let unauthenticated = expect == Expect::Reject(200, Code::Unauthenticated);
    let pinned = pinned.and_then(Result::ok).filter(|_| {
        matches!(
            expect,
            Expect::Accept {
                kind: Kind::JoinChat,
                ..
            }
        )
    });
    let resume = resume.and_then(Result::ok).filter(|_| {
        matches!(
            expect,
            Expect::Accept {
                kind: Kind::JoinChat,
                ..
            }
        )
    });
    OpenRequest {
        head: RequestHead {
            method: method.to_owned(),
            path,
            headers,
        },
        expect,
        pinned,
        unauthenticated,
        resume,
    }
}

/// What the chat answers an authenticated request: a JoinChat stream goes
/// into its room (its `chat-room`, else its connection's, else `room1`) if
/// its `chat-resume` is well formed and its caller may read the room.
fn chat_open(
    model: &Model,
    conn: ConnId,
    path: &str,
    who: Who,
    pinned: Option<&Result<String, Code>>,
    resume: &Option<Result<(u64, u64), Code>>,
    deadline: Option<Time>,
) -> Expect {
    let kind = match path {
        chat_proto::paths::JOIN_CHAT => Kind::JoinChat,
        chat_proto::paths::JOIN_CHAT_ROOM => Kind::JoinChatRoom,
        chat_proto::paths::HISTORY => Kind::History,
        _ => return Expect::Reject(200, Code::Unimplemented),
    };
    if kind == Kind::JoinChat {
        let room = match pinned {
            Some(Err(code)) => return Expect::Reject(200, *code),
            Some(Ok(room)) => room.clone(),
            None => model.session_room(conn),
        };
        if let Some(Err(code)) = resume {
            return Expect::Reject(200, *code);
        }
        if let Err(code) = model.rules.check_read(who, &room) {
            return Expect::Reject(200, code);
        }
    }
    Expect::Accept {
        kind,
        who,
        deadline,
    }
}
