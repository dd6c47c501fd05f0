//! The Redis engine's [`Backend`]: opens, appends (one script each, a
//! batch in one pipeline: one round trip, and with `appendfsync always`
//! one fsync), ranges and pages. The writer thread (`crate::writer`) drives
//! it as it drives SQLite; a second connection serves reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chat_proto::{ChatMessage, HistoryPage};
use chat_sansio::chat::{AppendRequest, PageBuilder};
use chat_sansio::limits::MAX_PAGE_BYTES;
use chat_sansio::Time;
use redis::streams::StreamRangeReply;
use redis::Value;

use super::link::{fresh_epoch, presence_change, Link, RedisError};
use super::wire;
use crate::backend::{tombstone, AdminRecord, Appended, Backend, Login, Retention, RoomState};
use chat_sansio::chat::AdminAction;

/// Most epochs remembered (rooms this node opened); past it the map starts
/// afresh, and a room's next append reads its epoch again.
const MAX_EPOCHS: usize = 100_000;

/// See the module docs.
pub struct RedisLog {
    link: Link,
    retention: Retention,
    /// The epoch this node opened each room with.
    epochs: HashMap<String, u64>,
    /// For [`Backend::reader`].
    client: redis::Client,
    /// This node's name, in what it publishes.
    node: String,
    /// Set when a presence change could not be made: the control thread
    /// sets this node's presence in Redis again.
    presence_failed: Arc<AtomicBool>,
}

impl RedisLog {
    /// A log on `client`'s server, keeping about `retention.messages_per_room`
    /// entries per room and `retention.logins` login records, for node
    /// `node`.
    pub fn new(client: redis::Client, retention: Retention, node: &str) -> RedisLog {
        RedisLog {
            link: Link::new(client.clone()),
            retention,
            epochs: HashMap::new(),
            client,
            node: node.to_owned(),
            presence_failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Shares `flag` with the control thread: set when a presence change
    /// fails here.
    pub fn with_presence_flag(mut self, flag: Arc<AtomicBool>) -> RedisLog {
        self.presence_failed = flag;
        self
    }

    /// Replaces the entries that are tombstones now (streams are
    /// append-only: tombstones live in a hash beside the log).
    fn overlay(&mut self, room: &str, entries: &mut [ChatMessage]) -> Result<(), RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        let found: Vec<Option<Vec<u8>>> = self
            .link
            .run(|con, _| {
                redis::cmd("HMGET")
                    .arg(wire::deleted(room))
                    .arg(&seqs)
                    .query(con)
            })
            .map_err(|e| RedisError::new("read tombstones", e))?;
        for (e, body) in entries.iter_mut().zip(found) {
            if let Some(t) = body.and_then(|b| wire::entry(e.seq, &b)) {
                *e = t;
            }
        }
        Ok(())
    }

    fn append_all(&mut self, batch: &[AppendRequest]) -> Result<Vec<Appended>, RedisError> {
        for req in batch {
            if !self.epochs.contains_key(&req.room) {
                self.open_room(&req.room)?;
            }
        }
        let maxlen = self.retention.messages_per_room.max(1);
        let window_ms = self.retention.dedupe_window.as_millis().max(1);
        let drafts: Vec<(ChatMessage, Vec<u8>)> = batch
            .iter()
            .map(|req| {
                let entry = ChatMessage {
                    user: Some(req.user.clone()),
                    message: req.text.clone(),
                    room_id: req.room.clone(),
                    timestamp_us: req.at.as_micros_i64(),
                    client_msg_id: req.client_msg_id.clone(),
                    epoch: self.epochs[&req.room],
                    ..ChatMessage::default()
                };
                let body = wire::body(&entry);
                (entry, body)
            })
            .collect();
        let replies: Vec<(u8, u64, Vec<u8>)> = self
            .link
            .run(|con, scripts| {
                let mut pipe = redis::pipe();
                for (req, (entry, body)) in batch.iter().zip(&drafts) {
                    let window = if req.client_msg_id.is_empty() {
                        0
                    } else {
                        window_ms
                    };
                    pipe.invoke_script(
                        scripts
                            .append
                            .key(wire::log(&req.room))
                            .key(wire::meta(&req.room))
                            .key(wire::dedupe(
                                &req.room,
                                &req.user.user_id,
                                &req.client_msg_id,
                            ))
                            .arg(entry.epoch.to_string())
                            .arg(body.as_slice())
                            .arg(window.to_string())
                            .arg(maxlen)
                            .arg(wire::channel(&req.room)),
                    );
                }
                pipe.query(con)
            })
            .map_err(|e| RedisError::new("append", e))?;
        let mut out = Vec::with_capacity(batch.len());
        for ((req, (mut entry, _)), (code, seq, body)) in batch.iter().zip(drafts).zip(replies) {
            match code {
                0 => {
                    entry.seq = seq;
                    out.push(Appended {
                        entry,
                        duplicate: false,
                    });
                }
                1 => {
                    entry.seq = seq;
                    let entry = wire::entry(seq, &body).unwrap_or(entry);
                    out.push(Appended {
                        entry,
                        duplicate: true,
                    });
                }
                _ => {
                    // The log this node opened is gone (a wiped or replaced
                    // Redis): nothing more can be numbered in it here.
                    self.epochs.remove(&req.room);
                    return Err(RedisError::new(
                        "append",
                        format!(
                            "room {:?}: its log was lost in Redis (epoch now {:?})",
                            req.room,
                            String::from_utf8_lossy(&body)
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn record(&mut self, logins: &[Login]) -> Result<(), RedisError> {
        let cap = self.retention.logins.max(1);
        self.link
            .run(|con, _| {
                let mut pipe = redis::pipe();
                for l in logins {
                    let outcome = match &l.outcome {
                        Ok(()) => "ok".to_owned(),
                        Err(s) => format!("{:?}: {}", s.code, s.message),
                    };
                    pipe.cmd("XADD")
                        .arg(wire::LOGINS)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(cap)
                        .arg("*")
                        .arg("at_us")
                        .arg(l.at.as_micros_i64())
                        .arg("user")
                        .arg(&l.user_id)
                        .arg("room")
                        .arg(&l.room)
                        .arg("peer")
                        .arg(l.peer.as_deref().unwrap_or(""))
                        .arg("outcome")
                        .arg(outcome)
                        .ignore();
                }
                pipe.query::<()>(con)
            })
            .map_err(|e| RedisError::new("login records", e))
    }
}

/// The entries of a stream range reply, ascending.
fn entries(reply: &StreamRangeReply) -> Vec<ChatMessage> {
    reply
        .ids
        .iter()
        .filter_map(|id| {
            let seq = wire::seq_of_id(&id.id)?;
            let Some(Value::BulkString(body)) = id.map.get("m") else {
                return None;
            };
            let e = wire::entry(seq, body);
            if e.is_none() {
                tracing::warn!("redis: entry {} of a log does not decode; skipped", id.id);
            }
            e
        })
        .collect()
}

impl Backend for RedisLog {
    type Error = RedisError;

    fn open_room(&mut self, room: &str) -> Result<RoomState, RedisError> {
        let (epoch, last, first): (String, String, String) = self
            .link
            .run(|con, scripts| {
                scripts
                    .open
                    .key(wire::meta(room))
                    .key(wire::log(room))
                    .arg(fresh_epoch())
                    .invoke(con)
            })
            .map_err(|e| RedisError::new("open", e))?;
        let number = |s: &str| s.parse::<u64>().map_err(|e| RedisError::new("open", e));
        let state = RoomState {
            epoch: number(&epoch)?,
            last_seq: number(&last)?,
            first_seq: number(&first)?,
        };
        if self.epochs.len() >= MAX_EPOCHS {
            self.epochs.clear();
        }
        self.epochs.insert(room.to_owned(), state.epoch);
        Ok(state)
    }

    fn append(
        &mut self,
        batch: &[AppendRequest],
        logins: &[Login],
        _now: Time,
    ) -> Result<Vec<Appended>, RedisError> {
        if !logins.is_empty() {
            self.record(logins)?;
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.append_all(batch)
    }

    fn range(
        &mut self,
        room: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, u64), RedisError> {
        let (found, oldest, last): (StreamRangeReply, StreamRangeReply, Option<u64>) = self
            .link
            .run(|con, _| {
                redis::pipe()
                    .cmd("XRANGE")
                    .arg(wire::log(room))
                    .arg(format!("{}-0", after + 1))
                    .arg(format!("{up_to}-0"))
                    .arg("COUNT")
                    .arg(limit.max(1))
                    .cmd("XRANGE")
                    .arg(wire::log(room))
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .cmd("HGET")
                    .arg(wire::meta(room))
                    .arg("last")
                    .query(con)
            })
            .map_err(|e| RedisError::new("range", e))?;
        let first = oldest
            .ids
            .first()
            .and_then(|id| wire::seq_of_id(&id.id))
            .unwrap_or(last.unwrap_or(after) + 1);
        let mut bytes = 0;
        let mut out = Vec::new();
        let mut found = entries(&found);
        self.overlay(room, &mut found)?;
        for e in found {
            bytes += prost::Message::encoded_len(&e);
            if !out.is_empty() && bytes > MAX_PAGE_BYTES {
                break;
            }
            out.push(e);
        }
        Ok((out, first))
    }

    fn page(&mut self, room: &str, before: u64, limit: u32) -> Result<HistoryPage, RedisError> {
        let end = if before == 0 {
            "+".to_owned()
        } else if before == 1 {
            return Ok(HistoryPage {
                room_id: room.to_owned(),
                messages: Vec::new(),
                more: false,
            });
        } else {
            format!("{}-0", before - 1)
        };
        // One more than asked: the builder then knows if older ones exist.
        let found: StreamRangeReply = self
            .link
            .run(|con, _| {
                redis::cmd("XREVRANGE")
                    .arg(wire::log(room))
                    .arg(&end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(limit.saturating_add(1))
                    .query(con)
            })
            .map_err(|e| RedisError::new("page", e))?;
        let mut page = PageBuilder::new(limit as usize);
        let mut found = entries(&found);
        self.overlay(room, &mut found)?;
        for e in found {
            if !page.push(e) {
                break;
            }
        }
        let (messages, more) = page.finish();
        Ok(HistoryPage {
            room_id: room.to_owned(),
            messages,
            more,
        })
    }

    fn delete(&mut self, room: &str, seq: u64) -> Result<Option<ChatMessage>, RedisError> {
        let id = format!("{seq}-0");
        let found: StreamRangeReply = self
            .link
            .run(|con, _| {
                redis::cmd("XRANGE")
                    .arg(wire::log(room))
                    .arg(&id)
                    .arg(&id)
                    .query(con)
            })
            .map_err(|e| RedisError::new("delete", e))?;
        let Some(entry) = entries(&found).pop() else {
            return Ok(None);
        };
        let dead = tombstone(&entry);
        let body = wire::body(&dead);
        let mut note = format!("t{}\n{seq} ", self.node).into_bytes();
        note.extend_from_slice(&body);
        self.link
            .run(|con, _| {
                redis::pipe()
                    .cmd("HSET")
                    .arg(wire::deleted(room))
                    .arg(seq)
                    .arg(body.as_slice())
                    .ignore()
                    .cmd("PUBLISH")
                    .arg(wire::channel(room))
                    .arg(note.as_slice())
                    .ignore()
                    .query::<()>(con)
            })
            .map_err(|e| RedisError::new("delete", e))?;
        Ok(Some(dead))
    }

    fn record_admin(&mut self, record: &AdminRecord) -> Result<(), RedisError> {
        let (action, target) = record.describe();
        let node = self.node.clone();
        self.link
            .run(|con, _| {
                let mut pipe = redis::pipe();
                pipe.cmd("XADD")
                    .arg(wire::AUDIT)
                    .arg("*")
                    .arg("at_us")
                    .arg(record.at.as_micros_i64())
                    .arg("by")
                    .arg(&record.by)
                    .arg("action")
                    .arg(action)
                    .arg("target")
                    .arg(&target)
                    .arg("reason")
                    .arg(&record.reason)
                    .ignore();
                match &record.action {
                    AdminAction::Ban { user_id } | AdminAction::Unban { user_id } => {
                        let ban = matches!(record.action, AdminAction::Ban { .. });
                        pipe.cmd(if ban { "SADD" } else { "SREM" })
                            .arg(wire::BANS)
                            .arg(user_id)
                            .ignore()
                            .cmd("PUBLISH")
                            .arg(wire::ADMIN_CHANNEL)
                            .arg(format!("{}{node}\n{user_id}", if ban { 'b' } else { 'u' }))
                            .ignore();
                    }
                    AdminAction::Kick { user_id } => {
                        pipe.cmd("PUBLISH")
                            .arg(wire::ADMIN_CHANNEL)
                            .arg(format!("k{node}\n{user_id}\n{}", record.reason))
                            .ignore();
                    }
                    _ => {}
                }
                pipe.query::<()>(con)
            })
            .map_err(|e| RedisError::new("admin record", e))
    }

    fn presence(
        &mut self,
        room: &str,
        user: &chat_proto::User,
        present: bool,
    ) -> Result<bool, RedisError> {
        let node = self.node.clone();
        presence_change(
            &mut self.link,
            &node,
            room,
            &user.user_id,
            &user.username,
            present,
        )
        .map_err(|e| {
            self.presence_failed.store(true, Ordering::Relaxed);
            RedisError::new("presence", e)
        })
    }

    fn bans(&mut self) -> Result<Vec<String>, RedisError> {
        self.link
            .run(|con, _| redis::cmd("SMEMBERS").arg(wire::BANS).query(con))
            .map_err(|e| RedisError::new("bans", e))
    }

    fn prune(&mut self, _now: Time) -> Result<bool, RedisError> {
        // Every append trims its room's stream, and every record the
        // logins' stream (MAXLEN), and dedupe keys expire by themselves.
        Ok(false)
    }

    fn reader(&self) -> Result<Option<Self>, RedisError> {
        Ok(Some(
            RedisLog::new(self.client.clone(), self.retention, &self.node)
                .with_presence_flag(Arc::clone(&self.presence_failed)),
        ))
    }
}
