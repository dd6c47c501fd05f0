//! A log in memory: what `chat-server --memory` and tests run on. Nothing
//! survives the process; everything is bounded.
//!
//! Each room keeps its newest entries (a count, and bytes), its numbering
//! and its epoch. Past a total of bytes, the least recently used room's
//! entries go (its numbering and epoch stay, so a chat that has the room
//! open goes on numbering it; readers resuming from before are told they
//! cannot). Past a number of rooms, the least recently used room goes
//! whole, and if it comes back it starts a new epoch (its clients cannot
//! resume across the gap, and are told so); the chat holds far fewer rooms
//! open (`chat_sansio::limits::MAX_ROOMS`) than that. Dedupe keys are kept
//! for the retention's window.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use chat_proto::{ChatMessage, HistoryPage};
use chat_sansio::chat::{AppendRequest, PageBuilder};
use chat_sansio::Time;
use prost::Message as _;

use crate::backend::{Appended, Backend, Login, Retention, RoomState};

/// Most bytes of entries all rooms keep together.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// Most bytes of entries one room keeps.
const MAX_ROOM_BYTES: usize = 1024 * 1024;
/// Most rooms kept.
const MAX_ROOMS: usize = 100_000;

/// A dedupe key: (room, user id, client message id).
type Key = (String, String, String);

#[derive(Debug)]
struct Room {
    epoch: u64,
    last_seq: u64,
    entries: VecDeque<ChatMessage>,
    bytes: usize,
    last_used: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct MemoryLog {
    per_room: usize,
    retention: Retention,
    rooms: HashMap<String, Room>,
    bytes: usize,
    /// (room, user id, client message id) to (seq, when).
    dedupe: HashMap<Key, (u64, Time)>,
    dedupe_order: VecDeque<(Time, Key)>,
    tick: u64,
    next_epoch: u64,
}

impl MemoryLog {
    /// A log keeping the newest `per_room` entries of each room.
    pub fn new(per_room: usize, retention: Retention) -> MemoryLog {
        // Epochs start from the wall clock, so a restarted server's rooms
        // never reuse an epoch its clients saw.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        MemoryLog {
            per_room,
            retention,
            rooms: HashMap::new(),
            bytes: 0,
            dedupe: HashMap::new(),
            dedupe_order: VecDeque::new(),
            tick: 0,
            next_epoch: start,
        }
    }

    fn room(&mut self, room: &str) -> &mut Room {
        self.tick += 1;
        if !self.rooms.contains_key(room) {
            if self.rooms.len() >= MAX_ROOMS {
                self.drop_oldest_room();
            }
            self.next_epoch += 1;
            self.rooms.insert(
                room.to_owned(),
                Room {
                    epoch: self.next_epoch,
                    last_seq: 0,
                    entries: VecDeque::new(),
                    bytes: 0,
                    last_used: 0,
                },
            );
        }
        let tick = self.tick;
        let r = self.rooms.get_mut(room).expect("inserted above");
        r.last_used = tick;
        r
    }

    fn drop_oldest_room(&mut self) {
        let oldest = self
            .rooms
            .iter()
            .min_by_key(|(_, r)| r.last_used)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            if let Some(r) = self.rooms.remove(&id) {
                self.bytes -= r.bytes;
            }
        }
    }

    /// Drops the entries of the least recently used room that has any,
    /// other than `keep`; false if there is none.
    fn empty_oldest_room(&mut self, keep: &str) -> bool {
        let oldest = self
            .rooms
            .iter_mut()
            .filter(|(id, r)| r.bytes > 0 && id.as_str() != keep)
            .min_by_key(|(_, r)| r.last_used);
        let Some((_, r)) = oldest else {
            return false;
        };
        self.bytes -= r.bytes;
        r.bytes = 0;
        r.entries.clear();
        true
    }

    fn forget_old_keys(&mut self, now: Time) {
        let window = self.retention.dedupe_window;
        while let Some((at, ..)) = self.dedupe_order.front() {
            if now.saturating_since(*at) < window {
                break;
            }
            if let Some((at, key)) = self.dedupe_order.pop_front() {
                // Unless the key was stored again since.
                if self.dedupe.get(&key).is_some_and(|k| k.1 <= at) {
                    self.dedupe.remove(&key);
                }
            }
        }
    }

    fn append_one(&mut self, req: &AppendRequest) -> Appended {
        let key = (
            req.room.clone(),
            req.user.user_id.clone(),
            req.client_msg_id.clone(),
        );
        if !req.client_msg_id.is_empty() {
            if let Some((seq, _)) = self.dedupe.get(&key).copied() {
                let room = self.rooms.get(&req.room);
                let original = room.and_then(|r| r.entries.iter().find(|e| e.seq == seq).cloned());
                // Gone from memory since: the number is what matters.
                let entry = original.unwrap_or_else(|| ChatMessage {
                    user: Some(req.user.clone()),
                    message: req.text.clone(),
                    room_id: req.room.clone(),
                    seq,
                    timestamp_us: req.at.as_micros_i64(),
                    client_msg_id: req.client_msg_id.clone(),
                    epoch: room.map_or(0, |r| r.epoch),
                    ..ChatMessage::default()
                });
                return Appended {
                    entry,
                    duplicate: true,
                };
            }
        }
        let per_room = self.per_room;
        let r = self.room(&req.room);
        r.last_seq += 1;
        let entry = ChatMessage {
            user: Some(req.user.clone()),
            message: req.text.clone(),
            room_id: req.room.clone(),
            seq: r.last_seq,
            timestamp_us: req.at.as_micros_i64(),
            client_msg_id: req.client_msg_id.clone(),
            epoch: r.epoch,
            ..ChatMessage::default()
        };
        let size = entry.encoded_len();
        r.entries.push_back(entry.clone());
        r.bytes += size;
        let mut freed = 0;
        while r.entries.len() > per_room || (r.bytes > MAX_ROOM_BYTES && r.entries.len() > 1) {
            if let Some(old) = r.entries.pop_front() {
                let n = old.encoded_len();
                r.bytes -= n;
                freed += n;
            }
        }
        self.bytes = self.bytes + size - freed;
        while self.bytes > MAX_BYTES {
            if !self.empty_oldest_room(&req.room) {
                break;
            }
        }
        if !req.client_msg_id.is_empty() {
            self.dedupe.insert(key.clone(), (entry.seq, req.at));
            self.dedupe_order.push_back((req.at, key));
        }
        Appended {
            entry,
            duplicate: false,
        }
    }
}

impl Backend for MemoryLog {
    type Error = Infallible;

    fn open_room(&mut self, room: &str) -> Result<RoomState, Infallible> {
        let r = self.room(room);
        let first_seq = r.entries.front().map_or(r.last_seq + 1, |e| e.seq);
        Ok(RoomState {
            epoch: r.epoch,
            last_seq: r.last_seq,
            first_seq,
        })
    }

    fn append(
        &mut self,
        batch: &[AppendRequest],
        _logins: &[Login],
        now: Time,
    ) -> Result<Vec<Appended>, Infallible> {
        self.forget_old_keys(now);
        Ok(batch.iter().map(|req| self.append_one(req)).collect())
    }

    fn range(
        &mut self,
        room: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, u64), Infallible> {
        let Some(r) = self.rooms.get(room) else {
            return Ok((Vec::new(), after + 1));
        };
        let first = r.entries.front().map_or(r.last_seq + 1, |e| e.seq);
        let mut bytes = 0;
        let mut out = Vec::new();
        for e in r.entries.iter().filter(|e| e.seq > after && e.seq <= up_to) {
            bytes += e.encoded_len();
            if out.len() >= limit as usize
                || (!out.is_empty() && bytes > chat_sansio::limits::MAX_PAGE_BYTES)
            {
                break;
            }
            out.push(e.clone());
        }
        Ok((out, first))
    }

    fn page(&mut self, room: &str, before: u64, limit: u32) -> Result<HistoryPage, Infallible> {
        let mut page = PageBuilder::new(limit as usize);
        if let Some(r) = self.rooms.get(room) {
            for e in r
                .entries
                .iter()
                .rev()
                .filter(|e| before == 0 || e.seq < before)
            {
                if !page.push(e.clone()) {
                    break;
                }
            }
        }
        let (messages, more) = page.finish();
        Ok(HistoryPage {
            room_id: room.to_owned(),
            messages,
            more,
        })
    }

    fn delete(&mut self, room: &str, seq: u64) -> Result<Option<ChatMessage>, Infallible> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Ok(None);
        };
        let Some(e) = r.entries.iter_mut().find(|e| e.seq == seq) else {
            return Ok(None);
        };
        *e = crate::backend::tombstone(e);
        Ok(Some(e.clone()))
    }

    fn prune(&mut self, now: Time) -> Result<bool, Infallible> {
        self.forget_old_keys(now);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::User;

    fn req(id: u64, room: &str, text: &str, key: &str) -> AppendRequest {
        AppendRequest {
            id,
            room: room.into(),
            user: User {
                user_id: "u".into(),
                ..User::default()
            },
            text: text.into(),
            client_msg_id: key.into(),
            at: Time::from_micros(1_000_000 * id),
        }
    }

    #[test]
    fn rooms_number_their_entries_and_retries_are_not_stored_twice() {
        let mut log = MemoryLog::new(3, Retention::default());
        let state = log.open_room("r").unwrap();
        assert_eq!((state.last_seq, state.first_seq), (0, 1));
        let now = Time::from_micros(0);
        let a = log.append(&[req(1, "r", "a", "k1")], &[], now).unwrap();
        let b = log.append(&[req(2, "r", "b", "")], &[], now).unwrap();
        let again = log
            .append(&[req(3, "r", "a again", "k1")], &[], now)
            .unwrap();
        assert_eq!((a[0].entry.seq, b[0].entry.seq), (1, 2));
        assert!(again[0].duplicate && again[0].entry.seq == 1 && again[0].entry.message == "a");
        assert_eq!(a[0].entry.epoch, state.epoch);
        for i in 0..3 {
            log.append(&[req(10 + i, "r", "x", "")], &[], now).unwrap();
        }
        // Three kept: 3, 4, 5; first_seq says so.
        let state = log.open_room("r").unwrap();
        assert_eq!((state.last_seq, state.first_seq), (5, 3));
        let (range, first) = log.range("r", 3, 5, 10).unwrap();
        assert_eq!(range.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(first, 3);
        let page = log.page("r", 0, 2).unwrap();
        assert_eq!(
            page.messages.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [4, 5]
        );
        assert!(page.more);
    }

    #[test]
    fn dedupe_keys_are_forgotten_after_their_window() {
        let retention = Retention {
            dedupe_window: std::time::Duration::from_secs(60),
            ..Retention::default()
        };
        let mut log = MemoryLog::new(10, retention);
        log.append(&[req(1, "r", "a", "k")], &[], Time::from_micros(0))
            .unwrap();
        let later = Time::from_micros(61_000_000);
        let again = log.append(&[req(2, "r", "a", "k")], &[], later).unwrap();
        assert!(!again[0].duplicate);
        assert_eq!(again[0].entry.seq, 2);
    }
}
