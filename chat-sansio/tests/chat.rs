//! The chat state machine, driven in memory: fixed scenarios, and a model
//! checked under random sequences of opens, posts, half-closes, cancels,
//! joins and disconnects.

mod util;

use chat_proto::paths::{JOIN_CHAT, JOIN_CHAT_ROOM};
use chat_proto::{ChatRoom, User};
use chat_sansio::chat::ChatEvent;
use chat_sansio::Code;
use util::{chat, chat_message, message_texts, received_events};

fn user(id: &str) -> User {
    User {
        user_id: id.into(),
        username: format!("name-{id}"),
        room_id: String::new(),
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
        .filter(|e| {
            matches!(
                e,
                ChatEvent::Login {
                    peer: Some(_),
                    outcome: Ok(()),
                    ..
                }
            )
        })
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

/// Answers the engine's open requests so far: each room empty, epoch 1.
fn open_rooms(h: &mut util::Harness<chat_sansio::chat::Chat>, answered: &mut usize) {
    use chat_sansio::chat::ChatInput;
    let rooms: Vec<String> = h.events[*answered..]
        .iter()
        .filter_map(|e| match e {
            ChatEvent::OpenRoom { room } => Some(room.clone()),
            _ => None,
        })
        .collect();
    *answered = h.events.len();
    for room in rooms {
        h.input(ChatInput::RoomOpened {
            room,
            epoch: 1,
            last_seq: 0,
            first_seq: 1,
        });
    }
}

/// A slow engine: a connection with many posts waiting for it is asked to
/// pause, and to resume once the engine has caught up; past a hard bound
/// its posts are refused, while another connection posts freely.
#[test]
fn a_fast_poster_is_paused_then_resumed_and_others_go_on() {
    use chat_sansio::limits::{MAX_PENDING_PER_CONN, PAUSE_POSTS_AT, RESUME_POSTS_AT};
    use chat_sansio::model::EngineModel;
    let mut h = util::chat_held();
    let mut opened = 0;
    h.connect(1);
    h.connect(2);
    let fast = h.open(1, JOIN_CHAT);
    let other = h.open(2, JOIN_CHAT);
    open_rooms(&mut h, &mut opened);
    for i in 0..PAUSE_POSTS_AT {
        assert!(h.paused.is_empty(), "paused after {i}");
        h.send(fast, &chat_message("fast", &format!("m{i}")));
        open_rooms(&mut h, &mut opened);
    }
    assert_eq!(h.paused.iter().copied().collect::<Vec<_>>(), [1]);
    // What was in flight when it paused is still taken, up to the bound.
    for i in PAUSE_POSTS_AT..MAX_PENDING_PER_CONN {
        h.send(fast, &chat_message("fast", &format!("m{i}")));
    }
    h.send(other, &chat_message("other", "still fine"));
    assert!(h.log(other).end.is_empty());
    h.send(fast, &chat_message("fast", "one too many"));
    assert_eq!(h.status(fast).code, Code::ResourceExhausted);
    // The engine catches up: the connection may be read again.
    let appends: Vec<_> = h
        .events
        .iter()
        .filter_map(|e| match e {
            ChatEvent::Append(req) if req.user.user_id == "fast" => Some((**req).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(appends.len(), MAX_PENDING_PER_CONN);
    let mut engine = EngineModel::new(1);
    // One short of leaving RESUME_POSTS_AT of them, it stays paused...
    let settle = MAX_PENDING_PER_CONN - RESUME_POSTS_AT;
    for req in &appends[..settle - 1] {
        h.input(engine.commit(req));
    }
    assert!(!h.paused.is_empty());
    // ...and with that many left, it resumes.
    h.input(engine.commit(&appends[settle - 1]));
    assert!(h.paused.is_empty(), "resumed once few are left");
}

/// At most a few History reads are asked of the engine at once; the others
/// wait their turn, and a call that goes while waiting is skipped.
#[test]
fn history_reads_wait_their_turn_with_the_engine() {
    use chat_proto::paths::HISTORY;
    use chat_proto::{HistoryPage, HistoryRequest};
    use chat_sansio::chat::{ChatInput, ReadToken};
    use chat_sansio::limits::MAX_READS_IN_FLIGHT;
    let mut h = util::chat_held();
    let mut opened = 0;
    h.connect(1);
    let calls: Vec<_> = (0..MAX_READS_IN_FLIGHT + 2)
        .map(|_| {
            let c = h.open(1, HISTORY);
            h.send(c, &HistoryRequest::default());
            open_rooms(&mut h, &mut opened);
            c
        })
        .collect();
    let reads = |h: &util::Harness<chat_sansio::chat::Chat>| -> Vec<ReadToken> {
        h.events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::ReadHistory { token, .. } => Some(*token),
                _ => None,
            })
            .collect()
    };
    assert_eq!(reads(&h).len(), MAX_READS_IN_FLIGHT);
    // The first waiting call goes away; an answer lets the next one go.
    h.reset(calls[MAX_READS_IN_FLIGHT]);
    let page = HistoryPage::default();
    h.input(ChatInput::HistoryPage {
        token: reads(&h)[0],
        page: Ok(page.clone()),
    });
    assert_eq!(h.status(calls[0]).code, Code::Ok);
    assert_eq!(reads(&h).len(), MAX_READS_IN_FLIGHT + 1);
    // That read is the next waiting call that is still there.
    let last = *reads(&h).last().unwrap();
    h.input(ChatInput::HistoryPage {
        token: last,
        page: Ok(page),
    });
    assert_eq!(h.status(calls[MAX_READS_IN_FLIGHT + 1]).code, Code::Ok);
    assert!(h.log(calls[1]).end.is_empty());
}

/// A resume from a point past the room's last message (a client claiming
/// what was never stored) is refused with the point it can resume from,
/// never accepted and then silently skipped.
#[test]
fn a_resume_past_the_last_message_is_refused() {
    let mut h = chat();
    let poster = h.open(1, JOIN_CHAT);
    for i in 1..=5 {
        h.send(poster, &chat_message("a", &i.to_string()));
    }
    let delivered: Vec<chat_proto::ChatMessage> = h.decoded(poster);
    let epoch = delivered[0].epoch;
    assert_eq!(delivered.last().map(|m| m.seq), Some(5));
    let ahead = h.open_with(
        2,
        util::grpc_head(JOIN_CHAT, &[("chat-resume", &format!("{epoch}:7"))]),
    );
    let status = h.status(ahead);
    assert_eq!(status.code, Code::OutOfRange);
    assert_eq!(
        status.message,
        format!("cannot resume there; resume from {epoch}:5")
    );
    // From the last message, it goes on with the live ones.
    let resumed = h.open_with(
        3,
        util::grpc_head(JOIN_CHAT, &[("chat-resume", &format!("{epoch}:3"))]),
    );
    h.send(poster, &chat_message("a", "6"));
    assert_eq!(message_texts(&h, resumed), ["4", "5", "6"]);
}
