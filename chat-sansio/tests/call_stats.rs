//! The server's counts per method (`Server::call_stats`), for metrics.

mod util;

use chat_proto::paths::JOIN_CHAT;
use chat_sansio::Code;
use util::{chat, chat_message};

#[test]
fn calls_are_counted_by_method_and_ending() {
    let mut h = chat();
    h.connect(1);
    let a = h.open(1, JOIN_CHAT);
    h.send(a, &chat_message("u", "hi"));
    h.end_stream(a);
    let b = h.open(1, JOIN_CHAT);
    let c = h.open(1, JOIN_CHAT);
    h.reset(b);
    let missing = h.open(1, "/No/Such");
    assert_eq!(h.status(missing).code, Code::Unimplemented);
    let stats = h.server.call_stats().clone();
    let join = stats
        .methods()
        .iter()
        .find(|m| m.path == JOIN_CHAT)
        .unwrap();
    assert_eq!(join.started, 3);
    assert_eq!(join.ended_with(Code::Ok), 1);
    assert_eq!(join.cancelled, 1);
    assert_eq!(join.open(), 1, "{c:?} is open");
    let other = stats
        .methods()
        .iter()
        .find(|m| m.path == "/No/Such")
        .unwrap();
    assert_eq!(
        (other.started, other.ended_with(Code::Unimplemented)),
        (1, 1)
    );
    h.disconnect(1);
    let join = h
        .server
        .call_stats()
        .methods()
        .iter()
        .find(|m| m.path == JOIN_CHAT)
        .unwrap()
        .clone();
    assert_eq!((join.open(), join.cancelled), (0, 2));
}
