//! The SQLite backend: `<data-dir>/chat.db` (rusqlite, bundled). See the
//! README ("Durable history") for the schema and queries.

mod error;

use std::path::{Path, PathBuf};

use chat_proto::{ChatMessage, HistoryPage, User};
use chat_sansio::chat::PageBuilder;
use chat_sansio::Time;
use rusqlite::{params, Connection, OpenFlags};

pub use error::StoreError;

use crate::backend::{Backend, Login, Retention};

/// The database file's name in the data directory.
const FILE: &str = "chat.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rooms (
    room     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    room     TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    user_id  TEXT    NOT NULL,
    username TEXT    NOT NULL,
    text     TEXT    NOT NULL,
    ts_us    INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
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

/// The chat's history and login records in one SQLite database.
pub struct SqliteStore {
    db: Connection,
    path: PathBuf,
    retention: Retention,
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
        db.execute_batch(SCHEMA)
            .map_err(|source| StoreError::Schema {
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

    fn write_batch(&mut self, messages: &[ChatMessage], logins: &[Login]) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (room, seq, user_id, username, text, ts_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut room = tx.prepare_cached(
                "INSERT INTO rooms (room, last_seq) VALUES (?1, ?2)
                 ON CONFLICT (room) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            )?;
            for m in messages {
                let user = m.user.clone().unwrap_or_default();
                insert.execute(params![
                    m.room_id,
                    m.seq as i64,
                    user.user_id,
                    user.username,
                    m.message,
                    m.timestamp_us
                ])?;
                room.execute(params![m.room_id, m.seq as i64])?;
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
        tx.commit()
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
        Ok(())
    }
}

impl Backend for SqliteStore {
    type Error = StoreError;

    fn rooms(&mut self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .db
            .prepare("SELECT room, last_seq FROM rooms")
            .map_err(|e| self.read(e))?;
        let rooms = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .and_then(|rows| rows.collect::<Result<_, _>>());
        rooms.map_err(|e| self.read(e))
    }

    fn page(&mut self, room: &str, before: u64, limit: u32) -> Result<HistoryPage, StoreError> {
        let before = if before == 0 {
            i64::MAX
        } else {
            before.min(i64::MAX as u64) as i64
        };
        let mut stmt = self
            .db
            .prepare_cached(
                "SELECT seq, user_id, username, text, ts_us FROM messages
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
            let message = (|| {
                Ok::<_, rusqlite::Error>(ChatMessage {
                    user: Some(User {
                        user_id: row.get(1)?,
                        username: row.get(2)?,
                        room_id: String::new(),
                    }),
                    message: row.get(3)?,
                    room_id: room.to_owned(),
                    seq: row.get::<_, i64>(0)? as u64,
                    timestamp_us: row.get(4)?,
                    presence: 0,
                })
            })();
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

    fn commit(&mut self, messages: &[ChatMessage], logins: &[Login]) -> Result<(), StoreError> {
        self.write_batch(messages, logins)
            .map_err(|source| StoreError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn prune(&mut self, now: Time) -> Result<(), StoreError> {
        self.delete_old(now).map_err(|source| StoreError::Prune {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use chat_sansio::chat::Chat;

    use super::*;

    fn message(room: &str, seq: u64, text: &str) -> ChatMessage {
        ChatMessage {
            user: Some(User {
                user_id: "u".into(),
                username: "U".into(),
                room_id: String::new(),
            }),
            message: text.into(),
            room_id: room.into(),
            seq,
            timestamp_us: 1_000 + seq as i64,
            presence: 0,
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("chat-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn seqs(page: &HistoryPage) -> Vec<u64> {
        page.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn messages_survive_reopening_and_page_back() {
        let d = dir("reopen");
        let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
        let batch: Vec<_> = (1..=5).map(|i| message("r", i, &format!("m{i}"))).collect();
        s.commit(&batch, &[]).unwrap();
        drop(s);
        let mut s = SqliteStore::open(&d, Retention::default()).unwrap();
        let page = s.page("r", 0, 2).unwrap();
        assert_eq!(seqs(&page), [4, 5]);
        assert!(page.more);
        let page = s.page("r", 4, 10).unwrap();
        assert_eq!(seqs(&page), [1, 2, 3]);
        assert!(!page.more);
        assert_eq!(page.messages[0], message("r", 1, "m1"));
        assert_eq!(s.rooms().unwrap(), [("r".to_owned(), 5)]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn retention_keeps_the_newest_per_room_and_the_numbering() {
        let d = dir("retention");
        let retention = Retention {
            messages_per_room: 3,
            max_age: None,
            logins: 10,
        };
        let mut s = SqliteStore::open(&d, retention).unwrap();
        let batch: Vec<_> = (1..=10).map(|i| message("r", i, "x")).collect();
        s.commit(&batch, &[]).unwrap();
        s.prune(Time::from_micros(2_000)).unwrap();
        let page = s.page("r", 0, 100).unwrap();
        assert_eq!(seqs(&page), [8, 9, 10]);
        assert!(!page.more);
        assert_eq!(s.rooms().unwrap(), [("r".to_owned(), 10)]);
        let mut chat = Chat::default();
        assert_eq!(s.restore_into(&mut chat, 50).unwrap(), 1);
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
        s.commit(&[], &[login("a", Ok(())), login("b", Err(refused.clone()))])
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
