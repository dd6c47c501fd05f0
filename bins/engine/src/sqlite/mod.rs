//! The SQLite backend: `<data-dir>/chat.db` (rusqlite, bundled). See the
//! README ("Durable history") for the schema and queries.

mod admin;
mod append;
mod backup;
mod error;
mod read;
mod retention;
mod schema;
mod start;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chat_proto::{ChatMessage, HistoryPage};
use chat_sansio::chat::AppendRequest;
use chat_sansio::Time;
use rusqlite::{Connection, OpenFlags};

pub use backup::backup;
pub use error::StoreError;
pub use start::NewDatabase;

use crate::backend::{AdminRecord, Appended, Backend, Login, Retention, RoomState};

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
    /// Rows that could not be decoded, logged once each: (room, seq).
    reported: HashSet<(String, u64)>,
    /// Where retention's walk over the rooms goes on from.
    prune_after: String,
}

impl SqliteStore {
    /// Opens (creating on first run) `dir/chat.db`, refusing to make a new
    /// one where one was ([`NewDatabase::WhereNoneWas`]).
    pub fn open(dir: &Path, retention: Retention) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(dir, retention, NewDatabase::WhereNoneWas)
    }

    /// Opens (creating on first run, or where `new` allows) `dir/chat.db`.
    /// Every problem (a directory that cannot be made, a database that
    /// cannot be written, a full disk, a file that is not a database or is
    /// damaged, a missing database where one was) is an error here, before
    /// serving. Rooms whose numbering is behind their stored messages are
    /// set right, one log line each.
    pub fn open_with(
        dir: &Path,
        retention: Retention,
        new: NewDatabase,
    ) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
        start::check_new(dir, new)?;
        let path = dir.join(FILE);
        let mut db = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| start::classify(&path, e, |path, source| StoreError::Open { path, source }))?;
        // SQLite opens a file it may not write read-only, silently.
        if db.is_readonly("main").unwrap_or(false) {
            return Err(StoreError::ReadOnly { path });
        }
        // WAL with synchronous=FULL: each commit is fsynced, so a message is
        // on disk before anyone is told about it, even across power loss.
        db.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| {
            start::classify(&path, e, |path, source| StoreError::NotADatabase {
                path,
                source,
            })
        })?;
        let report: String = db
            .query_row("PRAGMA quick_check(3)", [], |r| r.get(0))
            .map_err(|e| {
                start::classify(&path, e, |path, source| StoreError::IntegrityCheck {
                    path,
                    source,
                })
            })?;
        if report != "ok" {
            return Err(StoreError::Damaged { path, report });
        }
        let epoch = schema::set_up(&db).map_err(|e| {
            start::classify(&path, e, |path, source| StoreError::Schema { path, source })
        })?;
        // A real write now, not at the first post: taking the write lock
        // alone (`BEGIN IMMEDIATE`) succeeds on read-only files that have a
        // `-wal` beside them.
        let repairs = start::write_and_repair(&mut db, epoch).map_err(|e| {
            start::classify(&path, e, |path, source| StoreError::NotWritable {
                path,
                source,
            })
        })?;
        for r in &repairs {
            let was = r.was.map_or("no row".to_owned(), |w| w.to_string());
            tracing::warn!(
                "{}: room {:?}: last_seq was {was} behind its stored messages; set to {}",
                path.display(),
                r.room,
                r.now
            );
        }
        start::mark(dir, epoch)?;
        Ok(SqliteStore {
            db,
            path,
            retention,
            epoch,
            reported: HashSet::new(),
            prune_after: String::new(),
        })
    }

    /// A read-only connection to the same database, for reads on a thread
    /// of their own (WAL lets them run beside the writer's commits, each
    /// seeing the last commit before it began).
    fn open_reader(&self) -> Result<SqliteStore, StoreError> {
        let db = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|db| db.execute_batch("PRAGMA busy_timeout = 5000;").map(|()| db))
        .map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        Ok(SqliteStore {
            db,
            path: self.path.clone(),
            retention: self.retention,
            epoch: self.epoch,
            reported: HashSet::new(),
            prune_after: String::new(),
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

    fn delete(&mut self, room: &str, seq: u64) -> Result<Option<ChatMessage>, StoreError> {
        self.delete_entry(room, seq)
            .map_err(|source| StoreError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn record_admin(&mut self, record: &AdminRecord) -> Result<(), StoreError> {
        self.record(record).map_err(|source| StoreError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn bans(&mut self) -> Result<Vec<String>, StoreError> {
        self.banned().map_err(|e| self.read(e))
    }

    fn reader(&self) -> Result<Option<SqliteStore>, StoreError> {
        self.open_reader().map(Some)
    }

    fn prune(&mut self, now: Time) -> Result<bool, StoreError> {
        self.delete_old(now).map_err(|source| StoreError::Prune {
            path: self.path.clone(),
            source,
        })
    }
}
