//! Presence shared with other nodes through the engine
//! (`ChatConfig::shared_presence`): arrivals and departures here go to the
//! engine, notices come from it, once per change anywhere.

mod util;

use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
use chat_proto::{ChatRoom, User};
use chat_sansio::chat::{Chat, ChatConfig, ChatEvent, ChatInput};
use chat_sansio::server::Server;
use util::{chat_with, notices, Harness};

fn user(id: &str) -> User {
    User {
        user_id: id.into(),
        username: format!("name-{id}"),
        room_id: String::new(),
    }
}

fn shared() -> Harness<Chat> {
    chat_with(Server::new(Chat::new(ChatConfig {
        shared_presence: true,
        ..ChatConfig::default()
    })))
}

/// The presence changes the chat told the engine, as (user id, present).
fn told(h: &Harness<Chat>) -> Vec<(String, bool)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Presence { user, present, .. } => Some((user.user_id.clone(), *present)),
            _ => None,
        })
        .collect()
}

fn presence(id: &str, present: bool) -> ChatInput {
    ChatInput::Presence {
        room: "room1".into(),
        user: user(id),
        present,
    }
}

#[test]
fn arrivals_and_departures_go_to_the_engine_and_notices_come_from_it() {
    let mut h = shared();
    h.connect(1);
    h.connect(2);
    let stream = h.open(2, JOIN_CHAT);
    let join = h.open(1, JOIN_CHAT_ROOM);
    h.send(join, &user("ann"));
    // Told to the engine, not announced by the chat itself.
    assert_eq!(told(&h), [("ann".to_owned(), true)]);
    assert!(notices(&h, stream).is_empty());
    // The joiner is listed at once (present here).
    let room: ChatRoom = h.decoded(join).remove(0);
    assert_eq!(room.users, [user("ann")]);
    // The engine's word is announced.
    h.input(presence("ann", true));
    assert_eq!(notices(&h, stream), [("ann".to_owned(), true)]);
    // A second connection of the same user is no news for the engine.
    let again = h.open(2, JOIN_CHAT_ROOM);
    h.send(again, &user("ann"));
    h.disconnect(1);
    assert_eq!(told(&h), [("ann".to_owned(), true)]);
    h.disconnect(2);
    assert_eq!(
        told(&h),
        [("ann".to_owned(), true), ("ann".to_owned(), false)]
    );
}

#[test]
fn other_nodes_users_are_listed_and_announced() {
    let mut h = shared();
    h.connect(1);
    let stream = h.open(1, JOIN_CHAT);
    // The room is open (the stream opened it); another node's users:
    h.input(ChatInput::Present {
        room: "room1".into(),
        users: vec![user("cy"), user("di")],
    });
    assert!(notices(&h, stream).is_empty(), "a snapshot is not news");
    h.input(presence("eve", true));
    h.input(presence("cy", false));
    assert_eq!(
        notices(&h, stream),
        [("eve".to_owned(), true), ("cy".to_owned(), false)]
    );
    let join = h.open(1, JOIN_CHAT_ROOM);
    h.send(join, &user("bob"));
    let room: ChatRoom = h.decoded(join).remove(0);
    assert_eq!(room.users, [user("bob"), user("di"), user("eve")]);
    // The engine's word is the news, whatever the view had: a departure
    // of a user the view lacked (who came before this node followed the
    // room) is announced, and so is an arrival it had from a snapshot.
    h.input(presence("zed", false));
    h.input(presence("di", true));
    assert_eq!(
        notices(&h, stream),
        [
            ("eve".to_owned(), true),
            ("cy".to_owned(), false),
            ("zed".to_owned(), false),
            ("di".to_owned(), true)
        ]
    );
}

#[test]
fn presence_of_a_room_not_in_memory_is_ignored() {
    let mut h = shared();
    h.input(presence("ann", true));
    h.input(ChatInput::Present {
        room: "elsewhere".into(),
        users: vec![user("ann")],
    });
    assert_eq!(h.server.handler().rooms_in_memory(), 0);
}
