//! What the Redis engine writes: key names, the body of a stored entry,
//! and the messages published on a room's channel.
//!
//! Keys (one Redis, not Redis Cluster: the scripts reach keys they compute):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `chat:log:ROOM` | stream | the room's entries; entry id `SEQ-0`, field `m`: the body |
//! | `chat:meta:ROOM` | hash | `epoch`, `last` (the last seq given) |
//! | `chat:dd:ROOM\nUSER\nID` | string, with a TTL | the seq of a (sender, client message id) |
//! | `chat:pres:ROOM` | hash | user id to the number of nodes they are present on |
//! | `chat:pname:ROOM` | hash | user id to display name |
//! | `chat:node:NODE:pres` | set | `ROOM\nUSER` for each user present through that node |
//! | `chat:node:NODE:alive` | string, with a TTL | there while the node runs |
//! | `chat:nodes` | set | the nodes that may hold presence |
//! | `chat:logins` | stream, capped | login records |
//! | `chat:del:ROOM` | hash | seq to the body of its tombstone (streams are append-only) |
//! | `chat:audit` | stream | administrators' actions |
//! | `chat:bans` | set | the users banned now |
//!
//! Room and user ids hold no control characters (`chat_sansio::chat::names`),
//! so `\n` separates them unambiguously.
//!
//! A room's channel `chat:ch:ROOM` carries `m` + seq + ` ` + body (an
//! entry), `j` + user id + `\n` + name (arrived), `l` + the same (left),
//! and `t` + node + `\n` + seq + ` ` + body (a tombstone made on that
//! node). The channel `chat:admin` carries `b` or `u` + node + `\n` + user
//! id (banned, unbanned), and `k` + node + `\n` + user id + `\n` + reason
//! (kicked).

use chat_proto::{ChatMessage, User};
use prost::Message as _;

/// The log stream of `room`.
pub fn log(room: &str) -> String {
    format!("chat:log:{room}")
}

/// The meta hash of `room`.
pub fn meta(room: &str) -> String {
    format!("chat:meta:{room}")
}

/// The dedupe key of (room, sender, client message id).
pub fn dedupe(room: &str, user_id: &str, client_msg_id: &str) -> String {
    format!("chat:dd:{room}\n{user_id}\n{client_msg_id}")
}

/// The presence count hash of `room`.
pub fn presence(room: &str) -> String {
    format!("chat:pres:{room}")
}

/// The presence names hash of `room`.
pub fn names(room: &str) -> String {
    format!("chat:pname:{room}")
}

/// The channel of `room`.
pub fn channel(room: &str) -> String {
    format!("chat:ch:{room}")
}

/// The set of (room, user) a node holds presence for.
pub fn node_presence(node: &str) -> String {
    format!("chat:node:{node}:pres")
}

/// A node's liveness key.
pub fn node_alive(node: &str) -> String {
    format!("chat:node:{node}:alive")
}

/// The set of nodes.
pub const NODES: &str = "chat:nodes";

/// The login records.
pub const LOGINS: &str = "chat:logins";

/// Administrators' actions.
pub const AUDIT: &str = "chat:audit";

/// The users banned now.
pub const BANS: &str = "chat:bans";

/// The channel of bans.
pub const ADMIN_CHANNEL: &str = "chat:admin";

/// The tombstones of `room`.
pub fn deleted(room: &str) -> String {
    format!("chat:del:{room}")
}

/// A member of a node's presence set.
pub fn member(room: &str, user_id: &str) -> String {
    format!("{room}\n{user_id}")
}

/// The room of a channel name.
pub fn room_of_channel(channel: &[u8]) -> Option<&str> {
    std::str::from_utf8(channel).ok()?.strip_prefix("chat:ch:")
}

/// The seq of a stream entry id (`SEQ-0`).
pub fn seq_of_id(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

/// The body stored for an entry: the message as delivered, without its
/// seq (the stream id is the seq).
pub fn body(entry: &ChatMessage) -> Vec<u8> {
    let mut e = entry.clone();
    e.seq = 0;
    e.encode_to_vec()
}

/// An entry from its body and seq; `None` if the body does not decode.
pub fn entry(seq: u64, body: &[u8]) -> Option<ChatMessage> {
    let mut e = ChatMessage::decode(body).ok()?;
    e.seq = seq;
    Some(e)
}

/// A message on a room's channel (or the admin channel).
#[derive(Debug, PartialEq)]
pub enum Published {
    /// An entry appended.
    Entry(ChatMessage),
    /// A user arrived (true) or left (false) the room, anywhere; the node
    /// whose change it was (a reaped node's, for the departures a reap
    /// makes).
    Presence(String, User, bool),
    /// An entry made a tombstone, on the node named.
    Tombstone(String, ChatMessage),
    /// A user banned (true) or unbanned, on the node named.
    Ban(String, String, bool),
    /// A user kicked on the node named, and why.
    Kick(String, String, String),
}

/// Reads a message published on a room's channel; `None` if it is not one
/// of ours.
pub fn published(payload: &[u8]) -> Option<Published> {
    let (&tag, rest) = payload.split_first()?;
    match tag {
        b'm' => {
            let space = rest.iter().position(|&b| b == b' ')?;
            let seq = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
            entry(seq, &rest[space + 1..]).map(Published::Entry)
        }
        b't' => {
            let nl = rest.iter().position(|&b| b == b'\n')?;
            let node = std::str::from_utf8(&rest[..nl]).ok()?.to_owned();
            let rest = &rest[nl + 1..];
            let space = rest.iter().position(|&b| b == b' ')?;
            let seq = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
            entry(seq, &rest[space + 1..]).map(|e| Published::Tombstone(node, e))
        }
        b'k' => {
            let text = std::str::from_utf8(rest).ok()?;
            let (node, rest) = text.split_once('\n')?;
            let (user, reason) = rest.split_once('\n')?;
            Some(Published::Kick(
                node.to_owned(),
                user.to_owned(),
                reason.to_owned(),
            ))
        }
        b'b' | b'u' => {
            let text = std::str::from_utf8(rest).ok()?;
            let (node, user) = text.split_once('\n')?;
            Some(Published::Ban(
                node.to_owned(),
                user.to_owned(),
                tag == b'b',
            ))
        }
        b'j' | b'l' => {
            let text = std::str::from_utf8(rest).ok()?;
            let (node, text) = text.split_once('\n')?;
            let (id, name) = text.split_once('\n')?;
            let user = User {
                user_id: id.to_owned(),
                username: name.to_owned(),
                room_id: String::new(),
            };
            Some(Published::Presence(node.to_owned(), user, tag == b'j'))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_messages_read_back() {
        let e = ChatMessage {
            message: "hi there".into(),
            room_id: "r 1".into(),
            epoch: 7,
            ..ChatMessage::default()
        };
        let mut payload = b"m42 ".to_vec();
        payload.extend(body(&e));
        let Some(Published::Entry(got)) = published(&payload) else {
            panic!("not an entry");
        };
        assert_eq!(
            (got.seq, got.message.as_str(), got.epoch),
            (42, "hi there", 7)
        );
        let Some(Published::Presence(node, u, false)) = published(b"ln1\nann\nAnn Smith") else {
            panic!("not a departure");
        };
        assert_eq!(
            (node.as_str(), u.user_id.as_str(), u.username.as_str()),
            ("n1", "ann", "Ann Smith")
        );
        assert_eq!(published(b"x"), None);
        assert_eq!(published(b"m12"), None);
        assert_eq!(room_of_channel(b"chat:ch:r 1"), Some("r 1"));
        assert_eq!(seq_of_id("17-0"), Some(17));
    }
}
