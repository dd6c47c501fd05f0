//! The model's engine: each room's log kept as plainly as the engine
//! contract (the docs of [`ChatEvent`]) allows. It is the oracle the model
//! checks every delivery against, and the engine the tests' harness answers
//! the chat with.

use std::collections::{BTreeMap, HashMap};

use chat_proto::{ChatMessage, HistoryPage, User};

use crate::chat::{AppendRequest, ChatEvent, ChatInput, PageBuilder};
use crate::limits::MAX_PAGE_BYTES;
use crate::time::Time;

/// One room's log.
#[derive(Debug, Clone)]
pub struct LogModel {
    /// Its epoch.
    pub epoch: u64,
    /// Every entry ever appended in this epoch; entry `seq` is at `seq - 1`.
    pub entries: Vec<ChatMessage>,
    /// The oldest seq still held (retention removed those before it).
    pub first: u64,
}

impl LogModel {
    /// The newest seq (0: none).
    pub fn last_seq(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Entry `seq`, if it is held.
    pub fn entry(&self, seq: u64) -> Option<&ChatMessage> {
        if seq < self.first {
            return None;
        }
        self.entries.get(usize::try_from(seq.checked_sub(1)?).ok()?)
    }

    /// Entry `seq`, held or since removed by retention.
    pub fn ever(&self, seq: u64) -> Option<&ChatMessage> {
        self.entries.get(usize::try_from(seq.checked_sub(1)?).ok()?)
    }

    /// The entries held, oldest first.
    pub fn held(&self) -> impl DoubleEndedIterator<Item = &ChatMessage> {
        let skip = usize::try_from(self.first.saturating_sub(1)).unwrap_or(usize::MAX);
        self.entries.iter().skip(skip)
    }
}

/// Every room's log, and the dedupe keys.
#[derive(Debug, Clone)]
pub struct EngineModel {
    rooms: BTreeMap<String, LogModel>,
    /// (room, sender, client message id) to seq.
    dedupe: HashMap<(String, String, String), u64>,
    next_epoch: u64,
}

impl EngineModel {
    /// An engine whose first room gets epoch `first_epoch`.
    pub fn new(first_epoch: u64) -> EngineModel {
        EngineModel {
            rooms: BTreeMap::new(),
            dedupe: HashMap::new(),
            next_epoch: first_epoch,
        }
    }

    /// The log of `room`, if it has one.
    pub fn log(&self, room: &str) -> Option<&LogModel> {
        self.rooms.get(room)
    }

    /// The epoch of `room`'s log: the one it has, or the one it would get
    /// if it began now.
    pub fn epoch_of(&self, room: &str) -> u64 {
        self.rooms.get(room).map_or(self.next_epoch, |l| l.epoch)
    }

    /// The log of `room`, begun (in a new epoch) if it has none.
    fn log_mut(&mut self, room: &str) -> &mut LogModel {
        let next = &mut self.next_epoch;
        self.rooms.entry(room.to_owned()).or_insert_with(|| {
            *next += 1;
            LogModel {
                epoch: *next - 1,
                entries: Vec::new(),
                first: 1,
            }
        })
    }

    /// The answer to `OpenRoom`.
    pub fn open(&mut self, room: &str) -> ChatInput {
        let log = self.log_mut(room);
        ChatInput::RoomOpened {
            room: room.to_owned(),
            epoch: log.epoch,
            last_seq: log.last_seq(),
            first_seq: log.first,
        }
    }

    /// Appends a request (or finds its original): the entry, and whether it
    /// is a duplicate.
    pub fn append(&mut self, req: &AppendRequest) -> (ChatMessage, bool) {
        let key = (
            req.room.clone(),
            req.user.user_id.clone(),
            req.client_msg_id.clone(),
        );
        if !req.client_msg_id.is_empty() {
            if let Some(seq) = self.dedupe.get(&key) {
                if let Some(original) = self.rooms.get(&req.room).and_then(|l| l.ever(*seq)) {
                    return (original.clone(), true);
                }
            }
        }
        let entry = self.push_entry(
            &req.room,
            req.user.clone(),
            &req.text,
            req.at,
            &req.client_msg_id,
        );
        if !req.client_msg_id.is_empty() {
            self.dedupe.insert(key, entry.seq);
        }
        (entry, false)
    }

    /// The answer to `Append`.
    pub fn commit(&mut self, req: &AppendRequest) -> ChatInput {
        let (entry, duplicate) = self.append(req);
        ChatInput::Committed {
            id: req.id,
            entry,
            duplicate,
        }
    }

    /// Appends an entry another node posted.
    pub fn push(&mut self, room: &str, user: User, text: &str, at: Time) -> ChatMessage {
        self.push_entry(room, user, text, at, "")
    }

    fn push_entry(
        &mut self,
        room: &str,
        user: User,
        text: &str,
        at: Time,
        client_msg_id: &str,
    ) -> ChatMessage {
        let log = self.log_mut(room);
        let entry = ChatMessage {
            user: Some(user),
            message: text.to_owned(),
            room_id: room.to_owned(),
            seq: log.last_seq() + 1,
            timestamp_us: at.as_micros_i64(),
            client_msg_id: client_msg_id.to_owned(),
            epoch: log.epoch,
            ..ChatMessage::default()
        };
        log.entries.push(entry.clone());
        entry
    }

    /// Removes all but the newest `keep` entries of `room` (retention).
    pub fn trim(&mut self, room: &str, keep: u64) {
        if let Some(log) = self.rooms.get_mut(room) {
            log.first = log.first.max(log.last_seq().saturating_sub(keep) + 1);
        }
    }

    /// The entries after `after` up to `up_to`, at most `limit` and a
    /// page's bytes (one always fits), and the oldest seq held.
    pub fn range(&self, room: &str, after: u64, up_to: u64, limit: u32) -> (Vec<ChatMessage>, u64) {
        let Some(log) = self.rooms.get(room) else {
            return (Vec::new(), after + 1);
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in log.held().filter(|e| e.seq > after && e.seq <= up_to) {
            bytes += prost::Message::encoded_len(e);
            if out.len() >= limit as usize || (!out.is_empty() && bytes > MAX_PAGE_BYTES) {
                break;
            }
            out.push(e.clone());
        }
        (out, log.first)
    }

    /// Up to `limit` entries numbered below `before` (0: the newest), as a
    /// page.
    pub fn page(&self, room: &str, before: u64, limit: u32) -> HistoryPage {
        let mut page = PageBuilder::new(limit as usize);
        if let Some(log) = self.rooms.get(room) {
            for e in log.held().rev().filter(|e| before == 0 || e.seq < before) {
                if !page.push(e.clone()) {
                    break;
                }
            }
        }
        let (messages, more) = page.finish();
        HistoryPage {
            room_id: room.to_owned(),
            messages,
            more,
        }
    }

    /// The answer to an engine request, given at once; `None` for events
    /// that are not requests.
    pub fn answer(&mut self, event: &ChatEvent) -> Option<ChatInput> {
        Some(match event {
            ChatEvent::OpenRoom { room } => self.open(room),
            ChatEvent::Append(req) => self.commit(req),
            ChatEvent::ReadRange {
                token,
                room,
                after,
                up_to,
                limit,
            } => {
                let (entries, first_seq) = self.range(room, *after, *up_to, *limit);
                ChatInput::Range {
                    token: *token,
                    entries: Ok(entries),
                    first_seq,
                }
            }
            ChatEvent::ReadHistory {
                token,
                room,
                before_seq,
                limit,
            } => ChatInput::HistoryPage {
                token: *token,
                page: Ok(self.page(room, *before_seq, *limit)),
            },
            _ => return None,
        })
    }
}
