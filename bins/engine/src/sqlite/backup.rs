//! Backups of a live database: a consistent copy taken by a second
//! connection while the server goes on writing.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::{StoreError, FILE};

/// Copies `dir/chat.db` to `dest` (a new file) as of one moment, and
/// returns the copy's size in bytes.
///
/// The copy is SQLite's `VACUUM INTO` (<https://sqlite.org/lang_vacuum.html#vacuuminto>):
/// one read transaction, so it holds every commit made before it began,
/// including those still only in the `-wal`, and none after, while the
/// server goes on writing (a WAL reader does not block the writer).
/// SQLite does not fsync what `VACUUM INTO` writes, so the copy is written
/// under a temporary name, fsynced, then renamed to `dest`: a `dest` that
/// exists is a whole backup.
pub fn backup(dir: &Path, dest: &Path) -> Result<u64, StoreError> {
    let path = dir.join(FILE);
    let file_error = |path: &Path, source: io::Error| StoreError::BackupFile {
        path: path.to_owned(),
        source,
    };
    if dest.exists() {
        let source = io::Error::new(io::ErrorKind::AlreadyExists, "it exists already");
        return Err(file_error(dest, source));
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let sqlite_error = |source| StoreError::Backup {
        path: path.clone(),
        dest: dest.to_owned(),
        source,
    };
    // Read-write (the -shm of a live WAL database is shared memory all its
    // readers write), but never created: a wrong --data-dir is an error.
    let db = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error)?;
    let _ = std::fs::remove_file(&partial);
    db.execute_batch("PRAGMA busy_timeout = 5000;")
        .and_then(|()| db.execute("VACUUM INTO ?1", [partial.to_string_lossy()]))
        .map_err(sqlite_error)?;
    drop(db);
    let size = File::open(&partial)
        .and_then(|f| {
            f.sync_all()?;
            f.metadata()
        })
        .map_err(|e| file_error(&partial, e))?
        .len();
    std::fs::rename(&partial, dest).map_err(|e| file_error(dest, e))?;
    // The rename is durable once the directory is.
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| file_error(parent, e))?;
    Ok(size)
}
