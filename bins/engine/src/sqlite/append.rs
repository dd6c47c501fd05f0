//! Appends: each batch in one transaction, numbered after each room's
//! last, with retries inside the dedupe window answered with the original.

use std::collections::HashMap;

use chat_proto::ChatMessage;
use chat_sansio::chat::AppendRequest;
use chat_sansio::Time;
use rusqlite::{params, OptionalExtension};

use super::read::{row_message, undecodable};
use super::SqliteStore;
use crate::backend::{Appended, Login};

impl SqliteStore {
    pub(super) fn write_batch(
        &mut self,
        batch: &[AppendRequest],
        logins: &[Login],
        now: Time,
    ) -> rusqlite::Result<Vec<Appended>> {
        let window = self
            .retention
            .dedupe_window
            .as_micros()
            .min(i64::MAX as u128) as i64;
        let since = now.as_micros_i64().saturating_sub(window);
        let db_epoch = self.epoch as i64;
        let tx = self.db.transaction()?;
        let mut appended = Vec::with_capacity(batch.len());
        {
            let mut find_key = tx.prepare_cached(
                "SELECT seq FROM dedupe
                 WHERE room = ?1 AND user_id = ?2 AND client_msg_id = ?3 AND ts_us >= ?4",
            )?;
            let mut room_state =
                tx.prepare_cached("SELECT last_seq, epoch FROM rooms WHERE room = ?1")?;
            let mut set_room = tx.prepare_cached(
                "INSERT INTO rooms (room, last_seq, epoch) VALUES (?1, ?2, ?3)
                 ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, seq, user_id, username, text, ts_us, client_msg_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut keep_key = tx.prepare_cached(
                "INSERT OR REPLACE INTO dedupe (room, user_id, client_msg_id, seq, ts_us)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut original = tx.prepare_cached(
                "SELECT user_id, username, text, ts_us, client_msg_id, deleted FROM messages
                 WHERE room = ?1 AND seq = ?2",
            )?;
            // Each room's (last seq, epoch), read once per batch and
            // written once at its end: a batch is mostly a few busy rooms.
            let mut rooms: HashMap<&str, (i64, i64)> = HashMap::new();
            for req in batch {
                let (last_seq, epoch) = match rooms.get(req.room.as_str()) {
                    Some(state) => *state,
                    None => {
                        let state = room_state
                            .query_row(params![req.room], |r| {
                                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                            })
                            .optional()?
                            .unwrap_or((0, db_epoch));
                        rooms.insert(&req.room, state);
                        state
                    }
                };
                if !req.client_msg_id.is_empty() {
                    let key = params![req.room, req.user.user_id, req.client_msg_id, since];
                    let held = find_key.query_row(key, |r| r.get::<_, i64>(0)).optional()?;
                    if let Some(seq) = held {
                        let stored = original
                            .query_row(params![req.room, seq], |r| {
                                row_message(r, &req.room, seq as u64, 0)
                            })
                            .optional();
                        let stored = match stored {
                            Ok(stored) => stored,
                            // Damaged on disk: answered from the retry.
                            Err(e) if undecodable(&e) => None,
                            Err(e) => return Err(e),
                        };
                        // Deleted by retention since: the number stands.
                        let mut entry = stored.unwrap_or_else(|| message_of(req, seq as u64));
                        entry.epoch = epoch as u64;
                        appended.push(Appended {
                            entry,
                            duplicate: true,
                        });
                        continue;
                    }
                }
                let seq = last_seq + 1;
                insert.execute(params![
                    req.room,
                    seq,
                    req.user.user_id,
                    req.user.username,
                    req.text,
                    req.at.as_micros_i64(),
                    req.client_msg_id
                ])?;
                rooms.insert(&req.room, (seq, epoch));
                if !req.client_msg_id.is_empty() {
                    keep_key.execute(params![
                        req.room,
                        req.user.user_id,
                        req.client_msg_id,
                        seq,
                        req.at.as_micros_i64()
                    ])?;
                }
                let mut entry = message_of(req, seq as u64);
                entry.epoch = epoch as u64;
                appended.push(Appended {
                    entry,
                    duplicate: false,
                });
            }
            for (room, (last_seq, epoch)) in &rooms {
                set_room.execute(params![room, last_seq, epoch])?;
            }
            let mut login = tx.prepare_cached(
                "INSERT INTO logins (ts_us, user_id, room, peer, outcome) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            // Refused attempts apart, under a retention of their own.
            let mut refused = tx.prepare_cached(
                "INSERT INTO refused_logins (ts_us, user_id, room, peer, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for l in logins {
                let (insert, outcome) = match &l.outcome {
                    Ok(()) => (&mut login, "ok".to_owned()),
                    Err(status) => (&mut refused, status.to_string()),
                };
                insert.execute(params![
                    l.at.as_micros_i64(),
                    l.user_id,
                    l.room,
                    l.peer,
                    outcome
                ])?;
            }
        }
        tx.commit()?;
        Ok(appended)
    }
}

/// The entry an append makes, numbered `seq` (its epoch set by the caller).
fn message_of(req: &AppendRequest, seq: u64) -> ChatMessage {
    ChatMessage {
        user: Some(req.user.clone()),
        message: req.text.clone(),
        room_id: req.room.clone(),
        seq,
        timestamp_us: req.at.as_micros_i64(),
        client_msg_id: req.client_msg_id.clone(),
        ..ChatMessage::default()
    }
}
