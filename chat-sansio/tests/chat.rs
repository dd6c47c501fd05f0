//! The chat state machine, driven in memory: fixed scenarios, and a model
//! checked under random sequences of opens, posts, half-closes, cancels,
//! joins and disconnects.

mod util;

use std::collections::HashMap;

use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
use chat_proto::{ChatRoom, User};
use chat_sansio::chat::ChatEvent;
use chat_sansio::server::CallId;
use chat_sansio::Code;
use proptest::prelude::*;
use util::{chat, chat_message, message_texts, received_events};

fn user(id: &str) -> User {
    User {
        user_id: id.into(),
        username: format!("name-{id}"),
    }
}

#[test]
fn seed_000_client_flow() {
    // JoinChatRoom with one User then half-close; then one JoinChat call per
    // message, each half-closed right after its message.
    let mut h = chat();
    h.connect(1);
    let join = h.open(1, JOIN_CHAT_ROOM);
    h.send(join, &user("u1"));
    h.end_stream(join);
    let rooms: Vec<ChatRoom> = h.decoded(join);
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].room_id, "room1");
    assert_eq!(rooms[0].users, [user("u1")]);
    assert_eq!(h.status(join).code, Code::Ok);
    for text in ["hello", "again"] {
        let call = h.open(1, JOIN_CHAT);
        h.send(call, &chat_message("u1", text));
        h.end_stream(call);
        assert_eq!(message_texts(&h, call), [text]);
        assert_eq!(h.status(call).code, Code::Ok);
    }
    assert_eq!(received_events(&h), ["hello", "again"]);
    let join = h.open(1, JOIN_CHAT_ROOM);
    h.send(join, &user("u1"));
    let rooms: Vec<ChatRoom> = h.decoded(join);
    let history: Vec<_> = rooms[0]
        .history
        .iter()
        .map(|m| m.message.as_str())
        .collect();
    assert_eq!(history, ["hello", "again"]);
}

#[test]
fn everyone_including_the_sender_gets_every_message_in_one_order() {
    let mut h = chat();
    let a = h.open(1, JOIN_CHAT);
    let b = h.open(2, JOIN_CHAT);
    let silent = h.open(3, JOIN_CHAT);
    h.send(a, &chat_message("a", "1"));
    h.send(b, &chat_message("b", "2"));
    h.send(a, &chat_message("a", "3"));
    for call in [a, b, silent] {
        assert_eq!(message_texts(&h, call), ["1", "2", "3"]);
    }
    h.end_stream(silent);
    assert_eq!(h.status(silent).code, Code::Ok);
    h.send(b, &chat_message("b", "4"));
    assert_eq!(message_texts(&h, silent), ["1", "2", "3"]);
    assert_eq!(message_texts(&h, a), ["1", "2", "3", "4"]);
}

#[test]
fn history_on_join_is_the_last_fifty_oldest_first() {
    let mut h = chat();
    let a = h.open(1, JOIN_CHAT);
    for i in 0..120 {
        h.send(a, &chat_message("a", &i.to_string()));
    }
    let join = h.open(2, JOIN_CHAT_ROOM);
    h.send(join, &user("late"));
    let room: ChatRoom = h.decoded(join).remove(0);
    let history: Vec<String> = room.history.into_iter().map(|m| m.message).collect();
    let want: Vec<String> = (70..120).map(|i: i32| i.to_string()).collect();
    assert_eq!(history, want);
}

#[test]
fn presence_follows_connections() {
    let mut h = chat();
    h.connect(1);
    h.connect(2);
    for (conn, id) in [(1, "ann"), (2, "bob")] {
        let join = h.open(conn, JOIN_CHAT_ROOM);
        h.send(join, &user(id));
        h.end_stream(join);
    }
    let join = h.open(2, JOIN_CHAT_ROOM);
    h.send(join, &user("bob"));
    let room: ChatRoom = h.decoded(join).remove(0);
    assert_eq!(room.users, [user("ann"), user("bob")]);
    h.disconnect(1);
    h.send(join, &user("bob"));
    let rooms: Vec<ChatRoom> = h.decoded(join);
    assert_eq!(rooms[1].users, [user("bob")]);
    let joined = h
        .events
        .iter()
        .filter(|e| matches!(e, ChatEvent::Joined { peer: Some(_), .. }))
        .count();
    assert_eq!(joined, 4);
}

#[test]
fn invalid_messages_get_clear_statuses() {
    let mut h = chat();
    let listener = h.open(1, JOIN_CHAT);
    let long = h.open(2, JOIN_CHAT);
    let text = "x".repeat(chat_sansio::limits::MAX_CHAT_TEXT_LEN + 1);
    h.send(long, &chat_message("u", &text));
    assert_eq!(h.status(long).code, Code::InvalidArgument);
    let nameless = h.open(2, JOIN_CHAT_ROOM);
    h.send(nameless, &user(""));
    assert_eq!(h.status(nameless).code, Code::InvalidArgument);
    assert!(h.log(listener).messages.is_empty());
    assert!(received_events(&h).is_empty());
}

/// One step of a random chat session.
#[derive(Clone, Debug)]
enum Op {
    /// Open a JoinChat stream on a connection.
    OpenStream(u8),
    /// Post on the n-th stream opened so far (modulo).
    Post(usize),
    /// Half-close the n-th stream.
    HalfClose(usize),
    /// Cancel (reset) the n-th stream.
    Cancel(usize),
    /// JoinChatRoom from a connection as a user.
    Join(u8, u8),
    /// A connection goes away.
    Disconnect(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4).prop_map(Op::OpenStream),
        6 => any::<usize>().prop_map(Op::Post),
        1 => any::<usize>().prop_map(Op::HalfClose),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => (0u8..4, 0u8..3).prop_map(|(c, u)| Op::Join(c, u)),
        1 => (0u8..4).prop_map(Op::Disconnect),
    ]
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Model {
    Open,
    HalfClosed,
    Gone,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every open stream receives every broadcast exactly once and in the
    /// same order; nothing reaches an ended call; every call ends at most
    /// once, and a half-closed one with exactly one OK.
    #[test]
    fn broadcast_model(ops in prop::collection::vec(op(), 1..80)) {
        let mut h = chat();
        let mut streams: Vec<(CallId, u8)> = Vec::new();
        let mut state: HashMap<CallId, Model> = HashMap::new();
        let mut expected: HashMap<CallId, Vec<String>> = HashMap::new();
        let mut broadcasts: Vec<String> = Vec::new();
        let mut present: HashMap<u8, Vec<u8>> = HashMap::new();
        for conn in 0..4 {
            h.connect(conn);
        }
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::OpenStream(conn) => {
                    let call = h.open(conn.into(), JOIN_CHAT);
                    streams.push((call, conn));
                    state.insert(call, Model::Open);
                    expected.insert(call, Vec::new());
                }
                Op::Post(i) if !streams.is_empty() => {
                    let (call, _) = streams[i % streams.len()];
                    let text = format!("m{n}");
                    h.send(call, &chat_message("u", &text));
                    if state[&call] == Model::Open {
                        broadcasts.push(text.clone());
                        for (c, s) in &state {
                            if *s == Model::Open {
                                expected.get_mut(c).unwrap().push(text.clone());
                            }
                        }
                    }
                }
                Op::HalfClose(i) if !streams.is_empty() => {
                    let (call, _) = streams[i % streams.len()];
                    h.end_stream(call);
                    if state[&call] == Model::Open {
                        state.insert(call, Model::HalfClosed);
                    }
                }
                Op::Cancel(i) if !streams.is_empty() => {
                    let (call, _) = streams[i % streams.len()];
                    h.reset(call);
                    if state[&call] == Model::Open {
                        state.insert(call, Model::Gone);
                    }
                }
                Op::Join(conn, u) => {
                    let join = h.open(conn.into(), JOIN_CHAT_ROOM);
                    h.send(join, &user(&format!("user{u}")));
                    let users = present.entry(conn).or_default();
                    if !users.contains(&u) {
                        users.push(u);
                    }
                    let room: ChatRoom = h.decoded(join).remove(0);
                    let history: Vec<String> = room.history.into_iter().map(|m| m.message).collect();
                    let from = broadcasts.len().saturating_sub(50);
                    prop_assert_eq!(&history[..], &broadcasts[from..]);
                    let mut want: Vec<String> = present
                        .values()
                        .flatten()
                        .map(|u| format!("user{u}"))
                        .collect();
                    want.sort();
                    want.dedup();
                    let got: Vec<String> = room.users.into_iter().map(|u| u.user_id).collect();
                    prop_assert_eq!(got, want);
                    h.end_stream(join);
                    prop_assert_eq!(h.status(join).code, Code::Ok);
                }
                Op::Disconnect(conn) => {
                    h.disconnect(conn.into());
                    present.remove(&conn);
                    for (call, c) in &streams {
                        if *c == conn && state[call] == Model::Open {
                            state.insert(*call, Model::Gone);
                        }
                    }
                    h.connect(conn.into());
                }
                _ => {}
            }
        }
        prop_assert_eq!(received_events(&h), broadcasts);
        for (call, _) in &streams {
            let log = h.log(*call);
            prop_assert_eq!(log.after_end, 0);
            prop_assert_eq!(&message_texts(&h, *call), &expected[call]);
            match state[call] {
                Model::HalfClosed => {
                    prop_assert_eq!(log.end.len(), 1);
                    prop_assert_eq!(log.end[0].0.code, Code::Ok);
                }
                Model::Open | Model::Gone => prop_assert!(log.end.is_empty()),
            }
        }
        for conn in 0..4 {
            h.disconnect(conn);
        }
        prop_assert_eq!(h.server.open_calls(), 0);
    }
}
