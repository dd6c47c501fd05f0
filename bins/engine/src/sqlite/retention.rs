//! Retention: what the rules no longer keep is deleted.

use chat_sansio::Time;
use rusqlite::params;

use super::SqliteStore;

impl SqliteStore {
    pub(super) fn delete_old(&mut self, now: Time) -> rusqlite::Result<()> {
        let keep = self.retention.messages_per_room.min(i64::MAX as u64) as i64;
        self.db.execute(
            "DELETE FROM messages WHERE seq <= (SELECT last_seq FROM rooms WHERE rooms.room = messages.room) - ?1",
            params![keep],
        )?;
        if let Some(age) = self.retention.max_age {
            let cutoff = now
                .as_micros_i64()
                .saturating_sub(age.as_micros().min(i64::MAX as u128) as i64);
            self.db
                .execute("DELETE FROM messages WHERE ts_us < ?1", params![cutoff])?;
            self.db
                .execute("DELETE FROM logins WHERE ts_us < ?1", params![cutoff])?;
            self.db.execute(
                "DELETE FROM refused_logins WHERE ts_us < ?1",
                params![cutoff],
            )?;
        }
        // Each trail keeps its newest rows: a flood of refusals pushes out
        // older refusals, never a successful login.
        for (table, keep) in [
            ("logins", self.retention.logins),
            ("refused_logins", self.retention.refused_logins),
        ] {
            let keep = keep.min(i64::MAX as u64) as i64;
            self.db.execute(
                &format!("DELETE FROM {table} WHERE id <= (SELECT max(id) FROM {table}) - ?1"),
                params![keep],
            )?;
        }
        let window = self
            .retention
            .dedupe_window
            .as_micros()
            .min(i64::MAX as u128) as i64;
        self.db.execute(
            "DELETE FROM dedupe WHERE ts_us < ?1",
            params![now.as_micros_i64().saturating_sub(window)],
        )?;
        Ok(())
    }
}
