//! The SQLite backend: `<data-dir>/chat.db` (rusqlite, bundled). See the
//! README ("Durable history") for the schema and queries.

mod append;
mod error;
mod read;
mod retention;
mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use chat_proto::{ChatMessage, HistoryPage};
use chat_sansio::chat::AppendRequest;
use chat_sansio::Time;
use rusqlite::{Connection, OpenFlags};

pub use error::StoreError;

use crate::backend::{Appended, Backend, Login, Retention, RoomState};

/// The database file's name in the data directory.
const FILE: &str = "chat.db";

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
        let epoch = schema::set_up(&db).map_err(|source| StoreError::Schema {
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
        self.read_range(room, after, up_to, limit)
    }

    fn page(&mut self, room: &str, before: u64, limit: u32) -> Result<HistoryPage, StoreError> {
        self.read_page(room, before, limit)
    }

    fn prune(&mut self, now: Time) -> Result<(), StoreError> {
        self.delete_old(now).map_err(|source| StoreError::Prune {
            path: self.path.clone(),
            source,
        })
    }
}
