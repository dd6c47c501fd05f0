//! Administrators' actions: tombstones, the audit table, and bans.
//!
//! `admin_actions` keeps every action (who, what, whom, why, when) without
//! retention: they are few, and they are the record. `bans` holds who is
//! banned now, read at start-up.

use chat_proto::ChatMessage;
use chat_sansio::chat::AdminAction;
use rusqlite::{params, OptionalExtension};

use super::read::row_message;
use super::SqliteStore;
use crate::backend::{tombstone, AdminRecord};

impl SqliteStore {
    /// Makes entry `seq` of `room` a tombstone; `None` if there is none.
    pub(super) fn delete_entry(
        &mut self,
        room: &str,
        seq: u64,
    ) -> rusqlite::Result<Option<ChatMessage>> {
        let epoch = self.room_state(room)?.epoch;
        let tx = self.db.transaction()?;
        let entry = tx
            .query_row(
                "SELECT user_id, username, text, ts_us, client_msg_id, deleted FROM messages
                 WHERE room = ?1 AND seq = ?2",
                params![room, seq as i64],
                |r| row_message(r, room, seq, epoch),
            )
            .optional()?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE messages SET text = '', client_msg_id = '', deleted = 1
             WHERE room = ?1 AND seq = ?2",
            params![room, seq as i64],
        )?;
        tx.commit()?;
        Ok(Some(tombstone(&entry)))
    }

    /// Records an action; keeps bans.
    pub(super) fn record(&mut self, record: &AdminRecord) -> rusqlite::Result<()> {
        let (action, target) = record.describe();
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT INTO admin_actions (ts_us, by_user, action, target, reason)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                record.at.as_micros_i64(),
                record.by,
                action,
                target,
                record.reason
            ],
        )?;
        match &record.action {
            AdminAction::Ban { user_id } => {
                tx.execute(
                    "INSERT OR REPLACE INTO bans (user_id, ts_us, by_user) VALUES (?1, ?2, ?3)",
                    params![user_id, record.at.as_micros_i64(), record.by],
                )?;
            }
            AdminAction::Unban { user_id } => {
                tx.execute("DELETE FROM bans WHERE user_id = ?1", params![user_id])?;
            }
            _ => {}
        }
        tx.commit()
    }

    /// Who is banned now.
    pub(super) fn banned(&mut self) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT user_id FROM bans ORDER BY user_id")?;
        let ids = stmt.query_map([], |r| r.get(0))?;
        ids.collect()
    }
}
