//! What can go wrong with the SQLite store, and where.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why the SQLite store cannot be opened, read or written. Each names the
/// file (or the directory) and carries SQLite's or the system's error; the
/// one-line `Display` is what operators see, so it includes the source's
/// message too.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created.
    CreateDir {
        /// The data directory.
        dir: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The database file could not be opened or created.
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file is not a SQLite database, or not one SQLite can use.
    NotADatabase {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// SQLite's integrity check could not run.
    IntegrityCheck {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// SQLite's integrity check found damage.
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What `quick_check` reported, one line per problem.
        report: String,
    },
    /// The tables could not be created.
    Schema {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database cannot be written (a read-only file or directory, a
    /// full disk, a lock held elsewhere).
    NotWritable {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database can only be read: a read-only file (or `-wal`, `-shm`),
    /// directory or mount.
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// The disk (or the file system's quota) is full.
    DiskFull {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// `chat.db` is missing or empty where files show one was: a new one
    /// would restart every room's numbering in a new epoch, so it is made
    /// only when the operator says so.
    NewDatabaseRefused {
        /// The database file.
        path: PathBuf,
        /// The files that show a database was there.
        found: Vec<PathBuf>,
    },
    /// An earlier database's `-wal` or `-shm` could not be renamed aside.
    SetAside {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The marker file beside the database could not be written.
    Marker {
        /// The marker file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A backup could not be taken.
    Backup {
        /// The database file.
        path: PathBuf,
        /// Where the copy was to go.
        dest: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A backup's copy could not be made durable or put in place.
    BackupFile {
        /// The copy.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Rooms or messages could not be read.
    Read {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A batch could not be committed; none of it is stored.
    Write {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The retention rules could not be applied.
    Prune {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// The file (or, for [`StoreError::CreateDir`], the directory) concerned.
    pub fn path(&self) -> &Path {
        match self {
            StoreError::CreateDir { dir, .. } => dir,
            StoreError::Open { path, .. }
            | StoreError::NotADatabase { path, .. }
            | StoreError::IntegrityCheck { path, .. }
            | StoreError::Damaged { path, .. }
            | StoreError::Schema { path, .. }
            | StoreError::NotWritable { path, .. }
            | StoreError::Read { path, .. }
            | StoreError::Write { path, .. }
            | StoreError::Prune { path, .. }
            | StoreError::ReadOnly { path }
            | StoreError::DiskFull { path, .. }
            | StoreError::NewDatabaseRefused { path, .. }
            | StoreError::SetAside { path, .. }
            | StoreError::Marker { path, .. }
            | StoreError::Backup { path, .. }
            | StoreError::BackupFile { path, .. } => path,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Start-up errors read "<data dir>: <file> ...", as operators name
        // the directory on the command line.
        let path = self.path();
        let dir = path.parent().unwrap_or(Path::new("")).display();
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        match self {
            StoreError::CreateDir { source, .. } => write!(
                f,
                "{}: cannot create the data directory: {source}",
                path.display()
            ),
            StoreError::Open { source, .. } => write!(f, "{dir}: cannot open {file}: {source}"),
            StoreError::NotADatabase { source, .. } => {
                write!(f, "{dir}: {file} is not a usable SQLite database: {source}")
            }
            StoreError::IntegrityCheck { source, .. } => {
                write!(f, "{dir}: {file} failed its integrity check: {source}")
            }
            StoreError::Damaged { report, .. } => write!(
                f,
                "{dir}: {file} failed its integrity check: {} \
                 (restore it from a backup, or move it aside to start afresh)",
                report.replace('\n', "; ")
            ),
            StoreError::Schema { source, .. } => write!(f, "{dir}: cannot set up {file}: {source}"),
            StoreError::NotWritable { source, .. } => {
                write!(f, "{dir}: {file} cannot be written: {source}")
            }
            StoreError::ReadOnly { .. } => write!(
                f,
                "{dir}: {file} is read-only: the server must be able to write it \
                 (check the permissions of the file, its -wal and -shm, the directory and the mount)"
            ),
            StoreError::DiskFull { source, .. } => {
                write!(f, "{dir}: the disk holding {file} is full: {source}")
            }
            StoreError::NewDatabaseRefused { found, .. } => {
                let found: Vec<_> = found
                    .iter()
                    .map(|p| p.file_name().unwrap_or_default().to_string_lossy())
                    .collect();
                write!(
                    f,
                    "{dir}: {file} is missing or empty but {} show a database was here; \
                     a new one would restart every room's numbering in a new epoch: \
                     restore {file} from a backup, or pass --allow-new-database to start afresh",
                    found.join(", ")
                )
            }
            StoreError::SetAside { source, .. } => {
                write!(f, "{dir}: cannot set {file} aside: {source}")
            }
            StoreError::Marker { source, .. } => write!(f, "{dir}: cannot write {file}: {source}"),
            StoreError::Backup { dest, source, .. } => write!(
                f,
                "cannot back up {} to {}: {source}",
                path.display(),
                dest.display()
            ),
            StoreError::BackupFile { source, .. } => {
                write!(f, "{}: cannot finish the backup: {source}", path.display())
            }
            StoreError::Read { source, .. } => {
                write!(f, "{}: cannot read: {source}", path.display())
            }
            StoreError::Write { source, .. } => {
                write!(f, "cannot write to {}: {source}", path.display())
            }
            StoreError::Prune { source, .. } => write!(f, "retention failed: {source}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::CreateDir { source, .. }
            | StoreError::SetAside { source, .. }
            | StoreError::Marker { source, .. }
            | StoreError::BackupFile { source, .. } => Some(source),
            StoreError::Open { source, .. }
            | StoreError::NotADatabase { source, .. }
            | StoreError::IntegrityCheck { source, .. }
            | StoreError::Schema { source, .. }
            | StoreError::NotWritable { source, .. }
            | StoreError::Read { source, .. }
            | StoreError::Write { source, .. }
            | StoreError::Prune { source, .. }
            | StoreError::DiskFull { source, .. }
            | StoreError::Backup { source, .. } => Some(source),
            StoreError::Damaged { .. }
            | StoreError::ReadOnly { .. }
            | StoreError::NewDatabaseRefused { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines operators see, word for word (the first ones as they were
    /// before the errors were typed).
    #[test]
    fn the_messages_operators_see() {
        let path = PathBuf::from("/data/chat.db");
        let e = || rusqlite::Error::QueryReturnedNoRows;
        let cases = [
            (
                StoreError::CreateDir {
                    dir: "/data".into(),
                    source: std::io::Error::other("in the way"),
                },
                "/data: cannot create the data directory: in the way",
            ),
            (
                StoreError::Open {
                    path: path.clone(),
                    source: e(),
                },
                "/data: cannot open chat.db: Query returned no rows",
            ),
            (
                StoreError::NotADatabase {
                    path: path.clone(),
                    source: e(),
                },
                "/data: chat.db is not a usable SQLite database: Query returned no rows",
            ),
            (
                StoreError::Damaged {
                    path: path.clone(),
                    report: "page 3: bad\npage 4: bad".into(),
                },
                "/data: chat.db failed its integrity check: page 3: bad; page 4: bad \
                 (restore it from a backup, or move it aside to start afresh)",
            ),
            (
                StoreError::Schema {
                    path: path.clone(),
                    source: e(),
                },
                "/data: cannot set up chat.db: Query returned no rows",
            ),
            (
                StoreError::NotWritable {
                    path: path.clone(),
                    source: e(),
                },
                "/data: chat.db cannot be written: Query returned no rows",
            ),
            (
                StoreError::ReadOnly { path: path.clone() },
                "/data: chat.db is read-only: the server must be able to write it \
                 (check the permissions of the file, its -wal and -shm, the directory and the mount)",
            ),
            (
                StoreError::DiskFull {
                    path: path.clone(),
                    source: e(),
                },
                "/data: the disk holding chat.db is full: Query returned no rows",
            ),
            (
                StoreError::NewDatabaseRefused {
                    path: path.clone(),
                    found: vec!["/data/chat.db-wal".into(), "/data/chat.db.epoch".into()],
                },
                "/data: chat.db is missing or empty but chat.db-wal, chat.db.epoch show a \
                 database was here; a new one would restart every room's numbering in a new \
                 epoch: restore chat.db from a backup, or pass --allow-new-database to start afresh",
            ),
            (
                StoreError::Read {
                    path: path.clone(),
                    source: e(),
                },
                "/data/chat.db: cannot read: Query returned no rows",
            ),
            (
                StoreError::Write {
                    path: path.clone(),
                    source: e(),
                },
                "cannot write to /data/chat.db: Query returned no rows",
            ),
        ];
        for (err, line) in cases {
            assert_eq!(err.to_string(), line);
        }
    }
}
