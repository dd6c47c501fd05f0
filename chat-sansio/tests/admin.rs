//! The moderation service, `chat.admin.ChatAdmin`: who may call it, kick,
//! ban and unban, the room list, and deletions answered by the engine.

mod util;

use chat_proto::admin::{
    paths, AdminReply, DeleteMessageRequest, KickRequest, ListRoomsRequest, RoomList, UnbanRequest,
};
use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
use chat_proto::{ChatMessage, User};
use chat_sansio::chat::policy::{hash_token, Policy, RoomRule};
use chat_sansio::chat::{AdminAction, Chat, ChatConfig, ChatEvent, ChatInput};
use chat_sansio::server::{CallId, Server};
use chat_sansio::Code;
use util::{chat_message, grpc_head, message_texts, notices, Harness};

fn harness(banned: &[&str]) -> Harness<Chat> {
    let mut p = Policy::empty();
    p.add_user("root", "Root", &hash_token("root-token"))
        .unwrap();
    p.add_user("ann", "Ann", &hash_token("ann-token")).unwrap();
    p.add_user("bob", "Bob", &hash_token("bob-token")).unwrap();
    p.add_admin("root").unwrap();
    p.add_room("*", RoomRule::open()).unwrap();
    let chat = Chat::new(ChatConfig {
        policy: p,
        banned: banned.iter().map(|s| s.to_string()).collect(),
        ..ChatConfig::default()
    });
    let mut h = util::chat_with(Server::new(chat));
    for conn in 1..=4 {
        h.connect(conn);
    }
    h
}

fn open_as(h: &mut Harness<Chat>, conn: u64, path: &str, token: Option<&str>) -> CallId {
    let auth = token.map(|t| format!("Bearer {t}"));
    let extra: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    h.open_with(conn, grpc_head(path, &extra))
}

fn join(h: &mut Harness<Chat>, conn: u64, id: &str) -> CallId {
    let call = open_as(h, conn, JOIN_CHAT_ROOM, Some(&format!("{id}-token")));
    h.send(
        call,
        &User {
            user_id: id.into(),
            username: String::new(),
            room_id: "room1".into(),
        },
    );
    call
}

/// An admin call with one request, half-closed.
fn admin<M: prost::Message>(
    h: &mut Harness<Chat>,
    path: &str,
    token: Option<&str>,
    req: &M,
) -> CallId {
    let call = open_as(h, 4, path, token);
    h.send(call, req);
    h.end_stream(call);
    call
}

fn actions(h: &Harness<Chat>) -> Vec<(String, AdminAction)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Admin { by, action, .. } => Some((by.clone(), action.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn only_admins_may_call() {
    let mut h = harness(&[]);
    let guest = admin(&mut h, paths::LIST_ROOMS, None, &ListRoomsRequest {});
    assert_eq!(h.status(guest).code, Code::Unauthenticated);
    let user = admin(
        &mut h,
        paths::LIST_ROOMS,
        Some("ann-token"),
        &ListRoomsRequest {},
    );
    assert_eq!(h.status(user).code, Code::PermissionDenied);
    let root = admin(
        &mut h,
        paths::LIST_ROOMS,
        Some("root-token"),
        &ListRoomsRequest {},
    );
    assert_eq!(h.status(root).code, Code::Ok);
    assert!(actions(&h).is_empty(), "a list is not an action");
}

#[test]
fn a_kicked_user_leaves_and_may_come_back() {
    let mut h = harness(&[]);
    join(&mut h, 1, "ann");
    let ann_stream = open_as(&mut h, 1, JOIN_CHAT, Some("ann-token"));
    join(&mut h, 2, "bob");
    let bob_stream = open_as(&mut h, 2, JOIN_CHAT, Some("bob-token"));
    let kick = KickRequest {
        user_id: "ann".into(),
        reason: "spam".into(),
    };
    let call = admin(&mut h, paths::KICK, Some("root-token"), &kick);
    assert_eq!(h.status(call).code, Code::Ok);
    let reply: AdminReply = h.decoded(call).remove(0);
    assert_eq!(
        reply.outcome, "2 call(s) ended",
        "her JoinChatRoom and her stream"
    );
    let end = h.status(ann_stream);
    assert_eq!(end.code, Code::PermissionDenied);
    assert!(end.message.contains("spam"), "{end:?}");
    assert!(notices(&h, bob_stream).contains(&("ann".to_owned(), false)));
    assert_eq!(
        actions(&h),
        [(
            "root".to_owned(),
            AdminAction::Kick {
                user_id: "ann".into()
            }
        )]
    );
    // Not banned: back at once.
    let again = open_as(&mut h, 3, JOIN_CHAT, Some("ann-token"));
    h.send(again, &chat_message("ann", "back"));
    assert_eq!(message_texts(&h, again), ["back"]);
}

#[test]
fn a_banned_user_is_refused_until_unbanned() {
    let mut h = harness(&[]);
    let ann_stream = open_as(&mut h, 1, JOIN_CHAT, Some("ann-token"));
    let ban = KickRequest {
        user_id: "ann".into(),
        reason: String::new(),
    };
    admin(&mut h, paths::BAN, Some("root-token"), &ban);
    assert_eq!(h.status(ann_stream).code, Code::PermissionDenied);
    let refused = open_as(&mut h, 2, JOIN_CHAT, Some("ann-token"));
    assert_eq!(h.status(refused).code, Code::PermissionDenied);
    assert!(h.status(refused).message.contains("banned"));
    let unban = UnbanRequest {
        user_id: "ann".into(),
    };
    let call = admin(&mut h, paths::UNBAN, Some("root-token"), &unban);
    assert_eq!(h.decoded::<AdminReply>(call)[0].outcome, "unbanned");
    let back = open_as(&mut h, 3, JOIN_CHAT, Some("ann-token"));
    h.send(back, &chat_message("ann", "hello again"));
    assert_eq!(message_texts(&h, back), ["hello again"]);
    let kinds: Vec<_> = actions(&h).into_iter().map(|(_, a)| a).collect();
    assert_eq!(
        kinds,
        [
            AdminAction::Ban {
                user_id: "ann".into()
            },
            AdminAction::Unban {
                user_id: "ann".into()
            }
        ]
    );
}

#[test]
fn bans_the_engine_kept_or_another_node_made_apply() {
    let mut h = harness(&["ann"]);
    let refused = open_as(&mut h, 1, JOIN_CHAT, Some("ann-token"));
    assert_eq!(h.status(refused).code, Code::PermissionDenied);
    let bob = open_as(&mut h, 2, JOIN_CHAT, Some("bob-token"));
    h.input(ChatInput::Banned {
        user_id: "bob".into(),
        banned: true,
    });
    assert_eq!(h.status(bob).code, Code::PermissionDenied);
    h.input(ChatInput::Banned {
        user_id: "ann".into(),
        banned: false,
    });
    let back = open_as(&mut h, 3, JOIN_CHAT, Some("ann-token"));
    h.send(back, &chat_message("ann", "in"));
    assert_eq!(message_texts(&h, back), ["in"]);
}

#[test]
fn rooms_are_listed_with_who_is_there() {
    let mut h = harness(&[]);
    join(&mut h, 1, "ann");
    let s = open_as(&mut h, 1, JOIN_CHAT, Some("ann-token"));
    h.send(s, &chat_message("ann", "one"));
    let call = admin(
        &mut h,
        paths::LIST_ROOMS,
        Some("root-token"),
        &ListRoomsRequest {},
    );
    let list: RoomList = h.decoded(call).remove(0);
    assert_eq!(list.rooms.len(), 1);
    let r = &list.rooms[0];
    assert_eq!(
        (r.room_id.as_str(), r.users.clone(), r.last_seq, r.streams),
        ("room1", vec!["ann".to_owned()], 1, 1)
    );
}

#[test]
fn a_deletion_is_the_engines_and_the_room_hears_of_it() {
    let mut h = harness(&[]);
    let s = open_as(&mut h, 1, JOIN_CHAT, Some("ann-token"));
    h.send(s, &chat_message("ann", "oops"));
    let req = DeleteMessageRequest {
        room_id: "room1".into(),
        seq: 1,
        reason: "leak".into(),
    };
    let call = admin(&mut h, paths::DELETE_MESSAGE, Some("root-token"), &req);
    let id = h
        .events
        .iter()
        .find_map(|e| match e {
            ChatEvent::Delete { id, room, seq } if room == "room1" && *seq == 1 => Some(*id),
            _ => None,
        })
        .expect("the engine is asked");
    assert!(
        h.log(call).end.is_empty(),
        "the answer waits for the engine"
    );
    let tombstone = ChatMessage {
        user: Some(User {
            user_id: "ann".into(),
            username: String::new(),
            room_id: String::new(),
        }),
        room_id: "room1".into(),
        seq: 1,
        deleted: true,
        ..ChatMessage::default()
    };
    h.input(ChatInput::Deleted {
        id,
        result: Ok(Some(tombstone.clone())),
    });
    assert_eq!(h.status(call).code, Code::Ok);
    let got: Vec<ChatMessage> = h.decoded(s);
    assert_eq!(
        got.last(),
        Some(&tombstone),
        "the room's streams get the tombstone"
    );
    // No such message: NOT_FOUND.
    let req = DeleteMessageRequest {
        room_id: "room1".into(),
        seq: 9,
        reason: String::new(),
    };
    let missing = admin(&mut h, paths::DELETE_MESSAGE, Some("root-token"), &req);
    let id = h
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            ChatEvent::Delete { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap();
    h.input(ChatInput::Deleted {
        id,
        result: Ok(None),
    });
    assert_eq!(h.status(missing).code, Code::NotFound);
}
