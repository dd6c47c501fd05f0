//! Authentication, permissions, switching and numbering, scenario by
//! scenario.

mod util;

use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
use chat_proto::{ChatMessage, ChatRoom, User};
use chat_sansio::chat::policy::{hash_token, GuestAccess, Policy, RoomRule, Users};
use chat_sansio::chat::{Chat, ChatConfig, ChatEvent};
use chat_sansio::server::{CallId, Server};
use chat_sansio::Code;
use util::{chat_message, grpc_head, message_texts, notices, Harness};

fn policy() -> Policy {
    let mut p = Policy::empty();
    p.add_user("alice", "Alice", &hash_token("alice-token"))
        .unwrap();
    p.add_user("bob", "Bob", &hash_token("bob-token")).unwrap();
    p.add_room("room1", RoomRule::open()).unwrap();
    p.add_room(
        "staff",
        RoomRule {
            readers: Users::from_list(&["alice", "bob"]),
            posters: Users::from_list(&["alice"]),
            guests: GuestAccess::None,
        },
    )
    .unwrap();
    p
}

fn harness() -> Harness<Chat> {
    let chat = Chat::new(ChatConfig {
        policy: policy(),
        ..ChatConfig::default()
    });
    let mut h = util::chat_with(Server::new(chat));
    for conn in 1..=4 {
        h.connect(conn);
    }
    h
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn open_as(
    h: &mut Harness<Chat>,
    conn: u64,
    path: &str,
    token: Option<&str>,
    room: Option<&str>,
) -> CallId {
    let auth = token.map(bearer);
    let mut extra = Vec::new();
    if let Some(a) = &auth {
        extra.push(("authorization", a.as_str()));
    }
    if let Some(r) = room {
        extra.push(("chat-room", r));
    }
    h.open_with(conn, grpc_head(path, &extra))
}

fn join(
    h: &mut Harness<Chat>,
    conn: u64,
    token: Option<&str>,
    user_id: &str,
    room: &str,
) -> CallId {
    let call = open_as(h, conn, JOIN_CHAT_ROOM, token, None);
    h.send(
        call,
        &User {
            user_id: user_id.into(),
            username: format!("name-{user_id}"),
            room_id: room.into(),
        },
    );
    call
}

fn logins(h: &Harness<Chat>) -> Vec<(String, String, Option<Code>)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Login {
                user_id,
                room,
                outcome,
                peer,
                ..
            } => {
                assert!(peer.is_some(), "login records carry the peer");
                Some((
                    user_id.clone(),
                    room.clone(),
                    outcome.as_ref().err().map(|s| s.code),
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn bad_tokens_are_unauthenticated_and_recorded() {
    let mut h = harness();
    for auth in ["Bearer wrong", "Basic abc", "Bearer"] {
        let call = h.open_with(1, grpc_head(JOIN_CHAT, &[("authorization", auth)]));
        assert_eq!(h.status(call).code, Code::Unauthenticated);
        assert!(h.log(call).end[0].1, "refused with Trailers-Only");
    }
    assert_eq!(
        logins(&h),
        vec![(String::new(), String::new(), Some(Code::Unauthenticated)); 3]
    );
}

#[test]
fn a_room_one_may_not_read_is_refused_and_stays_silent() {
    let mut h = harness();
    // Alice posts in staff; a guest can neither join it nor pin a stream to it.
    let alice = open_as(&mut h, 1, JOIN_CHAT, Some("alice-token"), Some("staff"));
    let guest_join = join(&mut h, 2, None, "eve", "staff");
    assert_eq!(h.status(guest_join).code, Code::PermissionDenied);
    let guest_stream = open_as(&mut h, 2, JOIN_CHAT, None, Some("staff"));
    assert_eq!(h.status(guest_stream).code, Code::PermissionDenied);
    let guest_room1 = open_as(&mut h, 2, JOIN_CHAT, None, None);
    h.send(alice, &chat_message("alice", "secret"));
    assert_eq!(message_texts(&h, alice), ["secret"]);
    assert!(h.log(guest_room1).messages.is_empty());
    assert_eq!(
        logins(&h),
        [(
            "eve".to_owned(),
            "staff".to_owned(),
            Some(Code::PermissionDenied)
        )]
    );
    // Unknown rooms do not exist under a policy without "*".
    let lost = join(&mut h, 3, Some("bob-token"), "bob", "nowhere");
    assert_eq!(h.status(lost).code, Code::NotFound);
}

#[test]
fn readers_who_may_not_post_are_refused_and_nothing_is_broadcast() {
    let mut h = harness();
    let alice = open_as(&mut h, 1, JOIN_CHAT, Some("alice-token"), Some("staff"));
    let bob = open_as(&mut h, 2, JOIN_CHAT, Some("bob-token"), Some("staff"));
    h.send(bob, &chat_message("bob", "may I?"));
    assert_eq!(h.status(bob).code, Code::PermissionDenied);
    h.send(alice, &chat_message("alice", "no"));
    assert_eq!(message_texts(&h, alice), ["no"]);
}

#[test]
fn the_authenticated_identity_is_the_sender_of_record() {
    let mut h = harness();
    let watcher = open_as(&mut h, 1, JOIN_CHAT, None, None);
    let alice = open_as(&mut h, 2, JOIN_CHAT, Some("alice-token"), None);
    // Claiming to be bob: refused, never delivered under bob's id.
    h.send(alice, &chat_message("bob", "I am bob"));
    assert_eq!(h.status(alice).code, Code::PermissionDenied);
    // A guest may not take a registered id either.
    let guest = open_as(&mut h, 3, JOIN_CHAT, None, None);
    h.send(guest, &chat_message("alice", "I am alice"));
    assert_eq!(h.status(guest).code, Code::PermissionDenied);
    // No id claimed: filled in from the account.
    let alice = open_as(&mut h, 2, JOIN_CHAT, Some("alice-token"), None);
    h.send(
        alice,
        &ChatMessage {
            message: "hi".into(),
            ..Default::default()
        },
    );
    let got: Vec<ChatMessage> = h.decoded(watcher);
    assert_eq!(got.len(), 1);
    let user = got[0].user.clone().unwrap();
    assert_eq!(
        (user.user_id.as_str(), user.username.as_str()),
        ("alice", "Alice")
    );
}

#[test]
fn switching_rooms_moves_streams_and_announces() {
    let mut h = harness();
    let in_room1 = open_as(&mut h, 1, JOIN_CHAT, Some("bob-token"), Some("room1"));
    let in_staff = open_as(&mut h, 1, JOIN_CHAT, Some("bob-token"), Some("staff"));
    // Alice's connection: a following stream, then join room1, then staff.
    let follows = open_as(&mut h, 2, JOIN_CHAT, Some("alice-token"), None);
    let j = join(&mut h, 2, Some("alice-token"), "alice", "");
    let room: ChatRoom = h.decoded(j).remove(0);
    assert_eq!(room.room_id, "room1");
    h.send(follows, &chat_message("", "in room1"));
    let j2 = join(&mut h, 2, Some("alice-token"), "alice", "staff");
    let room: ChatRoom = h.decoded(j2).remove(0);
    assert_eq!(room.room_id, "staff");
    assert_eq!(room.users.len(), 1);
    h.send(follows, &chat_message("", "in staff"));
    assert_eq!(message_texts(&h, follows), ["in room1", "in staff"]);
    assert_eq!(message_texts(&h, in_room1), ["in room1"]);
    assert_eq!(message_texts(&h, in_staff), ["in staff"]);
    let joined = |id: &str| (id.to_owned(), true);
    let left = |id: &str| (id.to_owned(), false);
    assert_eq!(notices(&h, in_room1), [joined("alice"), left("alice")]);
    assert_eq!(notices(&h, in_staff), [joined("alice")]);
    assert_eq!(
        notices(&h, follows),
        [joined("alice"), left("alice"), joined("alice")]
    );
    // The connection closing is a leave.
    h.disconnect(2);
    assert_eq!(notices(&h, in_staff), [joined("alice"), left("alice")]);
    assert!(h.server.handler().users_in("staff").is_empty());
}

#[test]
fn delivered_messages_are_numbered_and_stamped_per_room() {
    let mut h = harness();
    let a = open_as(&mut h, 1, JOIN_CHAT, Some("alice-token"), Some("room1"));
    let b = open_as(&mut h, 1, JOIN_CHAT, Some("alice-token"), Some("staff"));
    for text in ["1", "2"] {
        h.send(a, &chat_message("alice", text));
    }
    h.send(b, &chat_message("alice", "s1"));
    h.send(
        a,
        &ChatMessage {
            message: "3".into(),
            room_id: "room1".into(),
            ..Default::default()
        },
    );
    let got: Vec<(String, u64)> = h
        .decoded::<ChatMessage>(a)
        .into_iter()
        .map(|m| (m.room_id, m.seq))
        .collect();
    assert_eq!(
        got,
        [
            ("room1".into(), 1),
            ("room1".into(), 2),
            ("room1".into(), 3)
        ]
    );
    let staff: Vec<ChatMessage> = h.decoded(b);
    assert_eq!(
        (staff[0].seq, staff[0].timestamp_us as u64),
        (1, h.now.as_micros())
    );
    // A message naming another room than its stream's is refused.
    h.send(
        a,
        &ChatMessage {
            message: "x".into(),
            room_id: "staff".into(),
            ..Default::default()
        },
    );
    assert_eq!(h.status(a).code, Code::InvalidArgument);
}

fn history(
    h: &mut Harness<Chat>,
    conn: u64,
    token: Option<&str>,
    room: &str,
    before: u64,
    limit: u32,
) -> CallId {
    let call = open_as(h, conn, chat_proto::paths::HISTORY, token, None);
    h.send(
        call,
        &chat_proto::HistoryRequest {
            room_id: room.into(),
            before_seq: before,
            limit,
        },
    );
    h.end_stream(call);
    call
}

#[test]
fn history_pages_back_and_needs_read_permission() {
    let mut h = harness();
    let a = open_as(&mut h, 1, JOIN_CHAT, Some("alice-token"), Some("staff"));
    for i in 1..=12 {
        h.send(a, &chat_message("alice", &format!("s{i}")));
    }
    let page = |h: &Harness<Chat>, call| -> (Vec<u64>, bool) {
        let p: chat_proto::HistoryPage = h.decoded(call).remove(0);
        (p.messages.iter().map(|m| m.seq).collect(), p.more)
    };
    let call = history(&mut h, 2, Some("bob-token"), "staff", 0, 5);
    assert_eq!(page(&h, call), ((8..=12).collect(), true));
    assert_eq!(h.status(call).code, Code::Ok);
    let call = history(&mut h, 2, Some("bob-token"), "staff", 8, 100);
    assert_eq!(page(&h, call), ((1..=7).collect(), false));
    let call = history(&mut h, 3, None, "staff", 0, 5);
    assert_eq!(h.status(call).code, Code::PermissionDenied);
    // Exactly one request per call.
    let call = open_as(
        &mut h,
        2,
        chat_proto::paths::HISTORY,
        Some("bob-token"),
        None,
    );
    h.end_stream(call);
    assert_eq!(h.status(call).code, Code::Internal);
}
