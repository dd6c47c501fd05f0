//! The control thread: this node's presence in Redis, its liveness and the
//! reaping of dead nodes, and the checks that catch up what PUB/SUB lost.
//!
//! - **Presence.** Each change the chat reports runs the join or leave
//!   script, which announces it only when it changes whether the user is
//!   in the room on any node. What this node holds is also kept here, so
//!   that after Redis was unreachable (a change may have failed) or this
//!   node was taken for dead, Redis is brought back in line with it.
//! - **Liveness.** Every [`HEARTBEAT`] the node sets its key for
//!   [`NODE_TTL`]. Every [`REAP_EVERY`] each node runs the reap script for
//!   every other node; the script does nothing while that node's key lives,
//!   and otherwise removes its presence with one departure notice each, run
//!   by whichever node gets there first (the script is atomic). So a node
//!   killed with `kill -9` has left its rooms within `NODE_TTL +
//!   REAP_EVERY`.
//! - **Catching up.** When a room's channel is subscribed, its last seq is
//!   read; every [`CHECK_EVERY`] the last seq of every room followed is
//!   read again, and a room whose log is ahead of what its channel brought
//!   for two checks in a row gets its last entry read and handed to the
//!   chat, which fills the gap before it from the log. After the
//!   subscriber reconnects, every room is caught up at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_proto::User;
use chat_sansio::chat::ChatInput;
use redis::streams::StreamRangeReply;
use redis::RedisResult;

use super::link::Link;
use super::messages::{Control, Seen, Sub};
use super::stats::RedisStats;
use super::wire;
use crate::writer::Deliver;

/// How long a node's liveness key lives without a heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(10);
/// How often a node renews its key (a third of its life: two heartbeats
/// may fail before it is taken for dead).
pub const HEARTBEAT: Duration = Duration::from_millis(3000);
/// How often a node looks for dead ones.
pub const REAP_EVERY: Duration = Duration::from_secs(5);
/// How often the rooms followed are checked against their logs.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A room followed here.
#[derive(Default)]
struct Followed {
    /// The last seq its log had at the previous check, when it was ahead
    /// of the channel.
    suspect: Option<u64>,
}

/// The control thread's state.
pub struct Nodes<D> {
    node: String,
    link: Link,
    deliver: D,
    subs: Sender<Sub>,
    seen: Seen,
    /// Rooms followed.
    rooms: HashMap<String, Followed>,
    /// Who is present through this node: room to user id to name.
    present: HashMap<String, BTreeMap<String, String>>,
    /// Redis may not match `present` (a change failed, or the node was
    /// reaped): bring it back in line at the next chance.
    dirty: bool,
    /// The node has never registered.
    first: bool,
    /// Set by the reader thread when a presence change failed.
    presence_failed: Arc<AtomicBool>,
    stats: Arc<RedisStats>,
}

impl<D: Deliver> Nodes<D> {
    /// The state of node `node`.
    pub fn new(
        node: String,
        link: Link,
        deliver: D,
        subs: Sender<Sub>,
        seen: Seen,
        presence_failed: Arc<AtomicBool>,
        stats: Arc<RedisStats>,
    ) -> Self {
        Nodes {
            node,
            link,
            deliver,
            subs,
            seen,
            rooms: HashMap::new(),
            present: HashMap::new(),
            dirty: false,
            first: true,
            presence_failed,
            stats,
        }
    }

    /// The thread's body: runs until the chat's side is gone.
    pub fn run(mut self, control: Receiver<Control>) {
        let now = Instant::now();
        let (mut beat, mut reap, mut check) = (now, now + REAP_EVERY, now + CHECK_EVERY);
        loop {
            let next = beat.min(reap).min(check);
            let wait = next.saturating_duration_since(Instant::now());
            match control.recv_timeout(wait) {
                Ok(c) => {
                    if !self.on_control(c) {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= beat {
                beat = now + HEARTBEAT;
                self.heartbeat();
            }
            if now >= reap {
                reap = now + REAP_EVERY;
                self.reap();
            }
            if now >= check {
                check = now + CHECK_EVERY;
                self.check();
            }
        }
    }

    fn on_control(&mut self, c: Control) -> bool {
        match c {
            Control::Open(room) => {
                self.rooms.entry(room.clone()).or_default();
                self.subs.send(Sub::Follow(room)).is_ok()
            }
            Control::Following(room) => {
                self.following(&room);
                true
            }
            Control::Reconnected => {
                self.catch_up_all();
                true
            }
            Control::Close(room) => {
                self.rooms.remove(&room);
                if let Ok(mut seen) = self.seen.lock() {
                    seen.remove(&room);
                }
                self.subs.send(Sub::Drop(room)).is_ok()
            }
            Control::Presence(room, user, here) => {
                let users = self.present.entry(room.clone()).or_default();
                if here {
                    users.insert(user.user_id.clone(), user.username.clone());
                } else {
                    users.remove(&user.user_id);
                    if users.is_empty() {
                        self.present.remove(&room);
                    }
                }
                // The change itself is made by the reader thread.
                true
            }
        }
    }

    /// Runs the join or leave script for one user of one room (setting
    /// Redis in line again: the news it makes reaches the other nodes, and
    /// this one's chat had it when it happened).
    fn change(&mut self, room: &str, user_id: &str, name: &str, here: bool) -> RedisResult<()> {
        super::link::presence_change(&mut self.link, &self.node, room, user_id, name, here)?;
        Ok(())
    }

    /// A room's channel is subscribed: who is there, and where its log
    /// stands, from now on.
    fn following(&mut self, room: &str) {
        if !self.rooms.contains_key(room) {
            return;
        }
        let read = self.link.run(|con, _| {
            redis::pipe()
                .cmd("HGETALL")
                .arg(wire::names(room))
                .cmd("HGET")
                .arg(wire::meta(room))
                .arg("last")
                .query::<(HashMap<String, String>, Option<u64>)>(con)
        });
        match read {
            Ok((names, last)) => {
                if let Ok(mut seen) = self.seen.lock() {
                    let s = seen.entry(room.to_owned()).or_default();
                    *s = (*s).max(last.unwrap_or(0));
                }
                self.tell_present(room, names);
            }
            Err(e) => tracing::warn!("redis: reading room {room:?}: {e}"),
        }
    }

    fn tell_present(&mut self, room: &str, names: HashMap<String, String>) {
        let users = names
            .into_iter()
            .map(|(user_id, username)| User {
                user_id,
                username,
                room_id: String::new(),
            })
            .collect();
        self.deliver.deliver(ChatInput::Present {
            room: room.to_owned(),
            users,
        });
    }

    /// Renews the liveness key; if the node was taken for dead (or a change
    /// failed), sets its presence again.
    fn heartbeat(&mut self) {
        let alive = wire::node_alive(&self.node);
        let ttl = NODE_TTL.as_millis() as u64;
        let node = self.node.clone();
        let added = self.link.run(|con, _| {
            redis::pipe()
                .cmd("SET")
                .arg(&alive)
                .arg(1)
                .arg("PX")
                .arg(ttl)
                .ignore()
                .cmd("SADD")
                .arg(wire::NODES)
                .arg(&node)
                .query::<(i64,)>(con)
        });
        match added {
            Ok((added,)) => {
                if self.presence_failed.swap(false, Ordering::Relaxed) {
                    self.dirty = true;
                }
                if added == 1 && !self.first {
                    tracing::warn!(
                        "redis: this node was taken for dead; setting its presence again"
                    );
                    self.dirty = true;
                }
                self.first = false;
                if self.dirty {
                    self.reconcile();
                }
            }
            Err(e) => {
                tracing::warn!("redis: heartbeat: {e}");
                self.dirty = true;
            }
        }
    }

    /// Makes this node's presence in Redis what the chat says it is.
    fn reconcile(&mut self) {
        let node_set = wire::node_presence(&self.node);
        let held: RedisResult<Vec<String>> = self
            .link
            .run(|con, _| redis::cmd("SMEMBERS").arg(&node_set).query(con));
        let Ok(held) = held else {
            return;
        };
        let mut failed = false;
        for m in &held {
            let Some((room, user)) = m.split_once('\n') else {
                continue;
            };
            let here = self.present.get(room).is_some_and(|u| u.contains_key(user));
            if !here {
                failed |= self.change(room, user, user, false).is_err();
            }
        }
        let wanted: Vec<(String, String, String)> = self
            .present
            .iter()
            .flat_map(|(room, users)| {
                users
                    .iter()
                    .map(move |(id, name)| (room.clone(), id.clone(), name.clone()))
            })
            .collect();
        for (room, id, name) in wanted {
            if !held.contains(&wire::member(&room, &id)) {
                failed |= self.change(&room, &id, &name, true).is_err();
            }
        }
        self.dirty = failed;
    }

    /// Removes the presence of nodes whose key has expired.
    fn reap(&mut self) {
        let nodes: RedisResult<Vec<String>> = self
            .link
            .run(|con, _| redis::cmd("SMEMBERS").arg(wire::NODES).query(con));
        let Ok(nodes) = nodes else {
            return;
        };
        for other in nodes.into_iter().filter(|n| *n != self.node) {
            let reaped = self.link.run(|con, scripts| {
                scripts
                    .reap
                    .key(wire::node_presence(&other))
                    .key(wire::node_alive(&other))
                    .key(wire::NODES)
                    .arg(&other)
                    .invoke::<i64>(con)
            });
            match reaped {
                Ok(n) if n >= 0 => {
                    RedisStats::bump(&self.stats.reaped_nodes);
                    tracing::info!("redis: node {other} is gone; {n} presence entries removed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("redis: reaping {other}: {e}"),
            }
        }
    }

    /// Reads every followed room's last seq; hands the chat the last entry
    /// of a room whose log has stayed ahead of its channel.
    fn check(&mut self) {
        self.check_rooms(false);
    }

    /// After a reconnect: every room behind its log is caught up at once,
    /// and who is present is read again.
    fn catch_up_all(&mut self) {
        self.check_rooms(true);
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            self.following(&room);
        }
    }

    fn check_rooms(&mut self, now: bool) {
        if self.rooms.is_empty() {
            return;
        }
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        let lasts: RedisResult<Vec<Option<u64>>> = self.link.run(|con, _| {
            let mut pipe = redis::pipe();
            for room in &rooms {
                pipe.cmd("HGET").arg(wire::meta(room)).arg("last");
            }
            pipe.query(con)
        });
        let Ok(lasts) = lasts else {
            return;
        };
        for (room, last) in rooms.into_iter().zip(lasts) {
            let last = last.unwrap_or(0);
            let seen = self
                .seen
                .lock()
                .map(|s| s.get(&room).copied().unwrap_or(0))
                .unwrap_or(0);
            let Some(suspect) = self.rooms.get_mut(&room).map(|r| &mut r.suspect) else {
                continue;
            };
            if last <= seen {
                *suspect = None;
                continue;
            }
            let due = now || suspect.is_some_and(|s| s > seen);
            if !due {
                *suspect = Some(last);
                continue;
            }
            *suspect = None;
            self.hand_over_last(&room, last);
        }
    }

    /// Reads entry `seq` of `room` and hands it to the chat.
    fn hand_over_last(&mut self, room: &str, seq: u64) {
        let id = format!("{seq}-0");
        let found: RedisResult<StreamRangeReply> = self.link.run(|con, _| {
            redis::cmd("XRANGE")
                .arg(wire::log(room))
                .arg(&id)
                .arg(&id)
                .query(con)
        });
        let Ok(found) = found else {
            return;
        };
        let entries: Vec<_> = found
            .ids
            .iter()
            .filter_map(|e| match e.map.get("m") {
                Some(redis::Value::BulkString(body)) => wire::entry(seq, body),
                _ => None,
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        if let Ok(mut seen) = self.seen.lock() {
            let s = seen.entry(room.to_owned()).or_default();
            *s = (*s).max(seq);
        }
        tracing::info!("redis: room {room:?} was behind its log (to {seq}); caught up");
        RedisStats::bump(&self.stats.catch_ups);
        self.deliver.deliver(ChatInput::Entries {
            room: room.to_owned(),
            entries,
        });
    }
}
