//! The chat side of the server target's model (the contract in the docs
//! of `chat_sansio::chat`, under the default policy: everyone is a guest and
//! every room is open).

use std::collections::BTreeSet;

use chat_proto::{ChatMessage, ChatRoom};
use chat_sansio::chat::{Chat, ChatEvent};
use chat_sansio::server::{CallId, Output, Server};
use prost::Message as _;

use crate::model::{Drained, Kind, Model};
use crate::{HISTORY_CAPACITY, HISTORY_ON_JOIN};

/// Any message on a call: JoinChat streams get `ChatMessage`s, JoinChatRoom
/// calls get `ChatRoom` replies.
pub fn on_message(model: &mut Model, call: CallId, payload: &[u8]) {
    let c = model.call(call);
    match c.kind {
        Kind::JoinChat => {
            let msg = ChatMessage::decode(payload).expect("a ChatMessage");
            if msg.presence != 0 {
                // A presence notice; its room may be the one being left.
                assert_eq!(msg.seq, 0, "notices are not numbered");
                return;
            }
            let room = model.room_of(c);
            assert_eq!(
                msg.room_id, room,
                "a message delivered to {call:?} from another room"
            );
            let c = model.call_mut(call);
            let last = c.last_seq.entry(room).or_default();
            assert!(
                msg.seq > *last,
                "a stream got message {} after {}",
                msg.seq,
                *last
            );
            *last = msg.seq;
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
            let history = model
                .rooms
                .get(room)
                .map(|r| r.history.as_slice())
                .unwrap_or(&[]);
            let recent = &history[history.len().saturating_sub(HISTORY_ON_JOIN)..];
            assert_eq!(reply.history, recent, "ChatRoom.history");
        }
        Kind::Rejected => panic!("a message for a rejected call"),
    }
}

pub fn on_event(
    model: &mut Model,
    event: &ChatEvent,
    out: &[Output<ChatEvent>],
    target: Option<CallId>,
    d: &mut Drained,
) {
    match event {
        ChatEvent::Persist { .. } | ChatEvent::ReadHistory { .. } => {
            panic!("memory mode never asks for storage: {event:?}")
        }
        ChatEvent::Message {
            room,
            seq,
            user_id,
            username,
            text,
            at,
        } => {
            assert_eq!(*at, model.now());
            d.posts += 1;
            // The broadcast is the run of Messages right before the event.
            let mut recipients = BTreeSet::new();
            let mut frames = BTreeSet::new();
            for prev in out.iter().rev() {
                let Output::Message { call, frame } = prev else {
                    break;
                };
                assert!(recipients.insert(*call), "{call:?} got one broadcast twice");
                frames.insert(frame.clone());
            }
            assert_eq!(
                recipients,
                model.streams_in(room),
                "a message must reach exactly the live JoinChat streams of room {room:?}"
            );
            let sender = target.expect("messages are posted by an operation on a call");
            assert!(
                recipients.contains(&sender),
                "the sender gets its own message"
            );
            assert_eq!(frames.len(), 1, "one broadcast, one frame");
            let frame = frames.into_iter().next().unwrap();
            let msg = ChatMessage::decode(&frame[5..]).unwrap();
            let user = msg.user.clone().unwrap_or_default();
            assert_eq!(
                (
                    &user.user_id,
                    &user.username,
                    &msg.message,
                    &msg.room_id,
                    msg.seq
                ),
                (user_id, username, text, room, *seq),
                "the broadcast and its event differ"
            );
            assert_eq!(msg.timestamp_us, model.now as i64);
            let r = model.rooms.entry(room.clone()).or_default();
            assert_eq!(
                *seq,
                r.last_seq + 1,
                "messages in room {room:?} are numbered 1, 2, 3, ..."
            );
            r.last_seq = *seq;
            r.history.push(msg);
            if r.history.len() > HISTORY_CAPACITY {
                r.history.remove(0);
            }
        }
        ChatEvent::Login {
            user_id,
            room,
            peer,
            outcome,
            at,
        } => {
            assert_eq!(*at, model.now());
            let Ok(()) = outcome else { return };
            d.logins += 1;
            let call = target.expect("a login comes from a JoinChatRoom message");
            let c = model.call(call);
            assert_eq!(c.kind, Kind::JoinChatRoom);
            let conn = c.conn;
            assert_eq!(peer, &model.peers[&conn], "peer of {conn:?}");
            assert!(!user_id.is_empty());
            model.sessions.insert(conn, (user_id.clone(), room.clone()));
        }
        other => panic!("an event the model does not know: {other:?}"),
    }
}

/// Checks taken after every operation.
pub fn check(server: &Server<Chat>, model: &Model) {
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
}
