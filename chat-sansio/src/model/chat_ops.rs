//! The chat's operations: well-framed requests on chat calls, and the store's
//! answers in durable mode, each with the chat's rules as the model states
//! them (the contract in the docs of [`crate::chat`]).

use chat_proto::{ChatMessage, HistoryRequest, User};
use prost::Message as _;

use crate::chat::ChatInput;
use crate::codec::encode_raw;
use crate::limits::{
    MAX_CHAT_TEXT_LEN, MAX_PENDING_MESSAGES, MAX_READS_IN_FLIGHT, MAX_USER_FIELD_LEN,
};
use crate::server::CallId;
use crate::status::Code;

use super::drain::{drain, ignored};
use super::ops::{Join, Name, Post, RoomName};
use super::record::{ChatServer, Drained};
use super::state::Read;
use super::state::{
    account_name, is_lookalike, is_registered, page_size, room_name, Kind, Model, Who,
};
use crate::chat::names::{self, Kind as NameKind};

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

/// Whether the model predicts what `id` does with a message for `kind`: it
/// is listening, of that kind, and was fed nothing unpredicted. A message of
/// another kind makes the call unpredicted from now on.
fn predicted(model: &mut Model, id: CallId, kind: Kind) -> Option<Who> {
    let c = model.calls.get_mut(&id).filter(|c| c.listening())?;
    if c.raw_data || c.kind != kind {
        c.raw_data = true;
        return None;
    }
    c.who
}

/// Splits `frame` at `split` and feeds both halves, then drains.
fn feed_split(
    server: &mut ChatServer,
    model: &mut Model,
    id: CallId,
    frame: &[u8],
    split: u16,
) -> Drained {
    let at = usize::from(split) % (frame.len() + 1);
    server.handle_data(model.now(), id, &frame[..at]);
    server.handle_data(model.now(), id, &frame[at..]);
    drain(server, model, Some(id))
}

/// A `ChatMessage` on a JoinChat stream is posted to its room (delivered at
/// once, or handed to the store in durable mode) if its sender, room and
/// text are valid and its caller may post there; otherwise the stream ends
/// with the predicted code.
pub fn post(server: &mut ChatServer, model: &mut Model, id: CallId, post: Post, split: u16) {
    let listening = model.calls.get(&id).is_some_and(|c| c.listening());
    let who = predicted(model, id, Kind::JoinChat);
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
        ..ChatMessage::default()
    };
    let expect = who.map(|who| {
        let room = model.room_of(model.call(id));
        let sender = sender(who, &msg.user.clone().unwrap_or_default())?;
        if !msg.room_id.is_empty() && room_name(&msg.room_id)? != room {
            return Err(Code::InvalidArgument);
        }
        if msg.message.len() > MAX_CHAT_TEXT_LEN {
            return Err(Code::InvalidArgument);
        }
        model.rules.check_post(who, &room)?;
        if model.pending.len() >= MAX_PENDING_MESSAGES {
            return Err(Code::ResourceExhausted);
        }
        Ok((sender, room))
    });
    if let Some(Err(code)) = expect {
        model.call_mut(id).must_end = Some(code);
    }
    let frame = encode_raw(&msg.encode_to_vec()).expect("a small message");
    let d = feed_split(server, model, id, &frame, split);
    match expect {
        _ if !listening => ignored(&d, "a ChatMessage"),
        Some(Ok((sender, room))) => {
            let (posted, other) = if model.durable {
                (&d.persists, &d.posts)
            } else {
                (&d.posts, &d.persists)
            };
            assert!(
                other.is_empty() && posted.len() == 1,
                "a valid message is posted once"
            );
            let got = &posted[0];
            assert_eq!(
                (got.user.as_ref(), &got.message, &got.room_id),
                (Some(&sender), &msg.message, &room),
                "the message as posted"
            );
            assert!(model.is_live(id), "a valid message ended the stream");
        }
        Some(Err(_)) => assert!(d.posts.is_empty() && d.persists.is_empty()),
        None => {}
    }
}

/// A `User` on a JoinChatRoom call joins (or switches the connection to)
/// its room if the sender is valid and may read it, and is answered with a
/// `ChatRoom`; otherwise the refusal is recorded and the call ends.
pub fn join(server: &mut ChatServer, model: &mut Model, id: CallId, join: Join, split: u16) {
    let listening = model.calls.get(&id).is_some_and(|c| c.listening());
    let who = predicted(model, id, Kind::JoinChatRoom);
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
    let named = room_name(&user.room_id);
    let room = named.clone().unwrap_or_default();
    let expect = who.map(|who| {
        named?;
        let sender = sender(who, &user)?;
        model.rules.check_read(who, &room)?;
        Ok(sender)
    });
    if let Some(Err(code)) = expect {
        model.call_mut(id).must_end = Some(code);
    }
    let frame = encode_raw(&user.encode_to_vec()).expect("a small message");
    let d = feed_split(server, model, id, &frame, split);
    match (expect, who) {
        _ if !listening => ignored(&d, "a User"),
        (Some(Ok(sender)), _) => {
            assert_eq!(
                (d.logins, d.replies),
                (1, 1),
                "a valid join logs in and is answered"
            );
            assert!(model.is_live(id), "a valid join ended the call");
            let conn = model.call(id).conn;
            assert_eq!(model.sessions.get(&conn), Some(&(sender.user_id, room)));
        }
        (Some(Err(code)), Some(who)) => {
            let claimed = match who {
                Who::User(_) => who.id(),
                Who::Guest(_) => names::clip(&user.user_id, MAX_USER_FIELD_LEN).to_owned(),
            };
            assert_eq!(d.logins, 0);
            assert_eq!(d.refused, [(claimed, code)], "a refused join is recorded");
        }
        _ => {}
    }
}

/// A `HistoryRequest` on a History call: in memory mode the page from the
/// room's history, then OK; in durable mode a `ReadHistory` for the store.
/// A second request ends the call with INTERNAL, a room the caller may not
/// read with its code.
pub fn history(
    server: &mut ChatServer,
    model: &mut Model,
    id: CallId,
    room: Option<RoomName>,
    before_seq: u8,
    limit: u16,
) {
    let listening = model.calls.get(&id).is_some_and(|c| c.listening());
    let who = predicted(model, id, Kind::History);
    let req = HistoryRequest {
        room_id: room.map(RoomName::into_string).unwrap_or_default(),
        before_seq: u64::from(before_seq),
        limit: u32::from(limit),
    };
    let named = room_name(&req.room_id);
    let room = named.clone().unwrap_or_default();
    let expect = who.map(|who| {
        if model.call(id).asked {
            return Err(Code::Internal);
        }
        named?;
        model.rules.check_read(who, &room)
    });
    match expect {
        Some(Err(code)) => model.call_mut(id).must_end = Some(code),
        Some(Ok(())) if !model.durable => {
            let page = model.page(&room, req.before_seq, req.limit);
            let c = model.call_mut(id);
            c.page = Some(page);
            c.must_end = Some(Code::Ok);
        }
        _ => {}
    }
    let frame = encode_raw(&req.encode_to_vec()).expect("a small message");
    let in_flight_before = model.reads_in_flight;
    let held_back = model.durable && in_flight_before >= MAX_READS_IN_FLIGHT;
    if listening && held_back && matches!(expect, Some(Ok(()))) {
        model.call_mut(id).asked = true;
        model.waiting_reads.push_back(Read {
            call: id,
            room: room.clone(),
            before_seq: req.before_seq,
            limit: page_size(req.limit),
        });
    }
    let d = feed_split(server, model, id, &frame, 0);
    match expect {
        _ if !listening => ignored(&d, "a HistoryRequest"),
        Some(Ok(())) if held_back => {
            assert!(
                d.reads.is_empty(),
                "at most {MAX_READS_IN_FLIGHT} reads at once"
            );
            assert!(model.is_live(id), "a History call waits its turn");
        }
        Some(Ok(())) if model.durable && model.reads_in_flight > in_flight_before => {
            assert_eq!(d.reads.len(), 1, "the store is asked");
            let read = &d.reads[0];
            let asked = (&read.room, read.before_seq, read.limit);
            let want = (&room, req.before_seq, page_size(req.limit));
            assert_eq!(asked, want, "the read the store is asked for");
            assert!(model.is_live(id), "a History call waits for the store");
        }
        Some(Ok(())) => assert_eq!(d.pages.len(), 1, "the page is sent"),
        _ => {}
    }
}

/// The store makes the first `count` pending messages durable: they are
/// delivered in order, and streams that half-closed waiting for them end
/// OK. A stale epoch, or nothing new, changes nothing.
pub fn ack(server: &mut ChatServer, model: &mut Model, count: u8, stale: bool) {
    let n = usize::from(count) % (model.pending.len() + 1);
    let up_to = match n {
        0 => model
            .pending
            .front()
            .map_or(model.next_pending - 1, |p| p.id - 1),
        n => model.pending[n - 1].id,
    };
    let epoch = if stale {
        model.epoch.wrapping_sub(1)
    } else {
        model.epoch
    };
    server.handle_input(model.now(), ChatInput::Durable { epoch, up_to });
    let d = drain(server, model, None);
    let n = if stale { 0 } else { n };
    assert_eq!(
        d.posts.len(),
        n,
        "Durable up to {up_to} delivers {n} messages"
    );
    if n == 0 {
        assert_eq!(d.outputs, 0, "a stale or empty Durable changes nothing");
    }
}

/// The store fails: every pending message is dropped, its poster (if still
/// there) ends with UNAVAILABLE, streams waiting to close end OK, numbering
/// goes back to the delivered messages, and a new epoch starts. A stale
/// failure changes nothing.
pub fn fail(server: &mut ChatServer, model: &mut Model, stale: bool) {
    let epoch = if stale {
        model.epoch.wrapping_sub(1)
    } else {
        model.epoch
    };
    if !stale {
        model.epoch += 1;
        for p in std::mem::take(&mut model.pending) {
            let c = model.call_mut(p.poster);
            if c.live() {
                c.must_end = Some(Code::Unavailable);
            }
        }
        for c in model.calls.values_mut() {
            if c.live() && c.closing.is_some() && c.must_end.is_none() {
                c.must_end = Some(Code::Ok);
            }
        }
    }
    let reason = "disk on fire".to_owned();
    server.handle_input(model.now(), ChatInput::StoreFailed { epoch, reason });
    let d = drain(server, model, None);
    if stale {
        assert_eq!(d.outputs, 0, "a stale StoreFailed changes nothing");
    }
}

/// The store answers one outstanding read: the call gets the page and OK,
/// or UNAVAILABLE; a call that has gone meanwhile, nothing.
pub fn answer_read(server: &mut ChatServer, model: &mut Model, index: u8, ok: bool) {
    if model.reads.is_empty() {
        return;
    }
    let read = model.reads.remove(usize::from(index) % model.reads.len());
    let page = if ok {
        Ok(model.page(&read.room, read.before_seq, read.limit))
    } else {
        Err("disk on fire".to_owned())
    };
    let live = model.is_live(read.call);
    if live {
        let c = model.call_mut(read.call);
        c.must_end = Some(if ok { Code::Ok } else { Code::Unavailable });
        c.page = page.clone().ok();
    }
    let call = read.call;
    model.reads_in_flight -= 1;
    // The next waiting read whose call is still there goes out now.
    while model
        .waiting_reads
        .front()
        .is_some_and(|r| !(model.is_live(r.call) && model.call(r.call).kind == Kind::History))
    {
        model.waiting_reads.pop_front();
    }
    server.handle_input(model.now(), ChatInput::HistoryPage { call, page });
    let d = drain(server, model, None);
    if !live {
        assert_eq!(d.outputs, 0, "a page for a call that has gone is dropped");
    } else {
        assert_eq!(d.pages.len(), usize::from(ok), "the page is sent");
    }
}
