//! The SQLite backend: `<data-dir>/chat.db` (rusqlite, bundled). See the
//! README ("Durable history") for the schema and queries.

mod error;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chat_proto::{ChatMessage, HistoryPage, User};
use chat_sansio::chat::{AppendRequest, PageBuilder};
use chat_sansio::limits::MAX_PAGE_BYTES;
use chat_sansio::Time;
use prost::Message as _;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

pub use error::StoreError;

use crate::backend::{Appended, Backend, Login, Retention, RoomState};

/// The database file's name in the data directory.
const FILE: &str = "chat.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rooms (
    room     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    epoch    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    room          TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    user_id       TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    text          TEXT    NOT NULL,
    ts_us         INTEGER NOT NULL,
    client_msg_id TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedupe (
    room          TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    client_msg_id TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    ts_us         INTEGER NOT NULL,
    PRIMARY KEY (room, user_id, client_msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_by_time ON dedupe (ts_us);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (ts_us);
CREATE TABLE IF NOT EXISTS logins (
    id      INTEGER PRIMARY KEY,
    ts_us   INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    peer    TEXT,
    outcome TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS logins_by_time ON logins (ts_us);
";

/// Columns added since the first schema, for databases made before them:
/// (table, column, definition).
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("rooms", "epoch", "INTEGER NOT NULL DEFAULT 0"),
    ("messages", "client_msg_id", "TEXT NOT NULL DEFAULT ''"),
];

/// The chat's logs, dedupe keys and login records in one SQLite database.
pub struct SqliteStore {
    db: Connection,
    path: PathBuf,
    retention: Retention,
    /// The epoch of rooms first used in this database: set when the
    /// database is made, so a new database (a lost or deleted one) gives
    /// every room a new epoch.
    epoch: u64,
}

impl SqliteStore {
    /// Opens (creating on first run) `dir/chat.db`. Every problem (a
    /// directory that cannot be made or written, a file that is not a
    /// database or is damaged) is an error here, before serving.
    pub fn open(dir: &Path, retention: Retention) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE);
        let db = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        // WAL with synchronous=FULL: each commit is fsynced, so a message is
        // on disk before anyone is told about it, even across power loss.
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|source| StoreError::NotADatabase {
            path: path.clone(),
            source,
        })?;
        let report: String = db
            .query_row("PRAGMA quick_check(3)", [], |r| r.get(0))
            .map_err(|source| StoreError::IntegrityCheck {
                path: path.clone(),
                source,
            })?;
        if report != "ok" {
            return Err(StoreError::Damaged { path, report });
        }
        let epoch = set_up(&db).map_err(|source| StoreError::Schema {
            path: path.clone(),
            source,
        })?;
        // Prove the directory is writable now rather than at the first post.
        db.execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(|source| StoreError::NotWritable {
                path: path.clone(),
                source,
            })?;
        Ok(SqliteStore {
            db,
            path,
            retention,
            epoch,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Read {
            path: self.path.clone(),
            source,
        }
    }

    fn write_batch(
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
                "SELECT user_id, username, text, ts_us, client_msg_id FROM messages
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
                            .optional()?;
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
            for l in logins {
                let outcome = match &l.outcome {
                    Ok(()) => "ok".to_owned(),
                    Err(status) => status.to_string(),
                };
                login.execute(params![
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

    fn delete_old(&mut self, now: Time) -> rusqlite::Result<()> {
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
        }
        let keep = self.retention.logins.min(i64::MAX as u64) as i64;
        self.db.execute(
            "DELETE FROM logins WHERE id <= (SELECT max(id) FROM logins) - ?1",
            params![keep],
        )?;
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

    /// The oldest seq of `room` still stored, or `last_seq + 1`.
    fn first_seq(&self, room: &str, last_seq: u64) -> rusqlite::Result<u64> {
        let first: Option<i64> = self.db.query_row(
            "SELECT min(seq) FROM messages WHERE room = ?1",
            params![room],
            |r| r.get(0),
        )?;
        Ok(first.map_or(last_seq + 1, |f| f as u64))
    }

    fn room_state(&self, room: &str) -> rusqlite::Result<RoomState> {
        let state: Option<(i64, i64)> = self
            .db
            .query_row(
                "SELECT last_seq, epoch FROM rooms WHERE room = ?1",
                params![room],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (last_seq, epoch) = match state {
            Some((last, epoch)) => (last as u64, epoch as u64),
            None => (0, self.epoch),
        };
        Ok(RoomState {
            epoch,
            last_seq,
            first_seq: self.first_seq(room, last_seq)?,
        })
    }
}

impl Backend for SqliteStore {
    type Error = StoreError;

    fn open_room(&mut self, room: &str) -> Result<RoomState, StoreError> {
        self.room_state(room).map_err(|e| self.read(e))
    }

    fn append(
        &mut self,
        batch: &[AppendRequest],
        logins: &[Login],
        now: Time,
    ) -> Result<Vec<Appended>, StoreError> {
        self.write_batch(batch, logins, now)
            .map_err(|source| StoreError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn range(
        &mut self,
        room: &str,
        after: u64,
        up_to: u64,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, u64), StoreError> {
        let state = self.room_state(room).map_err(|e| self.read(e))?;
        let mut stmt = self
            .db
            .prepare_cached(
                "SELECT seq, user_id, username, text, ts_us, client_msg_id FROM messages
                 WHERE room = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
            )
            .map_err(|e| self.read(e))?;
        let after = after.min(i64::MAX as u64) as i64;
        let up_to = up_to.min(i64::MAX as u64) as i64;
        let mut rows = stmt
            .query(params![room, after, up_to, i64::from(limit)])
            .map_err(|e| self.read(e))?;
        let mut entries = Vec::new();
        let mut bytes = 0;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    drop(rows);
                    return Err(self.read(e));
                }
            };
            let seq = row.get::<_, i64>(0).unwrap_or(0) as u64;
            let entry = match row_message_at(row, room, seq, state.epoch) {
                Ok(entry) => entry,
                Err(e) => {
                    drop(rows);
                    return Err(self.read(e));
                }
            };
            bytes += entry.encoded_len();
            if !entries.is_empty() && bytes > MAX_PAGE_BYTES {
                break;
            }
            entries.push(entry);
        }
        drop(rows);
        Ok((entries, state.first_seq))
    }

    fn page(&mut self, room: &str, before: u64, limit: u32) -> Result<HistoryPage, StoreError> {
        let before = if before == 0 {
            i64::MAX
        } else {
            before.min(i64::MAX as u64) as i64
        };
        let epoch = self.room_state(room).map_err(|e| self.read(e))?.epoch;
        let mut stmt = self
            .db
            .prepare_cached(
                "SELECT seq, user_id, username, text, ts_us, client_msg_id FROM messages
                 WHERE room = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
            )
            .map_err(|e| self.read(e))?;
        // Rows come newest first and are read only as long as the page
        // has room (count and bytes): a page is all one call holds.
        let mut page = PageBuilder::new(limit as usize);
        let mut rows = stmt
            .query(params![room, before, i64::from(limit) + 1])
            .map_err(|e| self.read(e))?;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.read(e)),
            };
            let seq = row.get::<_, i64>(0).unwrap_or(0) as u64;
            let message = row_message_at(row, room, seq, epoch);
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    drop(rows);
                    return Err(self.read(e));
                }
            };
            if !page.push(message) {
                break;
            }
        }
        drop(rows);
        let (messages, more) = page.finish();
        Ok(HistoryPage {
            room_id: room.to_owned(),
            messages,
            more,
        })
    }

    fn prune(&mut self, now: Time) -> Result<(), StoreError> {
        self.delete_old(now).map_err(|source| StoreError::Prune {
            path: self.path.clone(),
            source,
        })
    }
}

/// Makes the tables (and the columns added since), and returns the
/// database's epoch, set the first time.
fn set_up(db: &Connection) -> rusqlite::Result<u64> {
    db.execute_batch(SCHEMA)?;
    for (table, column, definition) in ADDED_COLUMNS {
        let mut has = false;
        let mut stmt = db.prepare(&format!("PRAGMA table_info({table})"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if row.get::<_, String>(1)? == *column {
                has = true;
            }
        }
        if !has {
            db.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as i64);
    db.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?1)",
        params![now],
    )?;
    db.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|e| e as u64)
}

/// An entry from a row of `seq, user_id, username, text, ts_us,
/// client_msg_id` (starting at column 0).
fn row_message_at(
    row: &rusqlite::Row<'_>,
    room: &str,
    seq: u64,
    epoch: u64,
) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        user: Some(User {
            user_id: row.get(1)?,
            username: row.get(2)?,
            room_id: String::new(),
        }),
        message: row.get(3)?,
        room_id: room.to_owned(),
        seq,
        timestamp_us: row.get(4)?,
        client_msg_id: row.get(5)?,
        epoch,
        ..ChatMessage::default()
    })
}

/// An entry from a row of `user_id, username, text, ts_us, client_msg_id`.
fn row_message(
    row: &rusqlite::Row<'_>,
    room: &str,
    seq: u64,
    epoch: u64,
) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        user: Some(User {
            user_id: row.get(0)?,
            username: row.get(1)?,
            room_id: String::new(),
        }),
        message: row.get(2)?,
        room_id: room.to_owned(),
        seq,
        timestamp_us: row.get(3)?,
        client_msg_id: row.get(4)?,
        epoch,
        ..ChatMessage::default()
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn append(room: &str, text: &str, key: &str, at: i64) -> AppendRequest {
        AppendRequest {
            id: 0,
            room: room.into(),
            user: User {
                user_id: "u".into(),
                username: "U".into(),
                room_id: String::new(),
            },
            text: text.into(),
            client_msg_id: key.into(),
            at: Time::from_micros(at as u64),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("chat-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
        messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn entries_are_numbered_survive_reopening_and_page_back() {
        let d = dir("reopen");
        let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
        let fresh = s.open_room("r").unwrap();
        assert_eq!((fresh.last_seq, fresh.first_seq), (0, 1));
        let batch: Vec<_> = (1..=5)
            .map(|i| append("r", &format!("m{i}"), "", i))
            .collect();
        let appended = s.append(&batch, &[], Time::from_micros(10)).unwrap();
        assert_eq!(
            seqs(&appended.iter().map(|a| a.entry.clone()).collect::<Vec<_>>()),
            [1, 2, 3, 4, 5]
        );
        assert!(appended
            .iter()
            .all(|a| a.entry.epoch == fresh.epoch && !a.duplicate));
        drop(s);
        let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
        let state = s.open_room("r").unwrap();
        assert_eq!(
            (state.epoch, state.last_seq, state.first_seq),
            (fresh.epoch, 5, 1)
        );
        let page = s.page("r", 0, 2).unwrap();
        assert_eq!(seqs(&page.messages), [4, 5]);
        assert!(page.more);
        let page = s.page("r", 4, 10).unwrap();
        assert_eq!(seqs(&page.messages), [1, 2, 3]);
        assert!(!page.more);
        assert_eq!(page.messages[0].message, "m1");
        let (range, first) = s.range("r", 2, 4, 10).unwrap();
        assert_eq!((seqs(&range), first), (vec![3, 4], 1));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_retry_within_the_window_gets_the_original() {
        let d = dir("dedupe");
        let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
        let now = Time::from_micros(1_000_000);
        let first = s
            .append(&[append("r", "hi", "k1", 1_000_000)], &[], now)
            .unwrap();
        // The retry is in the same batch as another post, after a restart.
        drop(s);
        let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
        let batch = [
            append("r", "other", "", 2_000_000),
            append("r", "hi", "k1", 2_000_000),
        ];
        let again = s.append(&batch, &[], now).unwrap();
        assert_eq!(first[0].entry.seq, 1);
        assert_eq!((again[0].entry.seq, again[0].duplicate), (2, false));
        assert_eq!((again[1].entry.seq, again[1].duplicate), (1, true));
        assert_eq!(again[1].entry.message, "hi");
        assert_eq!(s.open_room("r").unwrap().last_seq, 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn retention_keeps_the_newest_per_room_and_the_numbering() {
        let d = dir("retention");
        let retention = Retention {
            messages_per_room: 3,
            max_age: None,
            logins: 10,
            ..Retention::default()
        };
        let mut s = SqliteStore::open(&d, retention).unwrap();
        let batch: Vec<_> = (1..=10).map(|i| append("r", "x", "", i)).collect();
        s.append(&batch, &[], Time::from_micros(10)).unwrap();
        s.prune(Time::from_micros(2_000)).unwrap();
        let page = s.page("r", 0, 100).unwrap();
        assert_eq!(seqs(&page.messages), [8, 9, 10]);
        assert!(!page.more);
        let state = s.open_room("r").unwrap();
        assert_eq!((state.last_seq, state.first_seq), (10, 8));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let d = dir("garbage");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("chat.db"), vec![0x42u8; 8192]).unwrap();
        let err = SqliteStore::open(&d, Retention::default())
            .err()
            .expect("must fail");
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
        assert_eq!(err.path(), d.join("chat.db"));
        let line = err.to_string();
        assert!(
            line.starts_with(&format!(
                "{}: chat.db is not a usable SQLite database: ",
                d.display()
            )),
            "{line}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_a_clear_error() {
        let d = dir("blocked");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("file"), b"x").unwrap();
        let data = d.join("file").join("data");
        let err = SqliteStore::open(&data, Retention::default())
            .err()
            .expect("must fail");
        assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
        assert!(
            err.to_string().starts_with(&format!(
                "{}: cannot create the data directory: ",
                data.display()
            )),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn logins_are_recorded_with_their_outcome() {
        let d = dir("logins");
        let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
        let login = |user: &str, outcome| Login {
            user_id: user.into(),
            room: "r".into(),
            peer: Some("127.0.0.1:1".into()),
            outcome,
            at: Time::from_micros(5),
        };
        let refused = chat_sansio::Status::new(chat_sansio::Code::Unauthenticated, "no");
        s.append(
            &[],
            &[login("a", Ok(())), login("b", Err(refused.clone()))],
            Time::from_micros(5),
        )
        .unwrap();
        let rows: Vec<(String, String)> =
            s.db.prepare("SELECT user_id, outcome FROM logins ORDER BY id")
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(
            rows,
            [
                ("a".to_owned(), "ok".to_owned()),
                ("b".to_owned(), refused.to_string())
            ]
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
