//! The chat side of the checks on outputs: what each kind of call receives,
//! and what each `ChatEvent` means. Events are where the model learns of a
//! post, a login, a delivery or an engine request, whatever bytes caused
//! it, so the checks hold for raw DATA too.

use std::collections::BTreeSet;

use bytes::Bytes;
use chat_proto::{ChatMessage, ChatRoom, HistoryPage, Presence};
use prost::Message as _;

use crate::chat::{AppendRequest, ChatEvent};
use crate::server::{CallId, ConnId, GroupId};
use crate::status::{Code, Status};
use crate::time::Time;

use super::record::{ChatServer, Drained};
use super::state::{Kind, Model, Notice, ReadAsk};

/// A message on a call: JoinChat streams get `ChatMessage`s (entries and
/// presence notices), JoinChatRoom calls `ChatRoom` answers, History calls
/// a `HistoryPage`.
pub fn on_message(model: &mut Model, call: CallId, frame: Bytes, d: &mut Drained) {
    let payload = frame.slice(5..);
    let c = model.call(call);
    match c.kind {
        Kind::JoinChat => on_chat_message(model, call, frame, d),
        Kind::JoinChatRoom => {
            let answer = ChatRoom::decode(payload).expect("a ChatRoom");
            on_answer(model, call, &answer);
            d.replies += 1;
        }
        Kind::History => {
            let page = HistoryPage::decode(payload).expect("a HistoryPage");
            let c = model.call(call);
            let asked = c.asked && !c.raw_data;
            assert!(asked || c.raw_data, "an unasked page to {call:?}");
            if asked {
                assert!(
                    d.answered_pages.contains(&page),
                    "{call:?} got a page the engine did not give: {page:?}"
                );
            }
            // A page is the call's one answer, whatever else it was fed.
            model.call_mut(call).must_end = Some(Code::Ok);
            d.pages.push((call, page));
        }
        Kind::Rejected => panic!("a message for a rejected call"),
    }
}

/// A `ChatMessage` on a JoinChat stream: a presence notice it is owed, the
/// echo of a retried post, a page of its catching up (the next entry after
/// what it has), or part of a broadcast.
fn on_chat_message(model: &mut Model, call: CallId, frame: Bytes, d: &mut Drained) {
    let msg = ChatMessage::decode(frame.slice(5..)).expect("a ChatMessage");
    let c = model.call(call);
    let who = c.who.expect("an accepted stream acts as someone");
    assert!(
        model
            .rules
            .rule(&msg.room_id)
            .is_some_and(|r| r.can_read(who)),
        "{call:?} ({who:?}) got {msg:?} from a room it may not read"
    );
    let room = model.room_of(c);
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
    if c.echoes.front() == Some(&msg) {
        model.call_mut(call).echoes.pop_front();
        return;
    }
    assert_eq!(msg.room_id, room, "an entry to {call:?} from another room");
    let Some(mut r) = c.resuming else {
        d.unconfirmed.push((call, frame));
        return;
    };
    let log = model.engine.log(&room).expect("a room with entries");
    assert_eq!(msg.epoch, r.epoch, "{call:?} resumes in epoch {}", r.epoch);
    assert_eq!(
        msg.seq,
        r.has + 1,
        "{call:?} catching up got {} after {}",
        msg.seq,
        r.has
    );
    assert_eq!(
        Some(&msg),
        log.ever(msg.seq),
        "an entry as the engine has it"
    );
    let delivered = model.node(&room).open.map_or(0, |o| o.delivered);
    assert!(msg.seq <= delivered, "a page past what the room delivered");
    r.has = msg.seq;
    let c = model.call_mut(call);
    c.resuming = Some(r);
    c.got.insert(msg.seq);
}

/// A JoinChatRoom answer: for the room of the next join it owes, with who
/// is there now, a run of the room's newest entries, and where its log
/// stands.
fn on_answer(model: &mut Model, call: CallId, answer: &ChatRoom) {
    let c = model.call_mut(call);
    let room = c.replies.pop_front().expect("an answer owed");
    if c.half_closed && c.replies.is_empty() {
        c.must_end = Some(Code::Ok);
    }
    assert_eq!(answer.room_id, room, "ChatRoom.room_id");
    let users: BTreeSet<String> = answer.users.iter().map(|u| u.user_id.clone()).collect();
    assert_eq!(
        users.len(),
        answer.users.len(),
        "ChatRoom.users has duplicates"
    );
    assert_eq!(users, model.present(&room), "ChatRoom.users");
    let open = model
        .node(&room)
        .open
        .expect("answered once the room is open");
    let log = model.engine.log(&room).expect("an open room has a log");
    assert_eq!(answer.epoch, open.epoch, "ChatRoom.epoch");
    assert!(
        answer.history.len() <= model.history_on_join,
        "ChatRoom.history holds at most {}",
        model.history_on_join
    );
    for (i, m) in answer.history.iter().enumerate() {
        assert_eq!(Some(m), log.ever(m.seq), "ChatRoom.history: as stored");
        if i > 0 {
            assert_eq!(
                m.seq,
                answer.history[i - 1].seq + 1,
                "ChatRoom.history: a run"
            );
        }
    }
    match answer.history.last() {
        Some(m) => assert_eq!(answer.last_seq, m.seq, "ChatRoom.last_seq"),
        None => assert!(answer.last_seq <= log.last_seq(), "ChatRoom.last_seq"),
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
            let entry = delivered(model, room, *seq, d);
            let user = entry.user.clone().unwrap_or_default();
            assert_eq!(
                (&user.user_id, &user.username, &entry.message),
                (user_id, username, text),
                "the delivery and its event differ"
            );
            d.delivered.push(entry);
        }
        ChatEvent::Login {
            user_id,
            room,
            peer,
            outcome,
            at,
        } => login(model, user_id, room, peer, outcome, *at, target, d),
        ChatEvent::OpenRoom { room } => {
            let node = model.rooms.entry(room.clone()).or_default();
            assert!(
                node.open.is_none() && !node.opening,
                "{room:?} opened while open or opening"
            );
            node.opening = true;
            model.asked.opens.push(room.clone());
            d.opens.push(room.clone());
        }
        ChatEvent::Append(req) => append(model, req, d),
        ChatEvent::ReadRange {
            token,
            room,
            after,
            up_to,
            limit,
        } => {
            let open = model.node(room).open.expect("a read of an open room");
            assert!(after < up_to && *limit > 0, "a read of nothing: {event:?}");
            let newest = model.engine.log(room).map_or(0, |l| l.last_seq());
            // A resume's point past what the room delivered is checked with
            // a read of that one entry, which the engine may not hold.
            let point = *limit == 1 && *up_to == after + 1;
            assert!(
                point || *up_to <= newest.max(open.delivered),
                "a read past the log"
            );
            let read = ReadAsk::Range {
                token: token.0,
                room: room.clone(),
                after: *after,
                up_to: *up_to,
                limit: *limit,
            };
            model.asked.reads.push(read.clone());
            d.reads.push(read);
        }
        ChatEvent::Presence { .. } => panic!("presence is not shared in the model: {event:?}"),
        ChatEvent::RateLimited { .. } => panic!("the model's limits are off: {event:?}"),
        ChatEvent::Admin { .. } | ChatEvent::Delete { .. } => {
            panic!("the model makes no admin calls: {event:?}")
        }
        // The model opens fewer rooms than the chat holds.
        ChatEvent::CloseRoom { room } => panic!("{room:?} let go with room to spare"),
        ChatEvent::ReadHistory {
            token,
            room,
            before_seq,
            limit,
        } => {
            let read = ReadAsk::History {
                token: token.0,
                room: room.clone(),
                before: *before_seq,
                limit: *limit,
            };
            model.asked.reads.push(read.clone());
            d.reads.push(read);
        }
    }
}

/// An `Append`: exactly an accepted post's, once, in an open room.
fn append(model: &mut Model, req: &AppendRequest, d: &mut Drained) {
    let post = model
        .posts
        .get(&req.id)
        .unwrap_or_else(|| panic!("an append of no accepted post: {req:?}"));
    assert_eq!(req, &post.request, "the append as the post asked");
    assert!(
        model.node(&req.room).open.is_some(),
        "an append to a room that is not open"
    );
    let node = model.node_mut(&req.room);
    node.waiting_posts.retain(|id| *id != req.id);
    let fresh = model.asked.appends.insert(req.id, req.clone()).is_none();
    assert!(fresh, "append {} asked twice", req.id);
    d.appends.push(req.clone());
}

/// A `ChatEvent::Message` closes a broadcast: the chat messages sent since
/// the last one went, as one frame, to exactly the subscribed streams of
/// the room; the entry is the next of the room's log (past a hole only if
/// retention removed it), as the engine stored it. Returns it.
fn delivered(model: &mut Model, room: &str, seq: u64, d: &mut Drained) -> ChatMessage {
    let mut recipients = BTreeSet::new();
    let mut frames = BTreeSet::new();
    for (call, frame) in std::mem::take(&mut d.unconfirmed) {
        assert!(recipients.insert(call), "{call:?} got one broadcast twice");
        frames.insert(frame);
    }
    assert_eq!(
        recipients,
        model.subscribers(room),
        "an entry must reach exactly the subscribed JoinChat streams of room {room:?}"
    );
    assert!(frames.len() <= 1, "one broadcast, one frame");
    let open = model.node(room).open.expect("delivered in an open room");
    let log = model.engine.log(room).expect("an open room has a log");
    let entry = log.ever(seq).expect("a delivered entry was stored").clone();
    assert!(seq > open.delivered, "{room:?} delivered {seq} twice");
    assert!(
        (open.delivered + 1..seq).all(|s| s < log.first),
        "{room:?} delivered {seq} after {}, past entries the engine holds",
        open.delivered
    );
    if let Some(frame) = frames.first() {
        let sent = ChatMessage::decode(frame.slice(5..)).expect("a ChatMessage");
        assert_eq!(sent, entry, "delivered as stored");
    }
    for call in &recipients {
        model.call_mut(*call).got.insert(seq);
    }
    let node = model.node_mut(room);
    if let Some(o) = node.open.as_mut() {
        o.delivered = seq;
    }
    for poster in node.owners.remove(&seq).unwrap_or_default() {
        model.one_settled(poster);
    }
    entry
}

/// A login attempt: on success, the connection's session moves, and with it
/// presence and the streams that follow it; an answer is owed.
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
    model.call_mut(call).replies.push_back(room.to_owned());
    let node = model.node_mut(room);
    if node.open.is_none() {
        node.waiting_replies.push(call);
    }
}

/// Connection `conn` joins `room` as `user`: its previous user leaves its
/// previous room if no other connection keeps them there; the streams that
/// follow the connection move (and stop catching up), or end with
/// PERMISSION_DENIED if their caller may not read the room; `user` arrives
/// in `room` if they were not there.
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
        for (id, c) in &mut model.calls {
            let follows =
                c.live() && c.kind == Kind::JoinChat && c.conn == conn && c.pinned.is_none();
            if !follows {
                continue;
            }
            c.resuming = None;
            c.got.clear();
            if c.who
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

/// A stream subscribes to its room's group: a stream catching up only once
/// it has everything the room has delivered.
pub fn on_subscribe(model: &mut Model, call: CallId, group: GroupId) {
    let c = model.call(call);
    assert_eq!(c.kind, Kind::JoinChat, "only JoinChat streams subscribe");
    let room = model.room_of(c);
    let resuming = c.resuming;
    let node = model.node_mut(&room);
    assert_eq!(
        *node.group.get_or_insert(group),
        group,
        "one group per room"
    );
    if let Some(r) = resuming {
        let open = node.open.expect("caught up in an open room");
        assert_eq!(
            (r.epoch, r.has),
            (open.epoch, open.delivered),
            "{call:?} subscribed before it caught up"
        );
        model.call_mut(call).resuming = None;
    }
    let others = model
        .rooms
        .iter()
        .filter(|(r, n)| **r != room && n.group == Some(group))
        .count();
    assert_eq!(others, 0, "one room per group");
}

/// Checks taken after every operation: presence, streams per room, and the
/// appends in flight agree with the model.
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
    assert_eq!(
        server.handler().pending(),
        model.asked.appends.len(),
        "pending()"
    );
    assert_eq!(
        server.handler().rooms_in_memory(),
        model.rooms.len(),
        "rooms_in_memory()"
    );
}
