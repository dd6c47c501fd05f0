//! One chat room in memory: its live streams, who is present, and where
//! its log stands here (what has been delivered, what waits for a gap to be
//! filled, what waits for the room to open).

use std::collections::BTreeMap;

use chat_proto::{ChatMessage, User};

use crate::server::{CallId, ConnId, GroupId};

use super::events::AppendRequest;

/// Most users of other nodes a room's view of shared presence holds: a
/// `ChatRoom` answer lists at most this many of them (this node's own are
/// bounded by its connections).
pub(crate) const MAX_PRESENT: usize = 10_000;

/// A user present in a room, and the connections they joined from.
#[derive(Debug, Clone)]
struct Member {
    username: String,
    conns: Vec<ConnId>,
}

/// Where the room's log stands here, once the engine has said where it
/// starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Log {
    /// The log's epoch.
    pub epoch: u64,
    /// The last seq delivered to the room's streams here.
    pub delivered: u64,
    /// The oldest seq the engine still holds.
    pub first: u64,
}

/// Work that waits for the room to open.
#[derive(Debug)]
pub(crate) enum Waiting {
    /// A post of a call on a connection, to be appended.
    Post(CallId, ConnId, Box<AppendRequest>),
    /// A JoinChatRoom answer, to be read and sent.
    Reply(CallId),
    /// A stream resuming from a seq of an epoch.
    Resume(CallId, u64, u64),
}

/// One room's state.
#[derive(Debug)]
pub(crate) struct Room {
    /// The multicast group of its streams.
    group: GroupId,
    /// Open JoinChat streams in this room.
    streams: Vec<CallId>,
    /// Users present through this node's connections.
    members: BTreeMap<String, Member>,
    /// With shared presence: users present on any node, as the engine
    /// told (user id to name), bounded by [`MAX_PRESENT`].
    present: BTreeMap<String, String>,
    /// `None` until the engine answers the room's opening.
    pub log: Option<Log>,
    /// An `OpenRoom` is out and not answered. (A room whose opening failed
    /// has neither: its next use asks again.)
    pub opening: bool,
    /// What waits for the room to open.
    pub waiting: Vec<Waiting>,
    /// Entries past a gap (or come while the room was opening), by seq.
    pub held: BTreeMap<u64, ChatMessage>,
    /// A read for the gap is out.
    pub filling: bool,
    /// Posters here waiting for their entry's delivery, by seq (two, when
    /// a retry was sent before the first try was answered).
    pub owners: BTreeMap<u64, Vec<CallId>>,
    /// Appends asked of the engine and not answered.
    pub appending: usize,
    /// Streams catching up (resuming) in this room.
    pub catching_up: usize,
    /// When the room was last used (the chat's tick), for eviction.
    pub last_used: u64,
}

impl Room {
    pub fn new(group: GroupId) -> Room {
        Room {
            group,
            streams: Vec::new(),
            members: BTreeMap::new(),
            present: BTreeMap::new(),
            log: None,
            opening: false,
            waiting: Vec::new(),
            held: BTreeMap::new(),
            filling: false,
            owners: BTreeMap::new(),
            appending: 0,
            catching_up: 0,
            last_used: 0,
        }
    }

    /// The group every live stream in the room is subscribed to.
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

    /// Records what the engine says of `user` anywhere (shared presence).
    pub fn set_presence(&mut self, user: &User, present: bool) {
        if !present {
            self.present.remove(&user.user_id);
        } else if self.present.len() < MAX_PRESENT || self.present.contains_key(&user.user_id) {
            self.present
                .insert(user.user_id.clone(), user.username.clone());
        }
    }

    /// Replaces the view of who is present anywhere (shared presence).
    pub fn set_present(&mut self, users: &[User]) {
        self.present = users
            .iter()
            .take(MAX_PRESENT)
            .map(|u| (u.user_id.clone(), u.username.clone()))
            .collect();
    }

    /// The users present (here, and on other nodes when presence is
    /// shared), ordered by user id.
    pub fn users(&self) -> Vec<User> {
        let here = self.members.iter().map(|(id, m)| (id, &m.username));
        let mut all: BTreeMap<&String, &String> = self.present.iter().collect();
        all.extend(here);
        all.into_iter()
            .map(|(id, name)| User {
                user_id: id.clone(),
                username: name.clone(),
                room_id: String::new(),
            })
            .collect()
    }

    /// Whether nothing would be lost by taking the room out of memory: no
    /// streams, nobody present, nothing waiting or in flight. Its log is the
    /// engine's; it comes back on the next use.
    pub fn is_idle(&self) -> bool {
        self.streams.is_empty()
            && self.members.is_empty()
            && !self.opening
            && self.waiting.is_empty()
            && self.held.is_empty()
            && !self.filling
            && self.owners.is_empty()
            && self.appending == 0
            && self.catching_up == 0
    }
}
