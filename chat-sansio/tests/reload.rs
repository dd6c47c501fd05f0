//! A new policy while running (`ChatInput::Policy`, the server's SIGHUP):
//! what it still allows goes on, streams it no longer allows end with
//! PERMISSION_DENIED, sessions leave rooms they may no longer read, and new
//! tokens and rooms work at once.

mod util;

use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
use chat_proto::User;
use chat_sansio::chat::policy::{hash_token, GuestAccess, Policy, RoomRule, Users};
use chat_sansio::chat::{Chat, ChatConfig, ChatInput};
use chat_sansio::server::{CallId, Server};
use chat_sansio::Code;
use util::{chat_message, grpc_head, message_texts, notices, Harness};

/// `staff` readable by `readers`, `lobby` open; ann and bob configured, and
/// `carol` too when `with_carol`.
fn policy(readers: &[&str], with_carol: bool) -> Policy {
    let mut p = Policy::empty();
    p.add_user("ann", "Ann", &hash_token("ann-token")).unwrap();
    p.add_user("bob", "Bob", &hash_token("bob-token")).unwrap();
    if with_carol {
        p.add_user("carol", "Carol", &hash_token("carol-token"))
            .unwrap();
    }
    p.add_room("lobby", RoomRule::open()).unwrap();
    p.add_room(
        "staff",
        RoomRule {
            readers: Users::from_list(readers),
            posters: Users::from_list(readers),
            guests: GuestAccess::None,
        },
    )
    .unwrap();
    p
}

fn harness(p: Policy) -> Harness<Chat> {
    let chat = Chat::new(ChatConfig {
        policy: p,
        ..ChatConfig::default()
    });
    let mut h = util::chat_with(Server::new(chat));
    for conn in 1..=4 {
        h.connect(conn);
    }
    h
}

fn open_as(h: &mut Harness<Chat>, conn: u64, path: &str, token: &str, room: &str) -> CallId {
    let auth = format!("Bearer {token}");
    let mut extra = vec![("authorization", auth.as_str())];
    if !room.is_empty() {
        extra.push(("chat-room", room));
    }
    h.open_with(conn, grpc_head(path, &extra))
}

fn join(h: &mut Harness<Chat>, conn: u64, id: &str, room: &str) -> CallId {
    let call = open_as(h, conn, JOIN_CHAT_ROOM, &format!("{id}-token"), "");
    h.send(
        call,
        &User {
            user_id: id.into(),
            username: String::new(),
            room_id: room.into(),
        },
    );
    call
}

fn ended(h: &Harness<Chat>, call: CallId) -> bool {
    !h.log(call).end.is_empty()
}

#[test]
fn a_withdrawn_reader_is_cut_off_and_leaves_the_others_stay() {
    let mut h = harness(policy(&["ann", "bob"], false));
    join(&mut h, 1, "ann", "staff");
    join(&mut h, 2, "bob", "staff");
    let ann = open_as(&mut h, 1, JOIN_CHAT, "ann-token", "staff");
    let bob = open_as(&mut h, 2, JOIN_CHAT, "bob-token", "staff");
    let bob_lobby = open_as(&mut h, 3, JOIN_CHAT, "bob-token", "lobby");
    assert!(!ended(&h, ann) && !ended(&h, bob) && !ended(&h, bob_lobby));

    h.input(ChatInput::Policy(Box::new(policy(&["ann"], false))));

    let status = h.status(bob).clone();
    assert_eq!(status.code, Code::PermissionDenied);
    assert_eq!(status.message, "permission to read staff was withdrawn");
    assert!(!ended(&h, ann), "ann may still read staff");
    assert!(!ended(&h, bob_lobby), "bob may still read the lobby");
    assert_eq!(
        notices(&h, ann).last(),
        Some(&("bob".to_owned(), false)),
        "the room hears bob's session leave"
    );
    assert_eq!(h.server.handler().users_in("staff").len(), 1);

    // What is still allowed goes on under the new policy.
    h.send(ann, &chat_message("ann", "still here"));
    assert_eq!(message_texts(&h, ann), vec!["still here".to_owned()]);
    // And a new stream is checked against it.
    let again = open_as(&mut h, 4, JOIN_CHAT, "bob-token", "staff");
    assert_eq!(h.status(again).code, Code::PermissionDenied);
}

#[test]
fn new_users_and_rooms_work_at_once_and_removed_tokens_stop() {
    let mut h = harness(policy(&["ann"], false));
    let before = open_as(&mut h, 1, JOIN_CHAT, "carol-token", "lobby");
    assert_eq!(h.status(before).code, Code::Unauthenticated);

    h.input(ChatInput::Policy(Box::new(policy(&["ann", "carol"], true))));
    let carol = open_as(&mut h, 2, JOIN_CHAT, "carol-token", "staff");
    assert!(!ended(&h, carol), "carol's new token and permission work");

    // Taking carol out of the config ends her stream (she may not read
    // staff: she is no user any more), and her token stops working.
    h.input(ChatInput::Policy(Box::new(policy(&["ann"], false))));
    assert_eq!(h.status(carol).code, Code::PermissionDenied);
    let after = open_as(&mut h, 3, JOIN_CHAT, "carol-token", "lobby");
    assert_eq!(h.status(after).code, Code::Unauthenticated);
}

#[test]
fn a_room_taken_out_of_the_config_ends_its_streams() {
    let mut h = harness(policy(&["ann"], false));
    let ann = open_as(&mut h, 1, JOIN_CHAT, "ann-token", "staff");
    let mut p = Policy::empty();
    p.add_user("ann", "Ann", &hash_token("ann-token")).unwrap();
    p.add_room("lobby", RoomRule::open()).unwrap();
    h.input(ChatInput::Policy(Box::new(p)));
    assert_eq!(h.status(ann).code, Code::PermissionDenied);
}
