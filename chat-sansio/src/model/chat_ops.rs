//! The chat's operations: well-framed requests on chat calls, each with the
//! chat's rules as the model states them (the contract in the docs of
//! [`crate::chat`]). The engine's side is in `engine_ops`.

use chat_proto::{ChatMessage, HistoryRequest, User};
use prost::Message as _;

use crate::chat::names::{self, Kind as NameKind};
use crate::chat::AppendRequest;
use crate::codec::encode_raw;
use crate::limits::{
    DEFAULT_MAX_MESSAGE_SIZE, MAX_CHAT_TEXT_LEN, MAX_CLIENT_MSG_ID_LEN, MAX_PENDING_MESSAGES,
    MAX_PENDING_PER_CONN, MAX_READS_IN_FLIGHT, MAX_USER_FIELD_LEN,
};
use crate::server::CallId;
use crate::status::Code;

use super::drain::{drain, ignored};
use super::ops::{Join, MsgId, Name, Post, RoomName};
use super::record::{ChatServer, Drained};
use super::rules::{account_name, is_lookalike, is_registered, page_size, room_name, Who};
use super::state::{Kind, Model, Post as Posted, ReadAsk};

/// Claimed names that collide: users with and without accounts, guests.
/// `U1` and `user 2` look like configured users (guests may not take them).
const FEW: [&str; 8] = ["u0", "u1", "u2", "u3", "g0", "g1", "U1", "user 2"];

impl Name {
    fn resolve(self, who: Option<Who>) -> String {
        match self {
            Name::Mine => who.unwrap_or(Who::Guest(0)).id(),
            Name::Few(n) => FEW[usize::from(n) % FEW.len()].to_owned(),
            Name::Empty => String::new(),
            Name::Raw(s) => s.0,
        }
    }
}

/// The sender of record for what a caller claims, or the code that refuses
/// it: an authenticated caller is always its account (a claim to be anyone
/// else is PERMISSION_DENIED); a guest is who it claims, but not a
/// registered id (PERMISSION_DENIED), and not nobody (INVALID_ARGUMENT).
fn sender(who: Who, claimed: &User) -> Result<User, Code> {
    let check = |kind, s: &str| names::check(kind, s).map_err(|_| Code::InvalidArgument);
    let claimed_id = check(NameKind::User, &claimed.user_id)?;
    let claimed_name = check(NameKind::Name, &claimed.username)?;
    let (user_id, username) = match who {
        Who::User(u) if claimed_id.is_empty() || claimed_id == who.id() => {
            (who.id(), account_name(u))
        }
        Who::User(_) => return Err(Code::PermissionDenied),
        Who::Guest(_) if claimed_id.is_empty() => return Err(Code::InvalidArgument),
        Who::Guest(_) if is_registered(&claimed_id) => return Err(Code::PermissionDenied),
        Who::Guest(_) if is_lookalike(&claimed_id) || is_lookalike(&claimed_name) => {
            return Err(Code::PermissionDenied)
        }
        Who::Guest(_) => (claimed_id, claimed_name),
    };
    Ok(User {
        user_id,
        username,
        room_id: String::new(),
    })
}

impl MsgId {
    fn resolve(self) -> String {
        match self {
            MsgId::None => String::new(),
            MsgId::Few(n) => format!("m{}", n % 4),
            MsgId::TooLong => "m".repeat(MAX_CLIENT_MSG_ID_LEN + 1),
            MsgId::Raw(s) => s.0,
        }
    }
}

/// Feeds `message` to call `id` as a frame, cut at `split` (see
/// [`feed_data`]).
fn feed(server: &mut ChatServer, model: &mut Model, id: CallId, message: &[u8], split: u16) {
    feed_data(server, model, id, &frame(message), split);
}

/// Feeds DATA `bytes` to call `id`, in pieces cut at `split` and at the end
/// of each message they complete, predicting what the call does with each
/// message as its method reads it: the model keeps what the call's decoder
/// holds (`buffered`), and decodes each message as the chat would (a
/// message of another method's type may well decode, as something else); a
/// message that does not decode ends the call with INTERNAL. A frame header
/// the model does not follow (compressed, or over the size limit) makes
/// the call unpredicted from then on (`raw_data`). A call that is not
/// listening must ignore it all.
pub fn feed_data(server: &mut ChatServer, model: &mut Model, id: CallId, bytes: &[u8], split: u16) {
    let Some(c) = model.calls.get(&id).filter(|c| c.listening()) else {
        server.handle_data(model.now(), id, bytes);
        let d = drain(server, model, Some(id));
        ignored(&d, "DATA");
        return;
    };
    if c.raw_data {
        server.handle_data(model.now(), id, bytes);
        drain(server, model, Some(id));
        return;
    }
    // Where each complete message ends, in `bytes`.
    let mut held = c.buffered.clone();
    let start = held.len();
    held.extend_from_slice(bytes);
    let mut ends = Vec::new();
    let mut at = 0;
    let mut followed = true;
    while held.len() - at >= 5 {
        let len = u32::from_be_bytes([held[at + 1], held[at + 2], held[at + 3], held[at + 4]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if held[at] != 0 || len > DEFAULT_MAX_MESSAGE_SIZE {
            followed = false;
            break;
        }
        if held.len() - at - 5 < len {
            break;
        }
        at += 5 + len;
        ends.push(at);
    }
    // The messages before a header the model does not follow are fed as
    // usual, the rest unpredicted.
    let followed_len = if followed {
        bytes.len()
    } else {
        at.saturating_sub(start)
    };
    let mut cuts: Vec<usize> = ends.iter().map(|e| e - start).collect();
    cuts.push(usize::from(split) % (followed_len + 1));
    cuts.push(followed_len);
    cuts.sort_unstable();
    cuts.dedup();
    let mut fed = 0;
    let mut message_start = 0;
    for cut in cuts {
        let completes = ends.first() == Some(&(cut + start));
        let mut check = None;
        let mut reads_before = 0;
        if completes {
            ends.remove(0);
            let message = held[message_start + 5..cut + start].to_vec();
            message_start = cut + start;
            check = predict(model, id, &message);
            reads_before = model.asked.reads.len();
        }
        let listening = model.calls.get(&id).is_some_and(|c| c.listening());
        server.handle_data(model.now(), id, &bytes[fed..cut]);
        fed = cut;
        let d = drain(server, model, Some(id));
        match check {
            Some(check) => check.after(model, id, reads_before, &d),
            None if !listening => ignored(&d, "DATA after the call ended"),
            None => {}
        }
    }
    if !followed {
        if let Some(c) = model.calls.get_mut(&id) {
            c.raw_data = true;
            c.buffered.clear();
        }
        let listening = model.calls.get(&id).is_some_and(|c| c.listening());
        server.handle_data(model.now(), id, &bytes[fed..]);
        let d = drain(server, model, Some(id));
        if !listening {
            ignored(&d, "DATA after the call ended");
        }
        return;
    }
    if let Some(c) = model.calls.get_mut(&id) {
        c.buffered = held[message_start..].to_vec();
    }
}

/// What call `id` does with one complete message, if it is listening.
fn predict(model: &mut Model, id: CallId, message: &[u8]) -> Option<Expect> {
    let c = model
        .calls
        .get(&id)
        .filter(|c| c.listening() && !c.raw_data)?;
    let (kind, who) = (c.kind, c.who);
    let decoded = match kind {
        Kind::JoinChat => ChatMessage::decode(message).map(|m| post_message(model, id, who, m)),
        Kind::JoinChatRoom => User::decode(message).map(|u| join_user(model, id, who, u)),
        Kind::History => {
            HistoryRequest::decode(message).map(|r| history_request(model, id, who, r))
        }
        Kind::Rejected => unreachable!("a rejected call is not listening"),
    };
    match decoded {
        Ok(check) => Some(check),
        Err(_) => {
            model.call_mut(id).must_end = Some(Code::Internal);
            Some(Expect::End)
        }
    }
}

/// A message as a frame.
fn frame(bytes: &[u8]) -> bytes::Bytes {
    encode_raw(bytes).expect("a small message")
}

/// What the model expects of a fed message, checked once it is fed.
enum Expect {
    /// A post accepted as this append.
    Post(AppendRequest),
    /// A valid join of this sender to this room.
    Join(User, String),
    /// A refused join, recorded as this claim.
    Refused(String, Code),
    /// A History read of this.
    Read(ReadAsk),
    /// Nothing to check beyond the call's predicted end.
    End,
}

impl Expect {
    fn after(self, model: &Model, id: CallId, reads_before: usize, d: &Drained) {
        match self {
            Expect::Post(request) => {
                if model.node(&request.room).open.is_some() {
                    assert_eq!(
                        d.appends,
                        [request],
                        "a valid post is appended once, at once"
                    );
                } else {
                    assert!(d.appends.is_empty(), "appended before its room is open");
                    let node = model.node(&request.room);
                    assert!(node.opening, "a post waits for its room to open");
                    assert!(node.waiting_posts.contains(&request.id));
                }
                assert!(model.is_live(id), "a valid message ended the stream");
            }
            Expect::Join(sender, room) => {
                assert_eq!(d.logins, 1, "a valid join logs in");
                assert_eq!(
                    d.replies, 0,
                    "answered once the engine has read the history"
                );
                assert!(model.is_live(id), "a valid join ended the call");
                let conn = model.call(id).conn;
                assert_eq!(model.sessions.get(&conn), Some(&(sender.user_id, room)));
            }
            Expect::Refused(claimed, code) => {
                assert_eq!(d.logins, 0);
                assert_eq!(d.refused, [(claimed, code)], "a refused join is recorded");
            }
            Expect::Read(want) => {
                let asked: Vec<ReadAsk> = d
                    .reads
                    .iter()
                    .map(|r| match r {
                        ReadAsk::History {
                            token: _,
                            room,
                            before,
                            limit,
                        } => ReadAsk::History {
                            token: 0,
                            room: room.clone(),
                            before: *before,
                            limit: *limit,
                        },
                        other => other.clone(),
                    })
                    .collect();
                match asked.as_slice() {
                    [] => assert!(
                        reads_before >= MAX_READS_IN_FLIGHT,
                        "a read held back while fewer than {MAX_READS_IN_FLIGHT} are out"
                    ),
                    [one] => assert_eq!(one, &want, "the read the engine is asked for"),
                    more => panic!("one request, reads {more:?}"),
                }
                assert!(model.is_live(id), "a History call waits for the engine");
            }
            Expect::End => assert!(d.appends.is_empty()),
        }
    }
}

/// A `ChatMessage` on a JoinChat stream is posted to its room if its
/// sender, room, text and client message id are valid, its caller may post
/// there and the engine's window has room: appended at once if the room is
/// open, once it opens otherwise. Anything else ends the stream with the
/// predicted code.
pub fn post(server: &mut ChatServer, model: &mut Model, id: CallId, post: Post, split: u16) {
    let caller = model.calls.get(&id).and_then(|c| c.who);
    let mut text = post.text.0;
    if post.too_long.0 {
        text.push_str(&"x".repeat(MAX_CHAT_TEXT_LEN + 1));
    }
    let msg = ChatMessage {
        user: (!post.no_user.0).then(|| User {
            user_id: post.user_id.resolve(caller),
            username: post.username.resolve(caller),
            room_id: String::new(),
        }),
        message: text,
        room_id: post.room.map(RoomName::into_string).unwrap_or_default(),
        client_msg_id: post.client_msg_id.resolve(),
        ..ChatMessage::default()
    };
    feed(server, model, id, &msg.encode_to_vec(), split);
}

/// What a `ChatMessage` on a live JoinChat stream does (see [`post`]).
fn post_message(model: &mut Model, id: CallId, who: Option<Who>, msg: ChatMessage) -> Expect {
    let Some(who) = who else {
        return Expect::End;
    };
    let expect = (|| {
        let c = model.call(id);
        let room = model.room_of(c);
        let sender = sender(who, &msg.user.clone().unwrap_or_default())?;
        if !msg.room_id.is_empty() && room_name(&msg.room_id)? != room {
            return Err(Code::InvalidArgument);
        }
        if msg.message.len() > MAX_CHAT_TEXT_LEN || msg.client_msg_id.len() > MAX_CLIENT_MSG_ID_LEN
        {
            return Err(Code::InvalidArgument);
        }
        let client_msg_id =
            names::check(NameKind::User, &msg.client_msg_id).map_err(|_| Code::InvalidArgument)?;
        model.rules.check_post(who, &room)?;
        if model.asked.appends.len() >= MAX_PENDING_MESSAGES
            || model.appends_of(c.conn) >= MAX_PENDING_PER_CONN
        {
            return Err(Code::ResourceExhausted);
        }
        Ok(AppendRequest {
            id: model.next_request,
            room,
            user: sender,
            text: msg.message.clone(),
            client_msg_id,
            at: model.now(),
        })
    })();
    let request = match expect {
        Err(code) => {
            model.call_mut(id).must_end = Some(code);
            return Expect::End;
        }
        Ok(request) => request,
    };
    model.next_request += 1;
    let conn = model.call(id).conn;
    model.posts.insert(
        request.id,
        Posted {
            poster: id,
            conn,
            request: request.clone(),
        },
    );
    model.call_mut(id).undelivered += 1;
    if let Some(node) = model.rooms.get_mut(&request.room) {
        if node.open.is_none() {
            node.waiting_posts.push(request.id);
        }
    }
    Expect::Post(request)
}

/// A `User` on a JoinChatRoom call joins (or switches the connection to)
/// its room if the sender is valid and may read it, and is answered with a
/// `ChatRoom`; otherwise the refusal is recorded and the call ends.
pub fn join(server: &mut ChatServer, model: &mut Model, id: CallId, join: Join, split: u16) {
    let caller = model.calls.get(&id).and_then(|c| c.who);
    let mut user_id = join.user_id.resolve(caller);
    if join.too_long.0 {
        user_id.push_str(&"u".repeat(MAX_USER_FIELD_LEN + 1));
    }
    let user = User {
        user_id,
        username: join.username.resolve(caller),
        room_id: join.room.map(RoomName::into_string).unwrap_or_default(),
    };
    feed(server, model, id, &user.encode_to_vec(), split);
}

/// What a `User` on a live JoinChatRoom call does (see [`join`]).
fn join_user(model: &mut Model, id: CallId, who: Option<Who>, user: User) -> Expect {
    let Some(who) = who else {
        return Expect::End;
    };
    let named = room_name(&user.room_id);
    let room = named.clone().unwrap_or_default();
    let expect = (|| {
        named?;
        let sender = sender(who, &user)?;
        model.rules.check_read(who, &room)?;
        Ok(sender)
    })();
    match expect {
        Ok(sender) => Expect::Join(sender, room),
        Err(code) => {
            model.call_mut(id).must_end = Some(code);
            let claimed = match who {
                Who::User(_) => who.id(),
                Who::Guest(_) => names::clip(&user.user_id, MAX_USER_FIELD_LEN).to_owned(),
            };
            Expect::Refused(claimed, code)
        }
    }
}

/// A `HistoryRequest` on a History call: a `ReadHistory` for the engine
/// (held back while as many reads as the chat allows are out). A second
/// request ends the call with INTERNAL, a room the caller may not read with
/// its code.
pub fn history(
    server: &mut ChatServer,
    model: &mut Model,
    id: CallId,
    room: Option<RoomName>,
    before_seq: u8,
    limit: u16,
) {
    let req = HistoryRequest {
        room_id: room.map(RoomName::into_string).unwrap_or_default(),
        before_seq: u64::from(before_seq),
        limit: u32::from(limit),
    };
    feed(server, model, id, &req.encode_to_vec(), 0);
}

/// What a `HistoryRequest` on a live History call does (see [`history`]).
fn history_request(model: &mut Model, id: CallId, who: Option<Who>, req: HistoryRequest) -> Expect {
    let Some(who) = who else {
        return Expect::End;
    };
    let named = room_name(&req.room_id);
    let room = named.clone().unwrap_or_default();
    let expect = (|| {
        if model.call(id).asked {
            return Err(Code::Internal);
        }
        named?;
        model.rules.check_read(who, &room)
    })();
    match expect {
        Err(code) => {
            model.call_mut(id).must_end = Some(code);
            Expect::End
        }
        Ok(()) => {
            model.call_mut(id).asked = true;
            Expect::Read(ReadAsk::History {
                token: 0,
                room,
                before: req.before_seq,
                limit: page_size(req.limit),
            })
        }
    }
}
