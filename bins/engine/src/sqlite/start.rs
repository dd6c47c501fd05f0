//! The start-up checks that `SqliteStore::open` runs before serving: no new
//! database where one was before, a real write, each room's numbering
//! reconciled with its stored messages.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, ErrorCode};

use super::{StoreError, FILE};

/// The file beside `chat.db` that says a database lived here, holding its
/// epoch. It outlives the `-wal` and `-shm` files, which SQLite deletes when
/// the last connection closes cleanly.
pub(super) const MARKER: &str = "chat.db.epoch";

/// Whether `open` may make a new, empty `chat.db`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NewDatabase {
    /// Only where there is no trace of an earlier one (no `-wal`, `-shm`
    /// or marker file beside it): a missing or empty `chat.db` where one
    /// was is refused, since a new one restarts every room's numbering in
    /// a new epoch.
    #[default]
    WhereNoneWas,
    /// Even where one was (the operator's explicit choice); the earlier
    /// `-wal` and `-shm` files are set aside, renamed, not deleted.
    Allowed,
}

/// A room whose `rooms.last_seq` was missing or behind its stored messages,
/// set right at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Repair {
    /// The room.
    pub room: String,
    /// Its `last_seq` before (`None`: no row).
    pub was: Option<u64>,
    /// The newest stored seq, its `last_seq` now.
    pub now: u64,
}

/// Refuses to make a new database where one was, unless allowed; when
/// allowed, sets the earlier one's `-wal` and `-shm` aside so that SQLite
/// does not replay them into the new file.
pub(super) fn check_new(dir: &Path, allow: NewDatabase) -> Result<(), StoreError> {
    let path = dir.join(FILE);
    let empty = std::fs::metadata(&path).map_or(true, |m| m.len() == 0 && m.is_file());
    if !empty {
        return Ok(());
    }
    let found: Vec<PathBuf> = [format!("{FILE}-wal"), format!("{FILE}-shm"), MARKER.into()]
        .iter()
        .map(|name| dir.join(name))
        .filter(|p| p.exists())
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    if allow == NewDatabase::WhereNoneWas {
        return Err(StoreError::NewDatabaseRefused { path, found });
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for old in found {
        if old.ends_with(MARKER) {
            continue;
        }
        let mut aside = old.clone().into_os_string();
        aside.push(format!(".set-aside-{stamp}"));
        std::fs::rename(&old, &aside).map_err(|source| StoreError::SetAside {
            path: old.clone(),
            source,
        })?;
        tracing::warn!(
            "{}: a new database as allowed; the earlier {} is now {}",
            dir.display(),
            old.display(),
            PathBuf::from(aside).display()
        );
    }
    Ok(())
}

/// The error for `source` at start-up: a full disk or a read-only database
/// whatever the step, else `otherwise`.
pub(super) fn classify(
    path: &Path,
    source: rusqlite::Error,
    otherwise: impl FnOnce(PathBuf, rusqlite::Error) -> StoreError,
) -> StoreError {
    let path = path.to_owned();
    match source.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::DiskFull { path, source },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { path },
        _ => otherwise(path, source),
    }
}

/// In one transaction: a real write (the time of this start in `meta`), so
/// that a database SQLite can only read fails now rather than at the first
/// post, and each room's `last_seq` brought up to its newest stored message.
pub(super) fn write_and_repair(db: &mut Connection, epoch: u64) -> rusqlite::Result<Vec<Repair>> {
    let tx = db.transaction()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('opened_us', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![now],
    )?;
    let mut repairs = Vec::new();
    {
        // Each room's newest seq by a skip-scan of the primary key (one
        // b-tree descent per room), not a scan of every message.
        let mut newest = tx.prepare(
            "WITH RECURSIVE r(room) AS (
                 SELECT min(room) FROM messages
                 UNION ALL
                 SELECT (SELECT min(room) FROM messages WHERE room > r.room) FROM r
                 WHERE r.room IS NOT NULL
             )
             SELECT r.room, (SELECT max(seq) FROM messages m WHERE m.room = r.room),
                    (SELECT last_seq FROM rooms WHERE rooms.room = r.room)
             FROM r WHERE r.room IS NOT NULL",
        )?;
        let mut rows = newest.query([])?;
        while let Some(row) = rows.next()? {
            let room: String = row.get(0)?;
            let max: i64 = row.get(1)?;
            let last: Option<i64> = row.get(2)?;
            if last.is_some_and(|last| last >= max) {
                continue;
            }
            repairs.push(Repair {
                room,
                was: last.map(|l| l as u64),
                now: max as u64,
            });
        }
    }
    for repair in &repairs {
        tx.execute(
            "INSERT INTO rooms (room, last_seq, epoch) VALUES (?1, ?2, ?3)
             ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq",
            params![repair.room, repair.now as i64, epoch as i64],
        )?;
    }
    tx.commit()?;
    Ok(repairs)
}

/// Writes the marker file with `epoch` unless it holds it already.
pub(super) fn mark(dir: &Path, epoch: u64) -> Result<(), StoreError> {
    let marker = dir.join(MARKER);
    let line = format!("{epoch}\n");
    if std::fs::read_to_string(&marker).is_ok_and(|held| held == line) {
        return Ok(());
    }
    std::fs::write(&marker, line).map_err(|source| StoreError::Marker {
        path: marker,
        source,
    })
}
