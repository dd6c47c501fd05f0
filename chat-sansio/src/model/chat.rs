//! The chat side of the checks on outputs: what each kind of call receives,
//! and what each `ChatEvent` means. Events are where the model learns of a
//! post, a login or a store request, whatever bytes caused it, so the
//! checks hold for raw DATA too.

use std::collections::BTreeSet;

use bytes::Bytes;
use chat_proto::{ChatMessage, ChatRoom, HistoryPage, Presence};
use prost::Message as _;

use crate::chat::ChatEvent;
use crate::server::{CallId, ConnId};
use crate::status::{Code, Status};
use crate::time::Time;

use super::record::{ChatServer, Drained};
use super::state::{Kind, Model, Notice, Pending, Read};

/// A message on a call: JoinChat streams get `ChatMessage`s (posts and
/// presence notices), JoinChatRoom calls `ChatRoom` replies, History calls
/// a `HistoryPage`.
pub fn on_message(model: &mut Model, call: CallId, frame: Bytes, d: &mut Drained) {
    let payload = frame.slice(5..);
    let c = model.call(call);
    match c.kind {
        Kind::JoinChat => {
            let msg = ChatMessage::decode(payload).expect("a ChatMessage");
            let who = c.who.expect("an accepted stream acts as someone");
            assert!(
                model
                    .rules
                    .rule(&msg.room_id)
                    .is_some_and(|r| r.can_read(who)),
                "{call:?} ({who:?}) got {msg:?} from a room it may not read"
            );
            if msg.presence != Presence::None as i32 {
                assert_eq!(msg.seq, 0, "notices are not numbered");
                assert_eq!(msg.timestamp_us, model.now().as_micros_i64());
                let got = Notice {
                    room: msg.room_id,
                    user: msg.user.unwrap_or_default().user_id,
                    joined: msg.presence == Presence::Joined as i32,
                };
                let want = model.call_mut(call).notices.pop_front();
                assert_eq!(Some(got), want, "the next presence notice to {call:?}");
                return;
            }
            let room = model.room_of(c);
            assert_eq!(
                msg.room_id, room,
                "a message delivered to {call:?} from another room"
            );
            let last = model.call_mut(call).last_seq.entry(room).or_default();
            assert!(
                msg.seq > *last,
                "a stream got message {} after {}",
                msg.seq,
                *last
            );
            *last = msg.seq;
            d.unconfirmed.push((call, frame));
        }
        Kind::JoinChatRoom => {
            let reply = ChatRoom::decode(payload).expect("a ChatRoom");
            let (_, room) = model.sessions.get(&c.conn).expect("a reply after a login");
            assert_eq!(&reply.room_id, room, "ChatRoom.room_id");
            let users: BTreeSet<String> = reply.users.iter().map(|u| u.user_id.clone()).collect();
            assert_eq!(
                users.len(),
                reply.users.len(),
                "ChatRoom.users has duplicates"
            );
            assert_eq!(users, model.present(room), "ChatRoom.users");
            let history: Vec<&ChatMessage> = model
                .rooms
                .get(room)
                .into_iter()
                .flat_map(|r| &r.history)
                .collect();
            let recent = &history[history.len().saturating_sub(model.history_on_join)..];
            assert!(
                reply.history.iter().eq(recent.iter().copied()),
                "ChatRoom.history: the last {} messages of {room:?}",
                model.history_on_join
            );
            d.replies += 1;
        }
        Kind::History => {
            let page = HistoryPage::decode(payload).expect("a HistoryPage");
            let c = model.call_mut(call);
            match c.page.take() {
                Some(want) => assert_eq!(page, want, "the page of {call:?}"),
                None => assert!(c.raw_data, "an unasked page to {call:?}"),
            }
            d.pages.push((call, page));
        }
        Kind::Rejected => panic!("a message for a rejected call"),
    }
}

/// One `ChatEvent`.
pub fn on_event(model: &mut Model, event: &ChatEvent, target: Option<CallId>, d: &mut Drained) {
    match event {
        ChatEvent::Message {
            room,
            seq,
            user_id,
            username,
            text,
            at,
        } => {
            assert_eq!(*at, model.now());
            let message = delivered(model, room, target, d);
            let user = message.user.clone().unwrap_or_default();
            assert_eq!(
                (
                    &user.user_id,
                    &user.username,
                    &message.message,
                    &message.room_id,
                    message.seq
                ),
                (user_id, username, text, room, *seq),
                "the broadcast and its event differ"
            );
            let r = model.rooms.entry(room.clone()).or_default();
            assert_eq!(
                *seq,
                r.last_seq + 1,
                "messages in room {room:?} are numbered 1, 2, 3, ..."
            );
            r.last_seq = *seq;
            r.history.push_back(message.clone());
            if r.history.len() > model.history_capacity {
                r.history.pop_front();
            }
            d.posts.push(message);
        }
        ChatEvent::Login {
            user_id,
            room,
            peer,
            outcome,
            at,
        } => login(model, user_id, room, peer, outcome, *at, target, d),
        ChatEvent::Persist { epoch, id, message } => {
            assert!(
                model.durable,
                "memory mode never asks for storage: {event:?}"
            );
            assert_eq!(*epoch, model.epoch, "a Persist of another epoch");
            assert_eq!(*id, model.next_pending, "Persist ids go 1, 2, 3, ...");
            model.next_pending += 1;
            let poster = target.expect("a post comes from an operation on a stream");
            let c = model.call(poster);
            assert_eq!(c.kind, Kind::JoinChat);
            assert_eq!(
                message.room_id,
                model.room_of(c),
                "posted to the stream's room"
            );
            assert_eq!(
                message.seq,
                model.next_seq(&message.room_id),
                "numbered after the delivered and pending ones"
            );
            assert_eq!(message.timestamp_us, model.now().as_micros_i64());
            assert_eq!(message.presence, Presence::None as i32);
            model.pending.push_back(Pending {
                id: *id,
                poster,
                message: message.clone(),
            });
            d.persists.push(message.clone());
        }
        ChatEvent::ReadHistory {
            call,
            room,
            before_seq,
            limit,
        } => {
            assert!(
                model.durable,
                "memory mode never asks for storage: {event:?}"
            );
            if Some(*call) != target {
                // Held back, and let go when the store answered another.
                let next = model.waiting_reads.pop_front();
                assert_eq!(
                    next.map(|r| r.call),
                    Some(*call),
                    "a read comes from its History call, or is the next waiting"
                );
            }
            model.reads_in_flight += 1;
            let c = model.call_mut(*call);
            assert_eq!(c.kind, Kind::History);
            c.asked = true;
            let read = Read {
                call: *call,
                room: room.clone(),
                before_seq: *before_seq,
                limit: *limit,
            };
            model.reads.push(read.clone());
            d.reads.push(read);
        }
    }
}

/// A `ChatEvent::Message` closes a broadcast: the chat messages sent since
/// the last one went, as one frame, to exactly the live JoinChat streams of
/// the room. Returns the message delivered.
fn delivered(
    model: &mut Model,
    room: &str,
    target: Option<CallId>,
    d: &mut Drained,
) -> ChatMessage {
    let mut recipients = BTreeSet::new();
    let mut frames = BTreeSet::new();
    for (call, frame) in std::mem::take(&mut d.unconfirmed) {
        assert!(recipients.insert(call), "{call:?} got one broadcast twice");
        frames.insert(frame);
    }
    assert_eq!(
        recipients,
        model.streams_in(room),
        "a message must reach exactly the live JoinChat streams of room {room:?}"
    );
    assert!(frames.len() <= 1, "one broadcast, one frame");
    let sent = frames
        .first()
        .map(|f| ChatMessage::decode(f.slice(5..)).expect("a ChatMessage"));
    if !model.durable {
        let sender = target.expect("in memory mode, a post is delivered at once");
        assert!(
            recipients.contains(&sender),
            "the sender gets its own message"
        );
        let message = sent.expect("the sender is a recipient");
        assert_eq!(message.timestamp_us, model.now().as_micros_i64());
        return message;
    }
    let p = model
        .pending
        .pop_front()
        .expect("durable mode delivers pending messages only");
    if let Some(sent) = sent {
        assert_eq!(sent, p.message, "delivered as it was persisted");
    }
    // Streams that half-closed waiting for this message end now.
    for c in model.calls.values_mut() {
        if c.live() && c.closing.is_some_and(|after| after <= p.id) {
            c.must_end = Some(Code::Ok);
        }
    }
    p.message
}

/// A login attempt: on success, the connection's session moves, and with it
/// presence and the streams that follow it.
#[allow(clippy::too_many_arguments)] // the event's fields, unpacked
fn login(
    model: &mut Model,
    user_id: &str,
    room: &str,
    peer: &Option<String>,
    outcome: &Result<(), Status>,
    at: Time,
    target: Option<CallId>,
    d: &mut Drained,
) {
    assert_eq!(at, model.now());
    let call = target.expect("a login comes from an operation on a call");
    let conn = model.call(call).conn;
    assert_eq!(peer, &model.peers[&conn], "the peer of {conn:?}");
    let Ok(()) = outcome else {
        let code = outcome.as_ref().err().map_or(Code::Ok, |s| s.code);
        d.refused.push((user_id.to_owned(), code));
        return;
    };
    assert_eq!(
        model.call(call).kind,
        Kind::JoinChatRoom,
        "only a join logs in"
    );
    assert!(!user_id.is_empty());
    d.logins += 1;
    switch(model, conn, user_id, room);
}

/// Connection `conn` joins `room` as `user`: its previous user leaves its
/// previous room if no other connection keeps them there; the streams that
/// follow the connection move, or end with PERMISSION_DENIED if their caller
/// may not read the room; `user` arrives in `room` if they were not there.
fn switch(model: &mut Model, conn: ConnId, user: &str, room: &str) {
    let arrived = !model.present(room).contains(user);
    let old_room = model.session_room(conn);
    if let Some((puser, proom)) = model.sessions.get(&conn).cloned() {
        if proom != room || puser != user {
            let still = model
                .sessions
                .iter()
                .any(|(c, (u, r))| *c != conn && *u == puser && *r == proom);
            if !still {
                model.tell(&proom, &puser, false, &BTreeSet::new());
            }
        }
    }
    let mut denied = BTreeSet::new();
    if old_room != room {
        for (id, c) in &model.calls {
            let follows =
                c.live() && c.kind == Kind::JoinChat && c.conn == conn && c.pinned.is_none();
            if follows
                && c.who
                    .is_some_and(|w| model.rules.check_read(w, room).is_err())
            {
                denied.insert(*id);
            }
        }
    }
    for id in &denied {
        model.call_mut(*id).must_end = Some(Code::PermissionDenied);
    }
    model
        .sessions
        .insert(conn, (user.to_owned(), room.to_owned()));
    if arrived {
        model.tell(room, user, true, &denied);
    }
}

/// Checks taken after every operation: presence, streams per room, and the
/// number of pending messages agree with the model.
pub fn check(server: &ChatServer, model: &Model) {
    for room in model.known_rooms() {
        let users: BTreeSet<String> = server
            .handler()
            .users_in(&room)
            .into_iter()
            .map(|u| u.user_id)
            .collect();
        assert_eq!(
            users,
            model.present(&room),
            "users_in({room:?}): a connection's last join makes its user present \
             until it switches or closes"
        );
        assert_eq!(
            server.handler().streams_in(&room),
            model.streams_in(&room).len(),
            "streams_in({room:?})"
        );
    }
    assert_eq!(server.handler().pending(), model.pending.len(), "pending()");
}
