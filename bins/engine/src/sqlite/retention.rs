//! Retention: what the rules no longer keep is deleted, a bounded amount
//! at a time.
//!
//! Retention runs on the writer's connection between commits, so each run
//! must take milliseconds however large the database: every statement
//! deletes at most [`BATCH`] rows found through a key or an index (never a
//! scan of a table; `tests::retention_never_scans_a_table` checks the
//! plans, so a SQLite upgrade that changes one fails the tests), and the
//! per-room rule walks [`ROOMS_PER_RUN`] rooms a run. A run that had more
//! to do says so, and the writer runs it again soon.

use chat_sansio::Time;
use rusqlite::params;

use super::SqliteStore;

/// Most rows one statement deletes: a few milliseconds of SQLite's work
/// with 1 KB messages (a run of 1,000 held a waiting commit up to 24 ms on a
/// 5 GB database; see the README's "Durable history").
const BATCH: i64 = 250;

/// Rooms whose per-room rule one run applies (one key lookup each).
const ROOMS_PER_RUN: i64 = 256;

/// The retention statements, each deleting at most `BATCH` (`?2`) rows.
pub(super) const DELETES: [&str; 7] = [
    // ?1: the room, ?2: the batch, ?3: the last seq to delete.
    "DELETE FROM messages WHERE room = ?1 AND seq IN
         (SELECT seq FROM messages WHERE room = ?1 AND seq <= ?3 ORDER BY seq LIMIT ?2)",
    // ?1: the cutoff time.
    "DELETE FROM messages WHERE (room, seq) IN
         (SELECT room, seq FROM messages WHERE ts_us < ?1 LIMIT ?2)",
    "DELETE FROM logins WHERE id IN (SELECT id FROM logins WHERE ts_us < ?1 LIMIT ?2)",
    "DELETE FROM refused_logins WHERE id IN
         (SELECT id FROM refused_logins WHERE ts_us < ?1 LIMIT ?2)",
    // ?1: how many to keep.
    "DELETE FROM logins WHERE id IN (SELECT id FROM logins
         WHERE id <= (SELECT max(id) FROM logins) - ?1 ORDER BY id LIMIT ?2)",
    "DELETE FROM refused_logins WHERE id IN (SELECT id FROM refused_logins
         WHERE id <= (SELECT max(id) FROM refused_logins) - ?1 ORDER BY id LIMIT ?2)",
    // ?1: the oldest key time kept.
    "DELETE FROM dedupe WHERE (room, user_id, client_msg_id) IN
         (SELECT room, user_id, client_msg_id FROM dedupe WHERE ts_us < ?1 LIMIT ?2)",
];

impl SqliteStore {
    /// One run of retention; true if it has more to delete.
    pub(super) fn delete_old(&mut self, now: Time) -> rusqlite::Result<bool> {
        let mut more = self.per_room()?;
        let full = |deleted: usize| deleted as i64 >= BATCH;
        if let Some(age) = self.retention.max_age {
            let cutoff = now
                .as_micros_i64()
                .saturating_sub(age.as_micros().min(i64::MAX as u128) as i64);
            for sql in &DELETES[1..4] {
                more |= full(
                    self.db
                        .prepare_cached(sql)?
                        .execute(params![cutoff, BATCH])?,
                );
            }
        }
        for (sql, keep) in [
            (DELETES[4], self.retention.logins),
            (DELETES[5], self.retention.refused_logins),
        ] {
            let keep = keep.min(i64::MAX as u64) as i64;
            more |= full(self.db.prepare_cached(sql)?.execute(params![keep, BATCH])?);
        }
        let window = self
            .retention
            .dedupe_window
            .as_micros()
            .min(i64::MAX as u128) as i64;
        let oldest = now.as_micros_i64().saturating_sub(window);
        more |= full(
            self.db
                .prepare_cached(DELETES[6])?
                .execute(params![oldest, BATCH])?,
        );
        Ok(more)
    }

    /// The newest `messages_per_room` of each room are kept: the next
    /// `ROOMS_PER_RUN` rooms after where the last run stopped; true if a
    /// room had more to delete or the walk has not come round.
    fn per_room(&mut self) -> rusqlite::Result<bool> {
        let keep = self.retention.messages_per_room.min(i64::MAX as u64) as i64;
        let rooms: Vec<(String, i64)> = self
            .db
            .prepare_cached(
                "SELECT room, last_seq FROM rooms WHERE room > ?1 ORDER BY room LIMIT ?2",
            )?
            .query_map(params![self.prune_after, ROOMS_PER_RUN], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        // A walk that reached the last room starts over next run.
        let mut more = rooms.len() as i64 == ROOMS_PER_RUN;
        self.prune_after = match rooms.last() {
            Some((room, _)) if more => room.clone(),
            _ => String::new(),
        };
        let mut delete = self.db.prepare_cached(DELETES[0])?;
        for (room, last_seq) in &rooms {
            let up_to = last_seq - keep;
            if up_to > 0 {
                more |= delete.execute(params![room, BATCH, up_to])? as i64 >= BATCH;
            }
        }
        Ok(more)
    }
}

#[cfg(test)]
mod tests {
    use super::DELETES;

    /// Every retention statement finds its rows through a key or an index:
    /// the plans name no full scan of a table (a SQLite upgrade that
    /// changes that fails here, not in an operator's stall).
    #[test]
    fn retention_never_scans_a_table() {
        let dir = std::env::temp_dir().join(format!("chat-plans-{}", std::process::id()));
        let store = super::SqliteStore::open(&dir, crate::Retention::default()).unwrap();
        for sql in DELETES {
            let plan: Vec<String> = store
                .db
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params_for(sql), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            // A SCAN walks a whole table or index (the old per-room rule's
            // plan was `SCAN messages USING COVERING INDEX ...`: 1.5 s on a
            // 470 MB database); every step must be a SEARCH.
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN")),
                "a full scan in {sql:?}: {plan:#?}"
            );
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Placeholder values for a statement's parameters.
    fn params_for(sql: &str) -> rusqlite::ParamsFromIter<Vec<i64>> {
        let n = if sql.contains("?3") { 3 } else { 2 };
        rusqlite::params_from_iter(vec![1; n])
    }
}
