//! One chat room: its live streams, who is present, its history and its
//! message numbering.

use std::collections::BTreeMap;

use chat_proto::User;

use crate::server::{CallId, ConnId, GroupId};

use super::history::History;

/// A user present in a room, and the connections they joined from.
#[derive(Debug, Clone)]
struct Member {
    username: String,
    conns: Vec<ConnId>,
}

/// One room's state.
#[derive(Debug)]
pub(crate) struct Room {
    id: String,
    /// The multicast group of its streams.
    group: GroupId,
    /// Open JoinChat streams in this room, each subscribed to `group`, so
    /// each receives every broadcast.
    streams: Vec<CallId>,
    members: BTreeMap<String, Member>,
    pub history: History,
    /// Sequence number of the last accepted message (0: none yet).
    last_seq: u64,
    /// Sequence number of the last delivered message.
    delivered_seq: u64,
}

impl Room {
    pub fn new(id: String, group: GroupId, history_capacity: usize) -> Room {
        Room {
            id,
            group,
            streams: Vec::new(),
            members: BTreeMap::new(),
            history: History::new(history_capacity),
            last_seq: 0,
            delivered_seq: 0,
        }
    }

    /// Resumes numbering after `last_seq`, with `recent` (oldest first) as
    /// history: a room as a store kept it.
    pub fn restore(&mut self, last_seq: u64, recent: Vec<chat_proto::ChatMessage>) {
        self.last_seq = last_seq;
        self.delivered_seq = last_seq;
        for m in recent {
            self.history.push(m);
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The group every stream in the room is subscribed to.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Adds a stream; returns its index for [`Room::remove_stream`].
    pub fn add_stream(&mut self, call: CallId) -> usize {
        self.streams.push(call);
        self.streams.len() - 1
    }

    /// Removes the stream at `index`; returns the call that moved into that
    /// index, whose stored index must be updated.
    pub fn remove_stream(&mut self, index: usize) -> Option<CallId> {
        if index >= self.streams.len() {
            return None;
        }
        self.streams.swap_remove(index);
        self.streams.get(index).copied()
    }

    pub fn streams(&self) -> &[CallId] {
        &self.streams
    }

    /// Marks `user` present through `conn`. Returns true if they were not
    /// present before at all (so their arrival is news).
    pub fn join(&mut self, user: &User, conn: ConnId) -> bool {
        let member = self
            .members
            .entry(user.user_id.clone())
            .or_insert_with(|| Member {
                username: user.username.clone(),
                conns: Vec::new(),
            });
        let arrived = member.conns.is_empty();
        member.username.clone_from(&user.username);
        if !member.conns.contains(&conn) {
            member.conns.push(conn);
        }
        arrived
    }

    /// Drops `user_id`'s presence through `conn`. Returns true if they are
    /// no longer present at all.
    pub fn leave(&mut self, user_id: &str, conn: ConnId) -> bool {
        let Some(member) = self.members.get_mut(user_id) else {
            return false;
        };
        member.conns.retain(|c| *c != conn);
        if member.conns.is_empty() {
            self.members.remove(user_id);
            true
        } else {
            false
        }
    }

    /// The users present, ordered by user id.
    pub fn users(&self) -> Vec<User> {
        self.members
            .iter()
            .map(|(id, m)| User {
                user_id: id.clone(),
                username: m.username.clone(),
                room_id: String::new(),
            })
            .collect()
    }

    /// The next sequence number, taken.
    pub fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Notes that message `seq` has been delivered.
    pub fn delivered(&mut self, seq: u64) {
        self.delivered_seq = seq;
    }

    /// Forgets numbers given to messages that will never be delivered.
    pub fn rewind(&mut self) {
        self.last_seq = self.delivered_seq;
    }

    /// Whether nothing would be lost by forgetting the room: no streams,
    /// nobody present, and no message ever (its numbering must go on).
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty() && self.members.is_empty() && self.last_seq == 0
    }
}
